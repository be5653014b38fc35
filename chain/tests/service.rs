//! The chain executor, the event follower and the audit writer, against a real anvil.

mod common;

use std::time::{Duration, Instant};

use common::{Chain, dev_key, eventually, rt};
use flytrap_chain::anvil::{Anvil, AnvilOptions};
use flytrap_chain::bindings::FlyTrap;
use flytrap_chain::{
    Action, AuditRecord, ChainConfig, ChainService, Change, Error, Notice, Query, TopicSpec,
};

fn config(chain: &Chain) -> ChainConfig {
    let mut c = ChainConfig::new(chain.anvil.url(), chain.operator.address());
    c.key = Some(dev_key(0));
    c
}

fn ban(i: u32) -> AuditRecord {
    AuditRecord::Ban {
        ip: "198.51.100.7".parse().unwrap(),
        until: 1_000 + i as u64,
        failures: i,
        time: 1,
    }
}

#[test]
fn cold_checks_arriving_together_are_batched_and_coalesced() {
    let chain = Chain::start();
    let users: Vec<_> = (0..50)
        .map(|i| flytrap_chain::Address::repeat_byte(i + 1))
        .collect();
    rt().block_on(async {
        let (id, _) = chain
            .operator
            .create_topic("t", &TopicSpec::default(), "")
            .await
            .unwrap();
        for u in users.iter().step_by(2) {
            chain
                .operator
                .grant(id, *u, Action::Publish, "")
                .await
                .unwrap();
        }
    });
    let mut cfg = config(&chain);
    cfg.follow_events = false;
    let service = ChainService::start(cfg).unwrap();
    let h = service.handle();

    // 100 distinct questions queued at once (from this thread, without waiting): few calls.
    let pending: Vec<_> = users
        .iter()
        .flat_map(|u| [Action::Publish, Action::Subscribe].map(|a| Query::new("t", *u, a)))
        .map(|q| (q, h.try_check(q).unwrap()))
        .collect();
    for (i, (q, p)) in pending.into_iter().enumerate() {
        let a = p.wait().unwrap();
        assert!(a.exists);
        assert_eq!(
            a.allowed,
            q.action == Action::Publish && (i / 2) % 2 == 0,
            "{q:?}"
        );
    }
    let s = h.status();
    assert_eq!(s.checks, 100);
    // Typically 1–3 calls; the bound leaves room for a loaded CI machine while still ruling
    // out one call per check.
    assert!(
        s.batches <= 25,
        "100 queued checks took {} checkBatch calls",
        s.batches
    );

    // 200 identical questions from 4 threads: coalesced into a few chain questions.
    let before = h.status().batches;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let h = h.clone();
            let first = users[0];
            scope.spawn(move || {
                let q = Query::new("t", first, Action::Publish);
                let ps: Vec<_> = (0..50).map(|_| h.try_check(q).unwrap()).collect();
                for p in ps {
                    assert!(p.wait().unwrap().allowed);
                }
            });
        }
    });
    let s = h.status();
    assert_eq!(s.checks, 300);
    // Typically ≥ 190 coalesced in ≤ 10 calls; loose bounds for a loaded machine.
    assert!(s.coalesced >= 100, "{s:?}");
    assert!(s.batches - before <= 100, "{s:?}");

    // Through async (any executor): the same answers.
    let a = rt()
        .block_on(h.check(Query::new("unregistered", users[0], Action::Publish)))
        .unwrap();
    assert!(!a.exists && !a.allowed);
    service.shutdown();
}

#[test]
fn cold_checks_fail_typed_when_the_node_is_down() {
    let port = flytrap_chain::anvil::free_port();
    let mut cfg = ChainConfig::new(
        format!("http://127.0.0.1:{port}"),
        flytrap_chain::Address::ZERO,
    );
    cfg.follow_events = false;
    let service = ChainService::start(cfg).unwrap();
    let e = service
        .handle()
        .try_check(Query::new("t", dev_key(1).address(), Action::Publish))
        .unwrap()
        .wait()
        .unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    assert!(service.handle().status().check_error.is_some());
    // No spool configured: audit appends say so.
    let e = rt().block_on(service.handle().audit(ban(1))).unwrap_err();
    assert!(matches!(e, Error::Spool(_)), "{e:?}");
}

