//! The CONNECT signature schemes against the SPEC's independent test vectors
//! (`spec-vectors.json`, made with eth-account; a copy of `../shared/spec-vectors.json`).

use flytrap_authz::identity::{
    IdentityError, Verifier, credentials, lower_hex, personal_sign_hash, signed_message,
    signed_message_hash,
};
use flytrap_proto::{Connect, Properties, Property, PropertyContext, Version, encode_properties};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let text = include_str!("spec-vectors.json");
    if let Ok(shared) = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/spec-vectors.json"
    )) {
        assert_eq!(
            shared, text,
            "authz/tests/spec-vectors.json is out of date with shared/"
        );
    }
    serde_json::from_str(text).unwrap()
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(&s[2..]).unwrap().try_into().unwrap()
}

fn v5_connect<'a>(raw: &'a mut Vec<u8>, client_id: &'a str, props: &[(&str, &str)]) -> Connect<'a> {
    let list: Vec<Property<'_>> = props
        .iter()
        .map(|(k, v)| Property::UserProperty(k, v))
        .collect();
    encode_properties(&list, raw);
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

/// Each vector through a verifier that recovers every key, and through one that remembers
/// keys: there the reject vector (an address seen before) is checked against the known key.
#[test]
fn every_vector_in_every_form() {
    for known_keys in [0, 4096] {
        every_vector(&Verifier::new(true, 300, known_keys));
    }
}

fn every_vector(verifier: &Verifier) {
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let accept = v["expect"] == "accept";
        let client_id = v["client_id"].as_str().unwrap();
        let ts = v["timestamp"].as_u64().unwrap();
        let address = v["address"].as_str().unwrap();
        // The message and its EIP-191 hash.
        let parsed = flytrap_authz::identity::parse_address(address).unwrap();
        assert_eq!(lower_hex(&parsed), address, "{name}");
        if accept {
            let message = signed_message(&parsed, client_id, Some(ts));
            assert_eq!(message, v["message"].as_str().unwrap(), "{name}");
            assert_eq!(
                message.len() as u64,
                v["message_utf8_len"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(
                personal_sign_hash(message.as_bytes()),
                hex32(v["eip191_hash"].as_str().unwrap()),
                "{name}"
            );
            assert_eq!(
                personal_sign_hash(signed_message(&parsed, "", None).as_bytes()),
                hex32(v["static_eip191_hash"].as_str().unwrap())
            );
        }
        let ts_text = ts.to_string();
        let expect =
            |r: Result<flytrap_authz::identity::Identity, IdentityError>, form: &str| match (
                accept, r,
            ) {
                (true, Ok(id)) => assert_eq!(lower_hex(&id.address), address, "{name} {form}"),
                (false, Err(IdentityError::WrongSignature)) => {}
                (a, r) => panic!("{name} {form}: expected accept={a}, got {r:?}"),
            };
        for sig_key in ["signature", "signature_v01"] {
            let sig = v[sig_key].as_str().unwrap();
            for addr in [address, v["address_eip55"].as_str().unwrap_or(address)] {
                let mut raw = Vec::new();
                let c = v5_connect(
                    &mut raw,
                    client_id,
                    &[
                        ("flytrap-address", addr),
                        ("flytrap-signature", sig),
                        ("flytrap-timestamp", &ts_text),
                    ],
                );
                expect(verifier.verify(&c, ts), &format!("v5 {sig_key}"));
            }
        }
        // MQTT 3.1.1: user name and password.
        let username = v["v311_username"].as_str().unwrap();
        let password = v["v311_password"].as_str().unwrap();
        let c = Connect {
            version: Version::V311,
            clean_start: true,
            keep_alive: 0,
            properties: Properties::EMPTY,
            client_id,
            will: None,
            username: Some(username),
            password: Some(password.as_bytes()),
        };
        expect(verifier.verify(&c, ts), "3.1.1");
        // The static scheme: no timestamp.
        let Some(static_sig) = v["static_signature"].as_str() else {
            continue;
        };
        let mut raw = Vec::new();
        let c = v5_connect(
            &mut raw,
            client_id,
            &[
                ("flytrap-address", address),
                ("flytrap-signature", static_sig),
            ],
        );
        let r = verifier.verify(&c, ts);
        assert!(r.is_ok(), "{name} static: {r:?}");
        assert_eq!(
            Verifier::new(false, 300, 0).verify(&c, ts),
            Err(IdentityError::StaticNotAllowed),
            "{name}"
        );
        let c = Connect {
            version: Version::V311,
            clean_start: true,
            keep_alive: 0,
            properties: Properties::EMPTY,
            client_id,
            will: None,
            username: Some(username),
            password: Some(v["v311_password_static"].as_str().unwrap().as_bytes()),
        };
        assert!(verifier.verify(&c, ts).is_ok(), "{name} 3.1.1 static");
    }
}

#[test]
fn window_and_malformed_credentials() {
    let v = &vectors()[0];
    let verifier = Verifier::new(false, 300, 4096);
    let ts = v["timestamp"].as_u64().unwrap();
    let ts_text = ts.to_string();
    let address = v["address"].as_str().unwrap();
    let sig = v["signature"].as_str().unwrap();
    let mut raw = Vec::new();
    let c = v5_connect(
        &mut raw,
        "sensor-1",
        &[
            ("flytrap-address", address),
            ("flytrap-signature", sig),
            ("flytrap-timestamp", &ts_text),
        ],
    );
    assert!(verifier.verify(&c, ts + 300).is_ok());
    assert_eq!(
        verifier.verify(&c, ts + 301),
        Err(IdentityError::OutsideWindow(300))
    );
    assert_eq!(
        verifier.verify(&c, ts - 301),
        Err(IdentityError::OutsideWindow(300))
    );
    // Signed for another client id.
    let mut raw = Vec::new();
    let other = v5_connect(
        &mut raw,
        "sensor-2",
        &[
            ("flytrap-address", address),
            ("flytrap-signature", sig),
            ("flytrap-timestamp", &ts_text),
        ],
    );
    assert_eq!(
        verifier.verify(&other, ts),
        Err(IdentityError::WrongSignature)
    );
    for (props, err) in [
        (
            vec![("flytrap-signature", sig), ("flytrap-timestamp", "1")],
            IdentityError::MissingAddress,
        ),
        (
            vec![("flytrap-address", address), ("flytrap-timestamp", "1")],
            IdentityError::MissingSignature,
        ),
        (
            vec![("flytrap-address", "0x12"), ("flytrap-signature", sig)],
            IdentityError::MalformedAddress,
        ),
        (
            vec![("flytrap-address", address), ("flytrap-signature", "0xzz")],
            IdentityError::MalformedSignature,
        ),
        (
            vec![
                ("flytrap-address", address),
                ("flytrap-signature", sig),
                ("flytrap-timestamp", "-5"),
            ],
            IdentityError::MalformedTimestamp,
        ),
        (
            vec![
                (
                    "flytrap-address",
                    "0x1A642f0E3c3aF545E7AcBD38b07251B3990914F1",
                ),
                ("flytrap-signature", sig),
                ("flytrap-timestamp", &ts_text),
            ],
            IdentityError::BadChecksum,
        ),
    ] {
        let mut raw = Vec::new();
        let c = v5_connect(&mut raw, "sensor-1", &props);
        assert_eq!(verifier.verify(&c, ts), Err(err), "{props:?}");
    }
}

/// The verifier hashes the signed message as it writes it; that must be the hash of the
/// message `signed_message` spells, for empty, long (past keccak's 136-byte block) and
/// non-ASCII client identifiers, every timestamp width, and the static scheme.
#[test]
fn the_streamed_hash_is_the_hash_of_the_message() {
    let long = "x".repeat(300);
    let addresses = [
        [0u8; 20],
        [0xab; 20],
        *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xff",
    ];
    for address in &addresses {
        for client_id in [
            "",
            "a",
            "bench-conn-4242-flytrap-warm-17",
            "désolé-🦀",
            &long,
        ] {
            for timestamp in [
                Some(0),
                Some(9),
                Some(10),
                Some(1_765_000_000),
                Some(u64::MAX),
                None,
            ] {
                assert_eq!(
                    signed_message_hash(address, client_id, timestamp),
                    personal_sign_hash(signed_message(address, client_id, timestamp).as_bytes()),
                    "{client_id:?} {timestamp:?}"
                );
            }
        }
    }
}

/// The first property of each credential name counts, whatever follows it.
#[test]
fn the_first_of_each_credential_property_counts() {
    let address = "0x00000000000000000000000000000000000000aa";
    let signature = format!("0x{}1b", "11".repeat(64));
    let mut raw = Vec::new();
    let connect = v5_connect(
        &mut raw,
        "c",
        &[
            ("flytrap-timestamp", "17"),
            ("flytrap-address", address),
            ("other", "x"),
            ("flytrap-address", "junk"),
            ("flytrap-signature", &signature),
            ("flytrap-timestamp", "junk"),
        ],
    );
    let c = credentials(&connect).unwrap();
    assert_eq!(lower_hex(&c.address), address);
    assert_eq!(c.timestamp, Some(17));
    assert_eq!(c.signature[64], 0);

    let mut raw = Vec::new();
    let connect = v5_connect(
        &mut raw,
        "c",
        &[
            ("flytrap-address", "junk"),
            ("flytrap-address", address),
            ("flytrap-signature", &signature),
        ],
    );
    assert_eq!(credentials(&connect), Err(IdentityError::MalformedAddress));
}
