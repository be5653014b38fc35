//! The event follower: polls the node for the contract's `AclChanged` events and turns them
//! into [`Invalidation`]s for the proxy's permission caches, and for its `Banned` events (any
//! operator's: another proxy's, another worker's, an operator's lift) and hands them to every
//! proxy's ban list as [`ChainBan`]s. Both come from one `eth_getLogs` per step, in log order.
//!
//! It asks for the head block every `poll_interval` (default 250 ms, well inside anvil's
//! `--block-time 1` and any public chain's block time; automine works the same), reads the logs
//! of every new block in order and delivers them before moving on, so a change is delivered
//! within one block of being mined. The last block read is kept in memory across node outages
//! (it retries with backoff and resumes after it: no event lost) and in a small state file
//! (`<contract> <block>`), so a restarted process resumes too. A chain that goes backwards
//! (reset dev chain, reorg deeper than the head) makes it start again from the new head and
//! tell subscribers to flush everything.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::primitives::Address;
use alloy::sol_types::SolEvent;
use tokio::sync::broadcast;

use crate::bindings::FlyTrap;
use crate::client::Client;
use crate::service::Shared;
use crate::types::{Action, ChainBan, Change, Invalidation, bytes16_to_ip};

/// At most this many blocks per `eth_getLogs` (public nodes cap the range).
pub const MAX_LOG_RANGE: u64 = 2_000;

/// What a subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// One ACL change.
    Changed(Invalidation),
    /// Drop every cached answer: the subscriber fell behind (its queue overflowed) or the
    /// chain was reset.
    FlushAll,
    /// A ban (or a lift, see [`ChainBan::is_lift`]) recorded on the chain by any operator.
    Banned(ChainBan),
}

/// A subscription to invalidations. Runtime-agnostic: `recv().await` works on any executor
/// (the engine's shards included), `try_recv` never waits.
#[derive(Debug)]
pub struct Invalidations {
    rx: broadcast::Receiver<Notice>,
}

impl Invalidations {
    pub(crate) fn new(rx: broadcast::Receiver<Notice>) -> Invalidations {
        Invalidations { rx }
    }

    /// The next notice; `None` once the chain service has stopped.
    pub async fn recv(&mut self) -> Option<Notice> {
        match self.rx.recv().await {
            Ok(n) => Some(n),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Notice::FlushAll),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next notice if one is queued (never waits); `Ok(None)` when none is.
    pub fn try_recv(&mut self) -> Result<Option<Notice>, crate::Error> {
        match self.rx.try_recv() {
            Ok(n) => Ok(Some(n)),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Ok(Some(Notice::FlushAll)),
            Err(broadcast::error::TryRecvError::Closed) => Err(crate::Error::Stopped),
        }
    }

    /// Waits up to `timeout` on the current thread (for threads outside any async runtime).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Notice> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.try_recv() {
                Ok(Some(n)) => return Some(n),
                Ok(None) => {}
                Err(_) => return None,
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Invalidations recently delivered, numbered, so that the check executor can tell whether one
/// arrived while a `checkBatch` call was in flight (and ask again).
#[derive(Debug, Default)]
pub(crate) struct RecentChanges {
    epoch: AtomicU64,
    log: Mutex<VecDeque<(u64, Invalidation)>>,
}

const RECENT_CAP: usize = 8_192;

impl RecentChanges {
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn push(&self, inv: Invalidation) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let e = self.epoch.load(Ordering::Relaxed) + 1;
        log.push_back((e, inv));
        if log.len() > RECENT_CAP {
            log.pop_front();
        }
        self.epoch.store(e, Ordering::Release);
    }

    /// Changes after `since`; `None` if some of them have been forgotten (treat as "all").
    pub(crate) fn since(&self, since: u64) -> Option<Vec<Invalidation>> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((first, _)) = log.front()
            && *first > since + 1
        {
            return None;
        }
        Some(
            log.iter()
                .filter(|(e, _)| *e > since)
                .map(|(_, i)| *i)
                .collect(),
        )
    }

    fn reset(&self) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.clear();
        // A jump no `since` can span: everything in flight is asked again.
        self.epoch
            .fetch_add(RECENT_CAP as u64 + 2, Ordering::AcqRel);
    }
}

/// The follower's persisted position.
#[derive(Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
    contract: Address,
}

impl StateFile {
    pub(crate) fn new(path: PathBuf, contract: Address) -> StateFile {
        StateFile { path, contract }
    }

