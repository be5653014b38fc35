//! The development profile's chain (SPEC §5): an anvil on 127.0.0.1:8545 started when nothing
//! answers there, the contract deployed once with anvil's first dev account as operator, and
//! the address and the operator key kept in the state directory (`./.flytrap/contract`,
//! `./.flytrap/operator.key`).
//!
//! On later runs the saved contract is reused when its code is at that address (the anvil this
//! starts keeps its chain in `<state>/anvil-state.json`, so it survives restarts); otherwise it
//! is deployed again and the file updated. The anvil binary: `$FLYTRAP_ANVIL`, the pinned one
//! in `contracts/node_modules` (`npm ci`), or `anvil` on `PATH`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use flytrap_chain::anvil::{Anvil, AnvilOptions, DEV_KEYS};
use flytrap_chain::keyfile::{read_key, write_new_key};
use flytrap_chain::{Address, Client, PrivateKeySigner, parse_address};

use crate::cmd::{CONTRACT_FILE, OPERATOR_KEY_FILE, write_atomic};

/// The development chain's JSON-RPC address.
pub const CHAIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8545);

/// An anvil this process started; stopped (gracefully, so it saves its chain) when dropped.
#[derive(Debug)]
pub struct StartedAnvil(Anvil);

impl StartedAnvil {
    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }
}

/// What the development chain is, once ensured.
#[derive(Debug, Clone)]
pub struct DevChain {
    /// `http://127.0.0.1:8545`.
    pub rpc: String,
    /// The deployed contract.
    pub contract: Address,
    /// The operator key file.
    pub key: PathBuf,
}

/// [`ensure_dev_chain_at`] on 127.0.0.1:8545.
pub fn ensure_dev_chain(state: &Path) -> anyhow::Result<Option<StartedAnvil>> {
    Ok(ensure_dev_chain_at(state, CHAIN)?.1)
}

/// Makes sure a chain answers at `addr` (starting anvil there when nothing does) with the
/// contract deployed, and the state directory holding its address and the operator key.
pub fn ensure_dev_chain_at(
    state: &Path,
    addr: SocketAddr,
) -> anyhow::Result<(DevChain, Option<StartedAnvil>)> {
    std::fs::create_dir_all(state).with_context(|| format!("cannot create {}", state.display()))?;
    let started = if TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
        tracing::info!(%addr, "using the chain node already listening");
        None
    } else {
        let anvil = Anvil::start_with(&AnvilOptions {
            port: addr.port(),
            state: Some(state.join("anvil-state.json")),
            log: Some(state.join("anvil.log")),
            ..AnvilOptions::default()
        })
        .context("cannot start the development chain")?;
        tracing::info!(%addr, pid = anvil.pid(), "started anvil");
        Some(StartedAnvil(anvil))
    };
    let rpc = format!("http://{addr}");

    let key_path = state.join(OPERATOR_KEY_FILE);
    let signer: PrivateKeySigner = if key_path.exists() {
        read_key(&key_path)?
    } else {
        let dev: PrivateKeySigner = DEV_KEYS[0].parse().context("dev key")?;
        write_new_key(&key_path, &dev)?;
        dev
    };

    let contract_path = state.join(CONTRACT_FILE);
    let saved = std::fs::read_to_string(&contract_path)
        .ok()
        .and_then(|t| parse_address(t.trim()).ok());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start an async runtime")?;
    let contract = rt.block_on(async {
        if let Some(a) = saved {
            let c = Client::new(&rpc, a, None)?;
            if !c.code().await?.is_empty() {
                tracing::info!(contract = %a, "using the deployed contract");
                return anyhow::Ok(a);
            }
            tracing::info!(contract = %a, "no contract at the saved address any more: deploying again");
        }
        let (client, tx) = Client::deploy(&rpc, signer.clone())
            .await
            .context("cannot deploy the contract on the development chain")?;
        tracing::info!(contract = %client.address(), block = tx.block, "deployed the FlyTrap contract");
        Ok(client.address())
    })?;
    if saved != Some(contract) {
        write_atomic(&contract_path, &format!("{contract:#x}\n"))?;
    }
    Ok((
        DevChain {
            rpc,
            contract,
            key: key_path,
        },
        started,
    ))
}
