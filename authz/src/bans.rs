//! Failures per IP and bans (SPEC §3): `max_failures` failed authentications or denied actions
//! from one IP within `window` ban it for `duration`. Bans are checked at accept, before any TLS
//! handshake. Shared by the shards of a process; a new ban is reported once, to be written to
//! the chain in a batch with others (never one transaction per attempt).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ban settings (`[ban]`).
#[derive(Debug, Clone, Copy)]
pub struct BanPolicy {
    /// Failures that trigger a ban.
    pub max_failures: u32,
    /// Window in which they are counted.
    pub window: Duration,
    /// Length of a ban.
    pub duration: Duration,
}

#[derive(Debug, Default)]
struct IpRecord {
    failures: VecDeque<Instant>,
    banned_until: Option<Instant>,
}

/// A new ban, to be recorded on the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewBan {
    /// The IP.
    pub ip: IpAddr,
    /// Failures counted.
    pub failures: u32,
    /// How long.
    pub duration: Duration,
}

/// Failure counts and bans of this process.
#[derive(Debug)]
pub struct BanList {
    policy: BanPolicy,
    ips: Mutex<HashMap<IpAddr, IpRecord>>,
}

impl BanList {
    /// An empty list.
    pub fn new(policy: BanPolicy) -> BanList {
        BanList {
            policy,
            ips: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` is banned at `now`.
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        let map = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)
            .and_then(|r| r.banned_until)
            .is_some_and(|until| until > now)
    }

    /// Counts one failure from `ip`; returns the ban it triggers, if any.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> Option<NewBan> {
        if self.policy.max_failures == 0 {
            return None;
        }
        let mut map = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // An address scan must not grow the map without bound.
            map.retain(|_, r| r.banned_until.is_some_and(|u| u > now) || !r.failures.is_empty());
        }
        let r = map.entry(ip).or_default();
        if r.banned_until.is_some_and(|u| u > now) {
            return None;
        }
        while r
            .failures
            .front()
            .is_some_and(|&t| now.duration_since(t) > self.policy.window)
        {
            r.failures.pop_front();
        }
        r.failures.push_back(now);
        if r.failures.len() as u32 >= self.policy.max_failures {
            let failures = r.failures.len() as u32;
            r.failures.clear();
            r.banned_until = Some(now + self.policy.duration);
            return Some(NewBan {
                ip,
                failures,
                duration: self.policy.duration,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_in_the_window_ban_then_expire() {
        let list = BanList::new(BanPolicy {
            max_failures: 5,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(300),
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..4 {
            assert_eq!(list.record_failure(ip, t0 + Duration::from_secs(i)), None);
        }
        assert!(!list.is_banned(ip, t0));
        let ban = list
            .record_failure(ip, t0 + Duration::from_secs(4))
            .unwrap();
        assert_eq!(ban.failures, 5);
        assert!(list.is_banned(ip, t0 + Duration::from_secs(10)));
        assert!(!list.is_banned(ip, t0 + Duration::from_secs(305)));
        // Failures spread beyond the window do not add up.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..10 {
            assert_eq!(
                list.record_failure(other, t0 + Duration::from_secs(61 * i)),
                None
            );
        }
    }
}
