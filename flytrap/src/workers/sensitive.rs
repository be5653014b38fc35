//! Sensitive-topic reports of worker processes, merged: one report per topic per interval
//! for the whole proxy, not one per worker (SPEC §3).
//!
//! The workers share through the spool directory, like the replay table: intervals are
//! aligned on multiples of `report.interval_s` (Unix time), so every worker closes the same
//! interval at the same moment. At each boundary, workers 1…N−1 write what they saw as a
//! *partial* file in `<spool.dir>/sensitive/` (written to a temporary name, synced, renamed:
//! a partial is whole or absent). Worker 0 waits a grace period (half the interval, at most
//! 5 s), then reads every partial there, merges them with what it saw itself — per topic, the
//! union of publishers and of receivers over the earliest `from` to the latest `to` — spools
//! one record per topic with its own operator key, and only then deletes the partials.
//!
//! A partial that arrives after the merge (a worker stalled for the whole grace period, or
//! worker 0 down while it restarts) is merged into the next report, which then covers its
//! interval too: nothing is lost and no topic gets two reports for one interval. A crash of
//! worker 0 between spooling and deleting would report those partials' accesses again in the
//! next interval (at least once, never lost). A clean stop writes the current partial
//! (workers 1…N−1) or merges what is there (worker 0).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use flytrap_authz::sensitive::TopicAccesses;
use flytrap_chain::{Address, AuditRecord, B256};
use serde_json::{Value, json};

/// The folder of partial reports under `spool.dir`.
pub fn dir(spool_dir: &Path) -> PathBuf {
    spool_dir.join("sensitive")
}

/// What one worker saw over `[from, to]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    /// Start of its interval, Unix seconds.
    pub from: u64,
    /// End of its interval, Unix seconds.
    pub to: u64,
    /// Per topic, who published and who received.
    pub topics: Vec<TopicAccesses>,
}

impl Partial {
    fn to_json(&self) -> Value {
        let list = |a: &[Address]| a.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>();
        json!({
            "from": self.from,
            "to": self.to,
            "topics": self.topics.iter().map(|t| json!({
                "topic_id": format!("{:#x}", t.topic_id),
                "publishers": list(&t.publishers),
                "receivers": list(&t.receivers),
            })).collect::<Vec<_>>(),
        })
    }

    fn from_json(v: &Value) -> Option<Partial> {
        let addrs = |v: &Value| -> Option<Vec<Address>> {
            v.as_array()?
                .iter()
                .map(|a| a.as_str()?.parse().ok())
                .collect()
        };
        let topics = v["topics"]
            .as_array()?
            .iter()
            .map(|t| {
                Some(TopicAccesses {
                    topic_id: t["topic_id"].as_str()?.parse::<B256>().ok()?,
                    publishers: addrs(&t["publishers"])?,
                    receivers: addrs(&t["receivers"])?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Partial {
            from: v["from"].as_u64()?,
            to: v["to"].as_u64()?,
            topics,
        })
    }
}

/// Writes worker `index`'s partial durably (temporary file, fsync, rename, fsync of the
/// folder). An empty partial writes nothing.
pub fn write_partial(spool_dir: &Path, index: usize, partial: &Partial) -> anyhow::Result<()> {
    if partial.topics.is_empty() {
        return Ok(());
    }
    let dir = dir(spool_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = format!("{}-{}-w{index}.json", partial.to, partial.from);
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(&name);
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(partial.to_json().to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    r.with_context(|| format!("cannot write {}", path.display()))
}

/// Every partial in the folder, with its file (to delete once merged). Unreadable files are
/// reported and left for an operator; temporary files are skipped.
pub fn read_partials(spool_dir: &Path) -> Vec<(PathBuf, Partial)> {
    let Ok(entries) = std::fs::read_dir(dir(spool_dir)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let parsed = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| Partial::from_json(&v));
        match parsed {
            Some(p) => out.push((path, p)),
            None => {
                tracing::error!(path = %path.display(), "unreadable sensitive-topic partial report left in place")
            }
        }
    }
    out
}

/// One report per topic over everything in `parts`: the union of publishers and receivers,
/// from the earliest `from` to the latest `to`.
pub fn merge(parts: &[Partial]) -> Vec<AuditRecord> {
    type Sets = (u64, u64, BTreeSet<Address>, BTreeSet<Address>);
    let mut topics: BTreeMap<B256, Sets> = BTreeMap::new();
    for p in parts {
        for t in &p.topics {
            let e = topics
                .entry(t.topic_id)
                .or_insert_with(|| (p.from, p.to, BTreeSet::new(), BTreeSet::new()));
            e.0 = e.0.min(p.from);
            e.1 = e.1.max(p.to);
            e.2.extend(t.publishers.iter().copied());
            e.3.extend(t.receivers.iter().copied());
        }
    }
    topics
        .into_iter()
        .map(
            |(topic_id, (from, to, publishers, receivers))| AuditRecord::SensitiveReport {
                topic_id,
                from,
                to,
                publishers: publishers.into_iter().collect(),
                receivers: receivers.into_iter().collect(),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accesses(topic: u8, publishers: &[u8], receivers: &[u8]) -> TopicAccesses {
        TopicAccesses {
            topic_id: B256::repeat_byte(topic),
            publishers: publishers
                .iter()
                .map(|&a| Address::repeat_byte(a))
                .collect(),
            receivers: receivers.iter().map(|&a| Address::repeat_byte(a)).collect(),
        }
    }

    #[test]
    fn partials_round_trip_and_merge_into_one_report_per_topic() {
        let dir = tempfile::tempdir().unwrap();
        let one = Partial {
            from: 100,
            to: 200,
            topics: vec![accesses(1, &[0xa], &[]), accesses(2, &[], &[0xb])],
        };
        let two = Partial {
            from: 100,
            to: 200,
            topics: vec![accesses(1, &[0xa, 0xc], &[0xd])],
        };
        write_partial(dir.path(), 1, &one).unwrap();
        write_partial(dir.path(), 2, &two).unwrap();
        write_partial(
            dir.path(),
            3,
            &Partial {
                topics: vec![],
                ..two.clone()
            },
        )
        .unwrap();
        // A half-written file of a crashed worker is ignored.
        std::fs::write(dir.path().join("sensitive/.300-200-w1.json.tmp"), "{").unwrap();
        let mut read = read_partials(dir.path());
        read.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(read.len(), 2, "{read:?}");
        assert_eq!(read[0].1, one);
        assert_eq!(read[1].1, two);
        // Worker 0's own accesses, a little later (it merges after the grace period).
        let own = Partial {
            from: 101,
            to: 202,
            topics: vec![accesses(2, &[0xe], &[0xb])],
        };
        let mut parts: Vec<Partial> = read.into_iter().map(|(_, p)| p).collect();
        parts.push(own);
        let merged = merge(&parts);
        assert_eq!(
            merged,
            vec![
                AuditRecord::SensitiveReport {
                    topic_id: B256::repeat_byte(1),
                    from: 100,
                    to: 200,
                    publishers: vec![Address::repeat_byte(0xa), Address::repeat_byte(0xc)],
                    receivers: vec![Address::repeat_byte(0xd)],
                },
                AuditRecord::SensitiveReport {
                    topic_id: B256::repeat_byte(2),
                    from: 100,
                    to: 202,
                    publishers: vec![Address::repeat_byte(0xe)],
                    receivers: vec![Address::repeat_byte(0xb)],
                },
            ]
        );
    }
}
