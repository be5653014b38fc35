//! The chain executor: one OS thread with its own current-thread tokio runtime that owns
//! every conversation with the node, reached from any thread through bounded channels.
//!
//! Callers never block on the network: a request carries a one-shot reply channel
//! (`tokio::sync::oneshot`, which needs no particular runtime on the receiving side, so an
//! engine shard, on a tokio runtime of its own, can `.await` it). On the chain thread run:
//! - the **check executor**: cold permission checks that arrive together are drained from
//!   the channel (up to `max_batch`) into ONE `checkBatch` call; identical queries — in the same
//!   batch or already in flight — are coalesced into one question whose answer goes to every
//!   waiter. Up to `max_inflight` calls are in flight; while they are, requests pile up and
//!   form the next, larger batch. An answer is never older than an invalidation delivered
//!   before it: when one for a query in the batch arrives while the call is in flight, the
//!   query is asked again;
//! - the **event follower** ([`crate::follower`]);
//! - the **audit writer** ([`crate::writer`]) and the spool appender (appends are grouped:
//!   one write and one `fdatasync` for all queued records, acknowledged after the sync).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, oneshot, watch};

use crate::audit::AuditRecord;
use crate::client::Client;
use crate::follower::{Invalidations, Notice, RecentChanges, StateFile};
use crate::spool::Spool;
use crate::types::{Answer, Query};
use crate::writer::Writer;
use crate::{Error, Result};

/// What the chain service needs (SPEC §6 `[chain]` and `[spool]`).
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// JSON-RPC URL of the node.
    pub rpc: String,
    /// The FlyTrap contract.
    pub contract: Address,
    /// The operator key: needed to write audit records.
    pub key: Option<PrivateKeySigner>,
    /// Where the audit spool lives; `None` = no audit writer (appends fail).
    pub spool_dir: Option<PathBuf>,
    /// The event follower's saved position; `None` = `<spool_dir>/follower-block` when there
    /// is a spool, else not saved.
    pub follower_state: Option<PathBuf>,
    /// `chain.max_gas_per_hour`; `None` = unlimited.
    pub max_gas_per_hour: Option<u64>,
    /// Most queries in one `checkBatch` call.
    pub max_batch: usize,
    /// `checkBatch` calls in flight at once.
    pub max_inflight: usize,
    /// Capacity of the request channels (a full channel makes `try_check` fail, `check` wait).
    pub queue: usize,
    /// How often the follower asks for new blocks.
    pub poll_interval: Duration,
    /// Most records in one `recordAudit` transaction.
    pub audit_batch: usize,
    /// Longest pause between audit retries.
    pub audit_max_backoff: Duration,
    /// Notices buffered per subscriber before it must flush everything.
    pub invalidation_capacity: usize,
    /// Run the event follower.
    pub follow_events: bool,
}

impl ChainConfig {
    /// Defaults for a node at `rpc` and a contract at `contract`.
    pub fn new(rpc: impl Into<String>, contract: Address) -> ChainConfig {
        ChainConfig {
            rpc: rpc.into(),
            contract,
            key: None,
            spool_dir: None,
            follower_state: None,
            max_gas_per_hour: None,
            max_batch: 256,
            max_inflight: 4,
            queue: 8_192,
            poll_interval: Duration::from_millis(250),
            audit_batch: 100,
            audit_max_backoff: Duration::from_secs(30),
            invalidation_capacity: 8_192,
            follow_events: true,
        }
    }
}

/// Counters and health, shared by the chain thread and every handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) checks: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) rechecks: AtomicU64,
    pub(crate) follower_block: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) bans_seen: AtomicU64,
    pub(crate) audit_next_seq: AtomicU64,
    pub(crate) audit_acked: AtomicU64,
    pub(crate) audit_pending: AtomicU64,
    pub(crate) audit_batches: AtomicU64,
    pub(crate) gas_last_hour: AtomicU64,
    pub(crate) recent: RecentChanges,
    follower_error: Mutex<Option<Error>>,
    audit_error: Mutex<Option<Error>>,
    check_error: Mutex<Option<Error>>,
}

fn set(slot: &Mutex<Option<Error>>, e: Option<Error>) {
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = e;
}

fn get(slot: &Mutex<Option<Error>>) -> Option<Error> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Shared {
    pub(crate) fn set_follower_error(&self, e: Option<Error>) {
        set(&self.follower_error, e);
    }
    pub(crate) fn set_audit_error(&self, e: Option<Error>) {
        set(&self.audit_error, e);
    }
    fn set_check_error(&self, e: Option<Error>) {
        set(&self.check_error, e);
    }
}

