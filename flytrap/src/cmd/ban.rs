//! `flytrap ban lift IP` and `flytrap ban list`: bans as every proxy of a fleet sees them.
//!
//! Bans travel through the chain: a proxy records `Banned(ip, seq, until, failures, time)` and
//! every proxy's event follower enforces it. A **lift** is one more `Banned` record of the same
//! event, with `failures = 0` and `until = time` (the encoding of
//! [`flytrap_chain::ChainBan::is_lift`]); every proxy then drops the IP's bans decided at or
//! before that time.
//!
//! The lift is written with its own operator key, never with a key a running proxy writes
//! with: audit records carry a per-operator sequence number, and a record sent past a proxy's
//! spool would make the contract skip that proxy's next records. The key is derived from
//! `--key` (keccak-256 of a fixed label and the key), so the same admin key gives the same
//! lift operator on any machine; the first lift registers it (`setOperator`, admin only) and
//! keeps it funded from `--key`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use flytrap_chain::alloy::primitives::keccak256;
use flytrap_chain::bindings::FlyTrap;
use flytrap_chain::{AuditRecord, Client, PrivateKeySigner, U256};

use super::audit::IndexOpts;
use super::time::{format_time, parse_time};
use super::{ChainOpts, block_on, ready};
use crate::report::{Body, Reader, Report, Window};
use crate::workers::operators::{MIN_BALANCE_WEI, TOP_UP_WEI};

/// The label mixed into `--key` to derive the lift operator's key.
const LIFT_KEY_LABEL: &[u8] = b"flytrap ban-lift operator v1";

#[derive(Debug, Subcommand)]
pub enum BanCommand {
    /// Lift the bans of an IP on every proxy following the contract (within one block).
    Lift(Lift),
    /// The IPs banned now, as the chain's records say (every proxy enforces them).
    List(List),
}

impl BanCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            BanCommand::Lift(c) => c.run(),
            BanCommand::List(c) => c.run(),
        }
    }
}

#[derive(Debug, Args)]
pub struct Lift {
    /// The IP address (IPv4 or IPv6).
    pub ip: String,
    #[command(flatten)]
    pub chain: ChainOpts,
}

#[derive(Debug, Args)]
pub struct List {
    /// Look at ban records from this time on (Unix seconds or UTC date/time) [default: 7 days
    /// ago].
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// One JSON array on stdout instead of lines.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub index: IndexOpts,
    #[command(flatten)]
    pub chain: ChainOpts,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ip_arg(s: &str) -> anyhow::Result<IpAddr> {
    s.parse()
        .map_err(|_| anyhow!("IP: '{s}' is not an IPv4 or IPv6 address"))
}

/// The lift operator's key for `key`.
pub fn lift_key(key: &PrivateKeySigner) -> anyhow::Result<PrivateKeySigner> {
    let mut material = LIFT_KEY_LABEL.to_vec();
    material.extend_from_slice(key.to_bytes().as_slice());
    PrivateKeySigner::from_bytes(&keccak256(&material))
        .map_err(|e| anyhow!("cannot derive the lift operator's key: {e}"))
}

impl Lift {
    pub fn run(self) -> anyhow::Result<()> {
        let ip = ip_arg(&self.ip)?;
        self.apply(ip).with_context(|| format!("ban lift {ip}"))
    }

