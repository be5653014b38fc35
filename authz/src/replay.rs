//! The replay cache: a timestamped signature is accepted once inside its window.
//!
//! Shared by every shard of the process (sharded by hash into independently locked maps,
//! taken once per CONNECT). Entries expire when their timestamp leaves the window, so memory
//! is bounded by the CONNECT rate times twice the window.

use std::collections::HashMap;
use std::sync::Mutex;

const SHARDS: usize = 64;

/// Accepted message hashes and the Unix second after which each can be forgotten.
#[derive(Debug)]
pub struct ReplayCache {
    shards: Vec<Mutex<HashMap<[u8; 32], u64>>>,
    window_s: u64,
}

impl ReplayCache {
    /// A cache for signatures valid ±`window_s` around their timestamp.
    pub fn new(window_s: u64) -> ReplayCache {
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            window_s,
        }
    }

    /// Records `hash` (signed at `timestamp`) at time `now`; false if it was seen before.
    pub fn first_use(&self, hash: &[u8; 32], timestamp: u64, now: u64) -> bool {
        let shard = &self.shards[usize::from(hash[0]) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= 1024 && map.len().is_power_of_two() {
            map.retain(|_, &mut expires| expires >= now);
        }
        let expires = timestamp.saturating_add(self.window_s);
        match map.get(hash) {
            Some(&e) if e >= now => false,
            _ => {
                map.insert(*hash, expires);
                true
            }
        }
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_window() {
        let c = ReplayCache::new(300);
        let h = [7u8; 32];
        assert!(c.first_use(&h, 1000, 1000));
        assert!(!c.first_use(&h, 1000, 1200));
        // After the window the timestamp itself is refused by the verifier; the cache may
        // forget it.
        assert!(c.first_use(&h, 1000, 1301));
        assert!(c.first_use(&[8u8; 32], 1000, 1000));
    }
}
