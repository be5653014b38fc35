//! `flytrap audit (failures|bans|client ADDRESS|sensitive|changes) [--since T] [--until T]
//! [--json]`: reports from the audit records and the ACL change log on the chain.
//!
//! `--since`/`--until` select by the time each record carries (when the proxy saw it, which
//! may be earlier than the block it was written in: records wait in the spool while the node
//! is down), inclusive; rows are in that time order. The whole log of the contract is read.

use std::collections::HashMap;

use anyhow::Context;
use clap::{Args, ValueEnum};
use flytrap_chain::bindings::FlyTrap;
use flytrap_chain::types::bytes16_to_ip;
use flytrap_chain::{Action, Address, B256, Change, Client, Country, Logged};
use serde_json::{Value, json};

use super::time::{format_time, parse_time};
use super::{ChainOpts, address_arg, block_on, ready};

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Report {
    /// Failed CONNECTs (bad credentials, banned, …) and wrong-country refusals.
    Failures,
    /// IP bans.
    Bans,
    /// Everything about one client ADDRESS: failures, refusals, ACL changes, sensitive
    /// reports naming it.
    Client,
    /// Reports of who published to / received from sensitive topics.
    Sensitive,
    /// The ACL change log: topics created and updated, grants, revocations, joins.
    Changes,
}

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
    pub chain: ChainOpts,
}

/// One line of a report.
struct Row {
    block: u64,
    log_index: u64,
    time: u64,
    text: String,
    json: Value,
}

fn reason_name(code: u8) -> &'static str {
    match code {
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x9F => "connection rate exceeded",
        _ => "other",
    }
}

fn addr(a: &Address) -> String {
    format!("{a:#x}")
}

fn action_text(code: u8) -> String {
    match Action::from_code(code) {
        Some(a) => a.short().to_string(),
        None => "-".into(),
    }
}

impl Audit {
    pub fn run(self) -> anyhow::Result<()> {
        let what = match &self.report {
            Report::Failures => "audit failures",
            Report::Bans => "audit bans",
            Report::Client => "audit client",
            Report::Sensitive => "audit sensitive",
            Report::Changes => "audit changes",
        };
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
        let who = match (self.report, &self.address) {
            (Report::Client, Some(a)) => Some(address_arg("ADDRESS", a)?),
            (Report::Client, None) => anyhow::bail!("which client? flytrap audit client ADDRESS"),
            (_, Some(a)) => {
                anyhow::bail!("unexpected argument '{a}' (only `audit client` takes an address)")
            }
            (_, None) => None,
        };
        let client = self.chain.resolve()?.reader()?;
        let mut rows = block_on(async {
            ready(&client).await?;
            self.collect(&client, who).await
        })??;
        rows.retain(|r| since.is_none_or(|s| r.time >= s) && until.is_none_or(|u| r.time <= u));
        rows.sort_by_key(|r| (r.time, r.block, r.log_index));
        if self.json {
            let all: Vec<Value> = rows.into_iter().map(|r| r.json).collect();
            println!("{}", Value::Array(all));
        } else {
            for r in rows {
                println!("{}", r.text);
            }
        }
        Ok(())
    }

