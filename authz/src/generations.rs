//! A bounded map in two generations: new entries go to the young map; when it holds half the
//! capacity it becomes the old map and the previous old map is dropped; a hit in the old map
//! moves the entry back to the young one. Recently used entries stay at O(1) per operation,
//! like an LRU without its bookkeeping. Shard-local: no lock.

use std::collections::HashMap;
use std::hash::Hash;

/// At most `capacity` entries (0: holds nothing).
#[derive(Debug)]
pub struct Generations<K, V> {
    capacity: usize,
    young: HashMap<K, V>,
    old: HashMap<K, V>,
}

impl<K: Hash + Eq, V: Clone> Generations<K, V> {
    /// An empty map for up to `capacity` entries.
    pub fn new(capacity: usize) -> Generations<K, V> {
        Generations {
            capacity,
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }

    /// The value for `key`, moved to the young generation if it was old.
    pub fn get(&mut self, key: &K) -> Option<V>
    where
        K: Clone,
    {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let v = self.old.remove(key)?;
        self.insert(key.clone(), v.clone());
        Some(v)
    }

    /// Stores `value` under `key`, ageing the young generation if it is full.
    pub fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if self.young.len() >= (self.capacity / 2).max(1) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        self.young.remove(key);
        self.old.remove(key);
    }

    /// Keeps only the entries `keep` approves.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.young.retain(|k, _| keep(k));
        self.old.retain(|k, _| keep(k));
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
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
    fn bounded_and_recently_used_entries_survive() {
        let mut g = Generations::new(4);
        for k in 0..4 {
            g.insert(k, k * 10);
        }
        // 0 and 1 aged when 2 arrived. Using 0 brings it back: 2 and 3 age, 1 is dropped.
        assert_eq!(g.get(&0), Some(0));
        assert_eq!(g.get(&1), None);
        g.insert(4, 40);
        assert_eq!(g.len(), 4);
        assert_eq!(g.get(&2), Some(20));
        for k in 5..100 {
            g.insert(k, k);
            assert!(g.len() <= 4, "holds {} entries", g.len());
        }
        assert_eq!(g.get(&0), None);
        assert_eq!(g.get(&99), Some(99));
    }

    #[test]
    fn zero_capacity_holds_nothing() {
        let mut g = Generations::new(0);
        g.insert(1, 1);
        assert!(g.is_empty());
        assert_eq!(g.get(&1), None);
    }

    #[test]
    fn remove_retain_clear() {
        let mut g = Generations::new(8);
        for k in 0..6 {
            g.insert(k, k);
        }
        g.remove(&0);
        assert_eq!(g.get(&0), None);
        g.retain(|k| k % 2 == 1);
        assert_eq!(g.len(), 3);
        assert_eq!(g.get(&3), Some(3));
        g.clear();
        assert!(g.is_empty());
    }
}
