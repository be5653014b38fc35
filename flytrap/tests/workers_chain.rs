//! `engine.processes = 2` with chain authorisation, against a real anvil and a real Mosquitto:
//! the supervisor gives each worker its own operator key; signed clients are served by both
//! workers; publishes are allowed and refused by the contract; failed CONNECTs reach the chain
//! exactly once, also from a worker killed with SIGKILL after spooling and restarted; a
//! CONNECT replayed to the other worker is refused.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use flytrap_chain::anvil::{Anvil, AnvilOptions, DEV_KEYS};
use flytrap_chain::bindings::FlyTrap::ConnectFailed;
use flytrap_chain::{Action, Address, Client, PrivateKeySigner, TopicSpec};
use flytrap_proto::ReasonCode;
use flytrap_tests::stack::{connect_signed, connect_with, now, signed_connect};
use flytrap_tests::{Mosquitto, RawClient, free_port, spawn_sub, wait_listening};

/// Stops the supervisor (and so its workers) whatever happens.
struct Supervisor(Child);

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn metrics(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// Connections accepted by each worker, as the supervisor's page shows them.
fn accepted(addr: SocketAddr) -> BTreeMap<usize, u64> {
    let text = metrics(addr);
    let mut out = BTreeMap::new();
    for w in 0..2 {
        let key = format!("flytrap_connections_accepted_total{{worker=\"{w}\"}} ");
        if let Some(v) = text
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
        {
            out.insert(w, v);
        }
    }
    out
}

fn publish_ack(c: &mut RawClient, topic: &str, id: u16) -> ReasonCode {
    c.publish_ack(topic, id, b"hello-workers")
}

/// A CONNECT signed by a fresh key with a stale timestamp: refused with 0x86 and recorded on
/// the chain as ConnectFailed for that key's address.
fn failing_connect(addr: SocketAddr, i: usize) -> Address {
    let key = PrivateKeySigner::random();
    let bytes = signed_connect(&key, &format!("bad-{i}"), now() - 10_000, None);
    let (_, reason) = connect_with(addr, &bytes);
    assert_eq!(reason, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
    key.address()
}

/// Waits until exactly the `expected` clients have ConnectFailed records, each once.
fn assert_recorded_once(
    rt: &tokio::runtime::Runtime,
    url: &str,
    contract: Address,
    expected: &[Address],
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = || -> Option<BTreeMap<Address, usize>> {
        let reader = Client::new(url, contract, None).ok()?;
        let events = rt.block_on(reader.events::<ConnectFailed>(0, None)).ok()?;
        let mut by_client = BTreeMap::new();
        for e in events {
            *by_client.entry(e.event.client).or_insert(0) += 1;
        }
        Some(by_client)
    };
    loop {
        if let Some(seen) = count()
            && expected.iter().all(|a| seen.contains_key(a))
        {
            // Give a duplicate a chance to show up.
            std::thread::sleep(Duration::from_secs(2));
            let seen = count().expect("events");
            for a in expected {
                assert_eq!(seen.get(a), Some(&1), "{a:#x} recorded exactly once");
            }
            return;
        }
        assert!(Instant::now() < deadline, "records did not reach the chain");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The PID of worker `i` among the supervisor's children (`FLYTRAP_WORKER=i/n`).
fn worker_pid(supervisor: u32, i: usize) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{supervisor}/task/{supervisor}/children")).ok()?;
    children.split_whitespace().find_map(|pid| {
        let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let tag = format!("FLYTRAP_WORKER={i}/");
        env.split(|&b| b == 0)
            .any(|v| v.starts_with(tag.as_bytes()))
            .then(|| pid.parse().ok())
            .flatten()
    })
}

/// Whether worker `i`'s spool holds any record bytes.
fn spooled(spool: &Path, i: usize) -> bool {
    std::fs::read_dir(spool.join(format!("worker-{i}")))
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("seg-")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            })
        })
        .unwrap_or(false)
}

