//! Client identity in CONNECT (SPEC §1): who the client claims to be, and the proof.

use flytrap_proto::{Connect, Version};
use keccak_asm::{Digest, Keccak256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, Secp256k1, VerifyOnly};

/// A 20-byte Ethereum address.
pub type Address = [u8; 20];

/// Why a CONNECT's credentials are refused. Each is answered with CONNACK 0x86 (3.1.1: 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No `flytrap-address` / user name.
    #[error("no flytrap-address")]
    MissingAddress,
    /// No `flytrap-signature` / password.
    #[error("no flytrap-signature")]
    MissingSignature,
    /// The address is not `0x` + 40 hex digits.
    #[error("malformed address")]
    MalformedAddress,
    /// A mixed-case address whose EIP-55 checksum is wrong.
    #[error("address checksum (EIP-55) is wrong")]
    BadChecksum,
    /// The signature is not `0x` + 130 hex digits with v in {27, 28, 0, 1}.
    #[error("malformed signature")]
    MalformedSignature,
    /// The timestamp is not a decimal number of seconds.
    #[error("malformed timestamp")]
    MalformedTimestamp,
    /// No timestamp, and the static scheme is off (`auth.allow_static`).
    #[error("static signatures are not allowed")]
    StaticNotAllowed,
    /// The timestamp is too far from now.
    #[error("timestamp outside the {0} s window")]
    OutsideWindow(u64),
    /// The signature does not recover to the claimed address.
    #[error("signature does not match the address")]
    WrongSignature,
    /// The same signature was accepted before inside its window.
    #[error("replayed signature")]
    Replayed,
}

/// Credentials as presented, parsed but not yet verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The claimed address.
    pub address: Address,
    /// r ‖ s ‖ recovery id (0 or 1).
    pub signature: [u8; 65],
    /// Unix seconds (timestamped scheme) or `None` (static scheme).
    pub timestamp: Option<u64>,
}

/// A verified identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The proven address.
    pub address: Address,
    /// The signed message's hash: what the replay cache remembers. Keyed on the message, not
    /// on the signature bytes, so a malleated signature of the same message is a replay too.
    pub message_hash: [u8; 32],
    /// The signed timestamp; `None` for the static scheme.
    pub timestamp: Option<u64>,
}

/// keccak-256.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))?
        .as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(out)
}

/// Parses `0x` + 40 hex digits; a mixed-case address must carry a valid EIP-55 checksum.
pub fn parse_address(s: &str) -> Result<Address, IdentityError> {
    let address: Address = parse_hex(s).ok_or(IdentityError::MalformedAddress)?;
    let digits = &s.as_bytes()[2..];
    let has_upper = digits.iter().any(u8::is_ascii_uppercase);
    let has_lower = digits.iter().any(u8::is_ascii_lowercase);
    if has_upper && has_lower {
        let lower = lower_hex(&address);
        let hash = keccak256(&lower.as_bytes()[2..]);
        for (i, &c) in digits.iter().enumerate() {
            if c.is_ascii_alphabetic() {
                let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
                if c.is_ascii_uppercase() != (nibble >= 8) {
                    return Err(IdentityError::BadChecksum);
                }
            }
        }
    }
    Ok(address)
}

/// `0x` + lowercase hex.
pub fn lower_hex(address: &Address) -> String {
    let mut s = String::with_capacity(42);
    s.push_str("0x");
    for b in address {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 0x0f)]));
    }
    s
}

/// `0x` + hex with the EIP-55 checksum (mixed case), as wallets show an address.
pub fn checksum_hex(address: &Address) -> String {
    let lower = lower_hex(address);
    let hash = keccak256(&lower.as_bytes()[2..]);
    let mut s = String::with_capacity(42);
    s.push_str("0x");
    for (i, c) in lower[2..].chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        s.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    s
}

/// Parses `0x` + 130 hex digits, r ‖ s ‖ v with v in {27, 28} or {0, 1}; v becomes 0/1.
pub fn parse_signature(s: &str) -> Result<[u8; 65], IdentityError> {
    let mut sig: [u8; 65] = parse_hex(s).ok_or(IdentityError::MalformedSignature)?;
    sig[64] = match sig[64] {
        0 | 27 => 0,
        1 | 28 => 1,
        _ => return Err(IdentityError::MalformedSignature),
    };
    Ok(sig)
}

