//! The replay cache: a timestamped signature is accepted once inside its window.
//!
//! Shared by every shard of the process (sharded by hash into independently locked maps,
//! taken once per CONNECT). Entries expire when their timestamp leaves the window, so memory
//! is bounded by the CONNECT rate times twice the window.
//!
//! With worker processes the cache is shared by all of them instead: a
//! [`SeenTable`] in a file every worker maps ([`ReplayCache::share`]). Should the table have no
//! room near a hash, this process's own maps decide (a replay to another worker could then
//! pass; logged).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use flytrap_engine::seen::{MAX_AHEAD_S, Seen, SeenTable};

const SHARDS: usize = 64;

/// Accepted message hashes and the Unix second after which each can be forgotten.
#[derive(Debug)]
pub struct ReplayCache {
    shards: Vec<Mutex<HashMap<[u8; 32], u64>>>,
    window_s: u64,
    shared: OnceLock<SeenTable>,
    full: AtomicU64,
}

impl ReplayCache {
    /// A cache for signatures valid ±`window_s` around their timestamp.
    pub fn new(window_s: u64) -> ReplayCache {
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            window_s,
            shared: OnceLock::new(),
            full: AtomicU64::new(0),
        }
    }

    /// Uses `table`, shared with other processes, from now on. False (and not used) if one
    /// is set already or the window is too long for it.
    pub fn share(&self, table: SeenTable) -> bool {
        // An entry expires at most a window after a timestamp up to a window ahead.
        self.window_s.saturating_mul(2) < MAX_AHEAD_S && self.shared.set(table).is_ok()
    }

    /// Whether a table shared with other processes is in use.
    pub fn is_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// Records `hash` (signed at `timestamp`) at time `now`; false if it was seen before.
    pub fn first_use(&self, hash: &[u8; 32], timestamp: u64, now: u64) -> bool {
        if let Some(table) = self.shared.get() {
            match table.first_use(hash, timestamp.saturating_add(self.window_s), now) {
                Seen::First => return true,
                Seen::Again => return false,
                Seen::Full => {
                    let n = self.full.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(
                            times = n,
                            slots = table.slots(),
                            "the shared replay table is full here; this worker alone decides"
                        );
                    }
                }
            }
        }
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

    #[test]
    fn shared_between_caches() {
        let dir = std::env::temp_dir().join(format!("flytrap-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("replay");
        SeenTable::create(&path, 1024).unwrap();
        let (a, b) = (ReplayCache::new(300), ReplayCache::new(300));
        assert!(a.share(SeenTable::open(&path).unwrap()));
        assert!(b.share(SeenTable::open(&path).unwrap()));
        let h = [7u8; 32];
        assert!(a.first_use(&h, 1000, 1000));
        assert!(
            !b.first_use(&h, 1000, 1010),
            "a replay to the other process"
        );
        assert!(!a.first_use(&h, 1000, 1010));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
