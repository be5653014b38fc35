//! The source-address pool lifts the per-source-address limit on upstream connections.
//!
//! Run inside a private network namespace (`unshare -n`), where the ephemeral port range can
//! be shrunk to 100 ports: one source address then holds at most 100 connections to the
//! broker, and a pool of two holds more.

use std::process::Command;
use std::time::Duration;

use flytrap_proto::{Packet, ReasonCode};
use flytrap_tests::{Mosquitto, Proxy, RawClient};

const PORTS: usize = 100;
const CLIENTS: usize = 150;

fn connect_all(proxy: &Proxy) -> (usize, usize) {
    let mut clients = Vec::new();
    let (mut ok, mut unavailable) = (0, 0);
    for i in 0..CLIENTS {
        // Clients bind ports below the ephemeral range, which is left to the proxy's
        // upstream connections alone.
        let source = std::net::SocketAddr::from(([127, 0, 1, 1], 20_000 + i as u16));
        let mut c = RawClient::connect_from(source, proxy.tcp);
        c.send_connect(&format!("pool-{i}"));
        match c.recv(|p| match p {
            Packet::ConnAck(a) => a.reason,
            other => panic!("{other:?}"),
        }) {
            Some(ReasonCode::SUCCESS) => ok += 1,
            Some(ReasonCode::SERVER_UNAVAILABLE) => unavailable += 1,
            other => panic!("unexpected {other:?}"),
        }
        clients.push(c); // held open
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(50)); // Mosquitto's backlog is 100
        }
    }
    (ok, unavailable)
}

/// The part that runs inside the namespace.
#[test]
#[ignore = "run by pool_holds_more_than_one_source_address_allows inside unshare -n"]
fn inside_namespace() {
    assert_eq!(
        std::env::var("FLYTRAP_IN_NETNS").as_deref(),
        Ok("1"),
        "run through the outer test"
    );
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
    ip(&["link", "set", "lo", "up"]);
    std::fs::write(
        "/proc/sys/net/ipv4/ip_local_port_range",
        format!("40000 {}", 40000 + PORTS - 1),
    )
    .unwrap();
    let broker = Mosquitto::start();

    // One source address: the port range is the limit.
    let single = Proxy::start_with(
        &[broker.addr],
        |c| c.source_addresses = vec!["127.0.0.2".parse().unwrap()],
        |_| flytrap_engine::AllowAll,
    );
    let (ok, unavailable) = connect_all(&single);
    assert!(ok > 0 && ok <= PORTS, "one address held {ok} connections");
    assert_eq!(ok + unavailable, CLIENTS);
    drop(single);
    std::thread::sleep(Duration::from_millis(500));

    // Two source addresses: every client is served.
    let pooled = Proxy::start_with(
        &[broker.addr],
        |c| c.source_addresses = vec!["127.0.0.3".parse().unwrap(), "127.0.0.4".parse().unwrap()],
        |_| flytrap_engine::AllowAll,
    );
    let (ok, unavailable) = connect_all(&pooled);
    assert_eq!((ok, unavailable), (CLIENTS, 0));
}

#[test]
fn pool_holds_more_than_one_source_address_allows() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .arg("-n")
        .arg(&exe)
        .args([
            "--exact",
            "inside_namespace",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FLYTRAP_IN_NETNS", "1")
        .output()
        .expect("unshare (util-linux) runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}
