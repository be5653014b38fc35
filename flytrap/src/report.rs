//! The one query layer over the contract's records, used by both `flytrap audit` and the web
//! page (`flytrap ui`), so the two never disagree.
//!
//! A [`Reader`] keeps the block-by-time [`index`] up to date (incrementally, from the last
//! indexed block) and turns a [`Query`] — kinds of record, a time window, filters — into
//! `eth_getLogs` calls over only the blocks that can hold a matching record.
//!
//! **Time.** Every record has a time: an audit record its own `time` (when the proxy saw it,
//! which may be earlier than its block: records wait in the spool while the node is down), a
//! sensitive report the end of its interval (`to`), an ACL change its block's timestamp.
//! `[since, until]` (inclusive) selects by that time. The index keeps, per block, the earliest
//! and latest record time of its logs, so the blocks read are exactly those that may hold a
//! record in the window, however long a record waited in the spool: the result equals a scan
//! of the whole log filtered by time (tested).

pub mod acl;
pub mod index;
pub mod logs;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use clap::ValueEnum;
use flytrap_chain::{Action, Address, B256, Change, Client, Country};
use serde_json::{Value, json};

use crate::cmd::time::format_time;
use acl::Acl;
use index::{Entry, Index, Key};

/// Blocks read per [`Reader::step`]: bounds the time the reader is held while it catches up
/// on a long chain, so a server can answer and show progress in between.
pub const STEP_BLOCKS: u64 = 2_000;

/// How far a [`Reader`] has caught up with the chain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// The node's latest block when the step began.
    pub head: u64,
    /// The last block in the index (`None`: none yet).
    pub indexed_block: Option<u64>,
    /// The last block whose records are loaded into the topic list (and the record store):
    /// after a restart the index is ahead of it until its blocks are read again.
    pub loaded_block: Option<u64>,
    /// Loaded up to the head: answers are complete.
    pub ready: bool,
}

/// What can go wrong answering a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The question is wrong (bad address, inverted window, …).
    #[error("{0}")]
    BadInput(String),
    /// It names something that does not exist (unknown topic, block, transaction).
    #[error("{0}")]
    NotFound(String),
    /// The node failed.
    #[error(transparent)]
    Chain(#[from] flytrap_chain::Error),
    /// The index file could not be read or written.
    #[error("index: {0}")]
    Index(String),
}

/// The kinds of log the index tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `AclChanged`.
    Acl = 0,
    /// `TopicCreated`.
    TopicCreated = 1,
    /// `ConnectFailed`.
    ConnectFailed = 2,
    /// `WrongCountry`.
    WrongCountry = 3,
    /// `Banned`.
    Ban = 4,
    /// `SensitiveReport`.
    Sensitive = 5,
    /// Any other event of the contract (operators, withdrawals).
    Other = 6,
}

impl Kind {
    /// Its bit in a kind set.
    pub fn bit(self) -> u32 {
        1 << self as u32
    }

    /// A set of kinds.
    pub fn set(kinds: &[Kind]) -> u32 {
        kinds.iter().fold(0, |s, k| s | k.bit())
    }
}

/// One record on the chain, with where it was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Block number.
    pub block: u64,
    /// Transaction hash.
    pub tx: B256,
    /// Index of the log in its block.
    pub log_index: u64,
    /// Its time (see the module's notes).
    pub time: u64,
    /// What it says.
    pub body: Body,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A refused CONNECT.
    ConnectFailed {
        ip: IpAddr,
        client: Option<Address>,
        reason: u8,
        seq: u64,
    },
    /// A client refused on a topic because of where its IP maps.
    WrongCountry {
        ip: IpAddr,
        country: Country,
        client: Address,
        topic: B256,
        seq: u64,
    },
    /// An IP ban.
    Ban {
        ip: IpAddr,
        until: u64,
        failures: u32,
        seq: u64,
    },
    /// Who published to / received from a sensitive topic in `[from, to]`.
    Sensitive {
        topic: B256,
        from: u64,
        to: u64,
        publishers: Vec<Address>,
        receivers: Vec<Address>,
        seq: u64,
    },
    /// An ACL change (created, grant, revoke, join, updated).
    Acl {
        topic: B256,
        target: Address,
        action: Option<Action>,
        source: Address,
        change: Change,
        reason: String,
    },
}

