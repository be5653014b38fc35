//! Client identities: one secp256k1 key per client, derived from a seed so that runs repeat
//! (and so that an operator can grant the same addresses before a run), and the signed
//! CONNECT credentials of SPEC §1.

use keccak_asm::{Digest, Keccak256};
use secp256k1::{Message, PublicKey, SECP256K1, SecretKey};

/// keccak-256.
fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// One client's key and address.
#[derive(Debug, Clone)]
pub struct Identity {
    secret: SecretKey,
    /// The Ethereum address of the key.
    pub address: [u8; 20],
}

impl Identity {
    /// The key of client `index` under `seed`: keccak-256(seed ‖ index as 8 bytes big-endian
    /// ‖ attempt), the first attempt that is a valid secret key (all but a 2^-128 fraction).
    pub fn derive(seed: &str, index: u64) -> Identity {
        let mut attempt: u8 = 0;
        loop {
            let mut input = Vec::with_capacity(seed.len() + 9);
            input.extend_from_slice(seed.as_bytes());
            input.extend_from_slice(&index.to_be_bytes());
            input.push(attempt);
            if let Ok(secret) = SecretKey::from_byte_array(keccak256(&input)) {
                return Identity::from_secret(secret);
            }
            attempt = attempt.wrapping_add(1);
        }
    }

    fn from_secret(secret: SecretKey) -> Identity {
        let public = PublicKey::from_secret_key(SECP256K1, &secret).serialize_uncompressed();
        let digest = keccak256(&public[1..]);
        let mut address = [0u8; 20];
        address.copy_from_slice(&digest[12..]);
        Identity { secret, address }
    }

    /// `0x` + 40 lower-case hex digits.
    pub fn address_hex(&self) -> String {
        format!("0x{}", hex::encode(self.address))
    }

    /// The 0x-hex private key, as `flytrap key` files hold it.
    pub fn secret_hex(&self) -> String {
        format!("0x{}", hex::encode(self.secret.secret_bytes()))
    }

    /// EIP-191 `personal_sign` of `message`: r ‖ s ‖ v with v ∈ {27, 28}.
    pub fn personal_sign(&self, message: &str) -> [u8; 65] {
        let mut h = Keccak256::new();
        h.update(b"\x19Ethereum Signed Message:\n");
        h.update(message.len().to_string().as_bytes());
        h.update(message.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        let signature =
            SECP256K1.sign_ecdsa_recoverable(Message::from_digest(digest), &self.secret);
        let (id, rs) = signature.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs);
        out[64] = 27 + i32::from(id) as u8;
        out
    }

    /// The timestamped credentials (SPEC §1) for `client_id` at Unix time `timestamp`.
    pub fn credentials(&self, client_id: &str, timestamp: u64) -> Credentials {
        let address = self.address_hex();
        let message = format!("flytrap-connect:{address}:{client_id}:{timestamp}");
        Credentials {
            address,
            signature: format!("0x{}", hex::encode(self.personal_sign(&message))),
            timestamp,
        }
    }
}

/// Signed CONNECT credentials, ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `0x`-hex address.
    pub address: String,
    /// `0x`-hex r ‖ s ‖ v.
    pub signature: String,
    /// The signed Unix time.
    pub timestamp: u64,
}

impl Credentials {
    /// The MQTT 5 user properties, in SPEC order.
    pub fn user_properties(&self) -> [(&'static str, String); 3] {
        [
            ("flytrap-address", self.address.clone()),
            ("flytrap-signature", self.signature.clone()),
            ("flytrap-timestamp", self.timestamp.to_string()),
        ]
    }

    /// The MQTT 3.1.1 password: `<timestamp>:<0x signature>`.
    pub fn password_v311(&self) -> String {
        format!("{}:{}", self.timestamp, self.signature)
    }

    /// The same credentials with a signature that does not verify (for the deny path): the
    /// message signed is for another client id, so the recovered address differs.
    pub fn corrupt(identity: &Identity, client_id: &str, timestamp: u64) -> Credentials {
        identity.credentials(&format!("{client_id}-not-me"), timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_distinct() {
        let a = Identity::derive("seed", 1);
        assert_eq!(a.address, Identity::derive("seed", 1).address);
        assert_ne!(a.address, Identity::derive("seed", 2).address);
        assert_ne!(a.address, Identity::derive("other", 1).address);
    }

    #[test]
    fn known_key_gives_known_address() {
        // anvil's first dev account.
        let secret = SecretKey::from_byte_array(
            hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
                .unwrap()
                .try_into()
                .unwrap(),
        )
        .unwrap();
        let id = Identity::from_secret(secret);
        assert_eq!(
            id.address_hex(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
    }
}
