//! Bad input and faults: malformed packets, unreachable or misbehaving brokers, slow clients,
//! failed handshakes, and that the proxy releases everything afterwards.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use flytrap_proto::{
    Connect, Packet, Properties, Property, PropertyContext, ReasonCode, Version, encode_properties,
};
use flytrap_tests::{Mosquitto, Proxy, RawClient, free_port, mosquitto_cli, spawn_sub};

fn connect_bytes(client_id: &str, props: &[Property<'_>]) -> Vec<u8> {
    let mut raw = Vec::new();
    encode_properties(props, &mut raw);
    let mut out = Vec::new();
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 30,
        properties: Properties::parse_raw(&raw, PropertyContext::Connect).unwrap(),
        client_id,
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut out);
    out
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn malformed_packet_gets_disconnect_0x81_and_is_not_forwarded() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let port = proxy.tcp.port().to_string();
    let sub = spawn_sub(&["-V", "mqttv5", "-p", &port, "-t", "#", "-C", "1", "-W", "3"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = RawClient::connect(proxy.tcp);
    c.send(&connect_bytes("bad", &[]));
    c.recv(|p| assert!(matches!(p, Packet::ConnAck(_))))
        .unwrap();
    // A PUBLISH whose topic length runs past the packet.
    c.send(b"\x30\x05\x00\x09abc");
    let reason = c.recv(|p| match p {
        Packet::Disconnect(d) => d.reason,
        other => panic!("expected DISCONNECT, got {other:?}"),
    });
    assert_eq!(reason, Some(ReasonCode::MALFORMED_PACKET));
    assert_eq!(c.recv_frame(), None, "connection closed");
    let got = sub.wait_with_output().unwrap();
    assert!(
        got.stdout.is_empty(),
        "nothing reached the broker: {:?}",
        got.stdout
    );
}

#[test]
fn unreachable_broker_gets_connack_0x88() {
    let closed: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let proxy = Proxy::start(&[closed]);
    let out = mosquitto_cli(
        "mosquitto_pub",
        &[
            "-V",
            "mqttv5",
            "-p",
            &proxy.tcp.port().to_string(),
            "-t",
            "a",
            "-m",
            "x",
        ],
    );
    assert!(!out.status.success());
    let mut c = RawClient::connect(proxy.tcp);
    c.send(&connect_bytes("nobroker", &[]));
    let reason = c.recv(|p| match p {
        Packet::ConnAck(a) => a.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    });
    assert_eq!(reason, Some(ReasonCode::SERVER_UNAVAILABLE));
}

#[test]
fn slow_loris_is_cut_at_the_connect_timeout() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| c.connect_timeout = Duration::from_millis(500),
        |_| flytrap_engine::AllowAll,
    );
    let mut c = RawClient::connect(proxy.tcp);
    c.send(&[0x10, 0x20]); // half a fixed header, then nothing
    let t = Instant::now();
    assert_eq!(c.recv_frame(), None);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        proxy
            .engine()
            .metrics()
            .render()
            .contains("flytrap_connect_timeouts_total 1\n")
    );
}

#[test]
fn flytrap_properties_never_reach_the_broker() {
    // A stand-in broker that records the CONNECT it receives (on whichever connection: the
    // proxy's pool dials some ahead that carry nothing).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let (Ok(mut s), tx) = (s, tx.clone()) else {
                return;
            };
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut got = vec![0u8; 4096];
                if let Ok(n @ 1..) = s.read(&mut got) {
                    s.write_all(b"\x20\x03\x00\x00\x00").unwrap();
                    got.truncate(n);
                    let _ = tx.send(got);
                }
            });
        }
    });
    let recorder = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(10)).unwrap());
    let proxy = Proxy::start(&[addr]);
    let mut c = RawClient::connect(proxy.tcp);
    c.send(&connect_bytes(
        "sensor-1",
        &[
            Property::UserProperty(
                "flytrap-address",
                "0x1a642f0e3c3af545e7acbd38b07251b3990914f1",
            ),
            Property::UserProperty("app", "kept"),
            Property::UserProperty("flytrap-signature", "0x00"),
            Property::UserProperty("flytrap-timestamp", "1700000000"),
        ],
    ));
    c.recv(|p| assert!(matches!(p, Packet::ConnAck(_))))
        .unwrap();
    let seen = recorder.join().unwrap();
    let Ok(Packet::Connect(connect)) = Packet::decode(&seen, Version::V5) else {
        panic!("broker did not get a CONNECT");
    };
    assert_eq!(connect.client_id, "sensor-1");
    assert_eq!(
        connect.properties.user_properties().collect::<Vec<_>>(),
        [("app", "kept")]
    );
}

