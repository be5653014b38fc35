//! `flytrap serve` killed with SIGKILL loses no spooled audit record: records spooled while the
//! node is down reach the chain exactly once after the proxy restarts.

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use flytrap_chain::anvil::{Anvil, AnvilOptions, DEV_KEYS};
use flytrap_chain::{Client, PrivateKeySigner};
use flytrap_proto::ReasonCode;
use flytrap_tests::{Mosquitto, free_port, wait_listening};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &std::path::Path) -> Serve {
    Serve(
        Command::new(env!("CARGO_BIN_EXE_flytrap"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    )
}

/// A CONNECT whose signature is stale: refused with 0x86 and recorded as ConnectFailed.
fn failing_connect(addr: SocketAddr, key: &PrivateKeySigner, i: usize) {
    let old = flytrap_tests::stack::now() - 10_000;
    let bytes = flytrap_tests::stack::signed_connect(key, &format!("c{i}"), old, None);
    let (_, reason) = flytrap_tests::stack::connect_with(addr, &bytes);
    assert_eq!(reason, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
}

#[test]
fn sigkill_after_spooling_delivers_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("anvil.json");
    let mut anvil = Anvil::start_with(&AnvilOptions {
        state: Some(state.clone()),
        ..AnvilOptions::default()
    })
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let operator: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let (owner, _) = rt.block_on(Client::deploy(&anvil.url(), operator)).unwrap();
    let key_file = dir.path().join("operator.key");
    std::fs::write(&key_file, format!("{}\n", DEV_KEYS[0])).unwrap();
    let broker = Mosquitto::start();
    let port = free_port();
    let config = dir.path().join("flytrap.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\ncores = 1\n[listen]\ntcp = \"127.0.0.1:{port}\"\n[broker]\naddress = \"{}\"\n[chain]\nrpc = \"{}\"\ncontract = \"{:#x}\"\nkey = \"{}\"\n[ban]\nmax_failures = 1000\n[spool]\ndir = \"{}\"\n",
            broker.addr,
            anvil.url(),
            owner.address(),
            key_file.display(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // The node goes down; the proxy spools 5 failures, then dies without warning.
    anvil.stop();
    let mut proxy = serve(&config);
    wait_listening(addr, Duration::from_secs(10));
    let client = PrivateKeySigner::random();
    for i in 0..5 {
        failing_connect(addr, &client, i);
    }
    std::thread::sleep(Duration::from_millis(500)); // appended and synced
    proxy.0.kill().unwrap(); // SIGKILL
    let _ = proxy.0.wait();

    // Node back, proxy back: every record reaches the chain, once.
    let mut anvil = Anvil::start_with(&AnvilOptions {
        port: anvil.port(),
        state: Some(state),
        ..AnvilOptions::default()
    })
    .unwrap();
    let _proxy = serve(&config);
    wait_listening(addr, Duration::from_secs(10));
    // A fresh client: the old one's pooled connection died with the first node.
    let owner = Client::new(&anvil.url(), owner.address(), None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = rt
            .block_on(owner.events::<flytrap_chain::bindings::FlyTrap::ConnectFailed>(0, None))
            .unwrap();
        if events.len() >= 5 {
            std::thread::sleep(Duration::from_secs(2));
            let again = rt
                .block_on(owner.events::<flytrap_chain::bindings::FlyTrap::ConnectFailed>(0, None))
                .unwrap();
            let mut seqs: Vec<u64> = again.iter().map(|e| e.event.seq).collect();
            seqs.sort();
            seqs.dedup();
            assert_eq!(
                (again.len(), seqs.len()),
                (5, 5),
                "each record exactly once"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of 5 records reached the chain",
            events.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    anvil.stop();
}
