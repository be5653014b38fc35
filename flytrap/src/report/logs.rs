//! Reading and decoding the contract's logs over block ranges.

use std::collections::HashMap;

use flytrap_chain::alloy::providers::Provider;
use flytrap_chain::alloy::rpc::types::{BlockNumberOrTag, Filter, Log};
use flytrap_chain::alloy::sol_types::SolEvent;
use flytrap_chain::audit::unpack_report;
use flytrap_chain::bindings::FlyTrap;
use flytrap_chain::types::bytes16_to_ip;
use flytrap_chain::{Action, Address, B256, Change, Client, Country};

use super::acl::Acl;
use super::{Body, Error, Kind, Record};

/// Blocks per `eth_getLogs` call; halved when the node refuses a range (too many results).
const CHUNK: u64 = 100_000;

/// The event signatures of a set of kinds.
fn signatures(kinds: u32) -> Vec<B256> {
    let mut s = Vec::new();
    let mut add = |k: Kind, sig: B256| {
        if kinds & k.bit() != 0 {
            s.push(sig);
        }
    };
    add(Kind::Acl, FlyTrap::AclChanged::SIGNATURE_HASH);
    add(Kind::TopicCreated, FlyTrap::TopicCreated::SIGNATURE_HASH);
    add(Kind::ConnectFailed, FlyTrap::ConnectFailed::SIGNATURE_HASH);
    add(Kind::WrongCountry, FlyTrap::WrongCountry::SIGNATURE_HASH);
    add(Kind::Ban, FlyTrap::Banned::SIGNATURE_HASH);
    add(Kind::Sensitive, FlyTrap::SensitiveReport::SIGNATURE_HASH);
    s
}

/// The contract's logs in `[from, to]`: of the given kinds, or all of them (`kinds = None`,
/// for the index), oldest first.
pub async fn fetch(c: &Client, from: u64, to: u64, kinds: Option<u32>) -> Result<Vec<Log>, Error> {
    let sigs = kinds.map(signatures);
    if sigs.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut start = from;
    let mut chunk = CHUNK;
    while start <= to {
        let end = to.min(start.saturating_add(chunk - 1));
        let mut filter = Filter::new()
            .address(c.address())
            .from_block(BlockNumberOrTag::Number(start))
            .to_block(BlockNumberOrTag::Number(end));
        if let Some(s) = &sigs {
            filter = filter.event_signature(s.clone());
        }
        match c.provider().get_logs(&filter).await {
            Ok(logs) => {
                out.extend(logs);
                start = end + 1;
            }
            Err(e) => {
                let e = flytrap_chain::Error::from_rpc(e, c.url());
                // A node that limits results per call: try a smaller range.
                if e.is_unreachable() || chunk == 1 {
                    return Err(e.into());
                }
                chunk = (chunk / 2).max(1);
            }
        }
    }
    Ok(out)
}

/// A block's hash and timestamp.
pub async fn header(c: &Client, n: u64) -> Result<(B256, u64), Error> {
    let b = c
        .provider()
        .get_block_by_number(BlockNumberOrTag::Number(n))
        .await
        .map_err(|e| flytrap_chain::Error::from_rpc(e, c.url()))?
        .ok_or_else(|| Error::NotFound(format!("block {n} not found")))?;
    Ok((b.header.hash, b.header.timestamp))
}

/// One log, decoded.
#[derive(Debug)]
pub struct Decoded {
    pub kind: Kind,
    /// The record's own time, when it carries one (`None`: the block's time).
    pub time: Option<u64>,
    /// The record (audit records and ACL changes).
    pub record: Option<Record>,
    /// A topic name (TopicCreated).
    pub name: Option<(B256, String)>,
}

fn decode_as<E: SolEvent>(log: &Log) -> Result<E, Error> {
    log.log_decode::<E>().map(|l| l.inner.data).map_err(|e| {
        Error::Chain(flytrap_chain::Error::Rpc(format!(
            "undecodable {} log: {e}",
            E::SIGNATURE
        )))
    })
}

