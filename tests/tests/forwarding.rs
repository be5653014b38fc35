//! The data plane against a real Mosquitto and real clients: forwarding at every QoS, retained
//! and will messages, large payloads, fragmented writes, TLS, and many clients at once.

use std::time::Duration;

use flytrap_proto::{
    ConnAck, Connect, Packet, Properties, Property, PropertyContext, Publish, QoS, ReasonCode,
    Version, Will, encode_properties,
};
use flytrap_tests::{Mosquitto, Proxy, RawClient, mosquitto_cli, spawn_sub};

fn connect_bytes(
    version: Version,
    client_id: &str,
    props: &[Property<'_>],
    will: Option<Will<'_>>,
) -> Vec<u8> {
    let mut raw = Vec::new();
    encode_properties(props, &mut raw);
    let mut out = Vec::new();
    Connect {
        version,
        clean_start: true,
        keep_alive: 30,
        properties: Properties::parse_raw(&raw, PropertyContext::Connect).unwrap(),
        client_id,
        will,
        username: None,
        password: None,
    }
    .encode(&mut out);
    out
}

fn publish_bytes(version: Version, topic: &str, qos: QoS, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: (qos != QoS::AtMostOnce).then_some(id),
        topic_alias: None,
        properties: Properties::EMPTY,
        payload,
        payload_offset: 0,
    }
    .encode(version, &mut out);
    out
}

fn expect_connack(c: &mut RawClient) -> ReasonCode {
    c.recv(|p| match p {
        Packet::ConnAck(a) => a.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    })
    .expect("CONNACK before close")
}

#[test]
fn mosquitto_clients_at_every_qos_v5_and_v311() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let port = proxy.tcp.port().to_string();
    for (version, qos) in [
        ("mqttv5", "0"),
        ("mqttv5", "1"),
        ("mqttv5", "2"),
        ("mqttv311", "1"),
        ("mqttv311", "2"),
    ] {
        let topic = format!("t/{version}/{qos}");
        let sub = spawn_sub(&[
            "-V",
            version,
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            &topic,
            "-q",
            qos,
            "-C",
            "1",
            "-W",
            "10",
        ]);
        std::thread::sleep(Duration::from_millis(300));
        let out = mosquitto_cli(
            "mosquitto_pub",
            &[
                "-V",
                version,
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                &topic,
                "-q",
                qos,
                "-m",
                "hello",
            ],
        );
        assert!(
            out.status.success(),
            "pub {version} q{qos}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = sub.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got.stdout).trim(),
            "hello",
            "{version} q{qos}"
        );
    }
}

#[test]
fn retained_message_reaches_a_later_subscriber() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let port = proxy.tcp.port().to_string();
    let out = mosquitto_cli(
        "mosquitto_pub",
        &[
            "-V", "mqttv5", "-p", &port, "-t", "r/1", "-m", "kept", "-r", "-q", "1",
        ],
    );
    assert!(out.status.success());
    let got = mosquitto_cli(
        "mosquitto_sub",
        &[
            "-V", "mqttv5", "-p", &port, "-t", "r/1", "-C", "1", "-W", "5",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "kept");
}