/// Topic names by id.
pub type Names = HashMap<B256, String>;

/// The name of a topic id, or the id in hex when no creation event names it.
pub fn topic_name(names: &Names, id: &B256) -> String {
    names.get(id).cloned().unwrap_or_else(|| format!("{id:#x}"))
}

/// The name of an MQTT CONNACK reason code.
pub fn reason_name(code: u8) -> &'static str {
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

fn list(v: &[Address]) -> Vec<String> {
    v.iter().map(addr).collect()
}

impl Record {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self.body {
            Body::ConnectFailed { .. } => Kind::ConnectFailed,
            Body::WrongCountry { .. } => Kind::WrongCountry,
            Body::Ban { .. } => Kind::Ban,
            Body::Sensitive { .. } => Kind::Sensitive,
            Body::Acl { .. } => Kind::Acl,
        }
    }

    /// Does it name `who` (as client, target, sender, publisher or receiver)?
    pub fn names_address(&self, who: &Address) -> bool {
        match &self.body {
            Body::ConnectFailed { client, .. } => client.as_ref() == Some(who),
            Body::WrongCountry { client, .. } => client == who,
            Body::Ban { .. } => false,
            Body::Sensitive {
                publishers,
                receivers,
                ..
            } => publishers.contains(who) || receivers.contains(who),
            Body::Acl { target, source, .. } => target == who || source == who,
        }
    }

    /// The topic it is about, if any.
    pub fn topic(&self) -> Option<&B256> {
        match &self.body {
            Body::WrongCountry { topic, .. }
            | Body::Sensitive { topic, .. }
            | Body::Acl { topic, .. } => Some(topic),
            _ => None,
        }
    }

    /// The JSON form (`flytrap audit --json` and the web page's API).
    pub fn json(&self, names: &Names) -> Value {
        let topic = |id: &B256| topic_name(names, id);
        let mut v = match &self.body {
            Body::ConnectFailed {
                ip,
                client,
                reason,
                seq,
            } => json!({"kind": "connect-failed", "time": self.time, "ip": ip.to_string(),
                "client": client.as_ref().map(addr), "reason": reason,
                "reason_text": reason_name(*reason), "seq": seq}),
            Body::WrongCountry {
                ip,
                country,
                client,
                topic: t,
                seq,
            } => json!({"kind": "wrong-country", "time": self.time, "ip": ip.to_string(),
                "country": country.to_string(), "client": addr(client),
                "topic": topic(t), "topic_id": format!("{t:#x}"), "seq": seq}),
            Body::Ban {
                ip,
                until,
                failures,
                seq,
            } => json!({"kind": "ban", "time": self.time, "ip": ip.to_string(), "until": until,
                "failures": failures, "lift": is_lift(*failures, *until, self.time), "seq": seq}),
            Body::Sensitive {
                topic: t,
                from,
                to,
                publishers,
                receivers,
                seq,
            } => json!({"kind": "sensitive-report", "time": self.time, "topic": topic(t),
                "topic_id": format!("{t:#x}"), "from": from, "to": to,
                "publishers": list(publishers), "receivers": list(receivers), "seq": seq}),
            Body::Acl {
                topic: t,
                target,
                action,
                source,
                change,
                reason,
            } => json!({"kind": "acl-change", "change": change.word(), "time": self.time,
                "topic": topic(t), "topic_id": format!("{t:#x}"),
                "action": action.map(|a| a.short()), "target": addr(target),
                "source": addr(source), "reason": reason}),
        };
        v["block"] = json!(self.block);
        v["tx"] = json!(format!("{:#x}", self.tx));
        v
    }

    /// Whether this is a ban record that lifts the IP's bans (`flytrap ban lift`; see
    /// [`flytrap_chain::ChainBan`] for the encoding).
    pub fn is_lift(&self) -> bool {
        matches!(self.body, Body::Ban { until, failures, .. } if is_lift(failures, until, self.time))
    }

    /// The one-line form (`flytrap audit`).
    pub fn text(&self, names: &Names) -> String {
        let topic = |id: &B256| topic_name(names, id);
        let t = format_time(self.time);
        match &self.body {
            Body::ConnectFailed {
                ip,
                client,
                reason,
                seq,
            } => format!(
                "{t}  connect-failed  ip {ip}  client {}  reason 0x{reason:02x} ({})  seq {seq}",
                client.as_ref().map_or("-".to_string(), addr),
                reason_name(*reason),
            ),
            Body::WrongCountry {
                ip,
                country,
                client,
                topic: id,
                seq,
            } => format!(
                "{t}  wrong-country  ip {ip} ({country})  client {}  topic '{}'  seq {seq}",
                addr(client),
                topic(id)
            ),
            Body::Ban { ip, seq, .. } if self.is_lift() => {
                format!("{t}  ban-lift  ip {ip}  (bans of this IP until now lifted)  seq {seq}")
            }
            Body::Ban {
                ip,
                until,
                failures,
                seq,
            } => format!(
                "{t}  ban  ip {ip}  until {}  after {failures} failures  seq {seq}",
                format_time(*until)
            ),
            Body::Sensitive {
                topic: id,
                from,
                to,
                publishers,
                receivers,
                seq,
            } => format!(
                "{t}  sensitive  topic '{}'  {} .. {}  publishers [{}]  receivers [{}]  seq {seq}",
                topic(id),
                format_time(*from),
                format_time(*to),
                list(publishers).join(" "),
                list(receivers).join(" "),
            ),
            Body::Acl {
                topic: id,
                target,
                action,
                source,
                change,
                reason,
            } => format!(
                "{t}  {}  topic '{}'  {}  target {}  by {}{}",
                change.word(),
                topic(id),
                action.map_or("-", |a| a.short()),
                addr(target),
                addr(source),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!("  reason {reason:?}")
                }
            ),
        }
    }
}

