//! Issue 13, items 2 and 3: a two-proxy deployment on one contract, as `deploy/` ships it.
//!
//! anvil (a block a second) + the contract + two Mosquittos + two `flytrap serve` (one broker
//! each, each with its own operator key, `listen.proxy_protocol = true`) + HAProxy in TCP mode
//! with `send-proxy-v2`, run with `deploy/haproxy.cfg` itself (only the ports changed): a
//! round-robin frontend and one frontend per proxy. Clients come from several loopback
//! addresses (127.0.0.2 …); HAProxy always connects from 127.0.0.1, so the proxies only see
//! them through the PROXY header.
//!
//! Checked: geo checks use the PROXY header's address; a revocation reaches live sessions on
//! both proxies; a ban earned at proxy A refuses the client at proxy B; `flytrap ban lift`
//! lifts it on both; `flytrap ban list` and `flytrap audit bans` show it.
//!
//! `fleet_enforcement_latency` (ignored; run by hand, see BENCHMARKS.md) measures the time
//! from a ban or a revocation being mined to its enforcement at the other proxy.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flytrap_chain::anvil::{Anvil, AnvilOptions, DEV_KEYS};
use flytrap_chain::bindings::FlyTrap::{AclChanged, Banned};
use flytrap_chain::types::bytes16_to_ip;
use flytrap_chain::{Action, Client, Country, PrivateKeySigner, TopicSpec, topic_id};
use flytrap_proto::{Packet, ReasonCode, Version};
use flytrap_tests::stack::{now, signed_connect};
use flytrap_tests::{Mosquitto, RawClient, free_port, wait_listening};

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
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

/// The deployment.
struct Fleet {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    anvil: Anvil,
    /// The admin (and topic owner).
    owner: Client,
    /// Round robin over both proxies.
    rr: SocketAddr,
    /// HAProxy's frontend to proxy A only.
    a: SocketAddr,
    /// HAProxy's frontend to proxy B only.
    b: SocketAddr,
    /// Proxy C itself (no HAProxy in front): `auth.require_challenge = true`.
    c: SocketAddr,
    /// A client key granted on the test topics.
    publisher: PrivateKeySigner,
    _haproxy: Running,
    _proxies: Vec<Running>,
    _brokers: Vec<Mosquitto>,
}

const BAN_FAILURES: usize = 5;

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

impl Fleet {
    fn start() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let anvil = Anvil::start_with(&AnvilOptions {
            block_time: Some(1),
            ..AnvilOptions::default()
        })
        .expect("anvil (cd contracts && npm ci)");
        let admin: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
        std::fs::write(dir.path().join("admin.key"), format!("{}\n", DEV_KEYS[0])).unwrap();
        let (owner, _) = rt.block_on(Client::deploy(&anvil.url(), admin)).unwrap();
        let contract = format!("{:#x}", owner.address());

        // Each proxy writes audit records with its own operator key (dev accounts 1 and 2).
        for (name, key) in [("a", DEV_KEYS[1]), ("b", DEV_KEYS[2]), ("c", DEV_KEYS[3])] {
            std::fs::write(
                dir.path().join(format!("{name}-operator.key")),
                format!("{key}\n"),
            )
            .unwrap();
            let signer: PrivateKeySigner = key.parse().unwrap();
            let added = Command::new(env!("CARGO_BIN_EXE_flytrap"))
                .args(["operator", "add", &format!("{:#x}", signer.address())])
                .args(["--rpc", &anvil.url(), "--contract", &contract, "--key"])
                .arg(dir.path().join("admin.key"))
                .output()
                .unwrap();
            assert!(added.status.success(), "{added:?}");
        }
        let publisher = PrivateKeySigner::random();
        rt.block_on(owner.create_topic("f/live", &TopicSpec::default(), "fleet"))
            .unwrap();
        let eu = TopicSpec {
            countries: vec![Country(*b"DE")],
            ..TopicSpec::default()
        };
        rt.block_on(owner.create_topic("eu/only", &eu, "fleet"))
            .unwrap();
        for name in ["f/live", "eu/only"] {
            rt.block_on(owner.grant(
                topic_id(name),
                publisher.address(),
                Action::Publish,
                "fleet",
            ))
            .unwrap();
        }

