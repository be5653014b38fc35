//! Robustness: arbitrary bytes and mutated valid packets (truncated, bit-flipped,
//! length-inflated, spliced) never panic, never loop, and come back as a packet or a typed
//! error. More than 100,000 cases run in the suite.

mod common;

use bytes::BytesMut;
use common::{seed, version};
use flytrap_proto::{
    ConnectRewrite, Error, Framer, MAX_PACKET_SIZE, Packet, Version, rewrite_connect,
};
use proptest::prelude::*;

/// Frames and decodes `bytes` in both versions. Any decoded packet must re-encode to bytes
/// that decode to the same packet (the codec agrees with itself on what it accepted).
fn check_input(bytes: &[u8]) -> Result<(), TestCaseError> {
    for version in [Version::V311, Version::V5] {
        match Packet::decode(bytes, version) {
            Ok(packet) => {
                let mut again = Vec::new();
                packet.encode(version, &mut again);
                let redecoded = Packet::decode(&again, version)
                    .map_err(|e| TestCaseError::fail(format!("re-encoded packet fails: {e}")))?;
                prop_assert_eq!(redecoded, packet);
                if let Packet::Connect(_) = packet {
                    let mut out = Vec::new();
                    rewrite_connect(bytes, &ConnectRewrite::FLYTRAP, &mut out).map_err(|e| {
                        TestCaseError::fail(format!("rewrite of a valid CONNECT: {e}"))
                    })?;
                    prop_assert!(Packet::decode(&out, version).is_ok());
                }
            }
            Err(e) => {
                // Every error carries a reason code a proxy can send.
                prop_assert!(e.reason_code().is_error());
                let _ = rewrite_connect(bytes, &ConnectRewrite::FLYTRAP, &mut Vec::new()).err();
            }
        }
    }
    // Through the framer, in small reads: it consumes or waits, never spins.
    let framer = Framer::new(4096);
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(3) {
        buf.extend_from_slice(piece);
        let mut steps = 0;
        loop {
            steps += 1;
            prop_assert!(steps <= bytes.len() + 1, "framer loops");
            match framer.poll_frame(&mut buf) {
                Ok(Some(frame)) => {
                    prop_assert!(!frame.is_empty());
                    let _ = Packet::decode(&frame, Version::V5);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    FlipBit(usize, u8),
    SetByte(usize, u8),
    InflateLength(u8),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (1u8..200).prop_map(Mutation::InflateLength),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match *m {
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::FlipBit(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x ^= 1 << b;
            }
        }
        Mutation::SetByte(i, v) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x = v;
            }
        }
        Mutation::InflateLength(by) => {
            // Rewrite the remaining length to claim more bytes than follow, then append a
            // few junk bytes (fewer than claimed).
            if bytes.len() >= 2 && bytes[1] < 0x80 {
                bytes[1] = bytes[1].saturating_add(by).min(0x7f);
                bytes.extend(std::iter::repeat_n(0xa5, usize::from(by / 2)));
            }
        }
        Mutation::Insert(i, v) => bytes.insert(i % (bytes.len() + 1), v),
        Mutation::Remove(i) => {
            if !bytes.is_empty() {
                bytes.remove(i % len);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60_000))]

    #[test]
    fn mutated_valid_packets(
        seed in seed(),
        version in version(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let version = seed.version(version);
        let mut bytes = seed.encode(version);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check_input(&bytes)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40_000))]

    #[test]
    fn arbitrary_bytes(first in any::<u8>(), len in 0u8..40, rest in proptest::collection::vec(any::<u8>(), 0..300)) {
        // A plausible fixed header half the time, so that bodies get parsed too.
        let mut bytes = vec![first];
        if first & 1 == 0 {
            bytes.push(len.min(rest.len() as u8));
        }
        bytes.extend_from_slice(&rest);
        check_input(&bytes)?;
    }

    #[test]
    fn a_truncated_packet_is_never_a_frame(seed in seed(), version in version(), cut in any::<usize>()) {
        let bytes = seed.encode(seed.version(version));
        let cut = cut % bytes.len();
        let framer = Framer::new(MAX_PACKET_SIZE);
        let mut buf = BytesMut::from(&bytes[..cut]);
        prop_assert_eq!(framer.poll_frame(&mut buf), Ok(None));
        prop_assert_eq!(buf.len(), cut);
        // Decoding the short frame directly is a typed error.
        prop_assert!(Packet::decode(&bytes[..cut], version).is_err());
    }
}

#[test]
fn errors_name_what_is_wrong() {
    let e = Packet::decode(b"\x30\x03\x00\x05a", Version::V5).unwrap_err();
    assert_eq!(e.to_string(), "PUBLISH ends inside its topic name");
    assert!(matches!(e, Error::Truncated { .. }));
}
