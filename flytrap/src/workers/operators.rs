//! Per-worker operator keys (`engine.processes > 1` with the chain).
//!
//! The contract numbers audit records per operator (`operator(op).lastSeq`) and each spool is one
//! writer's, so every worker writes with its own key from its own spool,
//! `<spool.dir>/worker-<i>/`. The supervisor, holding the configured operator key (the
//! contract's admin), makes each worker's key once (`operator.key`, mode 0600, reused after a
//! restart so the worker's spool and `lastSeq` stay in step), registers it with `setOperator`
//! and keeps its ether balance above [`MIN_BALANCE_WEI`] by topping it up to [`TOP_UP_WEI`].

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use flytrap_chain::{Address, Client, PrivateKeySigner, U256};

use crate::config::Config;

/// A worker whose balance falls below this (0.05 ETH) is topped up.
pub const MIN_BALANCE_WEI: u128 = 50_000_000_000_000_000;
/// … to this (0.2 ETH): about 100 `recordAudit` batches of 100 records at 10 gwei.
pub const TOP_UP_WEI: u128 = 200_000_000_000_000_000;
/// How often the supervisor checks the workers' registration and balances.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Why the workers' operators could not be set up.
#[derive(Debug)]
pub enum ProvisionError {
    /// Registering a worker needs the contract's admin key.
    NotAdmin { key: Address, admin: Address },
    /// A key file could not be made or read.
    Key(String),
    /// The node answered with an error, or did not answer.
    Chain(flytrap_chain::Error),
}

impl std::fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProvisionError::NotAdmin { key, admin } => write!(
                f,
                "chain.key {key:#x} is not the contract's admin ({admin:#x}): engine.processes > 1 needs the admin key to add the workers' operator keys"
            ),
            ProvisionError::Key(e) => f.write_str(e),
            ProvisionError::Chain(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ProvisionError {}

impl From<flytrap_chain::Error> for ProvisionError {
    fn from(e: flytrap_chain::Error) -> Self {
        ProvisionError::Chain(e)
    }
}

impl ProvisionError {
    /// Worth retrying later (the node is down), rather than a configuration error.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProvisionError::Chain(e) if e.is_unreachable())
    }
}

/// Worker `i`'s own folder: its spool, its follower position and its key.
pub fn worker_dir(spool_dir: &Path, i: usize) -> PathBuf {
    spool_dir.join(format!("worker-{i}"))
}

/// Worker `i`'s operator key file.
pub fn key_path(spool_dir: &Path, i: usize) -> PathBuf {
    worker_dir(spool_dir, i).join("operator.key")
}

/// Reads worker `i`'s key, making it first if it does not exist yet.
pub fn ensure_key(spool_dir: &Path, i: usize) -> Result<PrivateKeySigner, ProvisionError> {
    let dir = worker_dir(spool_dir, i);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| ProvisionError::Key(format!("cannot create {}: {e}", dir.display())))?;
    let path = key_path(spool_dir, i);
    if !path.exists() {
        let key = PrivateKeySigner::random();
        match flytrap_chain::keyfile::write_new_key(&path, &key) {
            Ok(()) => return Ok(key),
            // Made meanwhile by someone else: use theirs.
            Err(_) if path.exists() => {}
            Err(e) => return Err(ProvisionError::Key(e.to_string())),
        }
    }
    flytrap_chain::keyfile::read_key(&path).map_err(|e| ProvisionError::Key(e.to_string()))
}

/// Registers each worker's address as an operator and tops up its balance, with the
/// configured operator key.
#[derive(Debug)]
pub struct Provisioner {
    client: Client,
    workers: Vec<Address>,
}

impl Provisioner {
    /// A provisioner over `client` (signing with the configured operator key).
    pub fn new(client: Client, workers: Vec<Address>) -> Provisioner {
        Provisioner { client, workers }
    }

    /// One pass: every worker registered and funded. Returns what was done, for the log.
    pub async fn run_once(&self) -> Result<Vec<String>, ProvisionError> {
        let mut done = Vec::new();
        let Some(me) = self.client.sender() else {
            return Err(ProvisionError::Key("chain.key is required".into()));
        };
        self.client.ensure_contract().await?;
        for (i, &worker) in self.workers.iter().enumerate() {
            if !self.client.is_operator(worker).await? {
                let admin = self.client.admin().await?;
                if admin != me {
                    return Err(ProvisionError::NotAdmin { key: me, admin });
                }
                self.client.set_operator(worker, true).await?;
                done.push(format!("worker {i}: operator {worker:#x} added"));
            }
            let balance = self.client.eth_balance(worker).await?;
            if balance < U256::from(MIN_BALANCE_WEI) {
                let amount = U256::from(TOP_UP_WEI) - balance;
                self.client.transfer(worker, amount).await?;
                done.push(format!(
                    "worker {i}: {worker:#x} topped up with {amount} wei"
                ));
            }
        }
        Ok(done)
    }
}