#[test]
fn a_broker_dropping_one_connection_drops_only_that_client() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let mut first = RawClient::connect(proxy.tcp);
    first.send(&connect_bytes("same-id", &[]));
    first.recv(|_| ()).unwrap();
    let mut other = RawClient::connect(proxy.tcp);
    other.send(&connect_bytes("other", &[]));
    other.recv(|_| ()).unwrap();
    // Session takeover: the broker disconnects the first connection with this client id.
    let mut second = RawClient::connect(proxy.tcp);
    second.send(&connect_bytes("same-id", &[]));
    second.recv(|_| ()).unwrap();
    loop {
        match first.recv_frame() {
            None => break,
            Some(f) => assert!(matches!(
                Packet::decode(&f, Version::V5),
                Ok(Packet::Disconnect(_))
            )),
        }
    }
    // The others still work.
    for c in [&mut other, &mut second] {
        c.send(b"\xc0\x00");
        c.recv(|p| assert_eq!(p, Packet::PingResp)).unwrap();
    }
}

#[test]
fn failed_tls_handshakes_and_resets_leak_nothing() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let tls = proxy.tls.unwrap();
    let metrics = proxy.engine().metrics();
    // Warm up, then take the baseline.
    let _ = mosquitto_cli(
        "mosquitto_pub",
        &["-p", &proxy.tcp.port().to_string(), "-t", "w", "-m", "x"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let baseline = open_fds();
    for i in 0..50 {
        let mut s = std::net::TcpStream::connect(tls).unwrap();
        // Not a TLS ClientHello.
        let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
        let _ = s.read(&mut [0u8; 64]);
        // And plain connections reset mid-CONNECT.
        let mut c = RawClient::connect(proxy.tcp);
        c.send(&connect_bytes(&format!("r{i}"), &[])[..5]);
        drop(c);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics.render().contains("flytrap_connections_active 0\n") || open_fds() > baseline {
        assert!(
            Instant::now() < deadline,
            "fds {} > baseline {baseline}",
            open_fds()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        metrics
            .render()
            .contains("flytrap_tls_handshake_failures_total 50\n")
    );
    // The shard is still serving TLS.
    let ca = proxy.ca.as_ref().unwrap().to_str().unwrap().to_string();
    let out = mosquitto_cli(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &tls.port().to_string(),
            "--cafile",
            &ca,
            "-t",
            "t",
            "-m",
            "ok",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn limits_per_ip_answer_with_server_busy() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| c.max_connections_per_ip = 2,
        |_| flytrap_engine::AllowAll,
    );
    let mut held = Vec::new();
    for i in 0..2 {
        let mut c = RawClient::connect(proxy.tcp);
        c.send(&connect_bytes(&format!("ok{i}"), &[]));
        c.recv(|_| ()).unwrap();
        held.push(c);
    }
    let mut third = RawClient::connect(proxy.tcp);
    third.send(&connect_bytes("third", &[]));
    let reason = third.recv(|p| match p {
        Packet::ConnAck(a) => a.reason,
        other => panic!("{other:?}"),
    });
    assert_eq!(reason, Some(ReasonCode::SERVER_BUSY));
}

/// The peer address comes from the accept itself (no getpeername): per-IP limits must still
/// tell clients apart. Each source connects twice back to back, so that the shards find
/// connections both waiting in their accept queues and arriving while they wait; which of
/// the two a shard admits first is not fixed (two shards), only that one of them is refused.
#[test]
fn limits_per_ip_tell_source_addresses_apart() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| c.max_connections_per_ip = 1,
        |_| flytrap_engine::AllowAll,
    );
    let source = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 0);
    let connack = |c: &mut RawClient, id: &str| {
        c.send(&connect_bytes(id, &[]));
        c.recv(|p| match p {
            Packet::ConnAck(a) => a.reason,
            other => panic!("{other:?}"),
        })
    };
    let mut reasons = Vec::new();
    let mut held = Vec::new();
    for (i, ip) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().enumerate() {
        let mut first = RawClient::connect_from(source(ip), proxy.tcp);
        let mut second = RawClient::connect_from(source(ip), proxy.tcp);
        let r1 = connack(&mut first, &format!("first{i}"));
        let r2 = connack(&mut second, &format!("second{i}"));
        let (ok, busy) = (Some(ReasonCode::SUCCESS), Some(ReasonCode::SERVER_BUSY));
        reasons.push((r1 == ok && r2 == busy) || (r1 == busy && r2 == ok));
        held.push((first, second));
    }
    assert_eq!(
        reasons, [true; 3],
        "one admitted and one refused per source address"
    );
}