/// Reads the credentials of a CONNECT: v5 user properties, or the 3.1.1 user name and
/// password (`<timestamp>:<signature>` or `<signature>`).
pub fn credentials(connect: &Connect<'_>) -> Result<Credentials, IdentityError> {
    let (address, signature, timestamp) = match connect.version {
        Version::V5 => {
            let p = &connect.properties;
            (
                p.user_property("flytrap-address"),
                p.user_property("flytrap-signature"),
                p.user_property("flytrap-timestamp"),
            )
        }
        Version::V311 => {
            let password = connect
                .password
                .map(|p| std::str::from_utf8(p).map_err(|_| IdentityError::MalformedSignature))
                .transpose()?;
            let (timestamp, signature) = match password.map(|p| p.split_once(':')) {
                Some(Some((t, s))) => (Some(t), Some(s)),
                Some(None) => (None, password),
                None => (None, None),
            };
            (connect.username, signature, timestamp)
        }
    };
    let address = parse_address(address.ok_or(IdentityError::MissingAddress)?)?;
    let signature = parse_signature(signature.ok_or(IdentityError::MissingSignature)?)?;
    let timestamp = timestamp
        .map(|t| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(IdentityError::MalformedTimestamp);
            }
            t.parse::<u64>()
                .map_err(|_| IdentityError::MalformedTimestamp)
        })
        .transpose()?;
    Ok(Credentials {
        address,
        signature,
        timestamp,
    })
}

/// The EIP-191 `personal_sign` hash of `message`.
pub fn personal_sign_hash(message: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(message.len().to_string().as_bytes());
    h.update(message);
    h.finalize().into()
}

/// The signed message of SPEC §1 for these credentials.
pub fn signed_message(address: &Address, client_id: &str, timestamp: Option<u64>) -> String {
    match timestamp {
        Some(t) => format!("flytrap-connect:{}:{client_id}:{t}", lower_hex(address)),
        None => lower_hex(address),
    }
}

/// Checks CONNECT signatures. One per shard: the libsecp256k1 context is not shared.
#[derive(Debug)]
pub struct Verifier {
    secp: Secp256k1<VerifyOnly>,
    allow_static: bool,
    max_clock_skew_s: u64,
}

impl Verifier {
    /// A verifier with the `auth` settings.
    pub fn new(allow_static: bool, max_clock_skew_s: u64) -> Verifier {
        Verifier {
            secp: Secp256k1::verification_only(),
            allow_static,
            max_clock_skew_s,
        }
    }

    /// Verifies the CONNECT's credentials at Unix time `now`. The replay check is separate
    /// ([`crate::replay`]) since it is shared across shards.
    pub fn verify(&self, connect: &Connect<'_>, now: u64) -> Result<Identity, IdentityError> {
        let c = credentials(connect)?;
        match c.timestamp {
            None if !self.allow_static => return Err(IdentityError::StaticNotAllowed),
            Some(t) if t.abs_diff(now) > self.max_clock_skew_s => {
                return Err(IdentityError::OutsideWindow(self.max_clock_skew_s));
            }
            _ => {}
        }
        let message = signed_message(&c.address, connect.client_id, c.timestamp);
        let hash = personal_sign_hash(message.as_bytes());
        if self.recover(&hash, &c.signature)? != c.address {
            return Err(IdentityError::WrongSignature);
        }
        Ok(Identity {
            address: c.address,
            message_hash: hash,
            timestamp: c.timestamp,
        })
    }

    /// The address that signed `hash`.
    pub fn recover(&self, hash: &[u8; 32], signature: &[u8; 65]) -> Result<Address, IdentityError> {
        let id = RecoveryId::try_from(i32::from(signature[64]))
            .map_err(|_| IdentityError::MalformedSignature)?;
        let sig = RecoverableSignature::from_compact(&signature[..64], id)
            .map_err(|_| IdentityError::MalformedSignature)?;
        let key = self
            .secp
            .recover_ecdsa(Message::from_digest(*hash), &sig)
            .map_err(|_| IdentityError::WrongSignature)?;
        let public = key.serialize_uncompressed();
        let digest = keccak256(&public[1..]);
        let mut address = [0u8; 20];
        address.copy_from_slice(&digest[12..]);
        Ok(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip55_examples() {
        // From EIP-55.
        for good in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED",
        ] {
            assert!(parse_address(good).is_ok(), "{good}");
        }
        let a = parse_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").unwrap();
        assert_eq!(
            checksum_hex(&a),
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        );
        assert_eq!(
            parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            Err(IdentityError::BadChecksum)
        );
        assert_eq!(
            parse_address("0x5aae"),
            Err(IdentityError::MalformedAddress)
        );
        assert_eq!(
            parse_address("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed00"),
            Err(IdentityError::MalformedAddress)
        );
    }

    #[test]
    fn signatures() {
        let s = format!("0x{}1b", "11".repeat(64));
        assert_eq!(parse_signature(&s).unwrap()[64], 0);
        let s = format!("0x{}01", "11".repeat(64));
        assert_eq!(parse_signature(&s).unwrap()[64], 1);
        let s = format!("0x{}1d", "11".repeat(64));
        assert_eq!(parse_signature(&s), Err(IdentityError::MalformedSignature));
        assert_eq!(
            parse_signature("0x12"),
            Err(IdentityError::MalformedSignature)
        );
    }
}
