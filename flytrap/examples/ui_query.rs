//! The web page's query benchmark (BENCHMARKS.md, "Audit queries"): seeds a fresh anvil with
//! `--events` audit records, 1,000 per transaction, one batch per day of block time (10 empty
//! blocks between batches: anvil mines ever slower as its chain grows), then times
//! building the block-by-time index, reopening it, and time-window queries through the page's
//! own HTTP API (`/api/failures`, `/api/audit/…`) against a scan of the whole log.
//!
//! With `--topics N --grants M` (defaults 10,000 and 100,000) it first creates N topics
//! (pipelined `createTopic` transactions) and grants M (topic, address) pairs through
//! `grantMany`, 100 addresses per transaction over the first M/100 topics, then times the
//! page's catch-up from genesis (until `/api/status` says ready), a restart over the
//! persisted index, and the first answer of every view's API call.
//!
//! Run by `bench/ui-query.sh` (release build). Prints Markdown tables.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use flytrap::report::{Kind, Query, Reader, Window};
use flytrap::ui::{UiConfig, serve};
use flytrap_chain::alloy::providers::Provider;
use flytrap_chain::anvil::{Anvil, DEV_KEYS, free_port};
use flytrap_chain::{Address, AuditRecord, Client, Spooled, topic_id};

/// Records per `recordAudit` transaction (under anvil's per-transaction gas cap).
const BATCH: usize = 1000;
/// Empty blocks mined before each batch, and seconds between them.
const GAP_BLOCKS: u64 = 10;
const BLOCK_S: u64 = 8640;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic data, no dependency.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn get(addr: &str, path: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = Vec::new();
    s.read_to_end(&mut text).expect("read");
    let text = String::from_utf8_lossy(&text);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text.len())
}

fn get_body(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Sends the transactions with consecutive nonces without waiting for each, `window` at a
/// time into one block (automine off, `evm_mine` after each window; `window` × gas limit
/// must fit anvil's 30 M block gas limit): thousands of transactions in tens of blocks.
async fn send_pipelined(
    op: &Client,
    calls: Vec<flytrap_chain::alloy::rpc::types::TransactionRequest>,
    window: usize,
) -> anyhow::Result<()> {
    use flytrap_chain::alloy::network::TransactionBuilder;
    let sender = op.sender().ok_or_else(|| anyhow::anyhow!("no key"))?;
    let mut nonce = op
        .provider()
        .get_transaction_count(sender)
        .pending()
        .await?;
    op.provider()
        .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (false,))
        .await?;
    for window in calls.chunks(window) {
        // Full blocks raise the base fee (EIP-1559): ask again for each block, with margin.
        let fees = op.provider().estimate_eip1559_fees().await?;
        let mut last = None;
        for tx in window {
            let tx = tx
                .clone()
                .with_from(sender)
                .with_nonce(nonce)
                .with_max_fee_per_gas(fees.max_fee_per_gas * 2)
                .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
            last = Some(*op.provider().send_transaction(tx).await?.tx_hash());
            nonce += 1;
        }
        if let Some(h) = last {
            loop {
                op.provider()
                    .raw_request::<_, serde_json::Value>("evm_mine".into(), ())
                    .await?;
                if let Some(r) = op.provider().get_transaction_receipt(h).await? {
                    anyhow::ensure!(r.status(), "seeding transaction {h} reverted");
                    break;
                }
            }
        }
    }
    op.provider()
        .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (true,))
        .await?;
    Ok(())
}

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    Ok(std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(default))
}

/// The member addresses of the seeded grants: 1, 2, … (the audit records name 1..=5000).
fn member(k: usize) -> Address {
    Address::left_padding_from(&(k as u64).to_be_bytes())
}

