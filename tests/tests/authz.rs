//! The authorisation plane against a real anvil, a real Mosquitto and real clients: every row of
//! SPEC §2–3, and the known ways around a proxy, each shown to fail.

use std::time::{Duration, Instant};

use flytrap_chain::{Action, TopicSpec};
use flytrap_proto::{
    Ack, AckKind, Packet, Properties, Property, PropertyContext, Publish, QoS, ReasonCode,
    Subscribe, Subscription, SubscriptionOptions, Version, encode_properties,
};
use flytrap_tests::RawClient;
use flytrap_tests::stack::{Stack, connect_signed, connect_with, new_key, now, signed_connect};

fn publish(c: &mut RawClient, topic: &str, alias: Option<u16>, qos: QoS, id: u16, payload: &[u8]) {
    let mut raw = Vec::new();
    if let Some(a) = alias {
        encode_properties(&[Property::TopicAlias(a)], &mut raw);
    }
    let mut out = Vec::new();
    Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: (qos != QoS::AtMostOnce).then_some(id),
        topic_alias: alias,
        properties: Properties::parse_raw(&raw, PropertyContext::Publish).unwrap(),
        payload,
        payload_offset: 0,
    }
    .encode(Version::V5, &mut out);
    c.send(&out);
}

/// PUBLISH QoS 1 and return the PUBACK (packet id, reason).
fn publish_ack(c: &mut RawClient, topic: &str, alias: Option<u16>, id: u16) -> (u16, ReasonCode) {
    publish(c, topic, alias, QoS::AtLeastOnce, id, b"m");
    loop {
        let frame = c.recv_frame().expect("PUBACK");
        if let Ok(Packet::Ack(a)) = Packet::decode(&frame, Version::V5) {
            return (a.packet_id, a.reason);
        }
    }
}

fn subscribe(c: &mut RawClient, id: u16, filters: &[&str]) -> Vec<u8> {
    let subs: Vec<Subscription<'_>> = filters
        .iter()
        .map(|f| Subscription {
            filter: f,
            options: SubscriptionOptions::qos(QoS::AtMostOnce),
        })
        .collect();
    let mut out = Vec::new();
    Subscribe::encode_from(Version::V5, id, Properties::EMPTY, &subs, &mut out);
    c.send(&out);
    loop {
        let frame = c.recv_frame().expect("SUBACK");
        if let Ok(Packet::SubAck(a)) = Packet::decode(&frame, Version::V5) {
            assert_eq!(a.packet_id, id, "SUBACK carries the client's packet id");
            return a.reason_codes.to_vec();
        }
    }
}

/// Topics of the PUBLISHes that arrive within `wait`.
fn deliveries(c: &mut RawClient, wait: Duration) -> Vec<String> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some(frame) = c.recv_frame_within(left) else {
            break;
        };
        if let Ok(Packet::Publish(p)) = Packet::decode(&frame, Version::V5) {
            got.push(p.topic.to_string());
        }
    }
    got
}

