//! Byte streams captured from real `mosquitto_pub`/`mosquitto_sub` clients talking to a real
//! Mosquitto broker (see `fixtures/README.md` for the exact commands), framed and decoded.

use bytes::BytesMut;
use flytrap_proto::{
    ConnectRewrite, Framer, MAX_PACKET_SIZE, Packet, PacketType, Property, QoS, ReasonCode,
    Version, rewrite_connect,
};

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Frames a whole stream, feeding it in `chunk`-byte reads, and returns the frames.
fn frames(stream: &[u8], chunk: usize) -> Vec<bytes::Bytes> {
    let framer = Framer::new(MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(frame) = framer.poll_frame(&mut buf).expect("fixture frames") {
            out.push(frame);
        }
    }
    assert!(buf.is_empty(), "stream ends inside a packet");
    out
}

/// Decodes a captured session: the client stream fixes the version with its CONNECT.
fn decode_session(name: &str) -> (Version, Vec<PacketType>, Vec<PacketType>) {
    let c2s = load(&format!("{name}.c2s"));
    let s2c = load(&format!("{name}.s2c"));
    let c_frames = frames(&c2s, 1);
    assert_eq!(
        c_frames,
        frames(&c2s, 7),
        "1-byte and 7-byte reads frame alike"
    );
    assert_eq!(c_frames, frames(&c2s, c2s.len()), "one read frames alike");
    let Ok(Packet::Connect(connect)) = Packet::decode(&c_frames[0], Version::V5) else {
        panic!("{name}: first client packet is not a CONNECT");
    };
    let version = connect.version;
    let decode_all = |fs: &[bytes::Bytes]| {
        fs.iter()
            .map(|f| {
                let p = Packet::decode(f, version).unwrap_or_else(|e| panic!("{name}: {e}"));
                // Re-encoding a decoded view gives the bytes back.
                let mut again = Vec::new();
                p.encode(version, &mut again);
                assert_eq!(&again[..], &f[..], "{name}: {:?} re-encodes differently", p);
                p.packet_type()
            })
            .collect::<Vec<_>>()
    };
    let c = decode_all(&c_frames);
    let s = decode_all(&frames(&s2c, 3));
    (version, c, s)
}

use PacketType::*;

#[test]
fn v5_connect_with_user_properties_and_will() {
    let (v, c, s) = decode_session("v5_connect_userprops");
    assert_eq!(v, Version::V5);
    assert_eq!(c, [Connect, Publish, Disconnect]);
    assert_eq!(s, [ConnAck, PubAck]);

    let stream = load("v5_connect_userprops.c2s");
    let frame = &frames(&stream, stream.len())[0];
    let Ok(Packet::Connect(connect)) = Packet::decode(frame, Version::V5) else {
        panic!("no CONNECT");
    };
    assert_eq!(connect.client_id, "sensor-1");
    assert_eq!(
        connect.properties.user_property("flytrap-address"),
        Some("0x1a642f0e3c3af545e7acbd38b07251b3990914f1")
    );
    assert_eq!(
        connect.properties.user_property("flytrap-timestamp"),
        Some("1700000000")
    );
    assert!(
        connect
            .properties
            .user_property("flytrap-signature")
            .is_some_and(|s| s.len() == 132)
    );
    assert_eq!(
        (connect.username, connect.password),
        (Some("someuser"), Some(&b"somepass"[..]))
    );
    let will = connect.will.expect("will");
    assert_eq!(
        (will.topic, will.payload, will.qos, will.retain),
        ("will/t", &b"bye"[..], QoS::AtLeastOnce, true)
    );
    assert_eq!(will.properties.user_property("wk"), Some("wv"));

    // The rewriter drops exactly the three flytrap-* properties; everything else survives.
    let mut out = Vec::new();
    rewrite_connect(frame, &ConnectRewrite::FLYTRAP, &mut out).unwrap();
    let Ok(Packet::Connect(rewritten)) = Packet::decode(&out, Version::V5) else {
        panic!("rewritten CONNECT does not decode");
    };
    assert!(
        rewritten
            .properties
            .user_properties()
            .all(|(k, _)| !k.starts_with("flytrap-"))
    );
    assert_eq!(
        rewritten.properties.iter().count() + 3,
        connect.properties.iter().count()
    );
    assert_eq!(
        (
            rewritten.client_id,
            rewritten.will,
            rewritten.username,
            rewritten.password
        ),
        (
            connect.client_id,
            connect.will,
            connect.username,
            connect.password
        )
    );
}

