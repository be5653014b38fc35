//! `flytrap deploy`, `grant`, `revoke`, `join`, `withdraw`.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use flytrap_chain::{Action, Client, Fee, U256};

use super::{CONTRACT_FILE, ChainOpts, address_arg, block_on, ready, wei_arg, write_atomic};
use crate::dev::STATE_DIR;

/// `pub` or `sub` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    /// Publish.
    Pub,
    /// Subscribe.
    Sub,
}

impl From<ActionArg> for Action {
    fn from(a: ActionArg) -> Action {
        match a {
            ActionArg::Pub => Action::Publish,
            ActionArg::Sub => Action::Subscribe,
        }
    }
}

#[derive(Debug, Args)]
pub struct Deploy {
    /// Also write the address to ./.flytrap/contract, the default of later commands.
    #[arg(long)]
    pub save: bool,
    #[command(flatten)]
    pub chain: ChainOpts,
}

impl Deploy {
    pub fn run(self) -> anyhow::Result<()> {
        let r = self.chain.resolve()?;
        let signer = r.signer()?;
        let (client, tx) = block_on(Client::deploy(&r.rpc, signer))?.context("deploy")?;
        let address = format!("{:#x}", client.address());
        if self.save {
            write_atomic(
                &std::path::Path::new(STATE_DIR).join(CONTRACT_FILE),
                &format!("{address}\n"),
            )?;
        }
        println!("{address}");
        eprintln!(
            "deployed in block {} (gas {}, tx {:#x}); operator {:#x}",
            tx.block,
            tx.gas_used,
            tx.hash,
            client.sender().unwrap_or_default()
        );
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct Change {
    /// pub or sub.
    pub action: ActionArg,
    /// The topic string.
    pub topic: String,
    /// The client addresses (0x + 40 hex digits), one or more.
    #[arg(required_unless_present = "from", value_name = "ADDRESS")]
    pub addresses: Vec<String>,
    /// Also every address in FILE (one per line; blank lines and # comments skipped), for
    /// granting a fleet of clients in one command.
    #[arg(long, value_name = "FILE")]
    pub from: Option<std::path::PathBuf>,
    /// Why (kept in the change log on the chain).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub chain: ChainOpts,
}

impl Change {
    /// `grant` (true) or `revoke` (false).
    pub fn run(self, grant: bool) -> anyhow::Result<()> {
        let verb = if grant { "grant" } else { "revoke" };
        let what = format!("{verb} {} on '{}'", self.action_word(), self.topic);
        self.apply(grant).with_context(|| what)
    }

    fn action_word(&self) -> &'static str {
        Action::from(self.action).short()
    }

    /// Every address, checked before any transaction is sent: a bad line changes nothing.
    fn targets(&self) -> anyhow::Result<Vec<flytrap_chain::Address>> {
        let mut out = Vec::new();
        for a in &self.addresses {
            out.push(address_arg("ADDRESS", a)?);
        }
        if let Some(path) = &self.from {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let what = format!("{} line {}", path.display(), n + 1);
                out.push(address_arg(&what, line)?);
            }
        }
        Ok(out)
    }

    fn apply(&self, grant: bool) -> anyhow::Result<()> {
        let targets = self.targets()?;
        let client = self.chain.resolve()?.writer()?;
        let action = Action::from(self.action);
        let quiet = targets.len() > 10;
        let txs = block_on(async {
            ready(&client).await?;
            let t = client.topic_by_name(&self.topic).await?;
            anyhow::Ok(
                client
                    .change_many(t.id, &targets, action, &self.reason, grant)
                    .await?,
            )
        })??;
        let first = txs.iter().map(|t| t.block).min().unwrap_or_default();
        let last = txs.iter().map(|t| t.block).max().unwrap_or_default();
        if !quiet {
            for (who, tx) in targets.iter().zip(&txs) {
                println!(
                    "{} {} on '{}' {} {who:#x} (block {}, tx {:#x})",
                    if grant { "granted" } else { "revoked" },
                    action,
                    self.topic,
                    if grant { "to" } else { "from" },
                    tx.block,
                    tx.hash
                );
            }
        }
        if quiet {
            println!(
                "{} {} on '{}' {} {} addresses (blocks {first}-{last})",
                if grant { "granted" } else { "revoked" },
                action,
                self.topic,
                if grant { "to" } else { "from" },
                targets.len()
            );
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct Join {
    /// pub or sub.
    pub action: ActionArg,
    /// The topic string.
    pub topic: String,
    /// Pay exactly this many wei [default: the topic's current fee].
    #[arg(long, value_name = "WEI", allow_hyphen_values = true)]
    pub fee: Option<String>,
    /// Refuse to pay more than this many wei.
    #[arg(long, value_name = "WEI", allow_hyphen_values = true)]
    pub max_fee: Option<String>,
    #[command(flatten)]
    pub chain: ChainOpts,
}

impl Join {
    pub fn run(self) -> anyhow::Result<()> {
        let what = format!(
            "join {} on '{}'",
            Action::from(self.action).short(),
            self.topic
        );
        self.apply().with_context(|| what)
    }

    fn apply(&self) -> anyhow::Result<()> {
        let fee = self
            .fee
            .as_deref()
            .map(|f| wei_arg("--fee", f))
            .transpose()?;
        let max = self
            .max_fee
            .as_deref()
            .map(|f| wei_arg("--max-fee", f))
            .transpose()?;
        let client = self.chain.resolve()?.writer()?;
        let action = Action::from(self.action);
        let (paid, tx) = block_on(async {
            ready(&client).await?;
            let t = client.topic_by_name(&self.topic).await?;
            let current = match action {
                Action::Publish => t.pub_fee,
                Action::Subscribe => t.sub_fee,
            };
            let pay = match (fee, current) {
                (Some(f), _) => f,
                (None, Fee::Closed) => bail!(
                    "the topic is closed to self-service join (only its owner's grants add members)"
                ),
                (None, f) => f.to_raw(),
            };
            if let Some(m) = max
                && pay > m
            {
                bail!("the fee is {pay} wei, more than --max-fee {m}");
            }
            let tx = client.join(t.id, action, U256::from(pay)).await?;
            anyhow::Ok((pay, tx))
        })??;
        println!(
            "joined '{}' as {} for {paid} wei (block {}, tx {:#x})",
            self.topic,
            if action == Action::Publish {
                "publisher"
            } else {
                "subscriber"
            },
            tx.block,
            tx.hash
        );
        Ok(())
    }
}

#[derive(Debug, Args)]
pub struct Withdraw {
    /// The topic (exact name) whose join fees to collect; you must own it.
    pub topic: String,
    #[command(flatten)]
    pub chain: ChainOpts,
}

impl Withdraw {
    pub fn run(self) -> anyhow::Result<()> {
        let client = self.chain.resolve()?.writer()?;
        let id = flytrap_chain::topic_id(&self.topic);
        let (amount, txs) = block_on(async {
            ready(&client).await?;
            anyhow::Ok(client.withdraw(id).await?)
        })?
        .with_context(|| format!("withdraw '{}'", self.topic))?;
        let last = txs.last().copied();
        match (txs.len(), last) {
            (1, Some(tx)) => println!(
                "withdrew {amount} wei from '{}' (block {}, tx {:#x})",
                self.topic, tx.block, tx.hash
            ),
            (n, Some(tx)) => println!(
                "withdrew {amount} wei from '{}' in {n} transactions (last: block {}, tx {:#x})",
                self.topic, tx.block, tx.hash
            ),
            _ => println!("withdrew {amount} wei from '{}'", self.topic),
        }
        Ok(())
    }
}