/// An inclusive time window; open ends are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    since: Option<u64>,
    until: Option<u64>,
}

impl Window {
    /// A window, or [`Error::BadInput`] when `since` is after `until`.
    pub fn new(since: Option<u64>, until: Option<u64>) -> Result<Window, Error> {
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(Error::BadInput(format!(
                "inverted time window: since ({}) is after until ({})",
                format_time(s),
                format_time(u)
            )));
        }
        Ok(Window { since, until })
    }

    /// Its start (`None`: open).
    pub fn since(&self) -> Option<u64> {
        self.since
    }

    /// Its end (`None`: open).
    pub fn until(&self) -> Option<u64> {
        self.until
    }

    /// The window as a closed range.
    pub fn bounds(&self) -> (u64, u64) {
        (self.since.unwrap_or(0), self.until.unwrap_or(u64::MAX))
    }

    /// Does it hold `t`?
    pub fn contains(&self, t: u64) -> bool {
        let (s, u) = self.bounds();
        s <= t && t <= u
    }
}

/// A question: which records of which kinds, when, about whom.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// A set of [`Kind`] bits.
    pub kinds: u32,
    /// By record time.
    pub window: Window,
    /// Only records naming this address ([`Record::names_address`]).
    pub address: Option<Address>,
    /// Only records about this topic.
    pub topic: Option<B256>,
    /// Only ACL changes of this action.
    pub action: Option<Action>,
    /// Only ACL changes of this kind.
    pub change: Option<Change>,
}

impl Query {
    /// Does `r` answer it?
    pub fn matches(&self, r: &Record) -> bool {
        if self.kinds & r.kind().bit() == 0 || !self.window.contains(r.time) {
            return false;
        }
        if let Some(a) = &self.address
            && !r.names_address(a)
        {
            return false;
        }
        if let Some(t) = &self.topic
            && r.topic() != Some(t)
        {
            return false;
        }
        if self.action.is_some() || self.change.is_some() {
            let Body::Acl { action, change, .. } = &r.body else {
                return false;
            };
            if self.action.is_some_and(|a| Some(a) != *action)
                || self.change.is_some_and(|c| c != *change)
            {
                return false;
            }
        }
        true
    }
}

/// The reports of `flytrap audit` (and `/api/audit/REPORT`).
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