#[test]
fn tls_listener_with_mosquitto_clients() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let port = proxy.tls.unwrap().port().to_string();
    let ca = proxy.ca.as_ref().unwrap().to_str().unwrap().to_string();
    let sub = spawn_sub(&[
        "-V",
        "mqttv5",
        "-h",
        "localhost",
        "-p",
        &port,
        "--cafile",
        &ca,
        "-t",
        "tls/t",
        "-C",
        "1",
        "-W",
        "10",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let out = mosquitto_cli(
        "mosquitto_pub",
        &[
            "-V",
            "mqttv5",
            "-h",
            "localhost",
            "-p",
            &port,
            "--cafile",
            &ca,
            "-t",
            "tls/t",
            "-m",
            "secret",
            "-q",
            "1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sub.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "secret");
}

#[test]
fn will_message_is_published_when_a_client_vanishes() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let port = proxy.tcp.port().to_string();
    let sub = spawn_sub(&[
        "-V", "mqttv5", "-p", &port, "-t", "will/#", "-C", "1", "-W", "10", "-v",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = RawClient::connect(proxy.tcp);
    let will = Will {
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::EMPTY,
        topic: "will/dev",
        payload: b"gone",
    };
    c.send(&connect_bytes(Version::V5, "dev-will", &[], Some(will)));
    assert_eq!(expect_connack(&mut c), ReasonCode::SUCCESS);
    drop(c); // no DISCONNECT: the broker must publish the will
    let got = sub.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "will/dev gone");
}

#[test]
fn one_mebibyte_payload_and_one_byte_writes() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| c.max_packet_size = 2 << 20,
        |_| flytrap_engine::AllowAll,
    );
    let mut sub = RawClient::connect(proxy.tcp);
    sub.send(&connect_bytes(Version::V5, "big-sub", &[], None));
    expect_connack(&mut sub);
    let mut s = Vec::new();
    flytrap_proto::Subscribe::encode_from(
        Version::V5,
        1,
        Properties::EMPTY,
        &[flytrap_proto::Subscription {
            filter: "big/#",
            options: flytrap_proto::SubscriptionOptions::qos(QoS::AtLeastOnce),
        }],
        &mut s,
    );
    sub.send(&s);
    sub.recv(|p| assert!(matches!(p, Packet::SubAck(_))))
        .unwrap();

    // A publisher that writes CONNECT and a small PUBLISH one byte at a time.
    let mut slow = RawClient::connect(proxy.tcp);
    let mut bytes = connect_bytes(Version::V5, "slow", &[], None);
    bytes.extend(publish_bytes(
        Version::V5,
        "big/small",
        QoS::AtLeastOnce,
        7,
        b"drip",
    ));
    for b in &bytes {
        slow.send(&[*b]);
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(expect_connack(&mut slow), ReasonCode::SUCCESS);
    slow.recv(|p| assert!(matches!(p, Packet::Ack(a) if a.packet_id == 7)))
        .unwrap();

    // A 1 MiB payload in one write.
    let payload: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let mut fast = RawClient::connect(proxy.tcp);
    fast.send(&connect_bytes(Version::V5, "fast", &[], None));
    expect_connack(&mut fast);
    fast.send(&publish_bytes(
        Version::V5,
        "big/large",
        QoS::AtLeastOnce,
        9,
        &payload,
    ));
    fast.recv(|p| assert!(matches!(p, Packet::Ack(a) if a.packet_id == 9)))
        .unwrap();

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let frame = sub.recv_frame().expect("delivery");
        if let Ok(Packet::Publish(p)) = Packet::decode(&frame, Version::V5) {
            seen.push((p.topic.to_string(), p.payload.to_vec()));
            if let Some(id) = p.packet_id {
                let mut ack = Vec::new();
                flytrap_proto::Ack::new(flytrap_proto::AckKind::PubAck, id, ReasonCode::SUCCESS)
                    .encode(Version::V5, &mut ack);
                sub.send(&ack);
            }
        }
    }
    assert_eq!(seen[0], ("big/small".to_string(), b"drip".to_vec()));
    assert_eq!(seen[1].0, "big/large");
    assert!(seen[1].1 == payload, "1 MiB payload arrives intact");
}

#[test]
fn packets_over_the_maximum_size_are_refused() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| c.max_packet_size = 1 << 20,
        |_| flytrap_engine::AllowAll,
    );
    let mut c = RawClient::connect(proxy.tcp);
    c.send(&connect_bytes(Version::V5, "too-big", &[], None));
    expect_connack(&mut c);
    // The size is refused from the fixed header alone: the body is never waited for.
    c.send(&publish_bytes(Version::V5, "big", QoS::AtLeastOnce, 1, &vec![0u8; 1 << 20])[..16]);
    let reason = c.recv(|p| match p {
        Packet::Disconnect(d) => d.reason,
        other => panic!("expected DISCONNECT, got {other:?}"),
    });
    assert_eq!(reason, Some(ReasonCode::PACKET_TOO_LARGE));
}

#[test]
fn many_concurrent_clients() {
    const CLIENTS: usize = 2000;
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let metrics = proxy.engine().metrics();
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut c = RawClient::connect(proxy.tcp);
        c.send(&connect_bytes(Version::V5, &format!("many-{i}"), &[], None));
        clients.push(c);
        if i % 100 == 99 {
            // Mosquitto's listen backlog is 100: let each batch be accepted.
            for c in &mut clients[i - 99..=i] {
                assert_eq!(expect_connack(c), ReasonCode::SUCCESS);
            }
        }
    }
    assert!(
        metrics
            .render()
            .contains(&format!("flytrap_connections_active {CLIENTS}\n"))
    );
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&publish_bytes(
            Version::V5,
            "many/t",
            QoS::AtLeastOnce,
            (i % 60_000 + 1) as u16,
            b"x",
        ));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let id = c.recv(|p| match p {
            Packet::Ack(a) => a.packet_id,
            other => panic!("expected PUBACK, got {other:?}"),
        });
        assert_eq!(id, Some((i % 60_000 + 1) as u16));
    }
    drop(clients);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !metrics.render().contains("flytrap_connections_active 0\n") {
        assert!(
            std::time::Instant::now() < deadline,
            "connections not released"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connack_for_a_3_1_1_client_is_in_its_version() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let mut c = RawClient::connect(proxy.tcp);
    c.version = Version::V311;
    c.send(&connect_bytes(Version::V311, "old", &[], None));
    let frame = c.recv_frame().unwrap();
    assert_eq!(frame, {
        let mut v = Vec::new();
        ConnAck::new(ReasonCode::SUCCESS).encode(Version::V311, &mut v);
        v
    });
}