    fn apply(&self, ip: IpAddr) -> anyhow::Result<()> {
        let r = self.chain.resolve()?;
        let admin_key = r.signer()?;
        let lifter = lift_key(&admin_key)?;
        let lifter_address = lifter.address();
        let funder = Client::new(&r.rpc, r.contract()?, Some(admin_key))?;
        let writer = Client::new(&r.rpc, r.contract()?, Some(lifter))?;
        let (seq, tx) = block_on(async {
            ready(&funder).await?;
            if !funder.is_operator(lifter_address).await? {
                let admin = funder.admin().await?;
                let me = funder.sender().unwrap_or_default();
                if admin != me {
                    bail!(
                        "the lift operator {lifter_address:#x} (derived from --key {me:#x}) is not registered, and only the admin {admin:#x} can register it: run this once with the admin's key"
                    );
                }
                funder.set_operator(lifter_address, true).await?;
                eprintln!("lift operator {lifter_address:#x} registered");
            }
            let balance = funder.eth_balance(lifter_address).await?;
            if balance < U256::from(MIN_BALANCE_WEI) {
                funder
                    .transfer(lifter_address, U256::from(TOP_UP_WEI) - balance)
                    .await?;
            }
            // Two lifts at once from the same key could pick the same seq; the contract then
            // skips the second one's record: check the log is there, else take the next seq.
            for _ in 0..3 {
                let seq = writer.last_seq(lifter_address).await? + 1;
                let now = unix_now();
                let record = AuditRecord::lift(ip, now);
                let tx = writer.record(seq, record).await?;
                let logged = writer
                    .events::<FlyTrap::Banned>(tx.block, Some(tx.block))
                    .await?
                    .into_iter()
                    .any(|e| e.tx == tx.hash && e.event.seq == seq);
                if logged {
                    return Ok((seq, tx));
                }
            }
            bail!("another lift with the same key kept taking the sequence number; try again")
        })??;
        println!(
            "lifted {ip} (block {}, tx {:#x}, seq {seq}); every proxy following the contract drops its bans within one block",
            tx.block, tx.hash
        );
        Ok(())
    }
}

/// One IP's state from its ban records.
#[derive(Debug, Default)]
struct IpBans {
    /// Latest lift.
    lifted: Option<u64>,
    /// (time, until, failures) of each ban.
    bans: Vec<(u64, u64, u32)>,
}

impl List {
    pub fn run(self) -> anyhow::Result<()> {
        self.apply().context("ban list")
    }

    fn apply(&self) -> anyhow::Result<()> {
        let now = unix_now();
        let since = match &self.since {
            Some(t) => parse_time(t).context("--since")?,
            None => now.saturating_sub(7 * 24 * 3600),
        };
        let query = Report::Bans.query(None, Window::new(Some(since), None)?)?;
        let client = self.chain.resolve()?.reader()?;
        let dir = self.index.dir();
        let answer = block_on(async {
            let mut reader = Reader::open(client, dir.as_deref()).await?;
            reader.refresh().await?;
            reader.query(&query).await
        })??;
        let mut ips: BTreeMap<IpAddr, IpBans> = BTreeMap::new();
        for record in &answer.records {
            let Body::Ban {
                ip,
                until,
                failures,
                ..
            } = record.body
            else {
                continue;
            };
            let entry = ips.entry(ip).or_default();
            if record.is_lift() {
                entry.lifted = entry.lifted.max(Some(record.time));
            } else {
                entry.bans.push((record.time, until, failures));
            }
        }
        // What every proxy enforces (BanList::apply): the longest ban decided after the
        // latest lift and not over yet.
        let active: Vec<(IpAddr, u64, u32)> = ips
            .into_iter()
            .filter_map(|(ip, b)| {
                b.bans
                    .iter()
                    .filter(|(time, until, _)| b.lifted.is_none_or(|l| *time > l) && *until > now)
                    .max_by_key(|(_, until, _)| *until)
                    .map(|&(_, until, failures)| (ip, until, failures))
            })
            .collect();
        if self.json {
            let all: Vec<_> = active
                .iter()
                .map(|(ip, until, failures)| {
                    serde_json::json!({"ip": ip.to_string(), "until": until, "failures": failures})
                })
                .collect();
            println!("{}", serde_json::Value::Array(all));
        } else {
            for (ip, until, failures) in &active {
                println!(
                    "{ip}  banned until {}  after {failures} failures",
                    format_time(*until)
                );
            }
        }
        Ok(())
    }
}
