//! A shard's pre-dialled broker connections.
//!
//! The proxy must not open its broker connection before a client's CONNECT is verified
//! (nothing unauthenticated reaches the broker), so without a pool every CONNECT→CONNACK
//! carries a whole TCP (and TLS) handshake to the broker. The pool dials ahead instead: TCP
//! established, TLS handshaken, no MQTT byte sent, so a broker holds no session for a pooled
//! socket and a refused client's CONNECT never touches one.
//!
//! Per broker address, the pool keeps between `min` and `max` connections, aiming at the recent
//! rate of verified CONNECTs times the refill horizon. Taking one starts its replacement in the
//! background; a connection is checked before it is handed out (a broker closes pre-CONNECT
//! sockets after a while, and all of them when it restarts) and a dead one is dropped, the
//! caller dialling afresh. A background task ages out idle connections, drops dead ones and
//! tops the pool up, backing off while a broker is unreachable.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::BrokerPoolConfig;
use crate::io::{BrokerStream, Stream};
use crate::metrics::ShardMetrics;
use crate::upstream::Dialer;

/// Dials in flight per broker at once: a burst refills in steps rather than as a storm of its
/// own against the broker.
const MAX_CONCURRENT_DIALS: usize = 8;
/// Time constant of the CONNECT rate average.
const RATE_TAU: Duration = Duration::from_secs(1);
/// How often the background task looks at the pool.
const TICK: Duration = Duration::from_millis(100);
/// Longest wait before dialling an unreachable broker again.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// An exponentially weighted rate of events per second: each event adds `1 / τ`, and the sum
/// decays by `e^(-Δt / τ)`, so a steady rate r reads r.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateEstimate {
    per_s: f64,
    at: Option<Instant>,
}

impl RateEstimate {
    /// One event at `now`.
    pub fn record(&mut self, now: Instant) {
        self.per_s = self.rate(now) + 1.0 / RATE_TAU.as_secs_f64();
        self.at = Some(now);
    }

    /// Events per second as of `now`.
    pub fn rate(&self, now: Instant) -> f64 {
        match self.at {
            None => 0.0,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.per_s * (-dt / RATE_TAU.as_secs_f64()).exp()
            }
        }
    }
}

/// Connections to keep ready for a CONNECT rate (per second).
pub fn target_size(config: &BrokerPoolConfig, rate: f64) -> usize {
    let min = config.min.min(config.max);
    let wanted = (rate * config.horizon.as_secs_f64()).ceil();
    // `as` saturates: a huge or non-finite rate gives `max`.
    (wanted as usize).clamp(min, config.max)
}

/// Whether a pooled connection can still carry a CONNECT: the broker has not closed or reset
/// it and, for plain TCP, sent nothing unsolicited (over TLS, post-handshake messages such as
/// session tickets may wait unread). `POLLRDHUP` sees a close even behind unread data.
fn is_alive(stream: &BrokerStream) -> bool {
    let (fd, tls): (RawFd, bool) = match stream {
        Stream::Tcp(s) => (s.as_raw_fd(), false),
        Stream::Tls(s) => (s.get_ref().0.as_raw_fd(), true),
    };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: `pfd` is one live pollfd for an open socket of a stream we own; a zero timeout
    // makes poll(2) only report the state, never block.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n < 0 {
        return false;
    }
    let gone = libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
    pfd.revents & gone == 0 && (tls || pfd.revents & libc::POLLIN == 0)
}

#[derive(Debug)]
struct Idle {
    stream: BrokerStream,
    since: Instant,
}

/// One CONNECT in flight to a broker (see [`BrokerPool::get`]); dropped at its CONNACK.
#[derive(Debug)]
pub struct Pending {
    _permit: Option<OwnedSemaphorePermit>,
}

/// One broker address's share of the pool.
#[derive(Debug)]
struct Slot {
    addr: SocketAddr,
    /// Oldest first.
    idle: RefCell<VecDeque<Idle>>,
    dialing: Cell<usize>,
    rate: Cell<RateEstimate>,
    /// CONNECTs in flight to this broker (`broker_max_pending`), `None` when unbounded.
    pending: Option<Arc<Semaphore>>,
    failures: Cell<u32>,
    retry_at: Cell<Option<Instant>>,
}

/// A shard's broker connections: fresh or pre-dialled.
#[derive(Debug)]
pub struct BrokerPool {
    dialer: Dialer,
    config: BrokerPoolConfig,
    slots: Vec<Slot>,
    metrics: Arc<ShardMetrics>,
    closed: Cell<bool>,
}