        let mmdb = dir.path().join("countries.mmdb");
        let made = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/geo/make_mmdb.py"
            ))
            .arg(&mmdb)
            .args(["127.0.0.3/32=DE", "127.0.0.4/32=US"])
            .status()
            .expect("python3 with mmdb-writer (scripts/deps.sh)");
        assert!(made.success());

        let brokers = vec![Mosquitto::start(), Mosquitto::start()];
        let ports = [free_port(), free_port(), free_port()];
        let mut proxies = Vec::new();
        // A and B as deployed (behind HAProxy, either sign-in scheme); C is a third proxy on
        // the same contract, reached directly, that requires the challenge scheme
        // (`auth.require_challenge`), sharing B's broker.
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            let challenge = name == "c";
            let config = dir.path().join(format!("{name}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[engine]\ncores = 1\n[listen]\ntcp = \"127.0.0.1:{}\"\nproxy_protocol = {}\n[auth]\nrequire_challenge = {}\n[broker]\naddress = \"{}\"\n[chain]\nrpc = \"{}\"\ncontract = \"{contract}\"\nkey = \"{}\"\n[ban]\nmax_failures = {BAN_FAILURES}\nwindow_s = 60\nduration_s = 300\n[geo]\nmmdb = \"{}\"\n[spool]\ndir = \"{}\"\n",
                    ports[i],
                    !challenge,
                    challenge,
                    brokers[i.min(1)].addr,
                    anvil.url(),
                    dir.path().join(format!("{name}-operator.key")).display(),
                    mmdb.display(),
                    dir.path().join(format!("spool-{name}")).display(),
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
            proxies.push(Running(
                Command::new(env!("CARGO_BIN_EXE_flytrap"))
                    .args(["serve", "--config"])
                    .arg(&config)
                    .env("RUST_LOG", "info")
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            ));
        }
        for port in ports {
            wait_listening(([127, 0, 0, 1], port).into(), Duration::from_secs(30));
        }

        // HAProxy with the shipped configuration, on free ports.
        let fronts = [free_port(), free_port(), free_port()];
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/haproxy.cfg"
        ))
        .unwrap();
        let cfg = shipped
            .replace("127.0.0.1:18831", &format!("127.0.0.1:{}", ports[0]))
            .replace("127.0.0.1:18832", &format!("127.0.0.1:{}", ports[1]))
            .replace("127.0.0.1:1883\n", &format!("127.0.0.1:{}\n", fronts[0]))
            .replace("127.0.0.1:1893\n", &format!("127.0.0.1:{}\n", fronts[1]))
            .replace("127.0.0.1:1894\n", &format!("127.0.0.1:{}\n", fronts[2]))
            // The unit raises the open-file limit for 100,000 connections; a test has less.
            .replace("maxconn 100000", "maxconn 2000");
        assert_ne!(cfg, shipped);
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let haproxy = Running(
            Command::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(&cfg_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("haproxy (scripts/deps.sh)"),
        );
        let front = |i: usize| -> SocketAddr { ([127, 0, 0, 1], fronts[i]).into() };
        for i in 0..3 {
            wait_listening(front(i), Duration::from_secs(30));
        }
        Fleet {
            rt,
            dir,
            anvil,
            owner,
            rr: front(0),
            a: front(1),
            b: front(2),
            c: ([127, 0, 0, 1], ports[2]).into(),
            publisher,
            _haproxy: haproxy,
            _proxies: proxies,
            _brokers: brokers,
        }
    }

    /// A connection to `front` from `source` (through HAProxy) with `connect` as CONNECT;
    /// the CONNACK's reason, `None` when closed without one.
    fn connect_from(
        &self,
        source: IpAddr,
        front: SocketAddr,
        connect: &[u8],
    ) -> (RawClient, Option<ReasonCode>) {
        let mut c = RawClient::connect_from(SocketAddr::new(source, 0), front);
        c.send(connect);
        let reason = c
            .recv_frame()
            .map(|f| match Packet::decode(&f, Version::V5) {
                Ok(Packet::ConnAck(a)) => a.reason,
                other => panic!("expected CONNACK, got {other:?}"),
            });
        (c, reason)
    }

    /// The publisher, signed in from `source` through `front`.
    fn publisher_from(&self, source: IpAddr, front: SocketAddr, id: &str) -> RawClient {
        let bytes = signed_connect(&self.publisher, id, now(), None);
        let (c, reason) = self.connect_from(source, front, &bytes);
        assert_eq!(reason, Some(ReasonCode::SUCCESS), "{id} from {source}");
        c
    }

    /// Whether `source` is refused at `front`: a correctly signed CONNECT gets 0x8A or the
    /// connection is closed at accept.
    fn refused(&self, source: IpAddr, front: SocketAddr, id: &str) -> bool {
        let key = PrivateKeySigner::random();
        let (_, reason) = self.connect_from(source, front, &signed_connect(&key, id, now(), None));
        match reason {
            Some(ReasonCode::SUCCESS) => false,
            None | Some(ReasonCode::BANNED) => true,
            Some(other) => panic!("unexpected CONNACK {other:?} for {source} at {front}"),
        }
    }

    /// `BAN_FAILURES` bad CONNECTs (stale timestamps) from `source` at `front`.
    fn earn_ban(&self, source: IpAddr, front: SocketAddr) {
        for i in 0..BAN_FAILURES {
            let key = PrivateKeySigner::random();
            let stale = signed_connect(&key, &format!("bad-{i}"), now() - 10_000, None);
            let (_, reason) = self.connect_from(source, front, &stale);
            assert_eq!(reason, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
        }
    }

    /// The block of the latest `Banned` record for `ip` from block `from` on.
    fn banned_block(&self, ip: IpAddr, from: u64, lift: bool) -> Option<u64> {
        let events = self
            .rt
            .block_on(self.owner.events::<Banned>(from, None))
            .ok()?;
        events
            .into_iter()
            .rev()
            .find(|e| {
                bytes16_to_ip(e.event.ip) == ip
                    && (e.event.failures == 0 && e.event.until <= e.event.time) == lift
            })
            .map(|e| e.block)
    }

    fn head(&self) -> u64 {
        self.rt.block_on(self.owner.block_number()).unwrap()
    }

    /// Runs the `flytrap` binary in the test directory; stdout on success.
    fn flytrap(&self, args: &[&str]) -> String {
        let contract = format!("{:#x}", self.owner.address());
        let out = Command::new(env!("CARGO_BIN_EXE_flytrap"))
            .args(args)
            .args(["--rpc", &self.anvil.url(), "--contract", &contract])
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "flytrap {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }
}

fn publish_ack(c: &mut RawClient, topic: &str, id: u16) -> ReasonCode {
    c.publish_ack(topic, id, b"fleet")
}

/// Polls `done` every 10 ms until it holds or `limit` passes; when it held.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn two_proxies_behind_haproxy_share_revocations_and_bans() {
    let f = Fleet::start();

    // Geo: the country is the PROXY header's address, on both proxies and through the round
    // robin (HAProxy connects from 127.0.0.1, which the database does not know).
    for (i, front) in [f.a, f.b, f.rr, f.rr].into_iter().enumerate() {
        let mut german = f.publisher_from(loopback(3), front, &format!("de-{i}"));
        assert!(!publish_ack(&mut german, "eu/only", 1).is_error());
        let mut american = f.publisher_from(loopback(4), front, &format!("us-{i}"));
        assert_eq!(
            publish_ack(&mut american, "eu/only", 1),
            ReasonCode::NOT_AUTHORIZED
        );
    }

    // A revocation reaches live sessions on both proxies.
    let mut at_a = f.publisher_from(loopback(5), f.a, "live-a");
    let mut at_b = f.publisher_from(loopback(5), f.b, "live-b");
    assert!(!publish_ack(&mut at_a, "f/live", 1).is_error());
    assert!(!publish_ack(&mut at_b, "f/live", 1).is_error());
    let tx =
        f.rt.block_on(f.owner.revoke(
            topic_id("f/live"),
            f.publisher.address(),
            Action::Publish,
            "fleet",
        ))
        .unwrap();
    let mut id = 2;
    for (name, session) in [("A", &mut at_a), ("B", &mut at_b)] {
        let denied = wait_until(Duration::from_secs(15), || {
            id += 1;
            publish_ack(session, "f/live", id) == ReasonCode::NOT_AUTHORIZED
        });
        assert!(denied.is_some(), "the revocation reached proxy {name}");
    }
    // Within one block: no block after the revocation's was needed (a block a second).
    eprintln!(
        "revocation mined in block {}; both proxies deny at head {}",
        tx.block,
        f.head()
    );

    // A timestamped CONNECT replayed from A to B. Each proxy keeps its own replay cache, so B
    // accepts it within the clock-skew window (README "Running a fleet"); A itself refuses it.
    // A proxy that requires the challenge scheme (C) refuses it: 0x8C, sign in with AUTH.
    // (A captured challenge exchange fails anywhere: tests/tests/challenge.rs.)
    let original = signed_connect(&f.publisher, "replayed", now(), None);
    let (_first, reason) = f.connect_from(loopback(6), f.a, &original);
    assert_eq!(reason, Some(ReasonCode::SUCCESS));
    let (_again, reason) = f.connect_from(loopback(6), f.a, &original);
    assert_eq!(reason, Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
    let (_replayed, reason) = f.connect_from(loopback(6), f.b, &original);
    assert_eq!(
        reason,
        Some(ReasonCode::SUCCESS),
        "the documented cross-proxy window of the timestamped scheme"
    );
    let (_at_c, reason) = f.connect_from(loopback(6), f.c, &original);
    assert_eq!(
        reason,
        Some(ReasonCode::BAD_AUTHENTICATION_METHOD),
        "a proxy with auth.require_challenge refuses the replayed timestamped CONNECT"
    );

    // A ban earned at A refuses the client at B, and only that client.
    let bad = loopback(2);
    let start = f.head();
    assert!(!f.refused(bad, f.b, "before"));
    f.earn_ban(bad, f.a);
    assert!(f.refused(bad, f.a, "at-a"), "banned at A at once");
    let enforced = wait_until(Duration::from_secs(30), || f.refused(bad, f.b, "probe"));
    assert!(enforced.is_some(), "the ban reached proxy B");
    let ban_block = f
        .banned_block(bad, start, false)
        .expect("the ban is on chain");
    assert!(!f.refused(loopback(7), f.b, "bystander"));
    let log_b = std::fs::read_to_string(f.log("b")).unwrap();
    assert!(log_b.contains("ban from the chain enforced"), "{log_b}");

    // `ban list` shows it; `ban lift` lifts it on both proxies; the audit report shows both.
    let list = f.flytrap(&["ban", "list", "--json"]);
    assert!(list.contains("\"ip\":\"127.0.0.2\""), "{list}");
    let lifted = f.flytrap(&["ban", "lift", "127.0.0.2", "--key", "admin.key"]);
    assert!(lifted.starts_with("lifted 127.0.0.2"), "{lifted}");
    for (name, front) in [("A", f.a), ("B", f.b)] {
        assert!(
            wait_until(Duration::from_secs(15), || !f.refused(bad, front, "lifted")).is_some(),
            "the lift reached proxy {name}"
        );
    }
    let lift_block = f
        .banned_block(bad, start, true)
        .expect("the lift is on chain");
    assert!(lift_block > ban_block);
    let list = f.flytrap(&["ban", "list", "--json"]);
    assert!(!list.contains("127.0.0.2"), "{list}");
    let report = f.flytrap(&["audit", "bans"]);
    assert!(report.contains("  ban  ip 127.0.0.2  until"), "{report}");
    assert!(report.contains("  ban-lift  ip 127.0.0.2"), "{report}");
    // Counting starts again at A: the failures before the lift are forgotten.
    assert!(!f.refused(bad, f.a, "fresh"));
}

/// min / median / max of `xs`, in milliseconds.
fn summary(xs: &mut [f64]) -> String {
    xs.sort_by(f64::total_cmp);
    format!(
        "min {:.0} ms, median {:.0} ms, max {:.0} ms over {} trials",
        xs[0],
        xs[xs.len() / 2],
        xs[xs.len() - 1],
        xs.len()
    )
}

/// Time from a ban or a revocation being mined (first seen by polling the node every 10 ms)
/// to its enforcement at the other proxy (first seen by probing it every 10 ms).
#[test]
#[ignore = "a measurement: cargo test -p flytrap --test fleet -- --ignored --nocapture"]
fn fleet_enforcement_latency() {
    let f = Fleet::start();
    let trials: u8 = std::env::var("FLEET_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(7);
    let mut bans = Vec::new();
    let mut decided_to_mined = Vec::new();
    for t in 0..trials {
        let ip = IpAddr::from([127, 0, 1, 10 + t]);
        let start = f.head();
        let decided = Instant::now();
        f.earn_ban(ip, f.a);
        let mut mined = None;
        let mut enforced = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while enforced.is_none() && Instant::now() < deadline {
            if mined.is_none() && f.banned_block(ip, start, false).is_some() {
                mined = Some(Instant::now());
            }
            if f.refused(ip, f.b, "probe") {
                enforced = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (mined, enforced) = (mined.expect("mined"), enforced.expect("enforced"));
        bans.push(enforced.saturating_duration_since(mined).as_secs_f64() * 1e3);
        decided_to_mined.push(mined.duration_since(decided).as_secs_f64() * 1e3);
    }
    let mut revocations = Vec::new();
    for t in 0..trials {
        let mut session = f.publisher_from(IpAddr::from([127, 0, 2, 10 + t]), f.b, "rev");
        let topic = format!("lat/{t}");
        f.rt.block_on(f.owner.create_topic(&topic, &TopicSpec::default(), "lat"))
            .unwrap();
        f.rt.block_on(f.owner.grant(
            topic_id(&topic),
            f.publisher.address(),
            Action::Publish,
            "lat",
        ))
        .unwrap();
        let mut id = 1;
        // The grant is seen (and cached) before the revocation.
        assert!(
            wait_until(Duration::from_secs(10), || {
                id += 1;
                !publish_ack(&mut session, &topic, id).is_error()
            })
            .is_some()
        );
        // The revocation is sent from another thread; this one polls the node for its
        // AclChanged log (mined) and the live session at B (enforced), every 10 ms.
        let start = f.head();
        let (owner, who, tid) = (f.owner.clone(), f.publisher.address(), topic_id(&topic));
        let sender = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(owner.revoke(tid, who, Action::Publish, "lat"))
                .unwrap();
        });
        let mut mined = None;
        let mut enforced = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while enforced.is_none() && Instant::now() < deadline {
            if mined.is_none()
                && f.rt
                    .block_on(f.owner.events::<AclChanged>(start, None))
                    .unwrap()
                    .iter()
                    .any(|e| e.event.topicId == tid && e.event.change == 2)
            {
                mined = Some(Instant::now());
            }
            id += 1;
            if publish_ack(&mut session, &topic, id) == ReasonCode::NOT_AUTHORIZED {
                enforced = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        sender.join().unwrap();
        let (mined, enforced) = (mined.expect("mined"), enforced.expect("enforced"));
        revocations.push(enforced.saturating_duration_since(mined).as_secs_f64() * 1e3);
    }
    eprintln!(
        "ban earned at A, mined → refused at B: {}",
        summary(&mut bans)
    );
    eprintln!(
        "first of the bad CONNECTs at A → ban mined: {}",
        summary(&mut decided_to_mined)
    );
    eprintln!(
        "revocation mined → denied on a live session at B: {}",
        summary(&mut revocations)
    );
}

/// The shipped proxy configurations load (no unknown key, no bad value) and say what the
/// topology needs: PROXY protocol on, one operator key and one spool per proxy.
#[test]
fn deploy_configs_load() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
    let mut keys = Vec::new();
    let mut spools = Vec::new();
    for name in ["a", "b"] {
        let path = PathBuf::from(format!("{dir}/flytrap-{name}.toml"));
        let c = flytrap::config::load(&path).unwrap();
        assert!(c.listen.proxy_protocol, "{name}");
        keys.push(c.chain.key.clone().unwrap());
        spools.push(c.spool.dir.clone().unwrap());
        assert!(
            flytrap::serve::engine_config(&c).is_ok(),
            "{name}: engine settings"
        );
    }
    assert_ne!(keys[0], keys[1], "one operator key per proxy");
    assert_ne!(spools[0], spools[1], "one spool per proxy");
}
