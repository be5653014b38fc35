//! CONNECT authentication cost per core: the raw secp256k1 recovery (libsecp256k1) beside the
//! whole check FlyTrap does (parse the user properties, build the message, keccak, recover,
//! compare). Target: the whole check at ≥ 80 % of the raw recovery rate.
//!
//! `cargo bench -p flytrap-authz --bench connect`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flytrap_authz::identity::{Verifier, parse_signature, personal_sign_hash};
use flytrap_proto::{
    Connect, Packet, Properties, Property, PropertyContext, Version, encode_properties,
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
    let verifier = Verifier::new(false, 300);
    g.bench_function("decode CONNECT + verify", |b| {
        b.iter(|| {
            let Ok(Packet::Connect(c)) = Packet::decode(black_box(&frame), Version::V5) else {
                unreachable!()
            };
            verifier.verify(&c, 1_700_000_000).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
