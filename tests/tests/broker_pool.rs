//! The pre-dialled broker connections (issue 15): refused CONNECTs leave nothing at the
//! broker, and a broker restart empties and refills the pool with clients seeing at most
//! CONNACK 0x88 while it is down.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use flytrap_chain::{Action, TopicSpec};
use flytrap_engine::{AllowAll, BrokerPoolConfig};
use flytrap_proto::{Connect, Packet, Properties, ReasonCode, Version};
use flytrap_tests::stack::{Stack, StackOptions, new_key, now, signed_connect};
use flytrap_tests::{Mosquitto, Proxy, RawClient, metric};

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a PROXY v2 header for `from`, then `connect`; the CONNACK's reason, or `None` when
/// the connection closed without one.
fn connect_as(proxy: SocketAddr, from: &str, connect: &[u8]) -> Option<ReasonCode> {
    let mut c = RawClient::connect(proxy);
    c.send(&flytrap_engine::proxy_protocol::encode_v2(
        format!("{from}:4000").parse().unwrap(),
        proxy,
    ));
    c.send(connect);
    c.recv(|p| match p {
        Packet::ConnAck(a) => a.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    })
}

#[test]
fn refused_connects_send_nothing_to_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let mmdb = flytrap_tests::stack::countries_mmdb(dir.path());
    let s = Stack::start_with(StackOptions {
        proxy_protocol: true,
        mmdb: Some(mmdb),
        ban: flytrap_authz::bans::BanPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(300),
        },
        relay: true,
        ..Default::default()
    });
    let relay = s.relay.as_ref().unwrap().counts();
    let proxy = s.proxy.tcp;
    let engine = s.proxy.engine();
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
    // The pool is on by default and has dialled the broker (through the relay) ahead.
    let min = BrokerPoolConfig::default().min;
    wait_for("the pool to fill", || {
        metric(engine, "flytrap_broker_pool_ready") >= min as u64
    });
    assert!(relay.connections.load(Relaxed) >= min);

    // A bad signature (made for another client id), three times: 0x86, then the IP is banned.
    let t = now();
    let mut wrong_id = signed_connect(&key, "x-2", t, None);
    let good = flytrap_chain::sign::sign_connect(&key, "x-1", t)
        .unwrap()
        .signature_hex();
    let bad = flytrap_chain::sign::sign_connect(&key, "x-2", t)
        .unwrap()
        .signature_hex();
    let at = wrong_id
        .windows(bad.len())
        .position(|w| w == bad.as_bytes())
        .unwrap();
    wrong_id[at..at + good.len()].copy_from_slice(good.as_bytes());
    for _ in 0..3 {
        assert_eq!(
            connect_as(proxy, "192.0.2.20", &wrong_id),
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        );
    }
    // Banned: refused at accept, even with a good CONNECT.
    let fresh = signed_connect(&key, "banned", now(), None);
    assert_eq!(
        connect_as(proxy, "192.0.2.20", &fresh),
        Some(ReasonCode::BANNED)
    );
    // Wrong country: a will on a topic open to DE only, from a US address.
    let will = signed_connect(&key, "us-will", now(), Some(("eu/only", b"bye")));
    assert_eq!(
        connect_as(proxy, "198.51.100.10", &will),
        Some(ReasonCode::NOT_AUTHORIZED)
    );

    // Nothing reached the broker: no pooled connection was taken, none carried a byte.
    assert_eq!(metric(engine, "flytrap_broker_pool_hits_total"), 0);
    assert_eq!(metric(engine, "flytrap_broker_pool_misses_total"), 0);
    assert_eq!(relay.used.load(Relaxed), 0);
    assert_eq!(relay.bytes_up.load(Relaxed), 0);

    // The same will from a German address is accepted, on a pooled connection: exactly one
    // connection carries the (rewritten) CONNECT.
    let de_will = signed_connect(&key, "de-will", now(), Some(("eu/only", b"bye")));
    assert_eq!(
        connect_as(proxy, "192.0.2.10", &de_will),
        Some(ReasonCode::SUCCESS)
    );
    assert_eq!(metric(engine, "flytrap_broker_pool_hits_total"), 1);
    assert_eq!(relay.used.load(Relaxed), 1);
    assert!(relay.bytes_up.load(Relaxed) > 0);
}

fn plain_connect(client_id: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 30,
        properties: Properties::EMPTY,
        client_id,
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut out);
    out
}

/// A CONNECT through the proxy: the CONNACK's reason (`None`: closed without one).
fn connack(proxy: SocketAddr, client_id: &str) -> Option<ReasonCode> {
    let mut c = RawClient::connect(proxy);
    c.send(&plain_connect(client_id));
    c.recv(|p| match p {
        Packet::ConnAck(a) => a.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    })
}