/// A snapshot of the chain service's health (for logs, metrics, `/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Check requests received.
    pub checks: u64,
    /// Of which answered by a query already asked (same batch or in flight).
    pub coalesced: u64,
    /// `checkBatch` calls made.
    pub batches: u64,
    /// Queries asked again because an invalidation arrived while they were in flight.
    pub rechecks: u64,
    /// Last block the follower has delivered.
    pub follower_block: u64,
    /// Invalidations delivered.
    pub invalidations: u64,
    /// `Banned` records (bans and lifts, any operator's) delivered.
    pub bans_seen: u64,
    /// The next audit seq.
    pub audit_next_seq: u64,
    /// Highest audit seq on the chain.
    pub audit_acked: u64,
    /// Audit records waiting in the spool.
    pub audit_pending: u64,
    /// `recordAudit` transactions sent.
    pub audit_batches: u64,
    /// Gas spent on audit records in the last hour.
    pub gas_last_hour: u64,
    /// The last check failure, cleared by a success.
    pub check_error: Option<Error>,
    /// The follower's current failure (node unreachable …).
    pub follower_error: Option<Error>,
    /// The audit writer's current failure (node unreachable, [`Error::OutOfGasBudget`] …).
    pub audit_error: Option<Error>,
}

struct CheckRequest {
    query: Query,
    reply: oneshot::Sender<Result<Answer>>,
}

struct AuditRequest {
    record: AuditRecord,
    reply: oneshot::Sender<Result<u64>>,
}

/// A reply on its way: `.await` it from any executor, or [`wait`](Self::wait) on a plain
/// thread.
#[derive(Debug)]
pub struct Pending<T> {
    rx: oneshot::Receiver<Result<T>>,
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Stopped)))
    }
}

impl<T> Pending<T> {
    /// Blocks the calling thread until the reply (not from inside a tokio runtime).
    pub fn wait(self) -> Result<T> {
        self.rx.blocking_recv().unwrap_or(Err(Error::Stopped))
    }

    /// The reply if it is there already (never waits).
    pub fn try_take(&mut self) -> Option<Result<T>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(Error::Stopped)),
        }
    }
}

/// A cheap, cloneable handle on the chain service, usable from any thread.
#[derive(Debug, Clone)]
pub struct ChainHandle {
    checks: mpsc::Sender<CheckRequest>,
    audit: Option<mpsc::Sender<AuditRequest>>,
    notices: broadcast::Sender<Notice>,
    shared: Arc<Shared>,
    contract: Address,
    operator: Option<Address>,
}

impl std::fmt::Debug for CheckRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.query.fmt(f)
    }
}

impl std::fmt::Debug for AuditRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.record.fmt(f)
    }
}

