//! Connection limits checked at accept, before any TLS handshake: connections overall, per
//! source IP, and new connections per second per IP.
//!
//! This is the one place the engine takes a lock: once per accepted connection, never per
//! packet. The state is per process; with several worker processes each enforces its own
//! share (see ARCHITECTURE.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use flytrap_proto::ReasonCode;

/// Limits in force; 0 means unlimited.
#[derive(Debug)]
pub struct Limits {
    max_total: usize,
    max_per_ip: usize,
    rate_per_ip: u32,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, IpState>>,
}

#[derive(Debug)]
struct IpState {
    connections: usize,
    tokens: f64,
    refilled: Instant,
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many connections overall or from this IP (0x89 Server busy).
    Busy,
    /// Too many new connections per second from this IP (0x9F Connection rate exceeded).
    Rate,
}

impl Refusal {
    /// The CONNACK reason for a client refused this way.
    pub fn reason_code(self) -> ReasonCode {
        match self {
            Refusal::Busy => ReasonCode::SERVER_BUSY,
            Refusal::Rate => ReasonCode::CONNECTION_RATE_EXCEEDED,
        }
    }

    /// A label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Busy => "busy",
            Refusal::Rate => "rate",
        }
    }
}

/// Held while a connection is open; releases its slot on drop.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
        let mut map = self.limits.lock();
        if let Some(s) = map.get_mut(&self.ip) {
            s.connections -= 1;
            if s.connections == 0 && self.limits.rate_per_ip == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    /// New limits.
    pub fn new(max_total: usize, max_per_ip: usize, rate_per_ip: u32) -> Arc<Limits> {
        Arc::new(Limits {
            max_total,
            max_per_ip,
            rate_per_ip,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, IpState>> {
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections currently admitted.
    pub fn active(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Admits a new connection from `ip` at time `now`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Admission, Refusal> {
        let mut map = self.lock();
        if map.len() > 100_000 {
            // Forget idle rate state so that a scan of many addresses cannot grow the map.
            map.retain(|_, s| s.connections > 0);
        }
        let rate = f64::from(self.rate_per_ip);
        let state = map.entry(ip).or_insert(IpState {
            connections: 0,
            tokens: rate,
            refilled: now,
        });
        if self.rate_per_ip > 0 {
            let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
            state.tokens = (state.tokens + elapsed * rate).min(rate);
            state.refilled = now;
            if state.tokens < 1.0 {
                return Err(Refusal::Rate);
            }
            state.tokens -= 1.0;
        }
        if self.max_per_ip > 0 && state.connections >= self.max_per_ip {
            return Err(Refusal::Busy);
        }
        if self.max_total > 0 && self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(Refusal::Busy);
        }
        state.connections += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(Admission {
            limits: self.clone(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    #[test]
    fn per_ip_and_total() {
        let l = Limits::new(3, 2, 0);
        let now = Instant::now();
        let a1 = l.admit(A, now).unwrap();
        let _a2 = l.admit(A, now).unwrap();
        assert_eq!(l.admit(A, now).unwrap_err(), Refusal::Busy);
        let _b1 = l.admit(B, now).unwrap();
        assert_eq!(l.admit(B, now).unwrap_err(), Refusal::Busy, "total reached");
        drop(a1);
        assert!(l.admit(B, now).is_ok());
    }

    #[test]
    fn rate_refills() {
        let l = Limits::new(0, 0, 2);
        let t0 = Instant::now();
        let _c: Vec<_> = (0..2).map(|_| l.admit(A, t0).unwrap()).collect();
        assert_eq!(l.admit(A, t0).unwrap_err(), Refusal::Rate);
        assert!(l.admit(B, t0).is_ok(), "other IPs are not affected");
        assert!(l.admit(A, t0 + Duration::from_millis(600)).is_ok());
    }
}
