//! A process killed with SIGKILL after spooling delivers its records exactly once on restart.
//!
//! The child is this test binary again (`child_spools_then_waits`, active only with
//! `FLYTRAP_CRASH_CHILD` set): it starts the chain service on a spool, appends records (each
//! acknowledged after fsync), says so on stdout, and waits to be killed.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Chain, dev_key, eventually, rt};
use flytrap_chain::anvil::AnvilOptions;
use flytrap_chain::bindings::FlyTrap;
use flytrap_chain::{AuditRecord, ChainConfig, ChainService};

const N: u64 = 12;

fn record(i: u64) -> AuditRecord {
    AuditRecord::ConnectFailed {
        ip: "203.0.113.5".parse().unwrap(),
        client: None,
        reason: 0x86,
        time: i,
    }
}

#[test]
fn child_spools_then_waits() {
    let Ok(rpc) = std::env::var("FLYTRAP_CRASH_CHILD") else {
        return; // only as a child of the test below
    };
    let contract = std::env::var("FLYTRAP_CRASH_CONTRACT")
        .unwrap()
        .parse()
        .unwrap();
    let first: u64 = std::env::var("FLYTRAP_CRASH_FIRST")
        .unwrap()
        .parse()
        .unwrap();
    let mut cfg = ChainConfig::new(rpc, contract);
    cfg.key = Some(dev_key(0));
    cfg.spool_dir = Some(std::env::var("FLYTRAP_CRASH_SPOOL").unwrap().into());
    cfg.audit_batch = 3;
    cfg.follow_events = false;
    let service = ChainService::start(cfg).unwrap();
    let h = service.handle();
    for i in first..first + N {
        let seq = h.try_audit(record(i)).unwrap().wait().unwrap();
        assert_eq!(seq, i, "seqs continue across restarts");
    }
    println!("SPOOLED {}", first + N - 1);
    // Wait to be killed (bounded, in case the parent died).
    std::thread::sleep(Duration::from_secs(60));
}

/// Runs the child until it has spooled, then calls `kill_when` until it says so, then SIGKILL.
fn run_child(
    chain_url: &str,
    contract: &str,
    spool: &str,
    first: u64,
    kill_when: impl Fn() -> bool,
) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_spools_then_waits",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FLYTRAP_CRASH_CHILD", chain_url)
        .env("FLYTRAP_CRASH_CONTRACT", contract)
        .env("FLYTRAP_CRASH_SPOOL", spool)
        .env("FLYTRAP_CRASH_FIRST", first.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut spooled = false;
    for line in stdout.lines() {
        if line.unwrap().contains("SPOOLED") {
            spooled = true;
            break;
        }
    }
    assert!(spooled, "the child did not spool");
    assert!(
        eventually(Duration::from_secs(20), &kill_when),
        "kill condition never met"
    );
    child.kill().unwrap(); // SIGKILL, by PID
    child.wait().unwrap();
}

#[test]
fn records_spooled_before_sigkill_reach_the_chain_exactly_once() {
    // A block a second: transactions are in flight long enough to be killed mid-way.
    let chain = Chain::start_with(&AnvilOptions {
        block_time: Some(1),
        ..Default::default()
    });
    let contract = format!("{:#x}", chain.operator.address());
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let spool_s = spool.to_str().unwrap();
    let op = dev_key(0).address();
    let r = rt();
    let last_seq = || r.block_on(chain.operator.last_seq(op)).unwrap();

    // 1. The node is unreachable for the first child: nothing leaves the spool before the kill.
    let dead = format!("http://127.0.0.1:{}", flytrap_chain::anvil::free_port());
    run_child(&dead, &contract, spool_s, 1, || true);
    assert_eq!(last_seq(), 0);

    // 2. The second child sends the first run's records and its own, in batches of 3, and is
    //    killed once some (not all) are on the chain — a batch may be in flight.
    run_child(&chain.anvil.url(), &contract, spool_s, N + 1, || {
        last_seq() >= 3
    });
    let at_kill = last_seq();
    assert!(at_kill < 2 * N, "killed too late to matter ({at_kill})");
    eprintln!("killed with {at_kill} of {} records on the chain", 2 * N);

    // 3. A restart on the same spool delivers the rest.
    let mut cfg = ChainConfig::new(chain.anvil.url(), chain.operator.address());
    cfg.key = Some(dev_key(0));
    cfg.spool_dir = Some(spool.clone());
    cfg.audit_batch = 50;
    cfg.follow_events = false;
    let service = ChainService::start(cfg).unwrap();
    let h = service.handle();
    assert!(
        eventually(Duration::from_secs(20), || last_seq() == 2 * N),
        "{:?}",
        h.status()
    );
    assert!(eventually(Duration::from_secs(5), || h
        .status()
        .audit_pending
        == 0));
    service.shutdown();

    // Every seq exactly once on the chain, with its own record.
    let logs = r
        .block_on(chain.operator.events::<FlyTrap::ConnectFailed>(0, None))
        .unwrap();
    let mut count: BTreeMap<u64, (usize, u64)> = BTreeMap::new();
    for l in &logs {
        let e = count.entry(l.event.seq).or_insert((0, l.event.time));
        e.0 += 1;
        assert_eq!(e.1, l.event.time);
    }
    assert_eq!(count.len() as u64, 2 * N, "{count:?}");
    for (seq, (n, time)) in &count {
        assert_eq!(*n, 1, "seq {seq} logged {n} times");
        assert_eq!(seq, time, "seq {seq} carries record {time}");
    }
    // The spool is compacted: one empty segment left.
    let segs: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .collect();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].metadata().unwrap().len(), 0);
}
