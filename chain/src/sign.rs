//! CONNECT credentials (SPEC §1): EIP-191 `personal_sign` signatures a client puts in its
//! CONNECT, made with alloy's local signer (k256).
//!
//! Timestamped scheme (default): the message is
//! `flytrap-connect:<lower-case 0x address>:<client id>:<unix seconds>`. Static scheme (the
//! paper's pre-computed signature, off unless `auth.allow_static`): the message is the
//! lower-case 0x address itself — anyone who sees it can replay it.
//!
//! The proxy's verifier is separate (libsecp256k1); both agree with `spec-vectors.json`.

use alloy::primitives::{Address, B256, Signature, eip191_hash_message};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;

use crate::Error;
use crate::types::lower_hex;

/// User property names of SPEC §1.
pub const PROP_ADDRESS: &str = "flytrap-address";
/// User property holding `0x` + r ‖ s ‖ v.
pub const PROP_SIGNATURE: &str = "flytrap-signature";
/// User property holding the Unix time (timestamped scheme only).
pub const PROP_TIMESTAMP: &str = "flytrap-timestamp";

/// The timestamped scheme's message.
pub fn connect_message(address: &Address, client_id: &str, timestamp: u64) -> String {
    format!(
        "flytrap-connect:{}:{client_id}:{timestamp}",
        lower_hex(address)
    )
}

/// The static scheme's message: the lower-case address.
pub fn static_message(address: &Address) -> String {
    lower_hex(address)
}

/// keccak-256 of `"\x19Ethereum Signed Message:\n" + len + message` (EIP-191).
pub fn personal_hash(message: &str) -> B256 {
    eip191_hash_message(message.as_bytes())
}

/// Signed CONNECT credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The signer's address.
    pub address: Address,
    /// r ‖ s ‖ v with v ∈ {27, 28}.
    pub signature: [u8; 65],
    /// The signed Unix time; `None` in the static scheme.
    pub timestamp: Option<u64>,
}

impl Credentials {
    /// `0x` + 130 hex digits.
    pub fn signature_hex(&self) -> String {
        format!("0x{}", alloy::hex::encode(self.signature))
    }

    /// The CONNECT user properties, in order (address, signature, timestamp when present).
    pub fn user_properties(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (PROP_ADDRESS, lower_hex(&self.address)),
            (PROP_SIGNATURE, self.signature_hex()),
        ];
        if let Some(t) = self.timestamp {
            v.push((PROP_TIMESTAMP, t.to_string()));
        }
        v
    }

    /// MQTT 3.1.1 user name: the address.
    pub fn v311_username(&self) -> String {
        lower_hex(&self.address)
    }

    /// MQTT 3.1.1 password: `<timestamp>:<0x signature>` or `<0x signature>` (static).
    pub fn v311_password(&self) -> String {
        match self.timestamp {
            Some(t) => format!("{t}:{}", self.signature_hex()),
            None => self.signature_hex(),
        }
    }
}

/// EIP-191 `personal_sign` of `message`: r ‖ s ‖ v with v ∈ {27, 28} (the challenge scheme
/// signs the proxy's Sign-In with Ethereum message with it).
pub fn sign(signer: &PrivateKeySigner, message: &str) -> Result<[u8; 65], Error> {
    let sig = signer
        .sign_message_sync(message.as_bytes())
        .map_err(|e| Error::InvalidInput(format!("cannot sign: {e}")))?;
    Ok(sig.as_bytes())
}

/// Signs the timestamped CONNECT message for `client_id` at `timestamp`.
pub fn sign_connect(
    signer: &PrivateKeySigner,
    client_id: &str,
    timestamp: u64,
) -> Result<Credentials, Error> {
    let address = signer.address();
    let signature = sign(signer, &connect_message(&address, client_id, timestamp))?;
    Ok(Credentials {
        address,
        signature,
        timestamp: Some(timestamp),
    })
}

/// Signs the static scheme's message (replayable by anyone who sees it).
pub fn sign_static(signer: &PrivateKeySigner) -> Result<Credentials, Error> {
    let address = signer.address();
    let signature = sign(signer, &static_message(&address))?;
    Ok(Credentials {
        address,
        signature,
        timestamp: None,
    })
}

/// Parses `0x` + 130 hex digits with v ∈ {27, 28} or {0, 1}.
pub fn parse_signature(hex: &str) -> Result<Signature, Error> {
    let bad = |why: &str| Error::InvalidInput(format!("malformed signature: {why}"));
    let digits = hex.strip_prefix("0x").ok_or_else(|| bad("no 0x prefix"))?;
    if digits.len() != 130 {
        return Err(bad("expected 130 hex digits"));
    }
    let bytes = alloy::hex::decode(digits).map_err(|_| bad("not hex"))?;
    if !matches!(bytes[64], 0 | 1 | 27 | 28) {
        return Err(bad("v must be 27, 28, 0 or 1"));
    }
    Signature::from_raw(&bytes).map_err(|e| bad(&e.to_string()))
}

/// The address that signed `message` (EIP-191) with `signature`.
pub fn recover(message: &str, signature: &str) -> Result<Address, Error> {
    parse_signature(signature)?
        .recover_address_from_msg(message.as_bytes())
        .map_err(|e| Error::InvalidInput(format!("cannot recover the signer: {e}")))
}
