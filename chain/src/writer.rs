//! The audit writer: moves spooled records to the chain in `recordAudit` batches, exactly once.
//!
//! - On start (and after every failure) it reads the contract's `operator(op).lastSeq` and
//!   acknowledges the spool up to it: whatever a previous run (or a transaction whose receipt
//!   was lost) already wrote is not sent again, and whatever is after it is.
//! - A batch is always the lowest pending seqs, so it carries every pending record up to its
//!   highest seq, as the contract requires. A batch resent after a crash writes nothing twice:
//!   the contract skips seq ≤ lastSeq.
//! - Gas budget (`chain.max_gas_per_hour`): the gas of the last hour's transactions plus the
//!   next batch's estimate must fit, else it waits (status: [`Error::OutOfGasBudget`]); a batch
//!   too big for the whole budget is halved.
//! - Node down, revert (e.g. `NotOperator`): retried with backoff (up to 30 s), never dropped.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use tokio::sync::Notify;

use crate::client::Client;
use crate::service::Shared;
use crate::spool::Spool;
use crate::{Error, Result};

const HOUR: Duration = Duration::from_secs(3600);

/// Gas spent in a sliding hour.
#[derive(Debug, Default)]
pub(crate) struct GasWindow {
    spent: VecDeque<(Instant, u64)>,
}

impl GasWindow {
    fn expire(&mut self, now: Instant) {
        while let Some(&(t, _)) = self.spent.front() {
            if now.duration_since(t) >= HOUR {
                self.spent.pop_front();
            } else {
                break;
            }
        }
    }

    pub(crate) fn used(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.spent.iter().map(|&(_, g)| g).sum()
    }

    fn record(&mut self, now: Instant, gas: u64) {
        self.spent.push_back((now, gas));
    }

    /// How long until `needed` more gas fits under `budget`.
    fn wait_for(&mut self, now: Instant, needed: u64, budget: u64) -> Duration {
        let mut used = self.used(now);
        for &(t, g) in &self.spent {
            if used + needed <= budget {
                break;
            }
            used -= g;
            if used + needed <= budget {
                return (t + HOUR).saturating_duration_since(now);
            }
        }
        Duration::ZERO
    }
}

pub(crate) struct Writer {
    pub(crate) client: Client,
    pub(crate) operator: Address,
    pub(crate) spool: Arc<Mutex<Spool>>,
    pub(crate) batch: usize,
    pub(crate) max_gas_per_hour: Option<u64>,
    pub(crate) notify: Arc<Notify>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) max_backoff: Duration,
}

fn lock(spool: &Mutex<Spool>) -> std::sync::MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writer {
    fn publish_spool_status(&self) {
        let s = lock(&self.spool);
        self.shared.audit_acked.store(s.acked(), Ordering::Relaxed);
        self.shared
            .audit_pending
            .store(s.pending_count(), Ordering::Relaxed);
        self.shared
            .audit_next_seq
            .store(s.next_seq(), Ordering::Relaxed);
    }

    /// Aligns the spool with the contract's lastSeq.
    async fn sync_last_seq(&self) -> Result<()> {
        let last = self.client.last_seq(self.operator).await?;
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || lock(&spool).rebase(last))
            .await
            .map_err(|e| Error::Spool(e.to_string()))??;
        self.publish_spool_status();
        Ok(())
    }

    pub(crate) async fn run(self) {
        let mut window = GasWindow::default();
        let mut backoff = Duration::from_millis(100);
        let mut synced = false;
        loop {
            let result = if synced {
                self.round(&mut window).await
            } else {
                self.sync_last_seq().await.map(|_| true)
            };
            match result {
                Ok(true) => {
                    synced = true;
                    backoff = Duration::from_millis(100);
                    self.shared.set_audit_error(None);
                }
                Ok(false) => {
                    // Nothing pending: sleep until an append (or a periodic look).
                    self.shared.set_audit_error(None);
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), self.notify.notified()).await;
                }
                Err(Error::OutOfGasBudget { retry_in, .. }) => {
                    tokio::time::sleep(
                        retry_in.clamp(Duration::from_millis(100), Duration::from_secs(60)),
                    )
                    .await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "audit writer: retrying");
                    self.shared.set_audit_error(Some(e));
                    // After any failure the transaction may or may not be on the chain: ask.
                    synced = false;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
        }
    }

    /// Writes one batch. `Ok(false)` when nothing is pending.
    async fn round(&self, window: &mut GasWindow) -> Result<bool> {
        let spool = self.spool.clone();
        let max = self.batch;
        let mut batch = tokio::task::spawn_blocking(move || lock(&spool).pending(max))
            .await
            .map_err(|e| Error::Spool(e.to_string()))??;
        if batch.is_empty() {
            self.publish_spool_status();
            return Ok(false);
        }
        let mut needed = self.client.estimate_record_audit(&batch).await?;
        if let Some(budget) = self.max_gas_per_hour {
            while needed > budget && batch.len() > 1 {
                batch.truncate(batch.len().div_ceil(2));
                needed = self.client.estimate_record_audit(&batch).await?;
            }
            let now = Instant::now();
            let used = window.used(now);
            self.shared.gas_last_hour.store(used, Ordering::Relaxed);
            if used + needed > budget {
                let retry_in = if needed > budget {
                    HOUR
                } else {
                    window.wait_for(now, needed, budget)
                };
                let e = Error::OutOfGasBudget {
                    used,
                    budget,
                    needed,
                    retry_in,
                };
                tracing::warn!(error = %e, "audit writer waits for the gas budget");
                self.shared.set_audit_error(Some(e.clone()));
                return Err(e);
            }
        }
        let tx = self.client.record_audit(&batch).await?;
        window.record(Instant::now(), tx.gas_used);
        self.shared
            .gas_last_hour
            .store(window.used(Instant::now()), Ordering::Relaxed);
        self.shared.audit_batches.fetch_add(1, Ordering::Relaxed);
        let top = batch.last().map(|r| r.seq).unwrap_or_default();
        tracing::debug!(
            records = batch.len(),
            seq = top,
            gas = tx.gas_used,
            "audit records on chain"
        );
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || lock(&spool).ack(top))
            .await
            .map_err(|e| Error::Spool(e.to_string()))??;
        self.publish_spool_status();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides() {
        let mut w = GasWindow::default();
        let t0 = Instant::now();
        w.record(t0, 100);
        w.record(t0 + Duration::from_secs(600), 50);
        assert_eq!(w.used(t0 + Duration::from_secs(601)), 150);
        // 120 more under a budget of 200: wait until the first 100 expire.
        let wait = w.wait_for(t0 + Duration::from_secs(601), 120, 200);
        assert_eq!(wait, Duration::from_secs(3600 - 601));
        assert_eq!(w.used(t0 + HOUR), 50);
        assert_eq!(w.wait_for(t0 + HOUR, 100, 200), Duration::ZERO);
    }
}
