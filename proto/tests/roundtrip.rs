//! Property tests: every valid packet the encoders produce decodes, and decoding then
//! re-encoding gives the same bytes, in both protocol versions.

mod common;

use bytes::BytesMut;
use common::{Seed, seed, version};
use flytrap_proto::{Framer, MAX_PACKET_SIZE, Packet, Version};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn encode_decode_round_trip(seed in seed(), version in version()) {
        prop_assume!(!(seed.v5_only() && version == Version::V311));
        let version = seed.version(version);
        let bytes = seed.encode(version);
        let packet = Packet::decode(&bytes, version)
            .map_err(|e| TestCaseError::fail(format!("{e} for {seed:?}")))?;
        let mut again = Vec::new();
        packet.encode(version, &mut again);
        prop_assert_eq!(&again, &bytes);

        // Field-level checks where the seed says what to expect.
        match (&seed, &packet) {
            (Seed::Publish { topic, payload, qos, retain, .. }, Packet::Publish(p)) => {
                prop_assert_eq!(p.topic, topic.as_str());
                prop_assert_eq!(p.payload, payload.as_slice());
                prop_assert_eq!((p.qos, p.retain), (*qos, *retain));
                prop_assert_eq!(&bytes[p.payload_offset..], payload.as_slice());
            }
            (Seed::Connect { client_id, username, password, .. }, Packet::Connect(c)) => {
                prop_assert_eq!(c.client_id, client_id.as_str());
                prop_assert_eq!(c.username, username.as_deref());
                prop_assert_eq!(c.password, password.as_deref());
            }
            (Seed::Subscribe { subs, .. }, Packet::Subscribe(s)) => {
                let filters: Vec<_> = s.subscriptions().map(|s| s.filter).collect();
                let want: Vec<_> = subs.iter().map(|s| s.0.as_str()).collect();
                prop_assert_eq!(filters, want);
            }
            (Seed::Unsubscribe { filters, .. }, Packet::Unsubscribe(u)) => {
                let got: Vec<_> = u.filters().collect();
                let want: Vec<_> = filters.iter().map(String::as_str).collect();
                prop_assert_eq!(got, want);
            }
            _ => {}
        }
    }

    #[test]
    fn a_stream_of_packets_frames_at_any_read_size(
        seeds in proptest::collection::vec(seed(), 1..6),
        chunk in 1usize..64,
    ) {
        let version = Version::V5;
        let packets: Vec<Vec<u8>> = seeds.iter().map(|s| s.encode(s.version(version))).collect();
        let stream: Vec<u8> = packets.concat();
        let framer = Framer::new(MAX_PACKET_SIZE);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in stream.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(f) = framer.poll_frame(&mut buf).map_err(|e| TestCaseError::fail(e.to_string()))? {
                frames.push(f.to_vec());
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frames, packets);
    }
}