#[test]
fn two_workers_with_chain_authorisation() {
    let dir = tempfile::tempdir().unwrap();
    let anvil_state = dir.path().join("anvil.json");
    let mut anvil = Anvil::start_with(&AnvilOptions {
        state: Some(anvil_state.clone()),
        ..AnvilOptions::default()
    })
    .expect("anvil (cd contracts && npm ci)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let (owner, _) = rt.block_on(Client::deploy(&anvil.url(), admin)).unwrap();
    let contract = owner.address();
    let publisher = PrivateKeySigner::random();
    for name in ["w/ok", "w/secret"] {
        rt.block_on(owner.create_topic(name, &TopicSpec::default(), "test"))
            .unwrap();
    }
    rt.block_on(owner.grant(
        flytrap_chain::topic_id("w/ok"),
        publisher.address(),
        Action::Publish,
        "test",
    ))
    .unwrap();

    let key_file = dir.path().join("operator.key");
    std::fs::write(&key_file, format!("{}\n", DEV_KEYS[0])).unwrap();
    let broker = Mosquitto::start();
    let port = free_port();
    let metrics_port = free_port();
    let spool = dir.path().join("spool");
    let config = dir.path().join("flytrap.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nprocesses = 2\ncores = 1\n[listen]\ntcp = \"127.0.0.1:{port}\"\n[broker]\naddress = \"{}\"\n[chain]\nrpc = \"{}\"\ncontract = \"{contract:#x}\"\nkey = \"{}\"\n[ban]\nmax_failures = 1000\n[spool]\ndir = \"{}\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            broker.addr,
            anvil.url(),
            key_file.display(),
            spool.display()
        ),
    )
    .unwrap();
    let supervisor = Supervisor(
        Command::new(env!("CARGO_BIN_EXE_flytrap"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let proxy: SocketAddr = ([127, 0, 0, 1], port).into();
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    wait_listening(proxy, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted(metrics_addr).len() < 2 {
        assert!(Instant::now() < deadline, "both workers serve metrics");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Each worker has its own operator key, registered and funded by the supervisor.
    let mut worker_ops = Vec::new();
    for i in 0..2 {
        let key = flytrap_chain::keyfile::read_key(&spool.join(format!("worker-{i}/operator.key")))
            .unwrap();
        assert!(rt.block_on(owner.is_operator(key.address())).unwrap());
        assert!(
            !rt.block_on(owner.eth_balance(key.address()))
                .unwrap()
                .is_zero()
        );
        worker_ops.push(key.address());
    }
    assert_ne!(worker_ops[0], worker_ops[1]);

    // Signed clients are served by both workers.
    let before = accepted(metrics_addr);
    let mut clients = Vec::new();
    for i in 0..16 {
        let (c, reason) = connect_signed(proxy, &publisher, &format!("pub-{i}"));
        assert_eq!(reason, Some(ReasonCode::SUCCESS));
        clients.push(c);
    }
    let after = accepted(metrics_addr);
    assert!(
        (0..2).all(|w| after[&w] > before[&w]),
        "connections spread over both workers: {before:?} → {after:?}"
    );

    // Allowed publishes are delivered (from whichever worker); a denied one gets 0x87.
    let sub = spawn_sub(&[
        "-h",
        "127.0.0.1",
        "-p",
        &broker.addr.port().to_string(),
        "-t",
        "w/ok",
        "-C",
        "1",
        "-W",
        "20",
    ]);
    assert_eq!(publish_ack(&mut clients[0], "w/ok", 1), ReasonCode::SUCCESS);
    let out = sub.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello-workers"));
    for c in clients.iter_mut().take(4) {
        assert_eq!(publish_ack(c, "w/secret", 2), ReasonCode::NOT_AUTHORIZED);
        // Allowed; nobody listens any more (0x10 No matching subscribers, from the broker).
        assert_eq!(publish_ack(c, "w/ok", 3).0, 0x10);
    }
    drop(clients);

    // A signed CONNECT accepted by one worker is a replay for the other: the workers share
    // one replay table.
    let original = signed_connect(&publisher, "replayed", now(), None);
    let before = accepted(metrics_addr);
    let (_kept, reason) = connect_with(proxy, &original);
    assert_eq!(reason, Some(ReasonCode::SUCCESS));
    let mid = accepted(metrics_addr);
    let first_worker = (0..2)
        .find(|w| mid[w] > before[w])
        .expect("a worker took it");
    let other = 1 - first_worker;
    let mut crossed = false;
    for _ in 0..50 {
        let (_, reason) = connect_with(proxy, &original);
        assert_eq!(reason, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
        if accepted(metrics_addr)[&other] > mid[&other] {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "no replay reached worker {other}");

    // Failed CONNECTs reach the chain once, through whichever worker refused them.
    let first: Vec<Address> = (0..6).map(|i| failing_connect(proxy, i)).collect();
    assert_recorded_once(&rt, &anvil.url(), contract, &first);

    // Node down: failures are spooled by the workers; one worker dies by SIGKILL with records
    // in its spool; the supervisor restarts it; once the node is back, every record lands once.
    anvil.stop();
    let mut second = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(spooled(&spool, 0) && spooled(&spool, 1)) || second.len() < 6 {
        assert!(Instant::now() < deadline, "both workers spooled records");
        second.push(failing_connect(proxy, 100 + second.len()));
    }
    std::thread::sleep(Duration::from_millis(500)); // appended and synced
    let victim = worker_pid(supervisor.0.id(), 1).expect("worker 1 running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = worker_pid(supervisor.0.id(), 1)
            && pid != victim
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor restarts worker 1"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let anvil = Anvil::start_with(&AnvilOptions {
        port: anvil.port(),
        state: Some(anvil_state),
        ..AnvilOptions::default()
    })
    .unwrap();
    let mut all = first.clone();
    all.extend(&second);
    assert_recorded_once(&rt, &anvil.url(), contract, &all);
    drop(supervisor);
}

#[test]
fn workers_need_the_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::start().expect("anvil (cd contracts && npm ci)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let (owner, _) = rt.block_on(Client::deploy(&anvil.url(), admin)).unwrap();
    let key_file = dir.path().join("other.key");
    std::fs::write(&key_file, format!("{}\n", DEV_KEYS[1])).unwrap();
    let config = dir.path().join("flytrap.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\nprocesses = 2\n[listen]\ntcp = \"127.0.0.1:{}\"\n[broker]\naddress = \"127.0.0.1:1\"\n[chain]\nrpc = \"{}\"\ncontract = \"{:#x}\"\nkey = \"{}\"\n[spool]\ndir = \"{}\"\n",
            free_port(),
            anvil.url(),
            owner.address(),
            key_file.display(),
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let out = Command::new("timeout")
        .arg("60")
        .arg(env!("CARGO_BIN_EXE_flytrap"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("is not the contract's admin"), "{stderr}");
}
