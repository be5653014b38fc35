//! Failures per IP and bans (SPEC §3): `max_failures` failed authentications or denied actions
//! from one IP within `window` ban it for `duration`. Bans are checked at accept, before any TLS
//! handshake. Shared by the shards of a process; a new ban is reported once, to be written to
//! the chain in a batch with others (never one transaction per attempt).
//!
//! Bans are shared by every proxy following the same contract: the event follower hands each
//! `Banned` record of the chain (any proxy's, any worker's, an operator's lift) to
//! [`BanList::apply`], which bans the IP until the record's `until` — or lifts its bans — in
//! this process, so it is refused at accept on every shard within one block of being mined.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flytrap_chain::ChainBan;

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
    /// Unix time of the last lift seen on the chain: bans decided before it do not count.
    lifted_at: Option<u64>,
}

/// What [`BanList::apply`] did with a record from the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The IP is banned until the record's `until` (or already was, as long).
    Banned,
    /// The IP's bans and failure count are gone.
    Lifted,
    /// Nothing to do: the ban has expired, or a later lift cancelled it.
    Ignored,
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

    /// Applies a `Banned` record from the chain, seen at `now_unix` (Unix seconds) = `now`.
    /// Idempotent: every shard may apply the same record, and a proxy applies its own bans
    /// again when they come back from the chain.
    pub fn apply(&self, ban: &ChainBan, now_unix: u64, now: Instant) -> Applied {
        let mut map = self.ips.lock().unwrap_or_else(|p| p.into_inner());
        if ban.is_lift() {
            let r = map.entry(ban.ip).or_default();
            r.failures.clear();
            r.banned_until = None;
            r.lifted_at = Some(r.lifted_at.map_or(ban.time, |t| t.max(ban.time)));
            return Applied::Lifted;
        }
        if ban.until <= now_unix {
            return Applied::Ignored;
        }
        if map
            .get(&ban.ip)
            .and_then(|r| r.lifted_at)
            .is_some_and(|lifted| ban.time <= lifted)
        {
            return Applied::Ignored;
        }
        let until = now + Duration::from_secs(ban.until - now_unix);
        let r = map.entry(ban.ip).or_default();
        r.failures.clear();
        r.banned_until = Some(r.banned_until.map_or(until, |u| u.max(until)));
        Applied::Banned
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

    fn policy() -> BanPolicy {
        BanPolicy {
            max_failures: 5,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(300),
        }
    }

    fn chain_ban(ip: IpAddr, time: u64, until: u64, failures: u32) -> ChainBan {
        ChainBan {
            ip,
            until,
            failures,
            time,
            block: 1,
        }
    }

    #[test]
    fn bans_from_the_chain_are_enforced_until_they_end_or_are_lifted() {
        let list = BanList::new(policy());
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let (t0, unix) = (Instant::now(), 1_000_000);
        // Another proxy's ban: enforced here until its `until`.
        let ban = chain_ban(ip, unix - 10, unix + 290, 5);
        assert_eq!(list.apply(&ban, unix, t0), Applied::Banned);
        assert_eq!(list.apply(&ban, unix, t0), Applied::Banned, "idempotent");
        assert!(list.is_banned(ip, t0 + Duration::from_secs(289)));
        assert!(!list.is_banned(ip, t0 + Duration::from_secs(291)));
        // A ban already over when it is seen (it waited in a spool) is not enforced.
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        let old = chain_ban(other, unix - 400, unix - 100, 5);
        assert_eq!(list.apply(&old, unix, t0), Applied::Ignored);
        assert!(!list.is_banned(other, t0));
        // A lift ends it, and the failures counted so far.
        let lift = chain_ban(ip, unix + 5, unix + 5, 0);
        assert!(lift.is_lift() && !ban.is_lift() && !old.is_lift());
        assert_eq!(list.apply(&lift, unix + 5, t0), Applied::Lifted);
        assert!(!list.is_banned(ip, t0 + Duration::from_secs(6)));
        // The same ban mined again after the lift (or any ban decided before it) stays lifted.
        assert_eq!(list.apply(&ban, unix + 6, t0), Applied::Ignored);
        assert!(!list.is_banned(ip, t0 + Duration::from_secs(7)));
        // A ban decided after the lift counts again.
        let again = chain_ban(ip, unix + 20, unix + 320, 5);
        assert_eq!(list.apply(&again, unix + 20, t0), Applied::Banned);
        assert!(list.is_banned(ip, t0 + Duration::from_secs(30)));
    }

    #[test]
    fn a_lift_clears_a_local_ban_and_its_failures() {
        let list = BanList::new(policy());
        let ip: IpAddr = "192.0.2.11".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..4 {
            assert_eq!(list.record_failure(ip, t0 + Duration::from_secs(i)), None);
        }
        assert!(
            list.record_failure(ip, t0 + Duration::from_secs(4))
                .is_some()
        );
        assert!(list.is_banned(ip, t0 + Duration::from_secs(5)));
        let lift = chain_ban(ip, 2_000, 2_000, 0);
        assert_eq!(list.apply(&lift, 2_000, t0), Applied::Lifted);
        assert!(!list.is_banned(ip, t0 + Duration::from_secs(5)));
        // Counting starts again from zero.
        for i in 0..4 {
            assert_eq!(
                list.record_failure(ip, t0 + Duration::from_secs(10 + i)),
                None
            );
        }
    }

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
