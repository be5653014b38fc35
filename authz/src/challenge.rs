//! The challenge scheme: sign-in by MQTT 5 enhanced authentication (AUTH packets), method
//! [`METHOD`]. Sans-IO: the engine moves the packets, this module decides.
//!
//! 1. CONNECT carries Authentication Method `flytrap-siwe-v1` and, as Authentication Data, the
//!    client's address (`0x` + 40 hex digits, UTF-8).
//! 2. The proxy answers AUTH 0x18 (Continue authentication) whose Authentication Data is a
//!    Sign-In with Ethereum (EIP-4361) message ([`SiweMessage`]) with a fresh random nonce,
//!    the proxy's domain, issue and expiry times, and the client identifier bound in.
//! 3. The client answers AUTH 0x18 whose Authentication Data is the EIP-191 `personal_sign`
//!    signature of that message: 65 bytes r ‖ s ‖ v, or the same as `0x` + 130 hex digits.
//! 4. The proxy recovers the signer of the message *it* sent on this connection
//!    ([`Challenge::finish`]); a signature over any other nonce recovers another address.
//!
//! The nonce lives only in the connection's [`Challenge`]: a captured exchange is useless on
//! any other connection, at this proxy or another, with no state shared between proxies.

use chrono::{DateTime, SecondsFormat};
use flytrap_proto::{Connect, Property, ReasonCode};
use std::fmt;

use crate::identity::{
    Address, Identity, IdentityError, Verifier, checksum_hex, parse_address, parse_signature,
    personal_sign_hash,
};

/// The Authentication Method of the challenge scheme.
pub const METHOD: &str = "flytrap-siwe-v1";

/// The statement of every message: what the user agrees to by signing.
pub const STATEMENT: &str = "Sign in to the FlyTrap MQTT proxy for this connection only.";

/// Settings of the challenge scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeConfig {
    /// The SIWE `domain` (`auth.challenge_domain`), an RFC 3986 authority.
    pub domain: String,
    /// The SIWE `Chain ID`: the chain the contract lives on.
    pub chain_id: u64,
    /// How long a challenge may be answered, in seconds (`auth.challenge_ttl_s`).
    pub ttl_s: u64,
}

/// Why an exchange is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The CONNECT names another authentication method (or none).
    #[error("authentication method is not {METHOD}")]
    WrongMethod,
    /// The CONNECT's Authentication Data is not an address.
    #[error("authentication data: {0}")]
    Address(IdentityError),
    /// The answer came after the message's expiration time.
    #[error("challenge expired")]
    Expired,
    /// The answer is not a signature.
    #[error("malformed signature")]
    MalformedSignature,
    /// The signature does not recover to the address (for instance: another nonce).
    #[error("signature does not match the address")]
    WrongSignature,
}

impl ChallengeError {
    /// The CONNACK reason: 0x8C for a method FlyTrap does not speak, 0x86 for the rest.
    pub fn reason_code(self) -> ReasonCode {
        match self {
            ChallengeError::WrongMethod => ReasonCode::BAD_AUTHENTICATION_METHOD,
            _ => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
        }
    }
}

/// The Authentication Method of a CONNECT (or AUTH), if any.
pub fn method<'a>(connect: &Connect<'a>) -> Option<&'a str> {
    connect.properties.iter().find_map(|p| match p {
        Property::AuthenticationMethod(m) => Some(m),
        _ => None,
    })
}

fn data<'a>(connect: &Connect<'a>) -> Option<&'a [u8]> {
    connect.properties.iter().find_map(|p| match p {
        Property::AuthenticationData(d) => Some(d),
        _ => None,
    })
}

/// A Sign-In with Ethereum (EIP-4361) message as FlyTrap issues it. Its text (`Display`) is
/// what the client signs:
///
/// ```text
/// {domain} wants you to sign in with your Ethereum account:
/// {address, EIP-55}
///
/// {STATEMENT}
///
/// URI: mqtt://{domain}
/// Version: 1
/// Chain ID: {chain id}
/// Nonce: {32 hex digits}
/// Issued At: {RFC 3339, UTC}
/// Expiration Time: {RFC 3339, UTC}
/// Request ID: {MQTT client identifier, percent-encoded}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiweMessage<'a> {
    /// The proxy's domain.
    pub domain: &'a str,
    /// The signer.
    pub address: Address,
    /// The chain.
    pub chain_id: u64,
    /// 16 random bytes, shown as 32 hex digits.
    pub nonce: [u8; 16],
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub expiration: u64,
    /// The MQTT client identifier the sign-in is for.
    pub client_id: &'a str,
}

fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Percent-encodes all but RFC 3986 unreserved characters: any client identifier becomes a
/// valid SIWE `request-id`, and one line whatever it holds.
struct PercentEncoded<'a>(&'a str);

impl fmt::Display for PercentEncoded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for SiweMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{domain} wants you to sign in with your Ethereum account:\n{address}\n\n\
             {STATEMENT}\n\n\
             URI: mqtt://{domain}\nVersion: 1\nChain ID: {chain}\nNonce: {nonce}\n\
             Issued At: {issued}\nExpiration Time: {expires}\nRequest ID: {request}",
            domain = self.domain,
            address = checksum_hex(&self.address),
            chain = self.chain_id,
            nonce = hex::encode(self.nonce),
            issued = rfc3339(self.issued_at),
            expires = rfc3339(self.expiration),
            request = PercentEncoded(self.client_id),
        )
    }
}

/// One connection's exchange between the challenge it was sent and its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    address: Address,
    /// EIP-191 hash of the message sent: the only thing a valid answer can be a signature of.
    hash: [u8; 32],
    expiration: u64,
}

impl Challenge {
    /// Starts the exchange for `connect` at Unix time `now` with a fresh `nonce`: the state
    /// to keep and the message to send as the AUTH's Authentication Data.
    pub fn begin(
        config: &ChallengeConfig,
        connect: &Connect<'_>,
        nonce: [u8; 16],
        now: u64,
    ) -> Result<(Challenge, String), ChallengeError> {
        if method(connect) != Some(METHOD) {
            return Err(ChallengeError::WrongMethod);
        }
        let address = data(connect)
            .ok_or(ChallengeError::Address(IdentityError::MissingAddress))
            .and_then(|d| {
                let text = std::str::from_utf8(d)
                    .map_err(|_| ChallengeError::Address(IdentityError::MalformedAddress))?;
                parse_address(text.trim()).map_err(ChallengeError::Address)
            })?;
        let message = SiweMessage {
            domain: &config.domain,
            address,
            chain_id: config.chain_id,
            nonce,
            issued_at: now,
            expiration: now.saturating_add(config.ttl_s),
            client_id: connect.client_id,
        };
        let text = message.to_string();
        let challenge = Challenge {
            address,
            hash: personal_sign_hash(text.as_bytes()),
            expiration: message.expiration,
        };
        Ok((challenge, text))
    }

    /// The client's answer (the Authentication Data of its AUTH) at Unix time `now`.
    pub fn finish(
        self,
        verifier: &Verifier,
        answer: &[u8],
        now: u64,
    ) -> Result<Identity, ChallengeError> {
        if now > self.expiration {
            return Err(ChallengeError::Expired);
        }
        let signature = parse_answer(answer)?;
        match verifier.check(&self.hash, &signature, &self.address) {
            Ok(()) => Ok(Identity {
                address: self.address,
                message_hash: self.hash,
                timestamp: None,
            }),
            Err(IdentityError::WrongSignature) => Err(ChallengeError::WrongSignature),
            Err(_) => Err(ChallengeError::MalformedSignature),
        }
    }

    /// The address being proven.
    pub fn address(&self) -> Address {
        self.address
    }
}

/// Why a signer refuses to sign a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForeignMessage {
    /// Not a Sign-In with Ethereum message of the challenge scheme.
    #[error("not a {METHOD} challenge (a Sign-In with Ethereum message)")]
    NotAChallenge,
    /// For another account.
    #[error("the challenge is for {0}, not this key's address")]
    OtherAddress(String),
    /// For another client identifier.
    #[error("the challenge is for client id {0:?} (percent-encoded), not this one")]
    OtherClient(String),
}

