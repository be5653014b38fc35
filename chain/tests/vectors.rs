//! SPEC §1: every signer and verifier agrees with `spec-vectors.json` (made with eth-account).

use flytrap_chain::keyfile::parse_key;
use flytrap_chain::sign::{
    connect_message, personal_hash, recover, sign_connect, sign_static, static_message,
};

fn vectors() -> Vec<serde_json::Value> {
    let text = include_str!("data/spec-vectors.json");
    serde_json::from_str(text).unwrap()
}

/// The copy in this crate is the shared one (when the shared folder is next to the repo).
#[test]
fn the_copy_matches_the_shared_file() {
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec-vectors.json");
    if let Ok(text) = std::fs::read_to_string(&shared) {
        assert_eq!(
            text,
            include_str!("data/spec-vectors.json"),
            "chain/tests/data/spec-vectors.json is stale: copy {}",
            shared.display()
        );
    }
}

#[test]
fn every_vector() {
    let vs = vectors();
    assert!(vs.len() >= 5);
    for v in &vs {
        let name = v["name"].as_str().unwrap();
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{name}: {k}"))
                .to_string()
        };
        let key = parse_key(&s("private_key")).unwrap();
        let address = key.address();
        assert_eq!(format!("{address:#x}"), s("address"), "{name}");
        assert_eq!(address.to_checksum(None), s("address_eip55"), "{name}");
        let client_id = s("client_id");
        let ts = v["timestamp"].as_u64().unwrap();
        let message = s("message");
        assert_eq!(
            message.len() as u64,
            v["message_utf8_len"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            format!("{:#x}", personal_hash(&message)),
            s("eip191_hash"),
            "{name}"
        );
        let accept = s("expect") == "accept";

        // `message` is what a verifier computes for this client id; the signature recovers to
        // the address over it exactly when the vector is to be accepted.
        assert_eq!(connect_message(&address, &client_id, ts), message, "{name}");
        for sig_key in ["signature", "signature_v01"] {
            let sig = s(sig_key);
            let signer = recover(&message, &sig).unwrap();
            assert_eq!(signer == address, accept, "{name} {sig_key}: recovery");
        }
        if !accept {
            // The signature is another client id's: ours for this client id differs.
            let c = sign_connect(&key, &client_id, ts).unwrap();
            assert_ne!(c.signature_hex(), s("signature"), "{name}");
            assert_eq!(recover(&message, &c.signature_hex()).unwrap(), address);
        }
        if accept {
            // Our signer makes the same bytes (RFC 6979 signatures are deterministic).
            let c = sign_connect(&key, &client_id, ts).unwrap();
            assert_eq!(c.signature_hex(), s("signature"), "{name}");
            assert_eq!(c.v311_username(), s("v311_username"), "{name}");
            assert_eq!(c.v311_password(), s("v311_password"), "{name}");
            let props = c.user_properties();
            assert_eq!(props[0], ("flytrap-address", s("address")));
            assert_eq!(props[1], ("flytrap-signature", s("signature")));
            assert_eq!(props[2], ("flytrap-timestamp", ts.to_string()));

            assert_eq!(static_message(&address), s("static_message"), "{name}");
            assert_eq!(
                format!("{:#x}", personal_hash(&static_message(&address))),
                s("static_eip191_hash")
            );
            let st = sign_static(&key).unwrap();
            assert_eq!(st.signature_hex(), s("static_signature"), "{name}");
            assert_eq!(st.v311_password(), s("v311_password_static"), "{name}");
            assert_eq!(st.user_properties().len(), 2);
            for k in ["static_signature", "static_signature_v01"] {
                assert_eq!(
                    recover(&s("static_message"), &s(k)).unwrap(),
                    address,
                    "{name} {k}"
                );
            }
        }
    }
}

#[test]
fn malformed_signatures_are_refused() {
    let good = "0x4c74204a0c057a244365045bf351cd244a985d87b5fc43acbd1391c95a6849152c8db24a3a9b4e03876dc5c3aa8520f1ca96dbb4303d959b75da91147c0c07711b";
    assert!(recover("x", &good[2..]).is_err());
    assert!(recover("x", &good[..good.len() - 2]).is_err());
    assert!(recover("x", &format!("{}1d", &good[..good.len() - 2])).is_err());
    assert!(recover("x", &format!("{}zz", &good[..good.len() - 2])).is_err());
}
