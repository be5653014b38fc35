//! `flytrap audit (failures|bans|client ADDRESS|sensitive|changes) [--since T] [--until T]
//! [--json]`: reports from the audit records and the ACL change log on the chain.
//!
//! The records come from [`crate::report`], the same query code as the web page's API
//! (`/api/audit/REPORT`), through the block-by-time index kept in `--index DIR`.
//! `--since`/`--until` select by the time each record carries (when the proxy saw it, which
//! may be earlier than the block it was written in: records wait in the spool while the node
//! is down), inclusive; rows are in that time order.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::time::parse_time;
use super::{ChainOpts, address_arg, block_on};
use crate::report::{Reader, Report, Window};

/// Where the block-by-time index is kept unless `--index` says otherwise.
pub const DEFAULT_INDEX_DIR: &str = "./.flytrap/index";

#[derive(Debug, Args)]
pub struct Audit {
    /// The report.
    pub report: Report,
    /// The client's address (only with `client`).
    pub address: Option<String>,
    /// Only records at or after this time (Unix seconds or UTC date/time, e.g.
    /// 2026-01-31T12:00Z).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only records at or before this time.
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// One JSON array on stdout instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexOpts,
    #[command(flatten)]
    pub chain: ChainOpts,
}

/// Where the block-by-time index lives.
#[derive(Debug, Clone, Default, Args)]
pub struct IndexOpts {
    /// Directory of the block-by-time index (one file per chain and contract)
    /// [default: ./.flytrap/index].
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Keep no index file: read the chain's whole log at each start.
    #[arg(long, conflicts_with = "index")]
    pub no_index: bool,
}

impl IndexOpts {
    /// The directory, or `None` for memory only.
    pub fn dir(&self) -> Option<PathBuf> {
        if self.no_index {
            return None;
        }
        Some(
            self.index
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_INDEX_DIR)),
        )
    }
}

impl Audit {
    pub fn run(self) -> anyhow::Result<()> {
        let what = format!("audit {}", self.report.name());
        self.apply().context(what)
    }

    fn apply(&self) -> anyhow::Result<()> {
        let since = self
            .since
            .as_deref()
            .map(parse_time)
            .transpose()
            .context("--since")?;
        let until = self
            .until
            .as_deref()
            .map(parse_time)
            .transpose()
            .context("--until")?;
        let window = Window::new(since, until)?;
        let who = match (self.report, &self.address) {
            (Report::Client, Some(a)) => Some(address_arg("ADDRESS", a)?),
            (Report::Client, None) => anyhow::bail!("which client? flytrap audit client ADDRESS"),
            (_, Some(a)) => {
                anyhow::bail!("unexpected argument '{a}' (only `audit client` takes an address)")
            }
            (_, None) => None,
        };
        let query = self.report.query(who, window)?;
        let client = self.chain.resolve()?.reader()?;
        let dir = self.index.dir();
        let answer = block_on(async {
            let mut reader = Reader::open(client, dir.as_deref()).await?;
            reader.refresh().await?;
            reader.query(&query).await
        })??;
        if self.json {
            let all: Vec<_> = answer
                .records
                .iter()
                .map(|r| r.json(&answer.names))
                .collect();
            println!("{}", serde_json::Value::Array(all));
        } else {
            for r in &answer.records {
                println!("{}", r.text(&answer.names));
            }
        }
        Ok(())
    }
}