/// What the supervisor keeps running for the chain while the workers run.
#[derive(Debug)]
pub struct Supervision {
    /// Drains records a single-process run left in `<spool.dir>` itself (with the operator
    /// key), so switching to workers loses none.
    _drain: Option<flytrap_chain::ChainService>,
}

/// Prepares the chain side of the workers: their keys, their registration and funds (now,
/// and then every [`CHECK_INTERVAL`] in the background), and the drain of a leftover spool.
/// A configuration error (no admin key, no contract) fails now; a node that does not answer
/// is retried in the background.
pub fn start(config: &Config, count: usize) -> anyhow::Result<Supervision> {
    let (Some(rpc), Some(contract)) = (&config.chain.rpc, &config.chain.contract) else {
        bail!("chain.rpc and chain.contract are required (or authz.allow_all = true)");
    };
    let Some(spool_dir) = &config.spool.dir else {
        bail!("engine.processes > 1 with the chain needs spool.dir (each worker spools under it)");
    };
    let Some(key_file) = &config.chain.key else {
        bail!(
            "engine.processes > 1 with the chain needs chain.key (the admin key registers the workers' keys)"
        );
    };
    let contract = flytrap_chain::types::parse_address(contract)
        .map_err(|e| anyhow::anyhow!("chain.contract: {e}"))?;
    let key = flytrap_chain::keyfile::read_key(key_file)
        .with_context(|| format!("chain.key {}", key_file.display()))?;
    super::replay::ensure(spool_dir)?;
    let workers = (0..count)
        .map(|i| ensure_key(spool_dir, i).map(|k| k.address()))
        .collect::<Result<Vec<_>, _>>()?;
    let provisioner = Provisioner::new(Client::new(rpc, contract, Some(key.clone()))?, workers);
    let rt = runtime()?;
    let mut retry = CHECK_INTERVAL;
    match rt.block_on(provisioner.run_once()) {
        Ok(done) => done.iter().for_each(|d| tracing::info!("{d}")),
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "cannot set up the workers' operator keys yet; retrying");
            retry = Duration::from_secs(5);
        }
        Err(e) => return Err(e.into()),
    }
    let drain = start_drain(rpc, contract, key, spool_dir)?;
    let drained = drain.as_ref().map(|d| d.handle());
    std::thread::Builder::new()
        .name("flytrap-operators".into())
        .spawn(move || {
            loop {
                std::thread::sleep(retry);
                // The drain writes with the operator key: no transaction of ours meanwhile,
                // or both would take the same nonce.
                if drained
                    .as_ref()
                    .is_some_and(|h| h.status().audit_pending > 0)
                {
                    retry = Duration::from_secs(5);
                    continue;
                }
                match rt.block_on(provisioner.run_once()) {
                    Ok(done) => {
                        done.iter().for_each(|d| tracing::info!("{d}"));
                        retry = CHECK_INTERVAL;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "workers' operator keys: retrying");
                        retry = Duration::from_secs(5);
                    }
                }
            }
        })
        .context("cannot start the operators thread")?;
    Ok(Supervision { _drain: drain })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime for the chain")
}

/// A chain service over `<spool.dir>` itself when a single-process run left records there.
fn start_drain(
    rpc: &str,
    contract: Address,
    key: PrivateKeySigner,
    spool_dir: &Path,
) -> anyhow::Result<Option<flytrap_chain::ChainService>> {
    let has_segments = std::fs::read_dir(spool_dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("seg-"))
    });
    if !has_segments {
        return Ok(None);
    }
    let pending = flytrap_chain::Spool::open(spool_dir)?.pending_count();
    if pending == 0 {
        return Ok(None);
    }
    tracing::info!(
        pending,
        "writing the records a single-process run left in the spool"
    );
    let mut chain = flytrap_chain::ChainConfig::new(rpc, contract);
    chain.key = Some(key);
    chain.spool_dir = Some(spool_dir.to_path_buf());
    chain.follow_events = false;
    Ok(Some(flytrap_chain::ChainService::start(chain)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_key(dir.path(), 1).unwrap();
        let b = ensure_key(dir.path(), 1).unwrap();
        assert_eq!(a.address(), b.address());
        assert_ne!(a.address(), ensure_key(dir.path(), 0).unwrap().address());
        let mode = std::fs::metadata(key_path(dir.path(), 1))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
