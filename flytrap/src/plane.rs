//! The authorisation plane `serve` runs: the chain-backed one, or allow-all when
//! `authz.allow_all` says so.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use flytrap_authz::bans::BanPolicy;
use flytrap_authz::cache::CacheConfig;
use flytrap_authz::challenge::ChallengeConfig;
use flytrap_authz::geo::Geo;
use flytrap_authz::{AuthzConfig, AuthzShared, Unregistered};
use flytrap_chain::{AuditRecord, ChainConfig, ChainService};

use crate::config::{self, Config};
use crate::workers::{Worker, operators, sensitive};

/// The running plane.
#[derive(Debug)]
pub enum Plane {
    /// No chain: everything allowed.
    AllowAll,
    /// The chain service, the shared authorisation state and the sensitive-report thread.
    Chain {
        service: ChainService,
        shared: Arc<AuthzShared>,
        reports: SensitiveReports,
    },
}

/// Writes one sensitive-topic report per topic per interval (with worker processes: one for
/// all of them, merged by worker 0).
#[derive(Debug)]
pub struct SensitiveReports {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The node's chain id, asked once at start (2 s at most: the proxy also starts with the node
/// down).
fn node_chain_id(rpc: &str, contract: flytrap_chain::Address) -> Option<u64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let client = flytrap_chain::Client::new(rpc, contract, None).ok()?;
        tokio::time::timeout(Duration::from_secs(2), client.chain_id())
            .await
            .ok()?
            .ok()
    })
}

impl Plane {
    /// Starts the plane the config asks for. A worker (`engine.processes > 1`) writes audit
    /// records with its own operator key from its own spool (see [`crate::workers::operators`]).
    pub fn start(c: &Config, worker: Option<Worker>) -> anyhow::Result<Plane> {
        if c.authz.allow_all {
            tracing::warn!("authz.allow_all: every client and every packet is allowed");
            return Ok(Plane::AllowAll);
        }
        let (Some(rpc), Some(contract)) = (&c.chain.rpc, &c.chain.contract) else {
            bail!("chain.rpc and chain.contract are required (or authz.allow_all = true)");
        };
        let contract = flytrap_chain::types::parse_address(contract)
            .map_err(|e| anyhow::anyhow!("chain.contract: {e}"))?;
        let mut chain = ChainConfig::new(rpc.clone(), contract);
        if let Some(key) = &c.chain.key {
            chain.key = Some(
                flytrap_chain::keyfile::read_key(key)
                    .with_context(|| format!("chain.key {}", key.display()))?,
            );
        }
        chain.spool_dir = c.spool.dir.clone();
        if let Some(w) = worker {
            let Some(spool) = &c.spool.dir else {
                bail!("engine.processes > 1 with the chain needs spool.dir");
            };
            let path = operators::key_path(spool, w.index);
            chain.key = Some(
                flytrap_chain::keyfile::read_key(&path)
                    .with_context(|| format!("worker {}'s operator key", w.index))?,
            );
            chain.spool_dir = Some(operators::worker_dir(spool, w.index));
        }
        chain.max_gas_per_hour = c.chain.max_gas_per_hour;
        let service = ChainService::start(chain).context("cannot start the chain service")?;
        let geo = c.geo.mmdb.as_deref().map(Geo::open).transpose()?;
        let chain_id = match c.auth.chain_id {
            Some(id) => id,
            None => node_chain_id(rpc, contract).unwrap_or_else(|| {
                tracing::warn!(
                    "the chain node did not say its chain id; the challenge scheme's messages \
                     say Chain ID 1 (set auth.chain_id)"
                );
                1
            }),
        };
        let shared = AuthzShared::new(
            AuthzConfig {
                allow_static: c.auth.allow_static,
                max_clock_skew_s: c.auth.max_clock_skew_s,
                known_keys: c.auth.known_keys,
                require_challenge: c.auth.require_challenge,
                challenge: ChallengeConfig {
                    domain: c.auth.challenge_domain.clone(),
                    chain_id,
                    ttl_s: c.auth.challenge_ttl_s,
                },
                unregistered: match c.authz.unregistered {
                    config::Unregistered::Allow => Unregistered::Allow,
                    config::Unregistered::Deny => Unregistered::Deny,
                },
                cache: CacheConfig {
                    max_entries: c.cache.max_entries,
                    ttl: Duration::from_secs(c.cache.ttl_s),
                    deny_ttl: Duration::from_secs(1),
                    max_stale: Duration::from_secs(c.cache.max_stale_s),
                },
                ban: BanPolicy {
                    max_failures: c.ban.max_failures,
                    window: Duration::from_secs(c.ban.window_s),
                    duration: Duration::from_secs(c.ban.duration_s),
                },
            },
            service.handle(),
            geo,
        );
        if let (Some(_), Some(spool)) = (worker, &c.spool.dir)
            && !shared.share_replay(crate::workers::replay::open(spool)?)
        {
            bail!("auth.max_clock_skew_s is too long for the workers' shared replay table");
        }
        let sharing = match (worker, &c.spool.dir) {
            (Some(w), Some(spool)) => Some((spool.clone(), w.index)),
            _ => None,
        };
        let reports = SensitiveReports::start(
            shared.clone(),
            service.handle(),
            Duration::from_secs(c.report.interval_s.max(1)),
            sharing,
        );
        Ok(Plane::Chain {
            service,
            shared,
            reports,
        })
    }

