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
use flytrap_chain::{ChainConfig, ChainService};

use crate::config::{self, Config};
use crate::workers::{Worker, operators};

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

/// Writes one sensitive-topic report per topic per interval.
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
        let reports = SensitiveReports::start(
            shared.clone(),
            service.handle(),
            Duration::from_secs(c.report.interval_s.max(1)),
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

impl SensitiveReports {
    fn start(
        shared: Arc<AuthzShared>,
        chain: flytrap_chain::ChainHandle,
        interval: Duration,
    ) -> SensitiveReports {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("flytrap-reports".into())
            .spawn(move || {
                let mut from = unix_now();
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(interval),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    );
                    let to = unix_now();
                    for record in shared.take_sensitive_reports(from, to) {
                        match chain.try_audit(record).map(|p| p.wait()) {
                            Ok(Ok(seq)) => tracing::info!(seq, "sensitive-topic report spooled"),
                            Ok(Err(e)) | Err(e) => {
                                tracing::error!(error = %e, "sensitive-topic report not spooled")
                            }
                        }
                    }
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