/// What a signer checks before signing a challenge: that it is one, for its own address and
/// client identifier (so a proxy cannot get a signature for anything else).
pub fn check_challenge(
    message: &str,
    address: &Address,
    client_id: &str,
) -> Result<(), ForeignMessage> {
    let mut lines = message.lines();
    if !lines
        .next()
        .is_some_and(|l| l.ends_with(" wants you to sign in with your Ethereum account:"))
        || !message.contains(&format!("\n{STATEMENT}\n"))
    {
        return Err(ForeignMessage::NotAChallenge);
    }
    let signer = lines.next().unwrap_or_default();
    if parse_address(signer).ok() != Some(*address) {
        return Err(ForeignMessage::OtherAddress(signer.to_string()));
    }
    let request = message
        .lines()
        .find_map(|l| l.strip_prefix("Request ID: "))
        .ok_or(ForeignMessage::NotAChallenge)?;
    if request != PercentEncoded(client_id).to_string() {
        return Err(ForeignMessage::OtherClient(request.to_string()));
    }
    Ok(())
}

/// 65 raw bytes, or `0x` + 130 hex digits; v ∈ {27, 28} or {0, 1}.
fn parse_answer(answer: &[u8]) -> Result<[u8; 65], ChallengeError> {
    let text = match answer.len() {
        65 => format!("0x{}", hex::encode(answer)),
        _ => std::str::from_utf8(answer)
            .map_err(|_| ChallengeError::MalformedSignature)?
            .trim()
            .to_string(),
    };
    parse_signature(&text).map_err(|_| ChallengeError::MalformedSignature)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use flytrap_proto::{Properties, PropertyContext, Version, encode_properties};

    // Made with an independent implementation (eth-account 0.13.7):
    //   from eth_account import Account; from eth_account.messages import encode_defunct
    //   Account.from_key(KEY).sign_message(encode_defunct(text=MESSAGE)).signature.hex()
    const KEY: &str = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
    const ADDRESS: &str = "0x2c7536e3605d9c16a7a3d7b1898e529396a65c23";
    const MESSAGE: &str = "flytrap.example wants you to sign in with your Ethereum account:
0x2c7536E3605D9C16a7a3D7b1898e529396a65c23

Sign in to the FlyTrap MQTT proxy for this connection only.

URI: mqtt://flytrap.example
Version: 1
Chain ID: 31337
Nonce: 000102030405060708090a0b0c0d0e0f
Issued At: 2023-11-14T22:13:20Z
Expiration Time: 2023-11-14T22:13:50Z
Request ID: sensor-1%2Fa%20b";
    const SIGNATURE: &str = "0x93c76a523a50fb194c17ff83fea727214b736c3f6dc9628115d6e9540b5f57620d76eea41aacd7e080c86132edf2c00c32d4a2653600abb6e7983d38176561bc1c";

    const NONCE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    const NOW: u64 = 1_700_000_000;

    fn config() -> ChallengeConfig {
        ChallengeConfig {
            domain: "flytrap.example".into(),
            chain_id: 31337,
            ttl_s: 30,
        }
    }

    fn connect<'a>(
        raw: &'a mut Vec<u8>,
        props: &[Property<'_>],
        client_id: &'a str,
    ) -> Connect<'a> {
        encode_properties(props, raw);
        Connect {
            version: Version::V5,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::parse_raw(raw, PropertyContext::Connect).unwrap(),
            client_id,
            will: None,
            username: None,
            password: None,
        }
    }

    fn begin(client_id: &str) -> Result<(Challenge, String), ChallengeError> {
        let mut raw = Vec::new();
        let c = connect(
            &mut raw,
            &[
                Property::AuthenticationMethod(METHOD),
                Property::AuthenticationData(ADDRESS.as_bytes()),
            ],
            client_id,
        );
        Challenge::begin(&config(), &c, NONCE, NOW)
    }

    #[test]
    fn message_format_matches_the_vector() {
        let (challenge, text) = begin("sensor-1/a b").unwrap();
        assert_eq!(text, MESSAGE);
        assert_eq!(challenge.address(), parse_address(ADDRESS).unwrap());
    }

    #[test]
    fn signature_made_by_eth_account_is_accepted() {
        let (challenge, _) = begin("sensor-1/a b").unwrap();
        let verifier = Verifier::new(false, 300, 16);
        let id = challenge
            .finish(&verifier, SIGNATURE.as_bytes(), NOW + 30)
            .unwrap();
        assert_eq!(id.address, parse_address(ADDRESS).unwrap());
        assert_eq!(id.timestamp, None);
        // The same signature as 65 raw bytes.
        let raw = hex::decode(&SIGNATURE[2..]).unwrap();
        assert!(challenge.finish(&verifier, &raw, NOW).is_ok());
    }

    #[test]
    fn another_nonce_client_or_time_is_refused() {
        let verifier = Verifier::new(false, 300, 16);
        // Another client identifier: another message.
        let (other, _) = begin("sensor-2").unwrap();
        assert_eq!(
            other.finish(&verifier, SIGNATURE.as_bytes(), NOW),
            Err(ChallengeError::WrongSignature)
        );
        // Another nonce (a captured answer on a new connection).
        let mut raw = Vec::new();
        let c = connect(
            &mut raw,
            &[
                Property::AuthenticationMethod(METHOD),
                Property::AuthenticationData(ADDRESS.as_bytes()),
            ],
            "sensor-1/a b",
        );
        let (fresh, _) = Challenge::begin(&config(), &c, [9; 16], NOW).unwrap();
        assert_eq!(
            fresh.finish(&verifier, SIGNATURE.as_bytes(), NOW),
            Err(ChallengeError::WrongSignature)
        );
        // Too late.
        let (late, _) = begin("sensor-1/a b").unwrap();
        assert_eq!(
            late.finish(&verifier, SIGNATURE.as_bytes(), NOW + 31),
            Err(ChallengeError::Expired)
        );
        assert_eq!(
            late.finish(&verifier, b"0x1234", NOW),
            Err(ChallengeError::MalformedSignature)
        );
    }

    #[test]
    fn connect_errors_map_to_reason_codes() {
        let mut raw = Vec::new();
        let c = connect(
            &mut raw,
            &[Property::AuthenticationMethod("SCRAM-SHA-256")],
            "x",
        );
        let e = Challenge::begin(&config(), &c, NONCE, NOW).unwrap_err();
        assert_eq!(e, ChallengeError::WrongMethod);
        assert_eq!(e.reason_code(), ReasonCode::BAD_AUTHENTICATION_METHOD);

        let mut raw = Vec::new();
        let c = connect(&mut raw, &[Property::AuthenticationMethod(METHOD)], "x");
        let e = Challenge::begin(&config(), &c, NONCE, NOW).unwrap_err();
        assert_eq!(e, ChallengeError::Address(IdentityError::MissingAddress));
        assert_eq!(e.reason_code(), ReasonCode::BAD_USER_NAME_OR_PASSWORD);

        let mut raw = Vec::new();
        let c = connect(
            &mut raw,
            &[
                Property::AuthenticationMethod(METHOD),
                Property::AuthenticationData(b"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            ],
            "x",
        );
        assert_eq!(
            Challenge::begin(&config(), &c, NONCE, NOW),
            Err(ChallengeError::Address(IdentityError::BadChecksum))
        );
    }

    #[test]
    fn signers_check_what_they_sign() {
        let address = parse_address(ADDRESS).unwrap();
        assert_eq!(check_challenge(MESSAGE, &address, "sensor-1/a b"), Ok(()));
        assert_eq!(
            check_challenge(MESSAGE, &address, "sensor-2"),
            Err(ForeignMessage::OtherClient("sensor-1%2Fa%20b".into()))
        );
        assert!(matches!(
            check_challenge(MESSAGE, &[7; 20], "sensor-1/a b"),
            Err(ForeignMessage::OtherAddress(_))
        ));
        assert_eq!(
            check_challenge("flytrap-connect:0x00:x:1", &address, "x"),
            Err(ForeignMessage::NotAChallenge)
        );
    }

    #[test]
    fn key_of_the_vector_is_the_address() {
        // Guards the vector itself: KEY's address is ADDRESS.
        let secp = secp256k1::Secp256k1::new();
        let sk = secp256k1::SecretKey::from_byte_array(
            hex::decode(&KEY[2..]).unwrap().try_into().unwrap(),
        )
        .unwrap();
        let public = secp256k1::PublicKey::from_secret_key(&secp, &sk).serialize_uncompressed();
        let digest = crate::identity::keccak256(&public[1..]);
        assert_eq!(hex::encode(&digest[12..]), &ADDRESS[2..]);
    }
}
