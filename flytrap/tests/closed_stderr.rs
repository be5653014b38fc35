//! `flytrap serve` with its stderr a pipe nobody reads any more (a log collector that went
//! away): log lines are lost, nothing else. The proxy still serves, and SIGTERM still stops it.
//! tracing-subscriber's default reports a failed write with `eprintln!`, which panicked on the
//! same broken pipe: the main thread at its first log line, and the signal thread at "stopping",
//! so the proxy ignored SIGTERM.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flytrap_proto::{Packet, ReasonCode};
use flytrap_tests::{Mosquitto, RawClient, free_port, wait_listening};

/// Kills the proxy if the test fails half-way.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_closed_stderr_loses_log_lines_and_nothing_else() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("flytrap.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\ncores = 1\n[authz]\nallow_all = true\n[listen]\ntcp = \"127.0.0.1:{port}\"\n[broker]\naddress = \"{}\"\n",
            broker.addr
        ),
    )
    .unwrap();
    let mut serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_flytrap"))
            .args(["serve", "--config"])
            .arg(&config)
            // Every connection logs at debug level: the shard writes to the broken pipe too.
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Close the read end before the proxy writes its first line.
    drop(serve.0.stderr.take());
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(proxy, Duration::from_secs(10));

    let mut client = RawClient::connect(proxy);
    client.send_connect("closed-stderr");
    assert_eq!(
        client.recv(|p| matches!(p, Packet::ConnAck(a) if a.reason == ReasonCode::SUCCESS)),
        Some(true),
        "the proxy serves with its log lost"
    );
    drop(client);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = serve.0.try_wait().unwrap() {
            assert!(status.success(), "stopped by SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the proxy");
        std::thread::sleep(Duration::from_millis(50));
    }
}
