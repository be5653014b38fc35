//! The operator's and the client's commands (SPEC §5): `deploy`, `key new`, `sign`, `topic`,
//! `grant`, `revoke`, `join`, `withdraw`, `audit`, `ban`,
//! `operator`. `main.rs` parses the arguments into the
//! types here and calls their `run`.
//!
//! Every command that talks to the chain takes `--rpc URL`, `--contract ADDRESS` and
//! `--key FILE`. Missing ones come from `--config FILE` (section `[chain]`: `rpc`, `contract`,
//! `key`, and the `FLYTRAP_CHAIN_*` variables) when it is given, else from the development
//! profile's state in `./.flytrap/` (`contract`, `operator.key`) and `http://127.0.0.1:8545`.
//! Output goes to stdout; a failure is one line on stderr naming the cause, with a non-zero
//! exit status, and leaves no partial file behind.

pub mod audit;
pub mod ban;
pub mod key;
pub mod operator;
pub mod ops;
pub mod sign;
pub mod time;
pub mod topic;
pub mod ui;

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use flytrap_chain::keyfile::read_key;
use flytrap_chain::{Address, Client, PrivateKeySigner, parse_address};

use crate::dev::STATE_DIR;

/// The development chain's JSON-RPC URL.
pub const DEFAULT_RPC: &str = "http://127.0.0.1:8545";
/// The file in the state directory holding the contract address.
pub const CONTRACT_FILE: &str = "contract";
/// The file in the state directory holding the operator key.
pub const OPERATOR_KEY_FILE: &str = "operator.key";

/// Where the chain is and who signs.
#[derive(Debug, Clone, Default, Args)]
pub struct ChainOpts {
    /// JSON-RPC URL of the chain node [default: [chain] rpc of --config, else
    /// http://127.0.0.1:8545].
    #[arg(long, value_name = "URL")]
    pub rpc: Option<String>,
    /// The FlyTrap contract [default: [chain] contract of --config, else ./.flytrap/contract].
    #[arg(long, value_name = "ADDRESS")]
    pub contract: Option<String>,
    /// Private key file (0x-hex) [default: [chain] key of --config, else
    /// ./.flytrap/operator.key].
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Take the defaults above from this FlyTrap configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// [`ChainOpts`] with the defaults applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub rpc: String,
    pub contract: Option<Address>,
    pub contract_source: String,
    pub key: Option<PathBuf>,
}

impl ChainOpts {
    /// Applies `--config` / `./.flytrap/` defaults.
    pub fn resolve(&self) -> anyhow::Result<Resolved> {
        // Only the [chain] variables matter here; other FLYTRAP_* variables (FLYTRAP_ANVIL …)
        // are not settings of this command.
        let env = std::env::vars().filter(|(k, _)| k.starts_with("FLYTRAP_CHAIN_"));
        let chain = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                crate::config::parse(&text, env)
                    .with_context(|| format!("{}", path.display()))?
                    .chain
            }
            None => crate::config::parse("", env)?.chain,
        };
        let state = Path::new(STATE_DIR);
        let rpc = self
            .rpc
            .clone()
            .or(chain.rpc)
            .unwrap_or_else(|| DEFAULT_RPC.to_string());
        let (contract, contract_source) = match (&self.contract, chain.contract) {
            (Some(c), _) => (Some(c.clone()), "--contract".to_string()),
            (None, Some(c)) => (Some(c), "[chain] contract".to_string()),
            (None, None) if self.config.is_none() => {
                let file = state.join(CONTRACT_FILE);
                match std::fs::read_to_string(&file) {
                    Ok(text) => (Some(text.trim().to_string()), file.display().to_string()),
                    Err(_) => (None, String::new()),
                }
            }
            (None, None) => (None, String::new()),
        };
        let contract = contract
            .map(|c| {
                parse_address(&c).map_err(|e| {
                    if contract_source == "--contract" {
                        anyhow!("{e}")
                    } else {
                        anyhow!("contract address from {contract_source}: {e}")
                    }
                })
            })
            .transpose()?;
        let key = self.key.clone().or(chain.key).or_else(|| {
            let default = state.join(OPERATOR_KEY_FILE);
            (self.config.is_none() && default.exists()).then_some(default)
        });
        Ok(Resolved {
            rpc,
            contract,
            contract_source,
            key,
        })
    }
}

impl Resolved {
    /// The contract address, or an error saying how to give one.
    pub fn contract(&self) -> anyhow::Result<Address> {
        self.contract.ok_or_else(|| {
            anyhow!(
                "no contract address: pass --contract ADDRESS, set [chain] contract in --config, or run `flytrap deploy --save`"
            )
        })
    }

    /// The signing key, or an error saying how to give one.
    pub fn signer(&self) -> anyhow::Result<PrivateKeySigner> {
        let path = self.key.as_ref().ok_or_else(|| {
            anyhow!("no key: pass --key FILE (make one with `flytrap key new --out FILE`)")
        })?;
        Ok(read_key(path)?)
    }

    /// A read-only client (the key is used when there is one, but not required).
    pub fn reader(&self) -> anyhow::Result<Client> {
        Ok(Client::new(&self.rpc, self.contract()?, None)?)
    }

    /// A signing client.
    pub fn writer(&self) -> anyhow::Result<Client> {
        let signer = self.signer()?;
        Ok(Client::new(&self.rpc, self.contract()?, Some(signer))?)
    }
}

/// Runs a future on a current-thread runtime (the commands are short-lived).
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start an async runtime")?;
    Ok(rt.block_on(f))
}

/// Checks that the contract is there before using it (a wrong address would otherwise give
/// puzzling "empty answer" errors).
pub async fn ready(client: &Client) -> anyhow::Result<()> {
    client.ensure_contract().await?;
    Ok(())
}

/// Writes `text` to `path` atomically (temporary file, sync, rename).
pub fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.with_context(|| format!("cannot write {}", path.display()))
}

/// Parses an address argument, naming the argument in the error.
pub fn address_arg(what: &str, s: &str) -> anyhow::Result<Address> {
    parse_address(s).map_err(|e| anyhow!("{what}: {e}"))
}

/// Parses a wei amount (decimal).
pub fn wei_arg(what: &str, s: &str) -> anyhow::Result<u128> {
    let v: u128 = s
        .parse()
        .map_err(|_| anyhow!("{what}: '{s}' is not a whole number of wei"))?;
    if v == flytrap_chain::JOIN_CLOSED {
        bail!("{what}: {v} is reserved (JOIN_CLOSED); leave the fee out to close joining");
    }
    Ok(v)
}
