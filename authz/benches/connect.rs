//! CONNECT authentication cost per core: the raw secp256k1 recovery (libsecp256k1) beside the
//! whole check FlyTrap does (parse the user properties, build the message, keccak, recover,
//! compare). Target: the whole check at ≥ 80 % of the raw recovery rate.
//!
//! The challenge scheme beside it: the proxy's CPU for one sign-in is the CONNECT's decode and
//! challenge (nonce, SIWE message, its hash) plus the AUTH answer's decode and recovery.
//!
//! `cargo bench -p flytrap-authz --bench connect`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flytrap_authz::challenge::{Challenge, ChallengeConfig, METHOD};
use flytrap_authz::identity::{
    Verifier, parse_address, parse_signature, personal_sign_hash, signed_message,
    signed_message_hash,
};
use flytrap_proto::{
    Auth, Connect, Packet, Properties, Property, PropertyContext, ReasonCode, Version,
    encode_properties,
};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, Secp256k1};

const ADDRESS: &str = "0x1a642f0e3c3af545e7acbd38b07251b3990914f1";
const SIGNATURE: &str = "0x4c74204a0c057a244365045bf351cd244a985d87b5fc43acbd1391c95a6849152c8db24a3a9b4e03876dc5c3aa8520f1ca96dbb4303d959b75da91147c0c07711b";
const MESSAGE: &str =
    "flytrap-connect:0x1a642f0e3c3af545e7acbd38b07251b3990914f1:sensor-1:1700000000";

fn bench(c: &mut Criterion) {
    let secp = Secp256k1::verification_only();
    let sig = parse_signature(SIGNATURE).unwrap();
    let hash = personal_sign_hash(MESSAGE.as_bytes());
    let rsig = RecoverableSignature::from_compact(
        &sig[..64],
        RecoveryId::try_from(i32::from(sig[64])).unwrap(),
    )
    .unwrap();
    let mut g = c.benchmark_group("connect-auth");
    g.bench_function("raw secp256k1 recover", |b| {
        b.iter(|| {
            secp.recover_ecdsa(Message::from_digest(black_box(hash)), black_box(&rsig))
                .unwrap()
        })
    });

    // The signed message's hash, built as a string and hashed, or hashed as it is written
    // (what the verifier does).
    let address = parse_address(ADDRESS).unwrap();
    g.bench_function("message hash, formatted", |b| {
        b.iter(|| {
            let m = signed_message(
                black_box(&address),
                black_box("sensor-1"),
                Some(1_700_000_000),
            );
            personal_sign_hash(m.as_bytes())
        })
    });
    g.bench_function("message hash, streamed", |b| {
        b.iter(|| {
            signed_message_hash(
                black_box(&address),
                black_box("sensor-1"),
                Some(1_700_000_000),
            )
        })
    });

    let mut raw = Vec::new();
    encode_properties(
        &[
            Property::UserProperty("flytrap-address", ADDRESS),
            Property::UserProperty("flytrap-signature", SIGNATURE),
            Property::UserProperty("flytrap-timestamp", "1700000000"),
        ],
        &mut raw,
    );
    let mut frame = Vec::new();
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::parse_raw(&raw, PropertyContext::Connect).unwrap(),
        client_id: "sensor-1",
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut frame);
    // A new signer (key recovered) and a returning one (key known: verified against it).
    for (name, known_keys) in [
        ("decode CONNECT + verify", 0),
        ("decode CONNECT + verify, known key", 16),
    ] {
        let verifier = Verifier::new(false, 300, known_keys);
        g.bench_function(name, |b| {
            b.iter(|| {
                let Ok(Packet::Connect(c)) = Packet::decode(black_box(&frame), Version::V5) else {
                    unreachable!()
                };
                verifier.verify(&c, 1_700_000_000).unwrap()
            })
        });
    }

    // The challenge scheme: a CONNECT with the method and address, an AUTH with the answer.
    let key = secp256k1::SecretKey::from_byte_array([0x42; 32]).unwrap();
    let signer = Secp256k1::signing_only();
    let public = secp256k1::PublicKey::from_secret_key(&signer, &key).serialize_uncompressed();
    let address = format!(
        "0x{}",
        hex::encode(&flytrap_authz::identity::keccak256(&public[1..])[12..])
    );
    let mut raw = Vec::new();
    encode_properties(
        &[
            Property::AuthenticationMethod(METHOD),
            Property::AuthenticationData(address.as_bytes()),
        ],
        &mut raw,
    );
    let mut hello = Vec::new();
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::parse_raw(&raw, PropertyContext::Connect).unwrap(),
        client_id: "sensor-1",
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut hello);
    let config = ChallengeConfig {
        domain: "flytrap.example".into(),
        chain_id: 31337,
        ttl_s: 30,
    };
    let begin = |nonce: [u8; 16]| {
        let Ok(Packet::Connect(c)) = Packet::decode(&hello, Version::V5) else {
            unreachable!()
        };
        Challenge::begin(&config, &c, nonce, 1_700_000_000).unwrap()
    };
    let (challenge, message) = begin([7; 16]);
    let digest = personal_sign_hash(message.as_bytes());
    let (id, rs) = signer
        .sign_ecdsa_recoverable(Message::from_digest(digest), &key)
        .serialize_compact();
    let mut signature = rs.to_vec();
    signature.push(27 + i32::from(id) as u8);
    let answer_hex = format!("0x{}", hex::encode(&signature));
    let mut raw = Vec::new();
    encode_properties(
        &[
            Property::AuthenticationMethod(METHOD),
            Property::AuthenticationData(answer_hex.as_bytes()),
        ],
        &mut raw,
    );
    let mut answer = Vec::new();
    Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties::parse_raw(&raw, PropertyContext::Auth).unwrap(),
    }
    .encode(&mut answer);
    // Each challenge is a new sign-in to recover: no keys remembered.
    let verifier = Verifier::new(false, 300, 0);
    let finish = |challenge: Challenge| {
        let Ok(Packet::Auth(a)) = Packet::decode(black_box(&answer), Version::V5) else {
            unreachable!()
        };
        let data = a
            .properties
            .iter()
            .find_map(|p| match p {
                Property::AuthenticationData(d) => Some(d),
                _ => None,
            })
            .unwrap();
        challenge.finish(&verifier, data, 1_700_000_001).unwrap()
    };
    g.bench_function("challenge: decode CONNECT + nonce + SIWE message", |b| {
        b.iter(|| begin(black_box(rand::random())))
    });
    g.bench_function("challenge: decode AUTH + recover", |b| {
        b.iter(|| finish(black_box(challenge)))
    });
    g.bench_function("challenge: whole sign-in (the two above)", |b| {
        b.iter(|| {
            let (c, _) = begin([7; 16]);
            finish(black_box(c))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
