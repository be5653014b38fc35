//! `flytrap operator add|remove|show ADDRESS`: who may write audit records (admin only; the
//! contract's `setOperator(ADDRESS, true|false)` and `operator(ADDRESS)`).
//!
//! Every proxy of a fleet writes audit records with its own operator key (the contract numbers
//! records per operator; two writers on one key would make it skip records), so each proxy's
//! `chain.key` is registered once by the admin.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{ChainOpts, address_arg, block_on, ready};

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Let ADDRESS write audit records (admin key only).
    Add(Target),
    /// Stop ADDRESS writing audit records (admin key only; its records stay).
    Remove(Target),
    /// Whether ADDRESS is an operator, and its last audit seq.
    Show(Target),
}

#[derive(Debug, Args)]
pub struct Target {
    /// The operator's address (0x + 40 hex digits).
    pub address: String,
    #[command(flatten)]
    pub chain: ChainOpts,
}

impl OperatorCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let (verb, t) = match &self {
            OperatorCommand::Add(t) => ("add", t),
            OperatorCommand::Remove(t) => ("remove", t),
            OperatorCommand::Show(t) => ("show", t),
        };
        let who = address_arg("ADDRESS", &t.address)?;
        let r = t.chain.resolve()?;
        let what = format!("operator {verb} {who:#x}");
        block_on(async {
            if let OperatorCommand::Show(_) = self {
                let client = r.reader()?;
                ready(&client).await?;
                let (on, seq) = client.operator(who).await?;
                println!(
                    "{who:#x}  operator {}  last seq {seq}",
                    if on { "yes" } else { "no" }
                );
                return Ok(());
            }
            let client = r.writer()?;
            ready(&client).await?;
            let tx = match self {
                OperatorCommand::Add(_) => client.set_operator(who, true).await?,
                _ => client.set_operator(who, false).await?,
            };
            println!("{verb} {who:#x} (block {}, tx {:#x})", tx.block, tx.hash);
            Ok::<(), anyhow::Error>(())
        })?
        .context(what)
    }
}