impl ChainHandle {
    /// Asks the chain (a cold check). Waits for room in the queue without blocking the thread.
    pub async fn check(&self, query: Query) -> Result<Answer> {
        let (reply, rx) = oneshot::channel();
        self.checks
            .send(CheckRequest { query, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        Pending { rx }.await
    }

    /// Queues a cold check without ever waiting; the reply comes through the returned
    /// [`Pending`]. Fails with [`Error::Rpc`] ("queue full") under overload — deny then.
    pub fn try_check(&self, query: Query) -> Result<Pending<Answer>> {
        let (reply, rx) = oneshot::channel();
        self.checks
            .try_send(CheckRequest { query, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    Error::Rpc("chain executor queue full".into())
                }
                mpsc::error::TrySendError::Closed(_) => Error::Stopped,
            })?;
        Ok(Pending { rx })
    }

    /// Subscribes to ACL invalidations and chain bans (from now on).
    pub fn subscribe(&self) -> Invalidations {
        Invalidations::new(self.notices.subscribe())
    }

    /// Appends an audit record to the durable spool; resolves with its seq once it is on
    /// disk (fsync). It then reaches the chain exactly once, in the background.
    pub async fn audit(&self, record: AuditRecord) -> Result<u64> {
        let tx = self.audit.as_ref().ok_or_else(no_spool)?;
        let (reply, rx) = oneshot::channel();
        tx.send(AuditRequest { record, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        Pending { rx }.await
    }

    /// [`audit`](Self::audit) without waiting for room in the queue.
    pub fn try_audit(&self, record: AuditRecord) -> Result<Pending<u64>> {
        let tx = self.audit.as_ref().ok_or_else(no_spool)?;
        let (reply, rx) = oneshot::channel();
        tx.try_send(AuditRequest { record, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::Spool("audit queue full".into()),
                mpsc::error::TrySendError::Closed(_) => Error::Stopped,
            })?;
        Ok(Pending { rx })
    }

    /// The contract this service talks to.
    pub fn contract(&self) -> Address {
        self.contract
    }

    /// The operator account writing audit records, if a key was given.
    pub fn operator(&self) -> Option<Address> {
        self.operator
    }

    /// Current counters and failures.
    pub fn status(&self) -> Status {
        let s = &self.shared;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Status {
            checks: l(&s.checks),
            coalesced: l(&s.coalesced),
            batches: l(&s.batches),
            rechecks: l(&s.rechecks),
            follower_block: l(&s.follower_block),
            invalidations: l(&s.invalidations),
            bans_seen: l(&s.bans_seen),
            audit_next_seq: l(&s.audit_next_seq),
            audit_acked: l(&s.audit_acked),
            audit_pending: l(&s.audit_pending),
            audit_batches: l(&s.audit_batches),
            gas_last_hour: l(&s.gas_last_hour),
            check_error: get(&s.check_error),
            follower_error: get(&s.follower_error),
            audit_error: get(&s.audit_error),
        }
    }
}

fn no_spool() -> Error {
    Error::Spool("no audit spool configured (spool.dir and an operator key are needed)".into())
}

/// The running chain service; stops (and joins its thread) when dropped or [`shutdown`].
///
/// [`shutdown`]: ChainService::shutdown
#[derive(Debug)]
pub struct ChainService {
    handle: ChainHandle,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl ChainService {
    /// Starts the chain thread. The spool is opened here, so a spool problem (disk, another
    /// process holding it) is reported now; the node may be down — everything retries.
    pub fn start(config: ChainConfig) -> Result<ChainService> {
        let operator = config.key.as_ref().map(|k| k.address());
        let client = Client::new(&config.rpc, config.contract, config.key.clone())?;
        let shared = Arc::new(Shared::default());
        let spool = match (&config.spool_dir, operator) {
            (Some(dir), Some(_)) => {
                let s = Spool::open(dir)?;
                shared.audit_next_seq.store(s.next_seq(), Ordering::Relaxed);
                shared.audit_acked.store(s.acked(), Ordering::Relaxed);
                shared
                    .audit_pending
                    .store(s.pending_count(), Ordering::Relaxed);
                Some(Arc::new(Mutex::new(s)))
            }
            _ => None,
        };
        let state_path = config
            .follower_state
            .clone()
            .or_else(|| config.spool_dir.as_ref().map(|d| d.join("follower-block")));

        let (check_tx, check_rx) = mpsc::channel(config.queue.max(1));
        let (audit_tx, audit_rx) = mpsc::channel(config.queue.max(1));
        let (notices, _) = broadcast::channel(config.invalidation_capacity.max(16));
        let (stop, stop_rx) = watch::channel(false);

        let handle = ChainHandle {
            checks: check_tx,
            audit: spool.as_ref().map(|_| audit_tx),
            notices: notices.clone(),
            shared: shared.clone(),
            contract: config.contract,
            operator,
        };

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("flytrap-chain-io")
            .build()
            .map_err(|e| Error::Rpc(format!("cannot start the chain runtime: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("flytrap-chain".into())
            .spawn(move || {
                runtime.block_on(serve(
                    config, client, shared, spool, check_rx, audit_rx, notices, state_path, stop_rx,
                ));
                // Dropping the runtime cancels every task still running.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(|e| Error::Rpc(format!("cannot start the chain thread: {e}")))?;

        Ok(ChainService {
            handle,
            stop,
            thread: Some(thread),
        })
    }

    /// A handle for callers (clone it freely).
    pub fn handle(&self) -> ChainHandle {
        self.handle.clone()
    }

    /// Stops every task and joins the thread. Records already acknowledged by
    /// [`ChainHandle::audit`] stay in the spool for the next start.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ChainService {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    config: ChainConfig,
    client: Client,
    shared: Arc<Shared>,
    spool: Option<Arc<Mutex<Spool>>>,
    check_rx: mpsc::Receiver<CheckRequest>,
    audit_rx: mpsc::Receiver<AuditRequest>,
    notices: broadcast::Sender<Notice>,
    state_path: Option<PathBuf>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(check_loop(
        client.clone(),
        check_rx,
        config.max_batch.max(1),
        config.max_inflight.max(1),
        shared.clone(),
    ));
    if config.follow_events {
        let state = state_path.map(|p| StateFile::new(p, config.contract));
        tasks.spawn(crate::follower::run(
            client.clone(),
            state,
            notices,
            config.poll_interval,
            shared.clone(),
        ));
    }
    if let (Some(spool), Some(key)) = (spool, config.key.as_ref()) {
        let notify = Arc::new(Notify::new());
        tasks.spawn(append_loop(
            spool.clone(),
            audit_rx,
            notify.clone(),
            shared.clone(),
        ));
        tasks.spawn(
            Writer {
                client,
                operator: key.address(),
                spool,
                batch: config.audit_batch.max(1),
                max_gas_per_hour: config.max_gas_per_hour,
                notify,
                shared,
                max_backoff: config.audit_max_backoff,
            }
            .run(),
        );
    }
    let _ = stop.wait_for(|s| *s).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Appends queued records in groups: one write + one fsync per group, then the replies.
async fn append_loop(
    spool: Arc<Mutex<Spool>>,
    mut rx: mpsc::Receiver<AuditRequest>,
    notify: Arc<Notify>,
    shared: Arc<Shared>,
) {
    let mut buf = Vec::new();
    while rx.recv_many(&mut buf, 1024).await > 0 {
        let (records, replies): (Vec<_>, Vec<_>) =
            buf.drain(..).map(|r| (r.record, r.reply)).unzip();
        let spool = spool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut s = spool.lock().unwrap_or_else(|p| p.into_inner());
            let r = s.append_batch(&records);
            (r, s.next_seq(), s.pending_count())
        })
        .await;
        match result {
            Ok((Ok(seqs), next, pending)) => {
                shared.audit_next_seq.store(next, Ordering::Relaxed);
                shared.audit_pending.store(pending, Ordering::Relaxed);
                for (reply, seq) in replies.into_iter().zip(seqs) {
                    let _ = reply.send(Ok(seq));
                }
                notify.notify_one();
            }
            Ok((Err(e), ..)) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                let e = Error::Spool(format!("append task failed: {e}"));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

type Waiters = Arc<Mutex<HashMap<Query, Vec<oneshot::Sender<Result<Answer>>>>>>;

/// Batches and coalesces cold checks.
async fn check_loop(
    client: Client,
    mut rx: mpsc::Receiver<CheckRequest>,
    max_batch: usize,
    max_inflight: usize,
    shared: Arc<Shared>,
) {
    let inflight: Waiters = Arc::default();
    let permits = Arc::new(Semaphore::new(max_inflight));
    let mut buf = Vec::with_capacity(max_batch);
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        if rx.recv_many(&mut buf, max_batch).await == 0 {
            return;
        }
        shared.checks.fetch_add(buf.len() as u64, Ordering::Relaxed);
        let mut batch = Vec::with_capacity(buf.len());
        {
            let mut waiting = inflight.lock().unwrap_or_else(|p| p.into_inner());
            for req in buf.drain(..) {
                match waiting.entry(req.query) {
                    Entry::Occupied(mut e) => {
                        shared.coalesced.fetch_add(1, Ordering::Relaxed);
                        e.get_mut().push(req.reply);
                    }
                    Entry::Vacant(e) => {
                        e.insert(vec![req.reply]);
                        batch.push(req.query);
                    }
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let client = client.clone();
        let inflight = inflight.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let answers = ask(&client, &batch, &shared).await;
            match &answers {
                Ok(_) => shared.set_check_error(None),
                Err(e) => shared.set_check_error(Some(e.clone())),
            }
            let mut waiting = inflight.lock().unwrap_or_else(|p| p.into_inner());
            for (i, q) in batch.iter().enumerate() {
                let reply: Result<Answer> = match &answers {
                    Ok(a) => Ok(a[i].clone()),
                    Err(e) => Err(e.clone()),
                };
                for w in waiting.remove(q).unwrap_or_default() {
                    let _ = w.send(reply.clone());
                }
            }
            drop(permit);
        });
    }
}

/// One `checkBatch` call, asked again (at most three times) for the queries an invalidation
/// touched while it was in flight.
async fn ask(client: &Client, batch: &[Query], shared: &Shared) -> Result<Vec<Answer>> {
    let mut since = shared.recent.epoch();
    shared.batches.fetch_add(1, Ordering::Relaxed);
    let mut answers = client.check_batch(batch).await?;
    for _ in 0..3 {
        let stale: Vec<usize> = match shared.recent.since(since) {
            Some(changes) if changes.is_empty() => return Ok(answers),
            Some(changes) => batch
                .iter()
                .enumerate()
                .filter(|(_, q)| {
                    changes.iter().any(|c| {
                        c.topic_id == q.topic_id
                            && (c.action.is_none()
                                || (c.address == q.who && c.action == Some(q.action)))
                    })
                })
                .map(|(i, _)| i)
                .collect(),
            None => (0..batch.len()).collect(),
        };
        if stale.is_empty() {
            return Ok(answers);
        }
        since = shared.recent.epoch();
        let again: Vec<Query> = stale.iter().map(|&i| batch[i]).collect();
        shared
            .rechecks
            .fetch_add(again.len() as u64, Ordering::Relaxed);
        shared.batches.fetch_add(1, Ordering::Relaxed);
        let fresh = client.check_batch(&again).await?;
        for (k, &i) in stale.iter().enumerate() {
            answers[i] = fresh[k].clone();
        }
    }
    Ok(answers)
}
