//! Cold permission checks per second against a real anvil: 100 checks in one `checkBatch`
//! call, vs one call per check, vs 100 concurrent checks through the chain executor (which
//! batches them itself).
//!
//! `cargo bench -p flytrap-chain --bench checks` (anvil from contracts/node_modules: `npm ci`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flytrap_chain::anvil::{Anvil, DEV_KEYS};
use flytrap_chain::{Action, Address, ChainConfig, ChainService, Client, Query, TopicSpec};

fn checks(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let anvil = Anvil::start().expect("anvil (npm ci in contracts/)");
    let key = DEV_KEYS[0].parse().unwrap();
    let (client, _) = rt.block_on(Client::deploy(&anvil.url(), key)).unwrap();
    // 10 topics (2 with countries), 50 addresses, half of them granted: 100 distinct queries.
    let users: Vec<Address> = (1..=50).map(Address::repeat_byte).collect();
    let mut queries = Vec::new();
    rt.block_on(async {
        for t in 0..10 {
            let name = format!("bench/{t}");
            let spec = TopicSpec {
                countries: if t < 2 {
                    vec!["DE".parse().unwrap()]
                } else {
                    vec![]
                },
                ..TopicSpec::default()
            };
            let (id, _) = client.create_topic(&name, &spec, "").await.unwrap();
            for (i, u) in users.iter().enumerate().skip(t * 5).take(5) {
                if i % 2 == 0 {
                    client.grant(id, *u, Action::Publish, "").await.unwrap();
                }
                for action in [Action::Publish, Action::Subscribe] {
                    queries.push(Query {
                        topic_id: id,
                        who: *u,
                        action,
                    });
                }
            }
        }
    });
    assert_eq!(queries.len(), 100);

    let mut g = c.benchmark_group("cold checks (100)");
    g.throughput(Throughput::Elements(queries.len() as u64));
    g.bench_function("one checkBatch call", |b| {
        b.iter(|| black_box(rt.block_on(client.check_batch(&queries)).unwrap()))
    });
    g.bench_function("one call per check", |b| {
        b.iter(|| {
            rt.block_on(async {
                for q in &queries {
                    black_box(client.check_batch(std::slice::from_ref(q)).await.unwrap());
                }
            })
        })
    });
    let mut cfg = ChainConfig::new(anvil.url(), client.address());
    cfg.follow_events = false;
    let service = ChainService::start(cfg).unwrap();
    let h = service.handle();
    g.bench_function("executor, 100 concurrent", |b| {
        b.iter(|| {
            let pending: Vec<_> = queries.iter().map(|q| h.try_check(*q).unwrap()).collect();
            for p in pending {
                black_box(p.wait().unwrap());
            }
        })
    });
    g.finish();
    let s = h.status();
    eprintln!(
        "executor: {} checks in {} checkBatch calls ({:.1} per call)",
        s.checks,
        s.batches,
        s.checks as f64 / s.batches.max(1) as f64
    );
    service.shutdown();
}

criterion_group!(benches, checks);
criterion_main!(benches);