impl Report {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Report::Failures => "failures",
            Report::Bans => "bans",
            Report::Client => "client",
            Report::Sensitive => "sensitive",
            Report::Changes => "changes",
        }
    }

    /// The query of this report (`who` only for `client`).
    pub fn query(self, who: Option<Address>, window: Window) -> Result<Query, Error> {
        let kinds = match self {
            Report::Failures => Kind::set(&[Kind::ConnectFailed, Kind::WrongCountry]),
            Report::Bans => Kind::Ban.bit(),
            Report::Client => Kind::set(&[
                Kind::ConnectFailed,
                Kind::WrongCountry,
                Kind::Sensitive,
                Kind::Acl,
            ]),
            Report::Sensitive => Kind::Sensitive.bit(),
            Report::Changes => Kind::Acl.bit(),
        };
        match (self, who) {
            (Report::Client, None) => {
                return Err(Error::BadInput(
                    "which client? flytrap audit client ADDRESS".into(),
                ));
            }
            (Report::Client, _) | (_, None) => {}
            (_, Some(_)) => {
                return Err(Error::BadInput(
                    "only the client report takes an address".into(),
                ));
            }
        }
        Ok(Query {
            kinds,
            window,
            address: who,
            ..Query::default()
        })
    }
}

/// A `Banned` record with no failures that ends when it starts lifts a ban (the encoding of
/// [`flytrap_chain::ChainBan::is_lift`]).
fn is_lift(failures: u32, until: u64, time: u64) -> bool {
    failures == 0 && until <= time
}

/// The records answering a question, in time order, with the names of their topics.
#[derive(Debug, Clone)]
pub struct Answer {
    /// In (time, block, log index) order.
    pub records: Vec<Record>,
    /// Topic names.
    pub names: Arc<Names>,
}

/// Reads records through the index. One per process; `refresh` before each query.
///
/// It also replays the topic and ACL events into [`Acl`] (the topic list and its members,
/// which the contract does not keep), and with [`keep_records`](Self::keep_records) keeps
/// every record in memory, so that a long-running reader (the web page) answers from memory
/// instead of reading the logs again for each question.
#[derive(Debug)]
pub struct Reader {
    client: Client,
    index: Index,
    names: Arc<Names>,
    acl: Arc<Acl>,
    /// Every record of the loaded blocks, in chain order (`None`: not kept).
    records: Option<Arc<Vec<Record>>>,
    /// Last block whose logs are applied to `names`, `acl` and `records`.
    loaded: Option<u64>,
    progress: Progress,
    step_blocks: u64,
}

impl Reader {
    /// A reader of `client`'s contract with its index in `dir` (`None`, or a directory that
    /// cannot be used: in memory only, rebuilt by each process).
    pub async fn open(client: Client, dir: Option<&Path>) -> Result<Reader, Error> {
        client.ensure_contract().await?;
        let key = Key {
            chain_id: client.chain_id().await?,
            contract: client.address(),
            genesis: logs::header(&client, 0).await?.0,
        };
        let index = match dir {
            Some(d) => Index::open(d, key).unwrap_or_else(|e| {
                tracing::warn!("{e}; keeping the index in memory");
                Index::in_memory(key)
            }),
            None => Index::in_memory(key),
        };
        Ok(Reader {
            client,
            index,
            names: Arc::new(Names::new()),
            acl: Arc::new(Acl::default()),
            records: None,
            loaded: None,
            progress: Progress::default(),
            step_blocks: STEP_BLOCKS,
        })
    }

    /// Keeps every record in memory from now on (call before the first step): queries are
    /// then answered from memory.
    pub fn keep_records(&mut self) {
        if self.records.is_none() {
            self.records = Some(Arc::new(Vec::new()));
            self.reset_loaded();
        }
    }

    /// Blocks per [`step`](Self::step) (default [`STEP_BLOCKS`]; at least 1).
    pub fn set_step_blocks(&mut self, n: u64) {
        self.step_blocks = n.max(1);
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Topic names known so far.
    pub fn names(&self) -> Arc<Names> {
        self.names.clone()
    }

    /// Topics and members known so far (complete once [`Progress::ready`]).
    pub fn acl(&self) -> Arc<Acl> {
        self.acl.clone()
    }

    /// How far the last step got.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    fn reset_loaded(&mut self) {
        self.loaded = None;
        self.names = Arc::new(Names::new());
        self.acl = Arc::new(Acl::default());
        if self.records.is_some() {
            self.records = Some(Arc::new(Vec::new()));
        }
    }