    async fn collect(&self, c: &Client, who: Option<Address>) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        let names = topic_names(c).await?;
        let topic = |id: &B256| names.get(id).cloned().unwrap_or_else(|| format!("{id:#x}"));
        let want_failures = matches!(self.report, Report::Failures | Report::Client);
        if want_failures {
            for l in c.events::<FlyTrap::ConnectFailed>(0, None).await? {
                let e = &l.event;
                if who.is_some_and(|w| w != e.client) {
                    continue;
                }
                let ip = bytes16_to_ip(e.ip);
                let client_text = if e.client == Address::ZERO {
                    "-".to_string()
                } else {
                    addr(&e.client)
                };
                rows.push(row(
                    &l,
                    e.time,
                    format!(
                        "{}  connect-failed  ip {ip}  client {client_text}  reason 0x{:02x} ({})  seq {}",
                        format_time(e.time),
                        e.reason,
                        reason_name(e.reason),
                        e.seq
                    ),
                    json!({"kind": "connect-failed", "time": e.time, "ip": ip.to_string(),
                        "client": (e.client != Address::ZERO).then(|| addr(&e.client)),
                        "reason": e.reason, "reason_text": reason_name(e.reason), "seq": e.seq}),
                ));
            }
            for l in c.events::<FlyTrap::WrongCountry>(0, None).await? {
                let e = &l.event;
                if who.is_some_and(|w| w != e.client) {
                    continue;
                }
                let ip = bytes16_to_ip(e.ip);
                let country = Country::from_bytes2(e.country);
                rows.push(row(
                    &l,
                    e.time,
                    format!(
                        "{}  wrong-country  ip {ip} ({country})  client {}  topic '{}'  seq {}",
                        format_time(e.time),
                        addr(&e.client),
                        topic(&e.topicId),
                        e.seq
                    ),
                    json!({"kind": "wrong-country", "time": e.time, "ip": ip.to_string(),
                        "country": country.to_string(), "client": addr(&e.client),
                        "topic": topic(&e.topicId), "topic_id": format!("{:#x}", e.topicId), "seq": e.seq}),
                ));
            }
        }
        if matches!(self.report, Report::Bans) {
            for l in c.events::<FlyTrap::Banned>(0, None).await? {
                let e = &l.event;
                let ip = bytes16_to_ip(e.ip);
                rows.push(row(
                    &l,
                    e.time,
                    format!(
                        "{}  ban  ip {ip}  until {}  after {} failures  seq {}",
                        format_time(e.time),
                        format_time(e.until),
                        e.failures,
                        e.seq
                    ),
                    json!({"kind": "ban", "time": e.time, "ip": ip.to_string(), "until": e.until,
                        "failures": e.failures, "seq": e.seq}),
                ));
            }
        }
        if matches!(self.report, Report::Sensitive | Report::Client) {
            for l in c.events::<FlyTrap::SensitiveReport>(0, None).await? {
                let e = &l.event;
                if let Some(w) = who
                    && !e.publishers.contains(&w)
                    && !e.receivers.contains(&w)
                {
                    continue;
                }
                let list = |v: &[Address]| v.iter().map(addr).collect::<Vec<_>>();
                rows.push(row(
                    &l,
                    e.to,
                    format!(
                        "{}  sensitive  topic '{}'  {} .. {}  publishers [{}]  receivers [{}]  seq {}",
                        format_time(e.to),
                        topic(&e.topicId),
                        format_time(e.from),
                        format_time(e.to),
                        list(&e.publishers).join(" "),
                        list(&e.receivers).join(" "),
                        e.seq
                    ),
                    json!({"kind": "sensitive-report", "time": e.to, "topic": topic(&e.topicId),
                        "topic_id": format!("{:#x}", e.topicId), "from": e.from, "to": e.to,
                        "publishers": list(&e.publishers), "receivers": list(&e.receivers), "seq": e.seq}),
                ));
            }
        }
        if matches!(self.report, Report::Changes | Report::Client) {
            for l in c.events::<FlyTrap::AclChanged>(0, None).await? {
                let e = &l.event;
                if who.is_some_and(|w| w != e.target && w != e.source) {
                    continue;
                }
                let change = Change::from_code(e.change).word();
                rows.push(row(
                    &l,
                    e.timestamp,
                    format!(
                        "{}  {change}  topic '{}'  {}  target {}  by {}{}",
                        format_time(e.timestamp),
                        topic(&e.topicId),
                        action_text(e.action),
                        addr(&e.target),
                        addr(&e.source),
                        if e.reason.is_empty() {
                            String::new()
                        } else {
                            format!("  reason {:?}", e.reason)
                        }
                    ),
                    json!({"kind": "acl-change", "change": change, "time": e.timestamp,
                        "topic": topic(&e.topicId), "topic_id": format!("{:#x}", e.topicId),
                        "action": Action::from_code(e.action).map(|a| a.short()),
                        "target": addr(&e.target), "source": addr(&e.source), "reason": e.reason,
                        "block": l.block, "tx": format!("{:#x}", l.tx)}),
                ));
            }
        }
        Ok(rows)
    }
}

fn row<E>(l: &Logged<E>, time: u64, text: String, mut json: Value) -> Row {
    if json.get("block").is_none() {
        json["block"] = json!(l.block);
        json["tx"] = json!(format!("{:#x}", l.tx));
    }
    Row {
        block: l.block,
        log_index: l.log_index,
        time,
        text,
        json,
    }
}

/// Topic names by id, from the creation events.
async fn topic_names(c: &Client) -> anyhow::Result<HashMap<B256, String>> {
    Ok(c.events::<FlyTrap::TopicCreated>(0, None)
        .await?
        .into_iter()
        .map(|l| (l.event.topicId, l.event.name))
        .collect())
}