    /// The last block fully delivered, if this file is about the same contract.
    pub(crate) fn load(&self) -> Option<u64> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let mut parts = text.split_whitespace();
        let contract: Address = parts.next()?.parse().ok()?;
        let block: u64 = parts.next()?.parse().ok()?;
        (contract == self.contract).then_some(block)
    }

    pub(crate) fn store(&self, block: u64) {
        let tmp = self.path.with_extension("tmp");
        let r = (|| {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&tmp, format!("{:#x} {block}\n", self.contract))?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = r {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot save the event follower's block");
        }
    }
}

/// Reads the follower's saved block from a state file (tests, tools).
pub fn saved_block(path: &Path, contract: Address) -> Option<u64> {
    StateFile::new(path.to_path_buf(), contract).load()
}

fn to_invalidation(e: &FlyTrap::AclChanged, block: u64) -> Invalidation {
    Invalidation {
        topic_id: e.topicId,
        address: e.target,
        action: Action::from_code(e.action),
        change: Change::from_code(e.change),
        block,
    }
}

fn to_chain_ban(e: &FlyTrap::Banned, block: u64) -> ChainBan {
    ChainBan {
        ip: bytes16_to_ip(e.ip),
        until: e.until,
        failures: e.failures,
        time: e.time,
        block,
    }
}

/// The follower task (runs on the chain thread until the service stops).
pub(crate) async fn run(
    client: Client,
    state: Option<StateFile>,
    tx: broadcast::Sender<Notice>,
    poll: Duration,
    shared: std::sync::Arc<Shared>,
) {
    let mut last: Option<u64> = state.as_ref().and_then(StateFile::load);
    if let Some(b) = last {
        tracing::info!(block = b, "event follower resumes after its saved block");
    }
    let mut backoff = poll;
    loop {
        match step(&client, &mut last, &tx, &shared, state.as_ref()).await {
            Ok(caught_up) => {
                shared.set_follower_error(None);
                backoff = poll;
                if !caught_up {
                    continue;
                }
                tokio::time::sleep(poll).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "event follower: node not answering, retrying");
                shared.set_follower_error(Some(e));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One round: returns whether the follower has caught up with the head.
async fn step(
    client: &Client,
    last: &mut Option<u64>,
    tx: &broadcast::Sender<Notice>,
    shared: &Shared,
    state: Option<&StateFile>,
) -> crate::Result<bool> {
    let head = client.block_number().await?;
    let Some(done) = *last else {
        // First start: the caches are empty, nothing before now matters.
        *last = Some(head);
        shared.follower_block.store(head, Ordering::Relaxed);
        if let Some(s) = state {
            s.store(head);
        }
        return Ok(true);
    };
    if head < done {
        tracing::warn!(
            head,
            last = done,
            "the chain went backwards (reset or reorg): flushing caches"
        );
        shared.recent.reset();
        let _ = tx.send(Notice::FlushAll);
        *last = Some(head);
        if let Some(s) = state {
            s.store(head);
        }
        return Ok(true);
    }
    if head == done {
        return Ok(true);
    }
    let from = done + 1;
    let to = head.min(from + MAX_LOG_RANGE - 1);
    let logs = client
        .logs_of(
            vec![
                FlyTrap::AclChanged::SIGNATURE_HASH,
                FlyTrap::Banned::SIGNATURE_HASH,
            ],
            from,
            to,
        )
        .await?;
    for log in &logs {
        let block = log.block_number.unwrap_or(to);
        match log.topic0() {
            Some(&FlyTrap::AclChanged::SIGNATURE_HASH) => {
                let e = log
                    .log_decode::<FlyTrap::AclChanged>()
                    .map_err(|e| crate::Error::Rpc(format!("undecodable AclChanged log: {e}")))?;
                let inv = to_invalidation(&e.inner.data, block);
                shared.recent.push(inv);
                shared.invalidations.fetch_add(1, Ordering::Relaxed);
                let _ = tx.send(Notice::Changed(inv));
            }
            Some(&FlyTrap::Banned::SIGNATURE_HASH) => {
                // The contract masks every field: a log that fails to decode is not its.
                match log.log_decode::<FlyTrap::Banned>() {
                    Ok(e) => {
                        shared.bans_seen.fetch_add(1, Ordering::Relaxed);
                        let _ = tx.send(Notice::Banned(to_chain_ban(&e.inner.data, block)));
                    }
                    Err(e) => tracing::warn!(block, error = %e, "undecodable Banned log skipped"),
                }
            }
            _ => {}
        }
    }
    *last = Some(to);
    shared.follower_block.store(to, Ordering::Relaxed);
    if let Some(s) = state {
        s.store(to);
    }
    Ok(to == head)
}