    /// The kinds whose logs are applied to the reader's state.
    fn state_kinds(&self) -> u32 {
        if self.records.is_some() {
            u32::MAX
        } else {
            Kind::set(&[Kind::Acl, Kind::TopicCreated])
        }
    }

    /// Brings the index and the topic list up to the node's latest block (see
    /// [`step`](Self::step)).
    pub async fn refresh(&mut self) -> Result<(), Error> {
        while !self.step().await?.ready {}
        Ok(())
    }

    /// One bounded step of catching up with the chain: drops a replaced tail (reorg); then
    /// either re-reads up to [`STEP_BLOCKS`] already indexed blocks into the topic list (and
    /// the record store) after a restart, or indexes up to [`STEP_BLOCKS`] new blocks.
    pub async fn step(&mut self) -> Result<Progress, Error> {
        let c = self.client.clone();
        let head = c.block_number().await?;
        if let Some((tip, hash)) = self.index.tip() {
            let replaced = tip > head || logs::header(&c, tip).await?.0 != hash;
            if replaced {
                let back = tip.min(head).checked_sub(index::REORG_DEPTH);
                tracing::info!(
                    tip,
                    head,
                    "indexed blocks were replaced; re-reading the tail"
                );
                let tip = match back {
                    Some(b) => Some((b, logs::header(&c, b).await?.0)),
                    None => None,
                };
                self.index.truncate_after(back, tip);
                self.reset_loaded();
            }
        }
        let tip = self.index.tip().map(|t| t.0);
        let next = self.loaded.map_or(0, |b| b + 1);
        if tip.is_some_and(|t| next <= t) {
            // Restart: the index is ahead of what is loaded; read its blocks again.
            let end = tip
                .unwrap_or_default()
                .min(next.saturating_add(self.step_blocks - 1));
            let kinds = self.state_kinds();
            let ranges: Vec<(u64, u64)> = self
                .plan(&Query {
                    kinds,
                    ..Query::default()
                })
                .into_iter()
                .filter(|r| r.1 >= next && r.0 <= end)
                .map(|(a, b)| (a.max(next), b.min(end)))
                .collect();
            let mut times = logs::BlockTimes::default();
            for (from, to) in ranges {
                for log in logs::fetch(&c, from, to, Some(kinds)).await? {
                    let d = logs::decode(&log)?;
                    let block = log.block_number.unwrap_or_default();
                    let block_time = match self.index.block_time(block) {
                        Some(t) => t,
                        None => times.of(&c, &log).await?,
                    };
                    self.apply(block, block_time, d);
                }
            }
            self.loaded = Some(end);
        } else if next <= head {
            let end = head.min(next.saturating_add(self.step_blocks - 1));
            let raw = logs::fetch(&c, next, end, None).await?;
            let mut times = logs::BlockTimes::default();
            let mut entries: Vec<Entry> = Vec::new();
            for log in &raw {
                let d = logs::decode(log)?;
                let block = log.block_number.unwrap_or_default();
                let block_time = times.of(&c, log).await?;
                let time = d.time.unwrap_or(block_time);
                let kind = d.kind;
                self.apply(block, block_time, d);
                match entries.last_mut() {
                    Some(e) if e.block == block => {
                        e.min_time = e.min_time.min(time);
                        e.max_time = e.max_time.max(time);
                        e.logs += 1;
                        e.kinds |= kind.bit();
                    }
                    _ => entries.push(Entry {
                        block,
                        block_time,
                        min_time: time,
                        max_time: time,
                        logs: 1,
                        kinds: kind.bit(),
                    }),
                }
            }
            let tip = (end, logs::header(&c, end).await?.0);
            self.index.extend(entries, tip)?;
            self.loaded = Some(end);
        }
        self.progress = Progress {
            head,
            indexed_block: self.index.tip().map(|t| t.0),
            loaded_block: self.loaded,
            ready: self.loaded.is_some_and(|l| l >= head)
                && self.index.tip().is_some_and(|t| t.0 >= head),
        };
        Ok(self.progress)
    }

