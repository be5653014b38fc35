//! Client identity in CONNECT (SPEC §1): who the client claims to be, and the proof.

use std::cell::RefCell;

use flytrap_proto::{Connect, Version};
use keccak_asm::{Digest, Keccak256};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId, Signature};
use secp256k1::{Message, PublicKey, Secp256k1, VerifyOnly};

use crate::generations::Generations;

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
    lower_hex_bytes(address)
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// `0x` + lowercase hex, without allocating.
fn lower_hex_bytes(address: &Address) -> [u8; 42] {
    let mut hex = [0u8; 42];
    hex[..2].copy_from_slice(b"0x");
    for (pair, b) in hex[2..].chunks_exact_mut(2).zip(address) {
        pair[0] = HEX_LOWER[usize::from(b >> 4)];
        pair[1] = HEX_LOWER[usize::from(b & 0x0f)];
    }
    hex
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
            // One pass over the properties; the first of each name counts, as with
            // `user_property`.
            let (mut address, mut signature, mut timestamp) = (None, None, None);
            for (name, value) in connect.properties.user_properties() {
                let slot = match name {
                    "flytrap-address" => &mut address,
                    "flytrap-signature" => &mut signature,
                    "flytrap-timestamp" => &mut timestamp,
                    _ => continue,
                };
                slot.get_or_insert(value);
            }
            (address, signature, timestamp)
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

/// What EIP-191 `personal_sign` puts before the message's decimal length.
const PERSONAL_SIGN_PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// The EIP-191 `personal_sign` hash of `message`.
pub fn personal_sign_hash(message: &[u8]) -> [u8; 32] {
    let mut h = personal_sign_hasher(message.len());
    h.update(message);
    h.finalize().into()
}

/// A keccak that has taken EIP-191's framing of a `len`-byte message; the message is next.
fn personal_sign_hasher(len: usize) -> Keccak256 {
    let mut h = Keccak256::new();
    h.update(PERSONAL_SIGN_PREFIX);
    h.update(itoa::Buffer::new().format(len).as_bytes());
    h
}

/// The signed message of SPEC §1 for these credentials.
pub fn signed_message(address: &Address, client_id: &str, timestamp: Option<u64>) -> String {
    match timestamp {
        Some(t) => format!("flytrap-connect:{}:{client_id}:{t}", lower_hex(address)),
        None => lower_hex(address),
    }
}

/// `personal_sign_hash(signed_message(..))`, hashed as it is written: the CONNECT path builds
/// no string and runs no `fmt` code for it (its cold cost on a lone CONNECT, BENCHMARKS.md).
pub fn signed_message_hash(address: &Address, client_id: &str, timestamp: Option<u64>) -> [u8; 32] {
    const CONNECT: &[u8] = b"flytrap-connect:";
    let hex = lower_hex_bytes(address);
    let mut ts = itoa::Buffer::new();
    let ts = timestamp.map(|t| ts.format(t).as_bytes());
    let len = match ts {
        Some(ts) => CONNECT.len() + hex.len() + 1 + client_id.len() + 1 + ts.len(),
        None => hex.len(),
    };
    let mut h = personal_sign_hasher(len);
    match ts {
        Some(ts) => {
            h.update(CONNECT);
            h.update(hex);
            h.update(b":");
            h.update(client_id.as_bytes());
            h.update(b":");
            h.update(ts);
        }
        None => h.update(hex),
    }
    h.finalize().into()
}

/// Checks CONNECT signatures. One per shard: the libsecp256k1 context and the known keys are
/// not shared.
#[derive(Debug)]
pub struct Verifier {
    secp: Secp256k1<VerifyOnly>,
    allow_static: bool,
    max_clock_skew_s: u64,
    /// Public keys of addresses that signed before ([`Verifier::check`]).
    known_keys: RefCell<Generations<Address, PublicKey>>,
}

impl Verifier {
    /// A verifier with the `auth` settings, remembering the keys of up to `known_keys`
    /// signers (`auth.known_keys`; 0: recover every signature).
    pub fn new(allow_static: bool, max_clock_skew_s: u64, known_keys: usize) -> Verifier {
        Verifier {
            secp: Secp256k1::verification_only(),
            allow_static,
            max_clock_skew_s,
            known_keys: RefCell::new(Generations::new(known_keys)),
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
        let hash = signed_message_hash(&c.address, connect.client_id, c.timestamp);
        self.check(&hash, &c.signature, &c.address)?;
        Ok(Identity {
            address: c.address,
            message_hash: hash,
            timestamp: c.timestamp,
        })
    }

    /// Whether `signature` (r ‖ s ‖ recovery id) over `hash` is `address`'s.
    ///
    /// A signer seen before has its public key remembered: its signature is verified against
    /// that key, which skips recovery's square root, the key's serialisation and its keccak
    /// (about 5 µs of a 32 µs check, BENCHMARKS.md). The recovery id is then not needed: it only
    /// says which of two points r names, and the known key settles that, so a signature
    /// whose r and s are right for the key passes whatever its recovery id. A new signer's key
    /// is recovered, and remembered only if it is the address's.
    pub fn check(
        &self,
        hash: &[u8; 32],
        signature: &[u8; 65],
        address: &Address,
    ) -> Result<(), IdentityError> {
        let message = Message::from_digest(*hash);
        let known = self.known_keys.borrow_mut().get(address);
        if let Some(key) = known {
            let mut sig = Signature::from_compact(&signature[..64])
                .map_err(|_| IdentityError::MalformedSignature)?;
            // Recovery takes either s; verification wants the low one (BIP-62).
            sig.normalize_s();
            return self
                .secp
                .verify_ecdsa(message, &sig, &key)
                .map_err(|_| IdentityError::WrongSignature);
        }
        let key = self.recover_key(&message, signature)?;
        if address_of(&key) != *address {
            return Err(IdentityError::WrongSignature);
        }
        self.known_keys.borrow_mut().insert(*address, key);
        Ok(())
    }

    fn recover_key(
        &self,
        message: &Message,
        signature: &[u8; 65],
    ) -> Result<PublicKey, IdentityError> {
        let id = RecoveryId::try_from(i32::from(signature[64]))
            .map_err(|_| IdentityError::MalformedSignature)?;
        let sig = RecoverableSignature::from_compact(&signature[..64], id)
            .map_err(|_| IdentityError::MalformedSignature)?;
        self.secp
            .recover_ecdsa(*message, &sig)
            .map_err(|_| IdentityError::WrongSignature)
    }
}

/// The Ethereum address of a public key: the last 20 bytes of the keccak of its coordinates.
fn address_of(key: &PublicKey) -> Address {
    let public = key.serialize_uncompressed();
    let digest = keccak256(&public[1..]);
    let mut address = [0u8; 20];
    address.copy_from_slice(&digest[12..]);
    address
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

    fn secret(byte: u8) -> secp256k1::SecretKey {
        secp256k1::SecretKey::from_byte_array([byte; 32]).unwrap()
    }

    fn address(key: &secp256k1::SecretKey) -> Address {
        address_of(&PublicKey::from_secret_key(&Secp256k1::signing_only(), key))
    }

    fn sign(key: &secp256k1::SecretKey, hash: &[u8; 32]) -> [u8; 65] {
        let (id, rs) = Secp256k1::signing_only()
            .sign_ecdsa_recoverable(Message::from_digest(*hash), key)
            .serialize_compact();
        let mut sig = [0u8; 65];
        sig[..64].copy_from_slice(&rs);
        sig[64] = i32::from(id) as u8;
        sig
    }

    /// The same signature with s′ = n − s and the other recovery id.
    fn malleate(sig: &[u8; 65]) -> [u8; 65] {
        let s: [u8; 32] = sig[32..64].try_into().unwrap();
        let high = secp256k1::SecretKey::from_byte_array(s).unwrap().negate();
        let mut out = *sig;
        out[32..64].copy_from_slice(&high.secret_bytes());
        out[64] ^= 1;
        out
    }

    #[test]
    fn a_returning_signer_is_verified_against_its_known_key() {
        use IdentityError::*;
        let verifier = Verifier::new(false, 300, 16);
        let (key, other) = (secret(0x42), secret(0x43));
        let a = address(&key);
        let (h1, h2, h3) = (keccak256(b"one"), keccak256(b"two"), keccak256(b"three"));
        // Another key's signature neither passes nor leaves a key for `a`.
        assert_eq!(
            verifier.check(&h1, &sign(&other, &h1), &a),
            Err(WrongSignature)
        );
        assert!(verifier.known_keys.borrow().is_empty());
        // The first good one is recovered and its key kept.
        assert_eq!(verifier.check(&h1, &sign(&key, &h1), &a), Ok(()));
        assert_eq!(verifier.known_keys.borrow().len(), 1);
        // Then verified against the key.
        let good = sign(&key, &h2);
        assert_eq!(verifier.check(&h2, &good, &a), Ok(()));
        assert_eq!(verifier.check(&h2, &malleate(&good), &a), Ok(()));
        assert_eq!(verifier.check(&h3, &good, &a), Err(WrongSignature));
        assert_eq!(
            verifier.check(&h2, &sign(&other, &h2), &a),
            Err(WrongSignature)
        );
        let mut tampered = good;
        tampered[40] ^= 1;
        assert_eq!(verifier.check(&h2, &tampered, &a), Err(WrongSignature));
        let mut overflow = good;
        overflow[..32].fill(0xff);
        assert_eq!(verifier.check(&h2, &overflow, &a), Err(MalformedSignature));
        // The other signer still goes through recovery, under its own address.
        assert_eq!(
            verifier.check(&h2, &sign(&other, &h2), &address(&other)),
            Ok(())
        );
        assert_eq!(verifier.known_keys.borrow().len(), 2);
    }

    #[test]
    fn recovery_and_known_key_give_the_same_answers() {
        let key = secret(0x42);
        let a = address(&key);
        let hash = keccak256(b"message");
        let good = sign(&key, &hash);
        let mut tampered = good;
        tampered[3] ^= 1;
        let mut overflow = good;
        overflow[32..64].fill(0xff);
        for sig in [good, malleate(&good), tampered, overflow] {
            let fresh = Verifier::new(false, 300, 0);
            let known = Verifier::new(false, 300, 16);
            known
                .check(&keccak256(b"first"), &sign(&key, &keccak256(b"first")), &a)
                .unwrap();
            assert_eq!(fresh.check(&hash, &sig, &a), known.check(&hash, &sig, &a));
            assert!(fresh.known_keys.borrow().is_empty());
        }
    }
}
