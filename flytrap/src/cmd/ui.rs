//! `flytrap ui [--listen ADDR]`: serves the read-only web page (see [`crate::ui`]).

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;

use super::ChainOpts;
use super::audit::IndexOpts;
use crate::ui::{UiConfig, serve};

/// The development profile's web page address (SPEC §5).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Args)]
pub struct Ui {
    /// Address to serve the page on (port 0: any free port; the URL is printed)
    /// [default: [ui] listen of --config or FLYTRAP_UI_LISTEN, else 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Link transactions and blocks to this block explorer ({URL}/tx/HASH, {URL}/block/N)
    /// instead of the page's own JSON views (/api/tx/HASH, /api/block/N).
    #[arg(long, value_name = "URL")]
    pub explorer: Option<String>,
    #[command(flatten)]
    pub index: IndexOpts,
    #[command(flatten)]
    pub chain: ChainOpts,
}

impl Ui {
    /// `--listen`, else `[ui] listen` of `--config` (with `FLYTRAP_UI_*` applied), else the
    /// default.
    fn listen(&self) -> anyhow::Result<SocketAddr> {
        if let Some(a) = self.listen {
            return Ok(a);
        }
        let env = std::env::vars().filter(|(k, _)| k.starts_with("FLYTRAP_UI_"));
        let ui = match &self.chain.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                crate::config::parse(&text, env)
                    .with_context(|| format!("{}", path.display()))?
                    .ui
            }
            None => crate::config::parse("", env)?.ui,
        };
        match ui.listen {
            Some(a) => Ok(a),
            None => DEFAULT_LISTEN.parse().context("the default listen address"),
        }
    }

    pub fn run(self) -> anyhow::Result<()> {
        if let Some(e) = &self.explorer
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            anyhow::bail!("--explorer: '{e}' is not an http:// or https:// URL");
        }
        let client = self.chain.resolve()?.reader()?;
        let config = UiConfig {
            listen: self.listen()?,
            explorer: self.explorer,
            index_dir: self.index.dir(),
        };
        // The server's tasks are I/O-bound; a second thread keeps a slow query from stalling
        // the page's other requests.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start an async runtime")?;
        rt.block_on(serve(client, config)).context("ui")
    }
}