    /// Applies one decoded log of block `block` (at `block_time`) to the names, the topic list
    /// and the store.
    fn apply(&mut self, block: u64, block_time: u64, d: logs::Decoded) {
        if let Some((id, name)) = d.name {
            Arc::make_mut(&mut self.names).insert(id, name.clone());
            Arc::make_mut(&mut self.acl).created(id, name, block);
        }
        if let Some(mut r) = d.record {
            logs::complete(&mut r, block_time, &self.acl);
            if let Body::Acl {
                topic,
                target,
                action,
                change,
                ..
            } = &r.body
            {
                Arc::make_mut(&mut self.acl).changed(topic, *target, *action, *change, block);
            }
            if let Some(store) = &mut self.records {
                Arc::make_mut(store).push(r);
            }
        }
    }

    /// The block ranges that may hold an answer to `q`: runs of consecutive index entries
    /// that may hold a record of its kinds in its window.
    pub fn plan(&self, q: &Query) -> Vec<(u64, u64)> {
        let (since, until) = q.window.bounds();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut open = false;
        for e in self.index.entries() {
            if e.may_hold(q.kinds, since, until) {
                match ranges.last_mut() {
                    Some(r) if open => r.1 = e.block,
                    _ => ranges.push((e.block, e.block)),
                }
                open = true;
            } else {
                open = false;
            }
        }
        ranges
    }

    /// A self-contained job answering `q` over the indexed blocks (to run without holding
    /// the reader).
    pub fn job(&self, q: &Query) -> Job {
        Job {
            client: self.client.clone(),
            ranges: self.plan(q),
            names: self.names.clone(),
            acl: self.acl.clone(),
            query: q.clone(),
        }
    }

    /// Answers `q` through the index (call [`refresh`](Self::refresh) first), or from memory
    /// when the reader keeps the records.
    pub async fn query(&self, q: &Query) -> Result<Answer, Error> {
        match self.answer_from_memory(q) {
            Some(a) => Ok(a),
            None => self.job(q).run().await,
        }
    }

    /// The answer to `q` from the records kept in memory (`None`: not kept).
    pub fn answer_from_memory(&self, q: &Query) -> Option<Answer> {
        let store = self.records.as_ref()?;
        let mut records: Vec<Record> = store.iter().filter(|r| q.matches(r)).cloned().collect();
        records.sort_by_key(|r| (r.time, r.block, r.log_index));
        Some(Answer {
            records,
            names: self.names.clone(),
        })
    }

    /// Answers `q` by reading every block from 0 to the node's latest (no index): what the
    /// index must agree with.
    pub async fn full_scan(&self, q: &Query) -> Result<Answer, Error> {
        let head = self.client.block_number().await?;
        Job {
            client: self.client.clone(),
            ranges: vec![(0, head)],
            names: self.names.clone(),
            acl: self.acl.clone(),
            query: q.clone(),
        }
        .run()
        .await
    }
}

/// A planned query: the block ranges to read and the filter to apply.
#[derive(Debug, Clone)]
pub struct Job {
    client: Client,
    ranges: Vec<(u64, u64)>,
    names: Arc<Names>,
    /// Topic owners, for the senders of ACL changes (their logs do not carry them).
    acl: Arc<Acl>,
    query: Query,
}

impl Job {
    /// Blocks it reads.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Reads the logs and keeps the matching records, in time order.
    pub async fn run(self) -> Result<Answer, Error> {
        let mut records = Vec::new();
        let mut times = logs::BlockTimes::default();
        for (from, to) in &self.ranges {
            for log in logs::fetch(&self.client, *from, *to, Some(self.query.kinds)).await? {
                if let Some(mut r) = logs::decode(&log)?.record {
                    if r.kind() == Kind::Acl {
                        let t = times.of(&self.client, &log).await?;
                        logs::complete(&mut r, t, &self.acl);
                    }
                    if self.query.matches(&r) {
                        records.push(r);
                    }
                }
            }
        }
        records.sort_by_key(|r| (r.time, r.block, r.log_index));
        Ok(Answer {
            records,
            names: self.names,
        })
    }
}