fn main() -> anyhow::Result<()> {
    let events = arg("--events", 100_000)?;
    let n_topics = arg("--topics", 10_000)?;
    let n_grants = arg("--grants", 100_000)?;
    let anvil = Anvil::start()?;
    let url = anvil.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let key = DEV_KEYS[0].parse()?;
    let t_seed = Instant::now();
    let (contract, first_time, last_time, head) = rt.block_on(async {
        let (op, _) = Client::deploy(&url, key).await?;
        let topic = topic_id("plant/+/temp");
        use flytrap_chain::alloy::network::TransactionBuilder;
        let t = Instant::now();
        let mut calls = Vec::with_capacity(n_topics + 1);
        for i in 0..n_topics {
            calls.push(
                op.instance()
                    .createTopic(
                        format!("site/{i:05}/sensor"),
                        vec![],
                        0,
                        0,
                        i % 10 == 0,
                        String::new(),
                    )
                    .into_transaction_request()
                    .with_gas_limit(100_000),
            );
        }
        send_pipelined(&op, calls, 250).await?;
        let topics_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut calls = Vec::new();
        for (i, chunk) in (1..=n_grants).collect::<Vec<_>>().chunks(100).enumerate() {
            let who: Vec<Address> = chunk.iter().map(|&k| member(k)).collect();
            calls.push(
                op.instance()
                    .grantMany(
                        topic_id(&format!("site/{:05}/sensor", i % n_topics.max(1))),
                        who,
                        (i % 2) as u8,
                        "fleet".into(),
                    )
                    .into_transaction_request()
                    .with_gas_limit(3_000_000),
            );
        }
        send_pipelined(&op, calls, 9).await?;
        eprintln!(
            "seeded {n_topics} topics in {topics_s:.1}s, {n_grants} grants in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut seq = 0u64;
        let (mut first, mut last) = (u64::MAX, 0);
        let mut written = 0;
        while written < events {
            // Empty blocks in between: the chain is long, most blocks hold nothing of ours.
            op.provider()
                .raw_request::<_, serde_json::Value>(
                    "anvil_mine".into(),
                    (format!("{GAP_BLOCKS:#x}"), format!("{BLOCK_S:#x}")),
                )
                .await?;
            let head = op.block_number().await?;
            let now = op.block_time(head).await?;
            let n = BATCH.min(events - written);
            let mut batch = Vec::with_capacity(n);
            for _ in 0..n {
                seq += 1;
                // Seen up to 10 minutes before the block; 1 % waited a day in the spool.
                let lag = if rng.next().is_multiple_of(100) {
                    86_400
                } else {
                    rng.next() % 600
                };
                let time = now - lag;
                first = first.min(time);
                last = last.max(time);
                let ip = std::net::IpAddr::from([10, 0, (seq >> 8) as u8, seq as u8]);
                let who = Address::left_padding_from(&(rng.next() % 5000 + 1).to_be_bytes());
                let record = match rng.next() % 10 {
                    0..=4 => AuditRecord::ConnectFailed {
                        ip,
                        client: Some(who),
                        reason: 0x86,
                        time,
                    },
                    5..=7 => AuditRecord::WrongCountry {
                        client: who,
                        topic_id: topic,
                        ip,
                        country: ["US", "CN", "BR", "IN"][(rng.next() % 4) as usize].parse()?,
                        time,
                    },
                    8 => AuditRecord::Ban {
                        ip,
                        until: time + 300,
                        failures: 5,
                        time,
                    },
                    _ => AuditRecord::SensitiveReport {
                        topic_id: topic,
                        from: time - 1800,
                        to: time,
                        publishers: vec![who],
                        receivers: vec![],
                    },
                };
                batch.push(Spooled { seq, record });
            }
            op.record_audit(&batch).await?;
            written += n;
        }
        let head = op.block_number().await?;
        anyhow::Ok((op.address(), first, last, head))
    })?;
    eprintln!(
        "seeded {events} records in {head} blocks in {:.1}s",
        t_seed.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let client = Client::new(&url, contract, None)?;
    let mut rows: Vec<(String, String)> = Vec::new();
    let (build, reopen, full_scan, full_n) = rt.block_on(async {
        let t = Instant::now();
        let mut r = Reader::open(client.clone(), Some(dir.path())).await?;
        r.refresh().await?;
        let build = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut r2 = Reader::open(client.clone(), Some(dir.path())).await?;
        r2.refresh().await?;
        let reopen = t.elapsed().as_secs_f64();
        let q = Query {
            kinds: Kind::set(&[Kind::ConnectFailed, Kind::WrongCountry, Kind::Ban]),
            window: Window::new(Some(first_time), Some(first_time + 86_400))?,
            ..Query::default()
        };
        let t = Instant::now();
        let all = r2.full_scan(&q).await?;
        let full = t.elapsed().as_secs_f64();
        let fast = r2.query(&q).await?;
        assert_eq!(
            all.records, fast.records,
            "the index disagrees with a full scan"
        );
        anyhow::Ok((build, reopen, full, all.records.len()))
    })?;
    rows.push((
        format!("build the index from genesis ({head} blocks, {n_topics} topics, {n_grants} grants, {events} audit records)"),
        format!("{:.0} ms", build * 1000.0),
    ));
    rows.push((
        "reopen the persisted index and bring it up to date".into(),
        format!("{:.0} ms", reopen * 1000.0),
    ));
    rows.push((
        format!(
            "one-day window, failures, by a scan of the whole log (no index; {full_n} records)"
        ),
        format!("{:.0} ms", full_scan * 1000.0),
    ));

    // The page's own API, served in this process on a free port with the persisted index.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = UiConfig {
        listen: addr.parse()?,
        explorer: None,
        index_dir: Some(dir.path().to_path_buf()),
    };
    let c2 = client.clone();
    rt.spawn(async move {
        if let Err(e) = serve(c2, config).await {
            eprintln!("ui: {e}");
        }
    });
    let t = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(600);
    while TcpStream::connect(&addr).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the ui did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The page's server reads the persisted index's blocks again into memory (topic list,
    // members, records), in steps; /api/status answers meanwhile.
    let mut polls = 0;
    loop {
        let (status, body) = get_body(&addr, "/api/status");
        anyhow::ensure!(status == 200, "GET /api/status: {status}");
        polls += 1;
        if body.contains("\"ready\":true") {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the ui did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    rows.push((
        format!("`flytrap ui` start over the persisted index until `/api/status` is ready ({polls} status polls answered meanwhile)"),
        format!("{:.0} ms", t.elapsed().as_secs_f64() * 1000.0),
    ));
    let mid = first_time + (last_time - first_time) / 2;
    let cases = [
        ("`/api/status`", "/api/status".to_string()),
        ("`/api/info`", "/api/info".to_string()),
        (
            "`/api/topics?limit=50` (Topics view, first page)",
            "/api/topics?limit=50".to_string(),
        ),
        (
            "`/api/topics`, last page",
            format!(
                "/api/topics?limit=50&offset={}",
                n_topics.saturating_sub(50)
            ),
        ),
        (
            "`/api/topics?query=…` (search by name part)",
            "/api/topics?query=0999&limit=50".to_string(),
        ),
        (
            "`/api/topics?query=ADDRESS` (search by member)",
            format!("/api/topics?query={:#x}&limit=50", member(4242)),
        ),
        (
            "`/api/topic?name=…`",
            "/api/topic?name=site/00000/sensor".to_string(),
        ),
        (
            "`/api/client/ADDRESS` (Client view: its topics and records)",
            format!("/api/client/{:#x}", member(42)),
        ),
        (
            "`/api/failures`, one-day window (what the Failures view loads)",
            format!("/api/failures?since={mid}&until={}", mid + 86_400),
        ),
        (
            "`/api/failures`, seven-day window",
            format!("/api/failures?since={mid}&until={}", mid + 7 * 86_400),
        ),
        (
            "`/api/sensitive`, seven-day window (aggregated)",
            format!("/api/sensitive?since={mid}&until={}", mid + 7 * 86_400),
        ),
        (
            "`/api/changes` (ACL changes view: whole history, newest 500 returned)",
            "/api/changes".to_string(),
        ),
        (
            "`/api/failures`, no window (all records, newest 500 returned)",
            "/api/failures".to_string(),
        ),
    ];
    for (what, path) in cases {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let (status, _) = get(&addr, &path);
            anyhow::ensure!(status == 200, "GET {path}: {status}");
            times.push(t.elapsed().as_secs_f64());
        }
        let first = times[0];
        rows.push((
            what.to_string(),
            format!(
                "{:.0} ms first, {:.0} ms median of 5",
                first * 1000.0,
                median(times) * 1000.0
            ),
        ));
    }
    println!("| query | time |\n|---|---:|");
    for (what, t) in rows {
        println!("| {what} | {t} |");
    }
    drop(anvil);
    Ok(())
}