#[test]
fn signed_connect_and_its_failures() {
    let s = Stack::start();
    let key = new_key();
    let addr = s.proxy.tcp;
    // Accepted.
    assert_eq!(
        connect_signed(addr, &key, "dev-1").1,
        Some(ReasonCode::SUCCESS)
    );
    // From here on the shard knows the key: the signatures below, good and bad, are checked
    // against it (auth.known_keys) rather than recovered.
    // No credentials.
    let mut plain = Vec::new();
    flytrap_proto::Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::EMPTY,
        client_id: "x",
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut plain);
    assert_eq!(
        connect_with(addr, &plain).1,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    // A replayed CONNECT.
    let bytes = signed_connect(&key, "dev-2", now(), None);
    assert_eq!(connect_with(addr, &bytes).1, Some(ReasonCode::SUCCESS));
    assert_eq!(
        connect_with(addr, &bytes).1,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    // A timestamp outside the window.
    let old = signed_connect(&key, "dev-3", now() - 301, None);
    assert_eq!(
        connect_with(addr, &old).1,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    // A signature made for another client id.
    let t = now();
    let creds = flytrap_chain::sign::sign_connect(&key, "dev-4", t).unwrap();
    let mut other = signed_connect(&key, "dev-5", t, None);
    let good = creds.signature_hex();
    let bad = flytrap_chain::sign::sign_connect(&key, "dev-5", t)
        .unwrap()
        .signature_hex();
    let pos = other
        .windows(bad.len())
        .position(|w| w == bad.as_bytes())
        .unwrap();
    other[pos..pos + good.len()].copy_from_slice(good.as_bytes());
    assert_eq!(
        connect_with(addr, &other).1,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    // MQTT 3.1.1: right and wrong password.
    let v311 = |password: &str| {
        flytrap_tests::stack::connect_v311(addr, "old-1", &creds.v311_username(), password)
    };
    let right = flytrap_chain::sign::sign_connect(&key, "old-1", now())
        .unwrap()
        .v311_password();
    assert_eq!(v311(&right), b"\x20\x02\x00\x00");
    assert_eq!(
        v311(&format!("{}:{}", now(), good)),
        b"\x20\x02\x00\x04",
        "wrong password: return code 4"
    );
    // Every CONNECT was timed through authentication, the three accepted ones through the
    // broker's phases too, all before their CONNACKs left.
    let text = s.proxy.engine().metrics().render();
    let phase = |name: &str, part: &str| -> f64 {
        let prefix = format!("flytrap_connect_phase_seconds_{part}{{phase=\"{name}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert_eq!(phase("authenticate", "count"), 8.0);
    assert_eq!(phase("broker_connection", "count"), 3.0);
    assert_eq!(phase("broker_answer", "count"), 3.0);
    for name in ["authenticate", "broker_connection", "broker_answer"] {
        assert!(phase(name, "sum") > 0.0, "{name}: no time recorded");
    }
}

#[test]
fn publish_rules_alias_trick_and_deny_replies() {
    let s = Stack::start();
    let (publisher, listener) = (new_key(), new_key());
    s.topic("ok/t", TopicSpec::default());
    s.topic("secret/t", TopicSpec::default());
    s.grant("ok/t", publisher.address(), Action::Publish);
    s.grant("ok/t", listener.address(), Action::Subscribe);
    s.grant("secret/t", listener.address(), Action::Subscribe);
    s.settle();
    let (mut sub, _) = connect_signed(s.proxy.tcp, &listener, "listener");
    assert_eq!(subscribe(&mut sub, 3, &["ok/t", "secret/t"]), vec![0, 0]);
    let (mut c, r) = connect_signed(s.proxy.tcp, &publisher, "pub-1");
    assert_eq!(r, Some(ReasonCode::SUCCESS));
    // Allowed, QoS 1.
    assert_eq!(
        publish_ack(&mut c, "ok/t", None, 10),
        (10, ReasonCode(0x00))
    );
    // Denied, QoS 1: PUBACK with the client's own packet id and 0x87.
    assert_eq!(
        publish_ack(&mut c, "secret/t", None, 0x4242),
        (0x4242, ReasonCode::NOT_AUTHORIZED)
    );
    // Denied, QoS 2: PUBREC with its packet id and 0x87.
    publish(&mut c, "secret/t", None, QoS::ExactlyOnce, 77, b"x");
    let frame = c.recv_frame().unwrap();
    assert_eq!(
        Packet::decode(&frame, Version::V5).unwrap(),
        Packet::Ack(Ack::new(AckKind::PubRec, 77, ReasonCode::NOT_AUTHORIZED))
    );
    // Denied, QoS 0: dropped silently.
    publish(&mut c, "secret/t", None, QoS::AtMostOnce, 0, b"x");
    // The alias trick: alias 1 set on the allowed topic, then pointed at the denied one.
    assert_eq!(
        publish_ack(&mut c, "ok/t", Some(1), 11),
        (11, ReasonCode(0x00))
    );
    assert_eq!(
        publish_ack(&mut c, "", Some(1), 12),
        (12, ReasonCode(0x00)),
        "alias alone resolves to ok/t"
    );
    assert_eq!(
        publish_ack(&mut c, "secret/t", Some(1), 13),
        (13, ReasonCode::NOT_AUTHORIZED)
    );
    // Unregistered topics are denied by default.
    assert_eq!(
        publish_ack(&mut c, "nowhere", None, 14),
        (14, ReasonCode::NOT_AUTHORIZED)
    );
    // The listener saw only the allowed messages: nothing on secret/t reached the broker.
    let got = deliveries(&mut sub, Duration::from_millis(800));
    assert_eq!(got, vec!["ok/t", "ok/t", "ok/t"], "{got:?}");
}

#[test]
fn subscriptions_filters_share_and_delivery() {
    let s = Stack::start();
    let (reader, writer) = (new_key(), new_key());
    // `a/+` is registered and granted; `a/secret` is registered separately and not granted.
    s.topic("a/+", TopicSpec::default());
    s.topic("a/secret", TopicSpec::default());
    s.topic("a/open", TopicSpec::default());
    s.topic("#", TopicSpec::default());
    s.grant("a/+", reader.address(), Action::Subscribe);
    for t in ["a/secret", "a/open"] {
        s.grant(t, writer.address(), Action::Publish);
    }
    s.settle();
    let (mut r, _) = connect_signed(s.proxy.tcp, &reader, "reader");
    // Several filters in one SUBSCRIBE: merged SUBACK in the client's order.
    assert_eq!(
        subscribe(&mut r, 5, &["#", "a/+", "$share/g/a/secret", "a/secret"]),
        vec![0x87, 0x00, 0x87, 0x87]
    );
    let (mut w, _) = connect_signed(s.proxy.tcp, &writer, "writer");
    assert_eq!(publish_ack(&mut w, "a/secret", None, 1).1, ReasonCode(0x00));
    assert_eq!(publish_ack(&mut w, "a/open", None, 2).1, ReasonCode(0x00));
    // a/open is registered and the reader is not its subscriber: not delivered either; the
    // broad filter `a/+` never leaks a separately registered topic.
    let got = deliveries(&mut r, Duration::from_millis(800));
    assert!(got.is_empty(), "{got:?}");
    // Granting the reader a/open makes it flow.
    s.grant("a/open", reader.address(), Action::Subscribe);
    s.settle();
    assert_eq!(publish_ack(&mut w, "a/open", None, 3).1, ReasonCode(0x00));
    assert_eq!(
        deliveries(&mut r, Duration::from_millis(800)),
        vec!["a/open"]
    );
}

#[test]
fn will_to_a_denied_topic_is_refused() {
    let s = Stack::start();
    let key = new_key();
    s.topic("will/ok", TopicSpec::default());
    s.grant("will/ok", key.address(), Action::Publish);
    s.settle();
    let bytes = signed_connect(&key, "w1", now(), Some(("will/denied", b"bye")));
    assert_eq!(
        connect_with(s.proxy.tcp, &bytes).1,
        Some(ReasonCode::NOT_AUTHORIZED)
    );
    let bytes = signed_connect(&key, "w2", now(), Some(("will/ok", b"bye")));
    assert_eq!(
        connect_with(s.proxy.tcp, &bytes).1,
        Some(ReasonCode::SUCCESS)
    );
}

#[test]
fn live_revocation_of_publisher_and_subscriber() {
    let s = Stack::start();
    let (writer, reader) = (new_key(), new_key());
    s.topic("live/t", TopicSpec::default());
    s.grant("live/t", writer.address(), Action::Publish);
    s.grant("live/t", reader.address(), Action::Subscribe);
    s.settle();
    let (mut r, _) = connect_signed(s.proxy.tcp, &reader, "r");
    assert_eq!(subscribe(&mut r, 1, &["live/t"]), vec![0]);
    let (mut w, _) = connect_signed(s.proxy.tcp, &writer, "w");
    assert_eq!(publish_ack(&mut w, "live/t", None, 1).1, ReasonCode(0x00));
    assert_eq!(
        deliveries(&mut r, Duration::from_millis(500)),
        vec!["live/t"]
    );
    // Revoke the subscriber: the live subscription stops delivering.
    s.revoke("live/t", reader.address(), Action::Subscribe);
    s.settle();
    assert_eq!(publish_ack(&mut w, "live/t", None, 2).1, ReasonCode(0x00));
    assert!(deliveries(&mut r, Duration::from_millis(500)).is_empty());
    // Revoke the publisher: the live session can no longer publish.
    s.revoke("live/t", writer.address(), Action::Publish);
    s.settle();
    assert_eq!(
        publish_ack(&mut w, "live/t", None, 3).1,
        ReasonCode::NOT_AUTHORIZED
    );
}

#[test]
fn failures_lead_to_a_ban_that_expires() {
    let opts = flytrap_tests::stack::StackOptions {
        ban: flytrap_authz::bans::BanPolicy {
            max_failures: 5,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(3),
        },
        ..Default::default()
    };
    let s = Stack::start_with(opts);
    let key = new_key();
    let old = || signed_connect(&key, "bad", now() - 1000, None);
    for _ in 0..5 {
        assert_eq!(
            connect_with(s.proxy.tcp, &old()).1,
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        );
    }
    // The sixth attempt meets the ban (at accept; a plain TCP client gets CONNACK 0x8A).
    assert_eq!(
        connect_signed(s.proxy.tcp, &key, "good").1,
        Some(ReasonCode::BANNED)
    );
    // TLS clients are turned away before the handshake.
    let mut tls = std::net::TcpStream::connect(s.proxy.tls.unwrap()).unwrap();
    tls.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = std::io::Write::write_all(&mut tls, b"\x16\x03\x01\x00\x05hello");
    assert_eq!(
        std::io::Read::read(&mut tls, &mut [0u8; 16]).unwrap_or(0),
        0
    );
    // The ban expires.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        connect_signed(s.proxy.tcp, &key, "good2").1,
        Some(ReasonCode::SUCCESS)
    );
    // The ban and the failures were spooled for the chain (one batch, not one transaction each).
    std::thread::sleep(Duration::from_secs(2));
    let status = s.service.as_ref().unwrap().handle().status();
    assert!(status.audit_acked >= 6, "{status:?}");
}

#[test]
fn wrong_country_through_a_proxy_protocol_header() {
    let dir = tempfile::tempdir().unwrap();
    let mmdb = flytrap_tests::stack::countries_mmdb(dir.path());
    let opts = flytrap_tests::stack::StackOptions {
        proxy_protocol: true,
        mmdb: Some(mmdb),
        ..Default::default()
    };
    let s = Stack::start_with(opts);
    let key = new_key();
    s.topic(
        "eu/only",
        TopicSpec {
            countries: vec![flytrap_chain::Country(*b"DE")],
            ..TopicSpec::default()
        },
    );
    s.grant("eu/only", key.address(), Action::Publish);
    s.settle();
    let connect_from = |ip: &str, id: &str| {
        let mut c = RawClient::connect(s.proxy.tcp);
        c.send(&flytrap_engine::proxy_protocol::encode_v2(
            format!("{ip}:4000").parse().unwrap(),
            s.proxy.tcp,
        ));
        c.send(&signed_connect(&key, id, now(), None));
        assert!(
            c.recv(|p| matches!(p, Packet::ConnAck(a) if a.reason == ReasonCode::SUCCESS))
                .unwrap()
        );
        c
    };
    let mut german = connect_from("192.0.2.10", "de");
    assert!(!publish_ack(&mut german, "eu/only", None, 1).1.is_error());
    let mut american = connect_from("198.51.100.10", "us");
    assert_eq!(
        publish_ack(&mut american, "eu/only", None, 2).1,
        ReasonCode::NOT_AUTHORIZED
    );
    // The wrong-country attempt is spooled for the chain.
    std::thread::sleep(Duration::from_secs(2));
    let events =
        s.rt.block_on(
            s.owner
                .events::<flytrap_chain::bindings::FlyTrap::WrongCountry>(0, None),
        )
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(&events[0].event.country.0, b"US");
}

#[test]
fn node_down_no_new_grants_then_audit_delivered_once() {
    let mut s = Stack::start();
    let (old, new) = (new_key(), new_key());
    s.topic("d/t", TopicSpec::default());
    s.grant("d/t", old.address(), Action::Publish);
    s.grant("d/t", new.address(), Action::Publish);
    s.settle();
    let (mut warm, _) = connect_signed(s.proxy.tcp, &old, "warm");
    assert!(!publish_ack(&mut warm, "d/t", None, 1).1.is_error()); // cached now
    s.stop_node();
    // A cached grant still serves; a cold check is denied (SPEC §4).
    assert!(!publish_ack(&mut warm, "d/t", None, 2).1.is_error());
    let (mut cold, _) = connect_signed(s.proxy.tcp, &new, "cold");
    assert_eq!(
        publish_ack(&mut cold, "d/t", None, 3).1,
        ReasonCode::NOT_AUTHORIZED
    );
    // An audit record made while the node is down is spooled.
    let bad = signed_connect(&new, "late", now() - 1000, None);
    assert_eq!(
        connect_with(s.proxy.tcp, &bad).1,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    std::thread::sleep(Duration::from_millis(500));
    let status = s.service.as_ref().unwrap().handle().status();
    assert!(status.audit_pending >= 1, "{status:?}");
    // The node returns: the record reaches the chain, once.
    s.restart_node();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events =
            s.rt.block_on(
                s.owner
                    .events::<flytrap_chain::bindings::FlyTrap::ConnectFailed>(0, None),
            )
            .unwrap();
        if !events.is_empty() {
            std::thread::sleep(Duration::from_secs(2));
            let again =
                s.rt.block_on(
                    s.owner
                        .events::<flytrap_chain::bindings::FlyTrap::ConnectFailed>(0, None),
                )
                .unwrap();
            assert_eq!(again.len(), 1, "exactly once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the spooled record never reached the chain"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sensitive_topic_report_reaches_the_chain() {
    let s = Stack::start();
    let (writer, reader) = (new_key(), new_key());
    s.topic(
        "health/hr",
        TopicSpec {
            sensitive: true,
            ..TopicSpec::default()
        },
    );
    s.grant("health/hr", writer.address(), Action::Publish);
    s.grant("health/hr", reader.address(), Action::Subscribe);
    s.settle();
    let (mut r, _) = connect_signed(s.proxy.tcp, &reader, "hr-reader");
    assert_eq!(subscribe(&mut r, 1, &["health/hr"]), vec![0]);
    let (mut w, _) = connect_signed(s.proxy.tcp, &writer, "hr-writer");
    for id in 1..=3 {
        assert!(!publish_ack(&mut w, "health/hr", None, id).1.is_error());
    }
    assert_eq!(deliveries(&mut r, Duration::from_millis(500)).len(), 3);
    // One report for the interval, with each address once (what the report thread does).
    let records = s.shared.take_sensitive_reports(now() - 60, now());
    assert_eq!(records.len(), 1);
    let handle = s.service.as_ref().unwrap().handle();
    for rec in records {
        s.rt.block_on(handle.audit(rec)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events =
            s.rt.block_on(
                s.owner
                    .events::<flytrap_chain::bindings::FlyTrap::SensitiveReport>(0, None),
            )
            .unwrap();
        if let Some(e) = events.first() {
            assert_eq!(events.len(), 1);
            let report = flytrap_chain::audit::unpack_report(&e.event.report).unwrap();
            assert_eq!(report.publishers, vec![writer.address()]);
            assert_eq!(report.receivers, vec![reader.address()]);
            break;
        }
        assert!(Instant::now() < deadline, "no SensitiveReport on the chain");
        std::thread::sleep(Duration::from_millis(200));
    }
}