impl BrokerPool {
    /// A pool over `brokers` (empty until [`BrokerPool::maintain`] runs or a connection is
    /// taken).
    pub fn new(
        brokers: &[SocketAddr],
        dialer: Dialer,
        config: BrokerPoolConfig,
        max_pending: usize,
        metrics: Arc<ShardMetrics>,
    ) -> Rc<BrokerPool> {
        Rc::new(BrokerPool {
            dialer,
            config,
            slots: brokers
                .iter()
                .map(|&addr| Slot {
                    addr,
                    idle: RefCell::new(VecDeque::new()),
                    dialing: Cell::new(0),
                    rate: Cell::new(RateEstimate::default()),
                    pending: (max_pending > 0).then(|| Arc::new(Semaphore::new(max_pending))),
                    failures: Cell::new(0),
                    retry_at: Cell::new(None),
                })
                .collect(),
            metrics,
            closed: Cell::new(false),
        })
    }

    /// The broker for `client_id` (a stable hash, see [`crate::upstream::pick`]).
    pub fn pick(&self, client_id: &str) -> Option<usize> {
        crate::upstream::pick_index(self.slots.len(), client_id)
    }

    /// Broker `i`'s address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.slots[i].addr
    }

    /// A connection to broker `i` for a verified CONNECT: a live pooled one, or a new one;
    /// with the permit that counts it as pending until the caller has the broker's CONNACK
    /// (it waits here while `broker_max_pending` CONNECTs are in flight to that broker, at
    /// most the dial timeout: then `TimedOut`, which the client sees as CONNACK 0x88).
    pub async fn get(self: &Rc<Self>, i: usize) -> io::Result<(BrokerStream, Pending)> {
        // The wait is bounded like the dial itself: a broker that stops answering frees each
        // slot within the timeout, but a queue behind it could otherwise wait for minutes.
        let pending = match &self.slots[i].pending {
            Some(s) => Pending {
                _permit: tokio::time::timeout(self.dialer.timeout, s.clone().acquire_owned())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
                    .ok(),
            },
            None => Pending { _permit: None },
        };
        if let Some(stream) = self.take(i) {
            self.metrics.inc(|m| &m.broker_pool_hits);
            return Ok((stream, pending));
        }
        self.metrics.inc(|m| &m.broker_pool_misses);
        Ok((self.dialer.dial(self.slots[i].addr).await?, pending))
    }

    /// A live pooled connection to broker `i`, if there is one; counts the CONNECT for the
    /// pool's size. The replacement is not started here: see [`BrokerPool::replenish`].
    fn take(self: &Rc<Self>, i: usize) -> Option<BrokerStream> {
        if !self.config.enabled() || self.closed.get() {
            return None;
        }
        let slot = &self.slots[i];
        let mut rate = slot.rate.get();
        rate.record(Instant::now());
        slot.rate.set(rate);
        let mut found = None;
        while let Some(idle) = slot.idle.borrow_mut().pop_back() {
            if is_alive(&idle.stream) {
                found = Some(idle.stream);
                break;
            }
            self.metrics.inc(|m| &m.broker_pool_stale);
        }
        self.publish_ready();
        found
    }

    /// Starts the replacements for what a CONNECT took from broker `i`'s share. Called once
    /// the broker's CONNACK is on its way to the client: a dial started earlier would make
    /// the broker accept a connection while it handles the CONNECT, and on a shared CPU
    /// that is time on the client's CONNECT→CONNACK path. The dials run as their own tasks,
    /// after the caller's next wait.
    pub fn replenish(self: &Rc<Self>, i: usize) {
        if self.config.enabled() {
            self.refill(i);
        }
    }

    fn publish_ready(&self) {
        self.metrics
            .broker_pool_ready
            .store(self.ready() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Starts dials until broker `i`'s ready and in-flight connections reach the target.
    fn refill(self: &Rc<Self>, i: usize) {
        let slot = &self.slots[i];
        let now = Instant::now();
        if self.closed.get() || slot.retry_at.get().is_some_and(|t| now < t) {
            return;
        }
        slot.retry_at.set(None);
        let target = target_size(&self.config, slot.rate.get().rate(now));
        let have = slot.idle.borrow().len() + slot.dialing.get();
        let wanted = target
            .saturating_sub(have)
            .min(MAX_CONCURRENT_DIALS.saturating_sub(slot.dialing.get()));
        // Counted before spawning, so that the count is right whenever the dial runs.
        for _ in 0..wanted {
            if slot.retry_at.get().is_some() {
                break; // one failed meanwhile: back off
            }
            slot.dialing.set(slot.dialing.get() + 1);
            let pool = self.clone();
            // A spawned task runs after the caller next waits (the CONNACK's relay).
            tokio::task::spawn_local(pool.dial_into(i));
        }
    }

    async fn dial_into(self: Rc<Self>, i: usize) {
        let slot = &self.slots[i];
        let dialled = self.dialer.dial(slot.addr).await;
        slot.dialing.set(slot.dialing.get() - 1);
        match dialled {
            Ok(stream) => {
                slot.failures.set(0);
                slot.retry_at.set(None);
                if !self.closed.get() {
                    slot.idle.borrow_mut().push_back(Idle {
                        stream,
                        since: Instant::now(),
                    });
                    self.publish_ready();
                    self.refill(i);
                }
            }
            Err(e) => {
                let failures = slot.failures.get().saturating_add(1);
                slot.failures.set(failures);
                let backoff = (Duration::from_millis(50) * 2u32.saturating_pow(failures.min(8)))
                    .min(MAX_BACKOFF);
                slot.retry_at.set(Some(Instant::now() + backoff));
                tracing::debug!(addr = %slot.addr, error = %e, ?backoff, "pre-dial failed");
            }
        }
    }

    /// Keeps the pool fresh until [`BrokerPool::close`]: drops dead and aged connections,
    /// trims to the target as the rate falls, and tops up.
    pub async fn maintain(self: Rc<Self>) {
        if !self.config.enabled() {
            return;
        }
        while !self.closed.get() {
            let now = Instant::now();
            for (i, slot) in self.slots.iter().enumerate() {
                let target = target_size(&self.config, slot.rate.get().rate(now));
                let mut idle = slot.idle.borrow_mut();
                let before = idle.len();
                idle.retain(|c| {
                    now.saturating_duration_since(c.since) < self.config.max_idle
                        && is_alive(&c.stream)
                });
                let mut dropped = before - idle.len();
                while idle.len() > target {
                    idle.pop_front();
                    dropped += 1;
                }
                drop(idle);
                for _ in 0..dropped {
                    self.metrics.inc(|m| &m.broker_pool_stale);
                }
                self.refill(i);
            }
            self.publish_ready();
            tokio::time::sleep(TICK).await;
        }
    }

    /// Closes every pooled connection and stops refilling (shutdown).
    pub fn close(&self) {
        self.closed.set(true);
        for slot in &self.slots {
            slot.idle.borrow_mut().clear();
        }
        self.publish_ready();
    }

    /// Connections ready now, over all brokers.
    pub fn ready(&self) -> usize {
        self.slots.iter().map(|s| s.idle.borrow().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BrokerPoolConfig {
        BrokerPoolConfig {
            min: 2,
            max: 64,
            horizon: Duration::from_millis(20),
            max_idle: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_steady_rate_reads_as_itself_and_decays_when_it_stops() {
        let start = Instant::now();
        let mut r = RateEstimate::default();
        assert_eq!(r.rate(start), 0.0);
        // 1,000 events a second for 5 s (5 τ): within 1 % of 1,000.
        for k in 1..=5000u64 {
            r.record(start + Duration::from_micros(k * 1000));
        }
        let end = start + Duration::from_secs(5);
        let steady = r.rate(end);
        assert!((990.0..=1010.0).contains(&steady), "{steady}");
        // Quiet for 1 s: e^-1 of it; for 10 s: nearly nothing.
        let after_1s = r.rate(end + Duration::from_secs(1));
        assert!(
            (steady * 0.36..steady * 0.38).contains(&after_1s),
            "{after_1s}"
        );
        assert!(r.rate(end + Duration::from_secs(10)) < 0.1);
        // A clock that goes backwards reads the last value.
        assert_eq!(r.rate(start), r.per_s);
    }

    #[test]
    fn the_target_is_rate_times_horizon_within_bounds() {
        let c = config();
        assert_eq!(target_size(&c, 0.0), 2, "min when idle");
        assert_eq!(target_size(&c, 150.0), 3, "150/s × 20 ms, rounded up");
        assert_eq!(target_size(&c, 1000.0), 20);
        assert_eq!(target_size(&c, 1e9), 64, "max");
        assert_eq!(target_size(&c, f64::INFINITY), 64);
        assert_eq!(target_size(&c, f64::NAN), 2);
        assert_eq!(target_size(&BrokerPoolConfig::OFF, 1000.0), 0, "off");
        let inverted = BrokerPoolConfig {
            min: 10,
            max: 4,
            ..c
        };
        assert_eq!(target_size(&inverted, 0.0), 4, "min above max reads as max");
    }
}