/// A revocation is delivered within one block of being mined, with anvil mining a block every
/// second (and in automine mode).
#[test]
fn a_revocation_is_seen_within_one_block() {
    for block_time in [Some(1), None] {
        let chain = Chain::start_with(&AnvilOptions {
            block_time,
            ..Default::default()
        });
        let alice = dev_key(1).address();
        let r = rt();
        let id = r.block_on(async {
            let (id, _) = chain
                .operator
                .create_topic("rev", &TopicSpec::default(), "")
                .await
                .unwrap();
            chain
                .operator
                .grant(id, alice, Action::Subscribe, "")
                .await
                .unwrap();
            id
        });
        let service = ChainService::start(config(&chain)).unwrap();
        let h = service.handle();
        let mut sub = h.subscribe();
        // Let the follower take its starting block.
        assert!(eventually(Duration::from_secs(5), || h
            .status()
            .follower_block
            > 0));

        let tx = r
            .block_on(chain.operator.revoke(id, alice, Action::Subscribe, "bye"))
            .unwrap();
        let mined = Instant::now();
        let notice = sub
            .recv_timeout(Duration::from_secs(3))
            .expect("no invalidation");
        let waited = mined.elapsed();
        let Notice::Changed(inv) = notice else {
            panic!("{notice:?}")
        };
        assert_eq!(inv.topic_id, id);
        assert_eq!(inv.address, alice);
        assert_eq!(inv.action, Some(Action::Subscribe));
        assert_eq!(inv.change, Change::Revoked);
        assert_eq!(inv.block, tx.block);
        // Within one block: before the next block (1 s) in block-time mode, and within one
        // poll interval after automine.
        assert!(
            waited < Duration::from_millis(1000),
            "{block_time:?}: {waited:?}"
        );
        // And a later check does not see the revoked right.
        let a = h
            .try_check(Query {
                topic_id: id,
                who: alice,
                action: Action::Subscribe,
            })
            .unwrap()
            .wait()
            .unwrap();
        assert!(!a.allowed);
        service.shutdown();
    }
}

/// The follower resumes after a node outage and after a restart of the process (state file),
/// losing no event.
#[test]
fn the_follower_resumes_after_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = AnvilOptions {
        state: Some(dir.path().join("anvil.json")),
        ..Default::default()
    };
    let mut chain = Chain::start_with(&opts);
    let port = chain.anvil.port();
    let contract = chain.operator.address();
    let alice = dev_key(1).address();
    let r = rt();
    let id = r
        .block_on(chain.operator.create_topic("f", &TopicSpec::default(), ""))
        .unwrap()
        .0;

    let state = dir.path().join("follower-block");
    let mut cfg = config(&chain);
    cfg.follower_state = Some(state.clone());
    let service = ChainService::start(cfg.clone()).unwrap();
    let h = service.handle();
    let mut sub = h.subscribe();
    assert!(eventually(Duration::from_secs(5), || h
        .status()
        .follower_block
        > 0));

    // Outage: the node stops (by PID) and comes back with its chain on the same port.
    chain.anvil.stop();
    assert!(eventually(Duration::from_secs(5), || h
        .status()
        .follower_error
        .is_some()));
    chain.anvil = Anvil::start_with(&AnvilOptions {
        port,
        ..opts.clone()
    })
    .unwrap();
    let client =
        flytrap_chain::Client::new(&chain.anvil.url(), contract, Some(dev_key(0))).unwrap();
    r.block_on(client.grant(id, alice, Action::Publish, ""))
        .unwrap();
    match sub.recv_timeout(Duration::from_secs(10)) {
        Some(Notice::Changed(inv)) => {
            assert_eq!((inv.address, inv.change), (alice, Change::Granted))
        }
        other => panic!("{other:?}"),
    }
    let seen = h.status().follower_block;
    service.shutdown();
    assert_eq!(
        flytrap_chain::follower::saved_block(&state, contract),
        Some(seen)
    );

    // Changes while no follower runs are delivered by the next one, from the saved block.
    r.block_on(async {
        client.revoke(id, alice, Action::Publish, "").await.unwrap();
        client
            .grant(id, alice, Action::Subscribe, "")
            .await
            .unwrap();
    });
    let service = ChainService::start(cfg).unwrap();
    let mut sub = service.handle().subscribe();
    let mut got = vec![];
    while got.len() < 2 {
        match sub.recv_timeout(Duration::from_secs(5)) {
            Some(Notice::Changed(inv)) => got.push((inv.action, inv.change)),
            other => panic!("{other:?} after {got:?}"),
        }
    }
    assert_eq!(
        got,
        vec![
            (Some(Action::Publish), Change::Revoked),
            (Some(Action::Subscribe), Change::Granted)
        ]
    );
    service.shutdown();
}

