//! Sensitive topics (SPEC §3): every address that published to or received from one is
//! recorded, and one aggregated report per topic per interval is written to the chain.
//!
//! Shards add accesses to a process-wide set (a lock per access to a *sensitive* topic only);
//! [`SensitiveLog::take`] hands the interval's sets over to be written as audit records,
//! through the durable spool. Accesses since the last report are in memory: a crash loses at
//! most the current interval's aggregation; a clean stop writes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use flytrap_chain::{Address, B256};

/// Publishers and receivers of one topic.
type Accesses = (BTreeSet<Address>, BTreeSet<Address>);

/// Who touched which sensitive topic since the last report.
#[derive(Debug, Default)]
pub struct SensitiveLog {
    topics: Mutex<BTreeMap<B256, Accesses>>,
}

/// One topic's accesses over an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicAccesses {
    /// The topic.
    pub topic_id: B256,
    /// Addresses that published.
    pub publishers: Vec<Address>,
    /// Addresses that received.
    pub receivers: Vec<Address>,
}

impl SensitiveLog {
    /// Records a PUBLISH by `who`.
    pub fn published(&self, topic_id: B256, who: Address) {
        self.with(topic_id, |(p, _)| {
            p.insert(who);
        });
    }

    /// Records a delivery to `who`.
    pub fn received(&self, topic_id: B256, who: Address) {
        self.with(topic_id, |(_, r)| {
            r.insert(who);
        });
    }

    fn with(&self, topic_id: B256, f: impl FnOnce(&mut Accesses)) {
        let mut map = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(topic_id).or_default());
    }

    /// Takes everything recorded so far, one entry per topic.
    pub fn take(&self) -> Vec<TopicAccesses> {
        let map = std::mem::take(&mut *self.topics.lock().unwrap_or_else(|p| p.into_inner()));
        map.into_iter()
            .map(|(topic_id, (p, r))| TopicAccesses {
                topic_id,
                publishers: p.into_iter().collect(),
                receivers: r.into_iter().collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_topic_with_distinct_addresses() {
        let log = SensitiveLog::default();
        let (t, a, b) = (
            B256::repeat_byte(1),
            Address::repeat_byte(0xa),
            Address::repeat_byte(0xb),
        );
        log.published(t, a);
        log.published(t, a);
        log.received(t, b);
        let taken = log.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].publishers.clone(), taken[0].receivers.clone()),
            (vec![a], vec![b])
        );
        assert!(log.take().is_empty());
    }
}
