//! `flytrap topic create|show|list`.

use anyhow::Context;
use clap::{Args, Subcommand};
use flytrap_chain::{Client, Country, Fee, TopicInfo, TopicSpec, topic_id};

use super::audit::IndexOpts;
use super::{ChainOpts, block_on, ready, wei_arg};
use crate::report::Reader;
use crate::report::acl::Acl;

/// The topic list and members from the contract's events, through the block index (the
/// contract keeps no list).
async fn acl(client: &Client, index: &IndexOpts) -> anyhow::Result<std::sync::Arc<Acl>> {
    let mut reader = Reader::open(client.clone(), index.dir().as_deref()).await?;
    reader.refresh().await?;
    Ok(reader.acl())
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Register a topic (or filter) owned by the --key account. Fees: without --pub-fee /
    /// --sub-fee the action is closed to self-service join (only your grants add members);
    /// 0 = anyone may join for free; N = anyone may join by paying N wei, where N must be
    /// m × 10^e with m < 2^34 (the contract stores fees in 40 bits).
    Create(Create),
    /// Show a topic: owner, fees, countries, sensitive flag, publishers and subscribers.
    Show(Show),
    /// List every topic.
    List(List),
}

#[derive(Debug, Args)]
pub struct Create {
    /// The exact topic string (a filter with + or # is allowed).
    pub name: String,
    /// Only clients located in this country (ISO 3166 alpha-2, e.g. DE); repeat for more.
    /// None = anywhere.
    #[arg(long = "country", value_name = "CC")]
    pub countries: Vec<String>,
    /// Fee in wei to join as publisher [default: closed to joining].
    #[arg(long, value_name = "WEI", allow_hyphen_values = true)]
    pub pub_fee: Option<String>,
    /// Fee in wei to join as subscriber [default: closed to joining].
    #[arg(long, value_name = "WEI", allow_hyphen_values = true)]
    pub sub_fee: Option<String>,
    /// Report who publishes to and receives from this topic (audit trail).
    #[arg(long)]
    pub sensitive: bool,
    /// Why (kept in the change log on the chain).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,
    #[command(flatten)]
    pub chain: ChainOpts,
}

#[derive(Debug, Args)]
pub struct Show {
    /// The topic string.
    pub name: String,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexOpts,
    #[command(flatten)]
    pub chain: ChainOpts,
}

#[derive(Debug, Args)]
pub struct List {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexOpts,
    #[command(flatten)]
    pub chain: ChainOpts,
}

impl TopicCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            TopicCommand::Create(c) => {
                let name = c.name.clone();
                c.run().with_context(|| format!("topic create '{name}'"))
            }
            TopicCommand::Show(s) => s.run(),
            TopicCommand::List(l) => l.run(),
        }
    }
}

/// A fee option: none = closed, 0 = free; a fee the contract cannot store exactly (not
/// m × 10^e wei with m < 2^34) is refused here, before anything is sent.
fn fee_arg(what: &str, v: &Option<String>) -> anyhow::Result<Fee> {
    let fee = match v {
        None => Fee::Closed,
        Some(s) => match wei_arg(what, s)? {
            0 => Fee::Free,
            w => Fee::Wei(w),
        },
    };
    fee.check().map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(fee)
}

impl Create {
    fn run(self) -> anyhow::Result<()> {
        if self.name.is_empty() {
            anyhow::bail!("the topic name is empty");
        }
        flytrap_proto::topic::validate_topic_filter(&self.name)
            .map_err(|e| anyhow::anyhow!("not a valid MQTT topic or filter: {e}"))?;
        let countries = self
            .countries
            .iter()
            .map(|c| c.parse::<Country>())
            .collect::<Result<Vec<_>, _>>()?;
        let spec = TopicSpec {
            countries,
            pub_fee: fee_arg("--pub-fee", &self.pub_fee)?,
            sub_fee: fee_arg("--sub-fee", &self.sub_fee)?,
            sensitive: self.sensitive,
        };
        let client = self.chain.resolve()?.writer()?;
        let (id, tx) = block_on(async {
            ready(&client).await?;
            anyhow::Ok(client.create_topic(&self.name, &spec, &self.reason).await?)
        })??;
        println!("{id:#x}");
        eprintln!(
            "created topic '{}' (publish: {}, subscribe: {}) in block {}, tx {:#x}",
            self.name, spec.pub_fee, spec.sub_fee, tx.block, tx.hash
        );
        Ok(())
    }
}

