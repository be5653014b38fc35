//! A shard's permission cache. Shard-local (`Rc<RefCell<_>>`): no lock on a hit.
//!
//! Keyed by (topic id, address, action), bounded by two [`Generations`]: recently used answers
//! stay at O(1) per operation, like an LRU without its bookkeeping.
//!
//! Grants live `ttl`, denials `deny_ttl` (short: a new grant works as soon as its block is
//! seen, even if an event were missed). Past its time an answer is refreshed from the chain;
//! if the node cannot answer, a grant may still be used until `ttl + max_stale` after it was
//! fetched (SPEC §4). Chain events remove answers as soon as they are seen.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use flytrap_chain::{Action, Address, Answer, B256, Invalidation};

use crate::generations::Generations;

/// Cache settings (`[cache]`).
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Most answers held.
    pub max_entries: usize,
    /// Life of a grant.
    pub ttl: Duration,
    /// Life of a denial.
    pub deny_ttl: Duration,
    /// How long past `ttl` a grant may serve while the node is unreachable.
    pub max_stale: Duration,
}

type Key = (B256, Address, Action);

#[derive(Debug, Clone)]
struct Cached {
    answer: Rc<Answer>,
    fetched: Instant,
}

/// What the cache knows.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Good to use.
    Fresh(Rc<Answer>),
    /// Past its time: ask again, and fall back to it only if the node cannot answer and it is
    /// a grant still within `max_stale`.
    Expired {
        answer: Rc<Answer>,
        usable_if_down: bool,
    },
    /// Never seen (or evicted, or invalidated).
    Miss,
}

/// One shard's cache.
#[derive(Debug)]
pub struct PermCache {
    config: CacheConfig,
    answers: Generations<Key, Cached>,
    topic_ids: HashMap<Box<str>, B256>,
}

impl PermCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> PermCache {
        PermCache {
            config,
            answers: Generations::new(config.max_entries),
            topic_ids: HashMap::new(),
        }
    }

    /// The contract's id of `topic` (keccak-256 of its name), memoised.
    pub fn topic_id(&mut self, topic: &str) -> B256 {
        if let Some(id) = self.topic_ids.get(topic) {
            return *id;
        }
        if self.topic_ids.len() >= self.config.max_entries.max(1) {
            self.topic_ids.clear();
        }
        let id = B256::from(crate::identity::keccak256(topic.as_bytes()));
        self.topic_ids.insert(topic.into(), id);
        id
    }

    /// Looks an answer up at `now`.
    pub fn get(&mut self, topic: B256, who: Address, action: Action, now: Instant) -> Lookup {
        let Some(cached) = self.answers.get(&(topic, who, action)) else {
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(cached.fetched);
        let life = if cached.answer.allowed {
            self.config.ttl
        } else {
            self.config.deny_ttl
        };
        if age < life {
            Lookup::Fresh(cached.answer)
        } else {
            Lookup::Expired {
                usable_if_down: cached.answer.allowed
                    && age < self.config.ttl + self.config.max_stale,
                answer: cached.answer,
            }
        }
    }

    /// Stores an answer fetched at `now`.
    pub fn insert(
        &mut self,
        topic: B256,
        who: Address,
        action: Action,
        answer: Answer,
        now: Instant,
    ) -> Rc<Answer> {
        let answer = Rc::new(answer);
        self.answers.insert(
            (topic, who, action),
            Cached {
                answer: answer.clone(),
                fetched: now,
            },
        );
        answer
    }

    /// Drops what an ACL change made stale.
    pub fn invalidate(&mut self, inv: &Invalidation) {
        match inv.action {
            Some(action) => self.answers.remove(&(inv.topic_id, inv.address, action)),
            None => self.answers.retain(|k| k.0 != inv.topic_id),
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.answers.clear();
    }

    /// Answers held.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flytrap_chain::Change;

    fn config() -> CacheConfig {
        CacheConfig {
            max_entries: 4,
            ttl: Duration::from_secs(300),
            deny_ttl: Duration::from_secs(1),
            max_stale: Duration::from_secs(60),
        }
    }

    fn answer(allowed: bool) -> Answer {
        Answer {
            exists: true,
            allowed,
            ..Answer::default()
        }
    }

    #[test]
    fn grants_and_denials_age_differently() {
        let mut c = PermCache::new(config());
        let t = c.topic_id("a/b");
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let now = Instant::now();
        c.insert(t, a, Action::Publish, answer(true), now);
        c.insert(t, b, Action::Publish, answer(false), now);
        assert!(matches!(
            c.get(t, a, Action::Publish, now + Duration::from_secs(10)),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            c.get(t, b, Action::Publish, now + Duration::from_secs(2)),
            Lookup::Expired {
                usable_if_down: false,
                ..
            }
        ));
        assert!(matches!(
            c.get(t, a, Action::Publish, now + Duration::from_secs(330)),
            Lookup::Expired {
                usable_if_down: true,
                ..
            }
        ));
        assert!(matches!(
            c.get(t, a, Action::Publish, now + Duration::from_secs(400)),
            Lookup::Expired {
                usable_if_down: false,
                ..
            }
        ));
        assert!(matches!(c.get(t, a, Action::Subscribe, now), Lookup::Miss));
    }

    #[test]
    fn invalidation_and_bound() {
        let mut c = PermCache::new(config());
        let now = Instant::now();
        let t = c.topic_id("x");
        let a = Address::repeat_byte(1);
        c.insert(t, a, Action::Publish, answer(true), now);
        c.insert(t, a, Action::Subscribe, answer(true), now);
        c.invalidate(&Invalidation {
            topic_id: t,
            address: a,
            action: Some(Action::Publish),
            change: Change::Revoked,
            block: 1,
        });
        assert!(matches!(c.get(t, a, Action::Publish, now), Lookup::Miss));
        assert!(matches!(
            c.get(t, a, Action::Subscribe, now),
            Lookup::Fresh(_)
        ));
        c.invalidate(&Invalidation {
            topic_id: t,
            address: a,
            action: None,
            change: Change::Updated,
            block: 2,
        });
        assert!(c.is_empty());
        for i in 0..100u8 {
            c.insert(
                t,
                Address::repeat_byte(i),
                Action::Publish,
                answer(true),
                now,
            );
        }
        assert!(c.len() <= 4, "bounded: {}", c.len());
    }
}