/// Decodes one log of the contract (`None`: an event no report uses).
pub fn decode(log: &Log) -> Result<Decoded, Error> {
    let at = |time: u64, body: Body| Record {
        block: log.block_number.unwrap_or_default(),
        tx: log.transaction_hash.unwrap_or_default(),
        log_index: log.log_index.unwrap_or_default(),
        time,
        body,
    };
    let sig = log.topic0().copied().unwrap_or_default();
    let plain = |kind| Decoded {
        kind,
        time: None,
        record: None,
        name: None,
    };
    let d = if sig == FlyTrap::AclChanged::SIGNATURE_HASH {
        let e: FlyTrap::AclChanged = decode_as(log)?;
        let change = Change::from_code(e.change);
        // The log carries neither its time (the block's) nor its sender (the target of a
        // creation or a join, else the topic's owner): `complete` fills them in; until then
        // the time is the log's `blockTimestamp` when the node sends it, and the sender of
        // an owner's change is zero.
        let source = match change {
            Change::Created | Change::Joined => e.target,
            _ => Address::ZERO,
        };
        let r = at(
            log.block_timestamp.unwrap_or_default(),
            Body::Acl {
                topic: e.topicId,
                target: e.target,
                action: Action::from_code(e.action),
                source,
                change,
                reason: e.reason,
            },
        );
        Decoded {
            kind: Kind::Acl,
            time: None,
            record: Some(r),
            name: None,
        }
    } else if sig == FlyTrap::TopicCreated::SIGNATURE_HASH {
        let e: FlyTrap::TopicCreated = decode_as(log)?;
        Decoded {
            name: Some((e.topicId, e.name)),
            ..plain(Kind::TopicCreated)
        }
    } else if sig == FlyTrap::ConnectFailed::SIGNATURE_HASH {
        let e: FlyTrap::ConnectFailed = decode_as(log)?;
        let r = at(
            e.time,
            Body::ConnectFailed {
                ip: bytes16_to_ip(e.ip),
                client: (e.client != Address::ZERO).then_some(e.client),
                reason: e.reason,
                seq: e.seq,
            },
        );
        Decoded {
            kind: Kind::ConnectFailed,
            time: Some(r.time),
            record: Some(r),
            name: None,
        }
    } else if sig == FlyTrap::WrongCountry::SIGNATURE_HASH {
        let e: FlyTrap::WrongCountry = decode_as(log)?;
        let r = at(
            e.time,
            Body::WrongCountry {
                ip: bytes16_to_ip(e.ip),
                country: Country::from_bytes2(e.country),
                client: e.client,
                topic: e.topicId,
                seq: e.seq,
            },
        );
        Decoded {
            kind: Kind::WrongCountry,
            time: Some(r.time),
            record: Some(r),
            name: None,
        }
    } else if sig == FlyTrap::Banned::SIGNATURE_HASH {
        let e: FlyTrap::Banned = decode_as(log)?;
        let r = at(
            e.time,
            Body::Ban {
                ip: bytes16_to_ip(e.ip),
                until: e.until,
                failures: e.failures,
                seq: e.seq,
            },
        );
        Decoded {
            kind: Kind::Ban,
            time: Some(r.time),
            record: Some(r),
            name: None,
        }
    } else if sig == FlyTrap::SensitiveReport::SIGNATURE_HASH {
        let e: FlyTrap::SensitiveReport = decode_as(log)?;
        let report = unpack_report(&e.report).map_err(Error::Chain)?;
        // A report's time is the end of its interval.
        let r = at(
            report.to,
            Body::Sensitive {
                topic: e.topicId,
                from: report.from,
                to: report.to,
                publishers: report.publishers,
                receivers: report.receivers,
                seq: report.seq,
            },
        );
        Decoded {
            kind: Kind::Sensitive,
            time: Some(r.time),
            record: Some(r),
            name: None,
        }
    } else {
        plain(Kind::Other)
    };
    Ok(d)
}

/// Fills in what an `AclChanged` log leaves out (other records are left alone): its time,
/// the block's `block_time`, and the sender of an owner's change (grant, revoke, update), the
/// topic's owner as `acl` knows it from the topic's creation.
pub fn complete(r: &mut Record, block_time: u64, acl: &Acl) {
    if let Body::Acl {
        topic,
        source,
        change,
        ..
    } = &mut r.body
    {
        r.time = block_time;
        if !matches!(change, Change::Created | Change::Joined)
            && let Some(t) = acl.get(topic)
        {
            *source = t.owner;
        }
    }
}

/// Block timestamps of logs: from the log when the node sends it (`blockTimestamp`), else
/// from the block header (one call per block, remembered).
#[derive(Debug, Default)]
pub struct BlockTimes(HashMap<u64, u64>);

impl BlockTimes {
    pub async fn of(&mut self, c: &Client, log: &Log) -> Result<u64, Error> {
        let n = log.block_number.unwrap_or_default();
        if let Some(t) = log.block_timestamp {
            return Ok(t);
        }
        if let Some(t) = self.0.get(&n) {
            return Ok(*t);
        }
        let (_, t) = header(c, n).await?;
        self.0.insert(n, t);
        Ok(t)
    }
}