fn countries_text(cs: &[Country]) -> String {
    if cs.is_empty() {
        "anywhere".into()
    } else {
        cs.iter()
            .map(Country::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn fee_json(f: Fee) -> serde_json::Value {
    match f {
        Fee::Free => serde_json::json!(0),
        Fee::Closed => serde_json::json!("closed"),
        Fee::Wei(w) => serde_json::json!(w.to_string()),
    }
}

fn topic_json(t: &TopicInfo) -> serde_json::Value {
    serde_json::json!({
        "name": t.name,
        "id": format!("{:#x}", t.id),
        "owner": format!("{:#x}", t.owner),
        "countries": t.countries.iter().map(Country::to_string).collect::<Vec<_>>(),
        "pub_fee": fee_json(t.pub_fee),
        "sub_fee": fee_json(t.sub_fee),
        "sensitive": t.sensitive,
    })
}

impl Show {
    fn run(self) -> anyhow::Result<()> {
        let client = self.chain.resolve()?.reader()?;
        let (t, publishers, subscribers) = block_on(async {
            ready(&client).await?;
            let t = client.topic_by_name(&self.name).await?;
            let acl = acl(&client, &self.index).await?;
            let (p, s) = acl.get(&t.id).map_or((vec![], vec![]), |e| {
                (
                    e.publishers.iter().copied().collect(),
                    e.subscribers.iter().copied().collect(),
                )
            });
            anyhow::Ok((t, p, s))
        })?
        .with_context(|| format!("topic show '{}'", self.name))?;
        let list = |v: &[flytrap_chain::Address]| -> Vec<String> {
            let mut v: Vec<String> = v.iter().map(|a| format!("{a:#x}")).collect();
            v.sort();
            v
        };
        if self.json {
            let mut j = topic_json(&t);
            j["publishers"] = serde_json::json!(list(&publishers));
            j["subscribers"] = serde_json::json!(list(&subscribers));
            println!("{j}");
            return Ok(());
        }
        let row = |label: &str, value: String| println!("{label:<14}{value}");
        row("name", t.name.clone());
        row("id", format!("{:#x}", t.id));
        row("owner", format!("{:#x}", t.owner));
        row("countries", countries_text(&t.countries));
        row("publish fee", t.pub_fee.to_string());
        row("subscribe fee", t.sub_fee.to_string());
        row("sensitive", if t.sensitive { "yes" } else { "no" }.into());
        row("publishers", list(&publishers).join(" "));
        row("subscribers", list(&subscribers).join(" "));
        debug_assert_eq!(t.id, topic_id(&t.name));
        Ok(())
    }
}

impl List {
    fn run(self) -> anyhow::Result<()> {
        let client = self.chain.resolve()?.reader()?;
        let topics = block_on(async {
            ready(&client).await?;
            let acl = acl(&client, &self.index).await?;
            // Names and order from the events; countries, fees and flags from the contract,
            // 64 topics at a time.
            let mut out = Vec::with_capacity(acl.len());
            for chunk in acl.topics().chunks(64) {
                let mut tasks = tokio::task::JoinSet::new();
                for (i, t) in chunk.iter().enumerate() {
                    let c = client.clone();
                    let id = t.id;
                    tasks.spawn(async move { (i, c.topic(id).await) });
                }
                let mut got: Vec<Option<TopicInfo>> = vec![None; chunk.len()];
                while let Some(done) = tasks.join_next().await {
                    let (i, info) = done?;
                    got[i] = info?;
                }
                for (t, info) in chunk.iter().zip(got) {
                    if let Some(mut info) = info {
                        info.name = t.name.clone();
                        out.push(info);
                    }
                }
            }
            anyhow::Ok(out)
        })?
        .context("topic list")?;
        if self.json {
            let all: Vec<_> = topics.iter().map(topic_json).collect();
            println!("{}", serde_json::Value::Array(all));
            return Ok(());
        }
        for t in &topics {
            println!(
                "{}\towner {:#x}\tpub {}\tsub {}\t{}{}",
                t.name,
                t.owner,
                t.pub_fee,
                t.sub_fee,
                countries_text(&t.countries),
                if t.sensitive { "\tsensitive" } else { "" }
            );
        }
        Ok(())
    }
}