/// An audit record appended while the node is down reaches the chain once it is back.
#[test]
fn audit_records_survive_a_node_outage() {
    let dir = tempfile::tempdir().unwrap();
    let opts = AnvilOptions {
        state: Some(dir.path().join("anvil.json")),
        ..Default::default()
    };
    let mut chain = Chain::start_with(&opts);
    let port = chain.anvil.port();
    let contract = chain.operator.address();
    let mut cfg = config(&chain);
    cfg.spool_dir = Some(dir.path().join("spool"));
    cfg.audit_max_backoff = Duration::from_millis(300);
    let service = ChainService::start(cfg).unwrap();
    let h = service.handle();
    let r = rt();

    assert_eq!(r.block_on(h.audit(ban(1))).unwrap(), 1);
    assert!(
        eventually(Duration::from_secs(10), || h.status().audit_acked == 1),
        "{:?}",
        h.status()
    );

    chain.anvil.stop();
    let seq = r.block_on(h.audit(ban(2))).unwrap();
    assert_eq!(seq, 2);
    assert!(eventually(Duration::from_secs(5), || h
        .status()
        .audit_error
        .as_ref()
        .is_some_and(Error::is_unreachable)));
    assert_eq!(h.status().audit_pending, 1);

    chain.anvil = Anvil::start_with(&AnvilOptions { port, ..opts }).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || h.status().audit_acked == 2),
        "{:?}",
        h.status()
    );
    let client = flytrap_chain::Client::new(&chain.anvil.url(), contract, None).unwrap();
    let bans = r
        .block_on(client.events::<FlyTrap::Banned>(0, None))
        .unwrap();
    assert_eq!(
        bans.iter().map(|b| b.event.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        r.block_on(client.last_seq(dev_key(0).address())).unwrap(),
        2
    );
    assert!(h.status().audit_error.is_none());
    service.shutdown();
}

/// Over `chain.max_gas_per_hour` the writer waits and says so.
#[test]
fn the_gas_budget_holds_records_back() {
    let chain = Chain::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&chain);
    cfg.spool_dir = Some(dir.path().to_path_buf());
    // One ban batch costs ~40k gas here: the budget allows one, not two.
    cfg.max_gas_per_hour = Some(60_000);
    let service = ChainService::start(cfg).unwrap();
    let h = service.handle();
    let r = rt();
    r.block_on(h.audit(ban(1))).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || h.status().audit_acked == 1),
        "{:?}",
        h.status()
    );
    r.block_on(h.audit(ban(2))).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || matches!(
            h.status().audit_error,
            Some(Error::OutOfGasBudget { budget: 60_000, .. })
        )),
        "{:?}",
        h.status()
    );
    let s = h.status();
    assert_eq!((s.audit_acked, s.audit_pending), (1, 1));
    assert!(s.gas_last_hour > 0 && s.gas_last_hour <= 60_000);
    let msg = s.audit_error.unwrap().to_string();
    assert!(msg.starts_with("gas budget exhausted"), "{msg}");
    service.shutdown();
    assert_eq!(
        r.block_on(chain.operator.last_seq(dev_key(0).address()))
            .unwrap(),
        1
    );
}
