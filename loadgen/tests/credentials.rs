//! loadgen's CONNECTs against the proxy's own verifier (an independent implementation of SPEC
//! §1): signed ones verify as the derived address in MQTT 5 and 3.1.1, corrupted ones do not.

use flytrap_authz::identity::{Verifier, lower_hex};
use flytrap_loadgen::client::encode_connect;
use flytrap_loadgen::identity::{Credentials, Identity};
use flytrap_proto::{Framer, Packet, Version};

fn verify(bytes: &[u8], version: Version, now: u64) -> Result<String, String> {
    let mut buf = bytes::BytesMut::from(bytes);
    let frame = Framer::new(4096).poll_frame(&mut buf).unwrap().unwrap();
    let Packet::Connect(connect) = Packet::decode(&frame, version).unwrap() else {
        panic!("not a CONNECT")
    };
    Verifier::new(false, 30, 0)
        .verify(&connect, now)
        .map(|id| lower_hex(&id.address))
        .map_err(|e| e.to_string())
}

#[test]
fn signed_connects_verify_and_corrupted_ones_do_not() {
    let now = 1_790_000_000;
    for i in [0, 1, 99_999] {
        let id = Identity::derive("verify", i);
        let client_id = format!("c{i}");
        for version in [Version::V5, Version::V311] {
            let good = encode_connect(
                version,
                60,
                &client_id,
                Some(&id.credentials(&client_id, now)),
            );
            assert_eq!(
                verify(&good, version, now),
                Ok(id.address_hex()),
                "{version:?}"
            );
            let bad = Credentials::corrupt(&id, &client_id, now);
            let bad = encode_connect(version, 60, &client_id, Some(&bad));
            assert!(verify(&bad, version, now).is_err(), "{version:?}");
            // Outside the clock-skew window.
            assert!(verify(&good, version, now + 120).is_err());
        }
    }
}