#[test]
fn proxy_protocol_address_is_the_one_limits_see() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| {
            c.proxy_protocol = true;
            c.max_connections_per_ip = 1;
        },
        |_| flytrap_engine::AllowAll,
    );
    let connect_via = |client: &str, id: &str| {
        let mut c = RawClient::connect(proxy.tcp);
        c.send(&flytrap_engine::proxy_protocol::encode_v2(
            client.parse().unwrap(),
            proxy.tcp,
        ));
        c.send(&connect_bytes(id, &[]));
        let reason = c.recv(|p| match p {
            Packet::ConnAck(a) => a.reason,
            other => panic!("{other:?}"),
        });
        (c, reason)
    };
    // Same TCP peer (127.0.0.1), different client addresses: both admitted.
    let (_a, ra) = connect_via("192.0.2.1:4000", "pp-a");
    let (_b, rb) = connect_via("192.0.2.2:4000", "pp-b");
    assert_eq!(
        (ra, rb),
        (Some(ReasonCode::SUCCESS), Some(ReasonCode::SUCCESS))
    );
    // A second connection from 192.0.2.1 is over its per-IP limit.
    let (_c, rc) = connect_via("192.0.2.1:4001", "pp-c");
    assert_eq!(rc, Some(ReasonCode::SERVER_BUSY));
    // The v1 text form works too.
    let mut v1 = RawClient::connect(proxy.tcp);
    v1.send(b"PROXY TCP4 192.0.2.3 127.0.0.1 5000 1883\r\n");
    v1.send(&connect_bytes("pp-v1", &[]));
    assert!(
        v1.recv(|p| matches!(p, Packet::ConnAck(a) if a.reason == ReasonCode::SUCCESS))
            .unwrap()
    );
    // Without a header the connection is dropped.
    let mut none = RawClient::connect(proxy.tcp);
    none.send(&connect_bytes("pp-none", &[]));
    assert_eq!(none.recv_frame(), None);
}

#[test]
fn keep_alive_expiry_closes_a_silent_client() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let mut raw = Vec::new();
    encode_properties(&[], &mut raw);
    let mut bytes = Vec::new();
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 1,
        properties: Properties::EMPTY,
        client_id: "sleepy",
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut bytes);
    let mut c = RawClient::connect(proxy.tcp);
    c.send(&bytes);
    c.recv(|p| assert!(matches!(p, Packet::ConnAck(_))))
        .unwrap();
    let t = Instant::now();
    // Nothing more is sent: the proxy closes after 1.5 s of silence (Mosquitto's own check
    // has whole-second granularity and comes later), saying why first.
    let mut reasons = Vec::new();
    while let Some(frame) = c.recv_frame() {
        match Packet::decode(&frame, Version::V5) {
            Ok(Packet::Disconnect(d)) => reasons.push(d.reason),
            other => panic!("expected only a DISCONNECT, got {other:?}"),
        }
    }
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(reasons, [ReasonCode::KEEP_ALIVE_TIMEOUT]);
    let metrics = proxy.engine().metrics().render();
    assert!(
        metrics.contains("flytrap_sessions_ended_total{cause=\"keep_alive\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn broker_over_tls() {
    let broker = Mosquitto::start_with_tls(true);
    let ca = broker.ca();
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| {
            c.broker_tls = true;
            c.broker_ca = Some(ca);
        },
        |_| flytrap_engine::AllowAll,
    );
    let port = proxy.tcp.port().to_string();
    let sub = spawn_sub(&[
        "-V", "mqttv5", "-p", &port, "-t", "tls/up", "-C", "1", "-W", "10",
    ]);
    std::thread::sleep(Duration::from_millis(400));
    let out = mosquitto_cli(
        "mosquitto_pub",
        &[
            "-V", "mqttv5", "-p", &port, "-t", "tls/up", "-m", "via-tls", "-q", "1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&sub.wait_with_output().unwrap().stdout).trim(),
        "via-tls"
    );

    // A broker whose certificate is not trusted: CONNACK 0x88.
    let untrusted = Proxy::start_with(
        &[broker.addr],
        |c| c.broker_tls = true,
        |_| flytrap_engine::AllowAll,
    );
    let mut c = RawClient::connect(untrusted.tcp);
    c.send(&connect_bytes("untrusted", &[]));
    let reason = c.recv(|p| match p {
        Packet::ConnAck(a) => a.reason,
        other => panic!("{other:?}"),
    });
    assert_eq!(reason, Some(ReasonCode::SERVER_UNAVAILABLE));
}

#[test]
fn sighup_reload_switches_the_certificate() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let tls = proxy.tls.unwrap().port().to_string();
    let old_ca = std::env::temp_dir().join(format!("flytrap-old-ca-{}.pem", std::process::id()));
    std::fs::copy(proxy.ca.as_ref().unwrap(), &old_ca).unwrap();
    let pub_with = |ca: &std::path::Path| {
        mosquitto_cli(
            "mosquitto_pub",
            &[
                "-h",
                "localhost",
                "-p",
                &tls,
                "--cafile",
                ca.to_str().unwrap(),
                "-t",
                "r",
                "-m",
                "x",
            ],
        )
        .status
        .success()
    };
    assert!(pub_with(&old_ca));
    // New certificate and key in place, then the reload (what SIGHUP does).
    let dir = proxy.ca.as_ref().unwrap().parent().unwrap().to_path_buf();
    flytrap_tests::tls_files(&dir);
    proxy.engine().stopper().reload_tls().unwrap();
    assert!(
        pub_with(&dir.join("cert.pem")),
        "the new certificate is served"
    );
    assert!(!pub_with(&old_ca), "the old one is not");
    let _ = std::fs::remove_file(old_ca);
}