    /// Writes the last partial report and stops the chain service (the audit spool keeps
    /// whatever the node has not taken yet).
    pub fn stop(self) {
        if let Plane::Chain {
            service, reports, ..
        } = self
        {
            reports.stop();
            service.shutdown();
        }
    }
}

/// Spools `records`; whether every one of them was.
fn spool_reports(chain: &flytrap_chain::ChainHandle, records: Vec<AuditRecord>) -> bool {
    let mut all = true;
    for record in records {
        match chain.try_audit(record).map(|p| p.wait()) {
            Ok(Ok(seq)) => tracing::info!(seq, "sensitive-topic report spooled"),
            Ok(Err(e)) | Err(e) => {
                all = false;
                tracing::error!(error = %e, "sensitive-topic report not spooled")
            }
        }
    }
    all
}

/// Worker processes: intervals aligned on multiples of `interval` (Unix time); worker 0
/// merges every worker's partial report (see [`crate::workers::sensitive`]).
fn merged_reports(
    shared: &AuthzShared,
    chain: &flytrap_chain::ChainHandle,
    interval: Duration,
    stopped: &std::sync::mpsc::Receiver<()>,
    spool: &std::path::Path,
    index: usize,
) {
    let step = interval.as_secs().max(1);
    let grace = (interval / 2).min(Duration::from_secs(5));
    let mut from = unix_now();
    loop {
        let boundary = (unix_now() / step + 1) * step;
        let wake = UNIX_EPOCH
            + Duration::from_secs(boundary)
            + if index == 0 { grace } else { Duration::ZERO };
        let wait = wake
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let last = !matches!(
            stopped.recv_timeout(wait),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        let to = if last { unix_now() } else { boundary };
        let mine = sensitive::Partial {
            from,
            to,
            topics: shared.take_sensitive(),
        };
        if index != 0 {
            if let Err(e) = sensitive::write_partial(spool, index, &mine) {
                // Never lose it: report it alone rather than not at all.
                tracing::error!(error = %e, "cannot share the sensitive-topic report; spooling it alone");
                spool_reports(chain, sensitive::merge(&[mine]));
            }
        } else {
            let files = sensitive::read_partials(spool);
            let mut parts = vec![mine.clone()];
            parts.extend(files.iter().map(|(_, p)| p.clone()));
            if spool_reports(chain, sensitive::merge(&parts)) {
                for (path, _) in &files {
                    if let Err(e) = std::fs::remove_file(path) {
                        tracing::error!(path = %path.display(), error = %e, "cannot remove a merged partial report");
                    }
                }
            } else if let Err(e) = sensitive::write_partial(spool, 0, &mine) {
                tracing::error!(error = %e, "sensitive-topic accesses of this interval lost");
            }
        }
        from = to;
        if last {
            return;
        }
    }
}

impl SensitiveReports {
    fn start(
        shared: Arc<AuthzShared>,
        chain: flytrap_chain::ChainHandle,
        interval: Duration,
        sharing: Option<(std::path::PathBuf, usize)>,
    ) -> SensitiveReports {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("flytrap-reports".into())
            .spawn(move || {
                if let Some((spool, index)) = sharing {
                    merged_reports(&shared, &chain, interval, &stopped, &spool, index);
                    return;
                }
                let mut from = unix_now();
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(interval),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    );
                    let to = unix_now();
                    spool_reports(&chain, shared.take_sensitive_reports(from, to));
                    from = to;
                    if last {
                        return;
                    }
                }
            })
            .ok();
        SensitiveReports { stop, thread }
    }

    fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
