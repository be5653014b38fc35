//! Thread per core: one runtime thread per CPU ([`flytrap_engine::runtime`]), each running its share of the clients with
//! its own counters, merged when all are done.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client;
use crate::plan::{Plan, unix_ns};
use crate::stats::Stats;

/// Live counters for the progress bar, shared by every executor of a process.
#[derive(Debug, Default)]
pub struct Progress {
    /// Clients whose CONNECT was answered as expected.
    pub connected: AtomicU64,
    /// Clients that could not connect.
    pub failed: AtomicU64,
    /// Clients that finished.
    pub done: AtomicU64,
    /// PUBLISHes sent.
    pub sent: AtomicU64,
    /// PUBLISHes acknowledged.
    pub acked: AtomicU64,
    /// PUBLISHes delivered to subscribers.
    pub received: AtomicU64,
}

impl Progress {
    pub(crate) fn connected(&self) {
        self.connected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn disconnected(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn acked(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot: connected, failed, done, sent, acked, received.
    pub fn snapshot(&self) -> [u64; 6] {
        [
            &self.connected,
            &self.failed,
            &self.done,
            &self.sent,
            &self.acked,
            &self.received,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// One executor's context.
pub(crate) struct Shard {
    pub(crate) plan: Arc<Plan>,
    pub(crate) stats: RefCell<Stats>,
    pub(crate) progress: Arc<Progress>,
    pub(crate) sources: flytrap_engine::upstream::SourcePool,
    pub(crate) tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// The instant of the plan's origin (`epoch_ns`) on this machine's monotonic clock.
    pub(crate) origin: Instant,
    /// Start of the work phase.
    pub(crate) work_at: Instant,
}

impl Shard {
    /// The Unix time (ns) of a monotonic instant, through the shared origin: what publishers
    /// put in payloads so that subscribers in other processes can measure end to end.
    pub(crate) fn unix_ns_of(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.origin) {
            Some(d) => self.plan.epoch_ns + d.as_nanos() as u64,
            None => self.plan.epoch_ns - (self.origin - at).as_nanos() as u64,
        }
    }

    /// How long to wait for the last acknowledgments after the work phase.
    pub(crate) fn drain_grace(&self) -> Duration {
        self.plan.timeout
    }

    /// A fixed fraction in [0, 1) per client (golden-ratio sequence): spreads open-loop
    /// clients' first messages evenly over one interval, the same in every run.
    pub(crate) fn jitter(&self, k: u64) -> f64 {
        (k as f64 * 0.618_033_988_749_895).fract()
    }
}

/// The instant of a Unix time in ns on the monotonic clock.
fn instant_of(unix: u64) -> Instant {
    let now_unix = unix_ns();
    let now = Instant::now();
    if unix >= now_unix {
        now + Duration::from_nanos(unix - now_unix)
    } else {
        now.checked_sub(Duration::from_nanos(now_unix - unix))
            .unwrap_or(now)
    }
}

/// Runs this process's clients on its executors and returns their merged counters.
pub fn run(plan: Arc<Plan>, progress: Arc<Progress>) -> anyhow::Result<Stats> {
    let tls = match &plan.tls {
        None => None,
        Some((ca, name)) => {
            let config = flytrap_engine::tls::client_config(Some(ca))
                .with_context(|| format!("--ca {}", ca.display()))?;
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| anyhow::anyhow!("--server-name {name:?} is not a DNS name or IP"))?;
            Some((config, name))
        }
    };
    let placements: Vec<Option<usize>> = if plan.cores.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        vec![None; n]
    } else {
        plan.cores.iter().map(|&c| Some(c)).collect()
    };
    let shards = placements.len();
    let mine: Vec<u64> = plan.my_clients().collect();
    let origin = instant_of(plan.epoch_ns);
    let work_at = origin + plan.work_at();
    let mut handles = Vec::new();
    for (s, placement) in placements.into_iter().enumerate() {
        let plan = plan.clone();
        let progress = progress.clone();
        let tls = tls.clone();
        // Round-robin over shards in connect order, so every shard connects at the same pace.
        let clients: Vec<u64> = mine.iter().copied().skip(s).step_by(shards).collect();
        // The client sleeps between events: the latency it measures includes no spin of its own.
        let handle = flytrap_engine::runtime::spawn(
            format!("loadgen-{s}"),
            placement,
            flytrap_engine::Park::Sleep,
            move || async move {
                let shard = Rc::new(Shard {
                    sources: flytrap_engine::upstream::SourcePool::new(
                        plan.sources.clone(),
                        s + plan.worker_index as usize * shards,
                    ),
                    tls: tls.map(|(c, n)| (tokio_rustls::TlsConnector::from(c), n)),
                    stats: RefCell::new(Stats::new()),
                    plan,
                    progress,
                    origin,
                    work_at,
                });
                let mut tasks = Vec::with_capacity(clients.len());
                for k in clients {
                    client::sleep_until(origin + shard.plan.connect_at(k)).await;
                    tasks.push(tokio::task::spawn_local(client::run(shard.clone(), k)));
                }
                for t in tasks {
                    let _ = t.await;
                }
                shard.stats.borrow().clone()
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot start a client thread: {e}"))?;
        handles.push(handle);
    }
    let mut total = Stats::new();
    for h in handles {
        let stats = h
            .join()
            .ok_or_else(|| anyhow::anyhow!("a client thread failed"))?;
        total.merge(&stats);
    }
    Ok(total)
}
