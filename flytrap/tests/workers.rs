//! `engine.processes = 2`: two worker processes share the listener and both take connections;
//! the supervisor's `/metrics` shows both; SIGTERM stops everything.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use flytrap_proto::{Packet, ReasonCode};
use flytrap_tests::{Mosquitto, RawClient, free_port, wait_listening};

/// Kills the supervisor (and so its workers) if the test fails half-way.
struct Supervisor(std::process::Child);

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            std::thread::sleep(Duration::from_secs(2));
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn metrics(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

fn accepted(text: &str, worker: usize) -> u64 {
    let key = format!("flytrap_connections_accepted_total{{worker=\"{worker}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
}

#[test]
fn two_workers_share_the_listener() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_port = free_port();
    let config = dir.path().join("flytrap.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nprocesses = 2\n[authz]\nallow_all = true\n[listen]\ntcp = \"127.0.0.1:{port}\"\n[broker]\naddress = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            broker.addr
        ),
    )
    .unwrap();
    let mut supervisor = Supervisor(
        Command::new(env!("CARGO_BIN_EXE_flytrap"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(proxy, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500)); // both workers bound

    let mut clients = Vec::new();
    for i in 0..40 {
        let mut c = RawClient::connect(proxy);
        c.send_connect(&format!("w-{i}"));
        assert_eq!(
            c.recv(|p| matches!(p, Packet::ConnAck(a) if a.reason == ReasonCode::SUCCESS)),
            Some(true)
        );
        clients.push(c);
    }
    let text = metrics(([127, 0, 0, 1], metrics_port).into());
    let (a, b) = (accepted(&text, 0), accepted(&text, 1));
    assert!(a + b >= 40, "{text}"); // 40 clients (plus the readiness probe)
    assert!(
        a > 0 && b > 0,
        "connections spread over both workers: {a} and {b}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = supervisor.0.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(Instant::now() < deadline, "supervisor did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        TcpStream::connect(proxy).is_err(),
        "nothing listens after the stop"
    );
}