#[test]
fn v5_publish_qos2_with_properties() {
    let (_, c, s) = decode_session("v5_publish_qos2_props");
    assert_eq!(c, [Connect, Publish, PubRel, Disconnect]);
    assert_eq!(s, [ConnAck, PubRec, PubComp]);
    let stream = load("v5_publish_qos2_props.c2s");
    let frame = &frames(&stream, stream.len())[1];
    let Ok(Packet::Publish(p)) = Packet::decode(frame, Version::V5) else {
        panic!("no PUBLISH");
    };
    assert_eq!(
        (p.topic, p.payload, p.qos, p.retain),
        ("sensors/temp", &b"21.5"[..], QoS::ExactlyOnce, true)
    );
    assert!(p.packet_id.is_some());
    assert_eq!(&frame[p.payload_offset..], b"21.5");
    let props: Vec<_> = p.properties.iter().collect();
    assert!(props.contains(&Property::MessageExpiryInterval(60)));
    assert!(props.contains(&Property::ContentType("text/plain")));
    assert!(props.contains(&Property::UserProperty("k", "v")));
}

#[test]
fn v5_subscribe_several_filters() {
    let (_, c, s) = decode_session("v5_subscribe_multi");
    assert_eq!(c, [Connect, Subscribe, Disconnect]);
    assert_eq!(s, [ConnAck, SubAck]);
    let stream = load("v5_subscribe_multi.c2s");
    let frame = &frames(&stream, stream.len())[1];
    let Ok(Packet::Subscribe(sub)) = Packet::decode(frame, Version::V5) else {
        panic!("no SUBSCRIBE");
    };
    let filters: Vec<_> = sub.subscriptions().map(|s| s.filter).collect();
    assert_eq!(filters, ["a/+", "b/#", "$share/g/c"]);
    assert_eq!(sub.subscription_identifier, Some(7));
    assert!(
        sub.subscriptions()
            .all(|s| s.options.qos == QoS::ExactlyOnce)
    );
}

#[test]
fn v5_unsubscribe() {
    let (_, c, s) = decode_session("v5_unsubscribe");
    assert_eq!(
        c,
        [Connect, Subscribe, Unsubscribe, Unsubscribe, Disconnect]
    );
    assert_eq!(s, [ConnAck, SubAck, UnsubAck, UnsubAck]);
}

#[test]
fn v5_broker_to_client_qos2_delivery() {
    let (_, c, s) = decode_session("v5_subscribe_recv_qos2");
    assert_eq!(c, [Connect, Subscribe, PubRec, PubComp, Disconnect]);
    assert_eq!(s, [ConnAck, SubAck, Publish, PubRel]);
}

#[test]
fn v5_keep_alive_ping() {
    let (_, c, s) = decode_session("v5_ping");
    assert_eq!(c, [Connect, Subscribe, PingReq, Disconnect]);
    assert_eq!(s, [ConnAck, SubAck, PingResp]);
}

#[test]
fn v311_connect_with_signed_password() {
    let (v, c, s) = decode_session("v311_connect_publish");
    assert_eq!(v, Version::V311);
    assert_eq!(c, [Connect, Publish, Disconnect]);
    assert_eq!(s, [ConnAck, PubAck]);
    let stream = load("v311_connect_publish.c2s");
    let frame = &frames(&stream, stream.len())[0];
    let Ok(Packet::Connect(connect)) = Packet::decode(frame, Version::V5) else {
        panic!("no CONNECT");
    };
    assert_eq!(connect.client_id, "dev-311");
    assert_eq!(
        connect.username,
        Some("0x1a642f0e3c3af545e7acbd38b07251b3990914f1")
    );
    let password = connect.password.expect("password");
    assert!(password.starts_with(b"1700000000:0x"));

    // The broker never sees the password.
    let mut out = Vec::new();
    rewrite_connect(frame, &ConnectRewrite::FLYTRAP, &mut out).unwrap();
    let Ok(Packet::Connect(rewritten)) = Packet::decode(&out, Version::V311) else {
        panic!("rewritten CONNECT does not decode");
    };
    assert_eq!(rewritten.password, None);
    assert_eq!(rewritten.username, connect.username);
    assert_eq!(
        out.len(),
        frame.len() - 2 - password.len() - 1,
        "remaining length shrinks by one byte"
    );
}

#[test]
fn v311_subscribe() {
    let (_, c, s) = decode_session("v311_subscribe");
    assert_eq!(c, [Connect, Subscribe, Disconnect]);
    assert_eq!(s, [ConnAck, SubAck]);
}

#[test]
fn broker_connack_is_decoded() {
    let stream = load("v5_ping.s2c");
    let frame = &frames(&stream, 1)[0];
    let Ok(Packet::ConnAck(ack)) = Packet::decode(frame, Version::V5) else {
        panic!("no CONNACK");
    };
    assert_eq!(ack.reason, ReasonCode::SUCCESS);
    assert!(
        ack.properties
            .iter()
            .any(|p| p == Property::TopicAliasMaximum(10))
    );
}