fn broker_restart_empties_and_refills_the_pool(tls: bool) {
    let mut broker = Mosquitto::start_with_tls(tls);
    let ca = broker.ca();
    let pool = BrokerPoolConfig {
        min: 3,
        ..BrokerPoolConfig::default()
    };
    let proxy = Proxy::start_with(
        &[broker.addr],
        |c| {
            c.shards = 1;
            c.broker_pool = pool;
            if tls {
                c.broker_tls = true;
                c.broker_ca = Some(ca);
            }
        },
        |_| AllowAll,
    );
    let engine = proxy.engine();
    let ready = || metric(engine, "flytrap_broker_pool_ready");
    wait_for("the pool to fill", || ready() >= 3);
    assert_eq!(connack(proxy.tcp, "before"), Some(ReasonCode::SUCCESS));
    assert_eq!(metric(engine, "flytrap_broker_pool_hits_total"), 1);
    wait_for("the replacement", || ready() >= 3);

    // The broker goes away: every pooled connection is dead. Clients connecting at once (before
    // the pool has noticed) and later get 0x88, never a closed connection.
    broker.stop();
    for i in 0..5 {
        assert_eq!(
            connack(proxy.tcp, &format!("down-{i}")),
            Some(ReasonCode::SERVER_UNAVAILABLE)
        );
    }
    wait_for("the pool to empty", || ready() == 0);
    assert_eq!(
        connack(proxy.tcp, "still-down"),
        Some(ReasonCode::SERVER_UNAVAILABLE)
    );
    assert_eq!(metric(engine, "flytrap_broker_pool_hits_total"), 1);

    // Back: the pool refills by itself, and clients get CONNACK 0 from it.
    broker.restart();
    wait_for("the pool to refill", || ready() >= 3);
    for i in 0..3 {
        assert_eq!(
            connack(proxy.tcp, &format!("after-{i}")),
            Some(ReasonCode::SUCCESS)
        );
    }
    assert_eq!(metric(engine, "flytrap_broker_pool_hits_total"), 4);
    assert!(metric(engine, "flytrap_broker_pool_dropped_total") >= 3);
}

#[test]
fn broker_restart_empties_and_refills_the_pool_tcp() {
    broker_restart_empties_and_refills_the_pool(false);
}

#[test]
fn broker_restart_empties_and_refills_the_pool_tls() {
    broker_restart_empties_and_refills_the_pool(true);
}

#[test]
fn the_pool_off_dials_per_connect() {
    let broker = Mosquitto::start();
    let relay = flytrap_tests::CountingRelay::start(broker.addr);
    let proxy = Proxy::start_with(
        &[relay.addr],
        |c| c.broker_pool = BrokerPoolConfig::OFF,
        |_| AllowAll,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        relay.counts().connections.load(Relaxed),
        0,
        "nothing dialled ahead"
    );
    for i in 0..3 {
        assert_eq!(
            connack(proxy.tcp, &format!("off-{i}")),
            Some(ReasonCode::SUCCESS)
        );
    }
    let engine = proxy.engine();
    assert_eq!(metric(engine, "flytrap_broker_pool_misses_total"), 3);
    assert_eq!(metric(engine, "flytrap_broker_pool_hits_total"), 0);
    assert_eq!(relay.counts().connections.load(Relaxed), 3);
}

/// A storm's CONNECTs to one broker are bounded per shard (`broker_max_pending`): with a bound
/// of 1 and a broker that has not yet answered the first CONNECT, a second verified CONNECT
/// waits in the proxy, and its broker connection is dialled only after the first CONNACK.
#[test]
fn connects_in_flight_to_a_broker_are_bounded() {
    use std::io::{ErrorKind, Write};
    let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = Proxy::start_with(
        &[broker.local_addr().unwrap()],
        |c| {
            c.shards = 1; // the bound is per shard
            c.broker_pool = BrokerPoolConfig::OFF;
            c.broker_max_pending = 1;
        },
        |_| AllowAll,
    );
    let mut a = RawClient::connect(proxy.tcp);
    a.send(&plain_connect("pending-a"));
    let (mut first, _) = broker.accept().unwrap();
    let mut b = RawClient::connect(proxy.tcp);
    b.send(&plain_connect("pending-b"));
    // b's CONNECT is read and verified, then waits for a's CONNACK: no second connection.
    broker.set_nonblocking(true).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(matches!(broker.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock));
    // The broker answers a (CONNACK 5.0: success, no properties); then b's dial goes out.
    first.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).unwrap();
    a.recv(|p| assert!(matches!(p, Packet::ConnAck(c) if c.reason == ReasonCode::SUCCESS)))
        .unwrap();
    let mut second = None;
    wait_for("b's broker connection", || {
        second = broker.accept().ok();
        second.is_some()
    });
    let (mut second, _) = second.unwrap();
    second.set_nonblocking(false).unwrap();
    second.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).unwrap();
    b.recv(|p| assert!(matches!(p, Packet::ConnAck(c) if c.reason == ReasonCode::SUCCESS)))
        .unwrap();
}
