//! What a run measured: one HDR histogram per phase (nanoseconds, 3 significant digits), the
//! outcome of every reply by reason code, and the errors by kind. Each executor keeps its own
//! and they are merged at the end (and across worker processes, serialised).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// A measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// TCP connect, TLS handshake and CONNECT→CONNACK.
    Connect,
    /// SUBSCRIBE→SUBACK.
    Subscribe,
    /// PUBLISH→PUBACK (QoS 1) or →PUBCOMP (QoS 2), from the scheduled send time.
    Publish,
    /// From the publisher's scheduled send time (in the payload) to delivery.
    EndToEnd,
}

impl Phase {
    /// Every phase, in report order.
    pub const ALL: [Phase; 4] = [
        Phase::Connect,
        Phase::Subscribe,
        Phase::Publish,
        Phase::EndToEnd,
    ];

    /// The name in file names and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Subscribe => "subscribe",
            Phase::Publish => "publish",
            Phase::EndToEnd => "end-to-end",
        }
    }
}

/// Highest latency recorded: longer ones are clamped (and still counted).
const MAX_NS: u64 = 3_600_000_000_000;

/// Counters and histograms of one executor, one process, or a whole run.
#[derive(Debug, Clone)]
pub struct Stats {
    hist: [Histogram<u64>; 4],
    /// Replies by kind and reason code, e.g. `connack 0x00`, `puback 0x87`.
    pub outcomes: BTreeMap<String, u64>,
    /// Failures by kind, e.g. `connack 0x86 (expected 0x00)`, `timeout: connack`.
    pub errors: BTreeMap<String, u64>,
    /// PUBLISHes sent.
    pub sent: u64,
    /// PUBLISHes received by subscribers.
    pub received: u64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 1 hour at 3 significant digits: every value is within 0.1 %.
    Histogram::new_with_bounds(1, MAX_NS, 3).unwrap_or_else(|_| unreachable!("valid bounds"))
}

impl Stats {
    /// Empty.
    pub fn new() -> Stats {
        Stats {
            hist: [histogram(), histogram(), histogram(), histogram()],
            outcomes: BTreeMap::new(),
            errors: BTreeMap::new(),
            sent: 0,
            received: 0,
        }
    }

    /// Records one latency.
    pub fn record(&mut self, phase: Phase, latency: Duration) {
        let ns = (latency.as_nanos() as u64).clamp(1, MAX_NS);
        self.hist[phase as usize].saturating_record(ns);
    }

    /// The histogram of `phase` (nanoseconds).
    pub fn histogram(&self, phase: Phase) -> &Histogram<u64> {
        &self.hist[phase as usize]
    }

    /// Counts a reply.
    pub fn outcome(&mut self, key: String) {
        *self.outcomes.entry(key).or_default() += 1;
    }

    /// Counts a failure.
    pub fn error(&mut self, key: String) {
        *self.errors.entry(key).or_default() += 1;
    }

    /// All failures.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        for (mine, theirs) in self.hist.iter_mut().zip(&other.hist) {
            // Same bounds on both sides: add cannot fail.
            let _ = mine.add(theirs);
        }
        for (k, v) in &other.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.sent += other.sent;
        self.received += other.received;
    }

    /// The wire form between a worker process and its parent.
    pub fn to_wire(&self) -> anyhow::Result<String> {
        let mut hist = Vec::new();
        for h in &self.hist {
            let mut bytes = Vec::new();
            V2Serializer::new()
                .serialize(h, &mut bytes)
                .map_err(|e| anyhow::anyhow!("cannot serialise a histogram: {e:?}"))?;
            hist.push(hex::encode(bytes));
        }
        Ok(serde_json::to_string(&Wire {
            hist,
            outcomes: self.outcomes.clone(),
            errors: self.errors.clone(),
            sent: self.sent,
            received: self.received,
        })?)
    }

    /// Reads [`Stats::to_wire`]'s output.
    pub fn from_wire(text: &str) -> anyhow::Result<Stats> {
        let wire: Wire = serde_json::from_str(text).context("bad worker report")?;
        let mut stats = Stats::new();
        anyhow::ensure!(wire.hist.len() == 4, "bad worker report: histogram count");
        for (slot, h) in stats.hist.iter_mut().zip(&wire.hist) {
            let bytes = hex::decode(h).context("bad worker report: histogram hex")?;
            let read: Histogram<u64> = Deserializer::new()
                .deserialize(&mut &bytes[..])
                .map_err(|e| anyhow::anyhow!("bad worker report: histogram: {e:?}"))?;
            slot.add(&read)
                .map_err(|e| anyhow::anyhow!("bad worker report: histogram: {e:?}"))?;
        }
        stats.outcomes = wire.outcomes;
        stats.errors = wire.errors;
        stats.sent = wire.sent;
        stats.received = wire.received;
        Ok(stats)
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    hist: Vec<String>,
    outcomes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    sent: u64,
    received: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_merge() {
        let mut a = Stats::new();
        a.record(Phase::Connect, Duration::from_micros(120));
        a.record(Phase::Publish, Duration::from_micros(40));
        a.outcome("connack 0x00".into());
        a.error("timeout: connack".into());
        a.sent = 3;
        let b = Stats::from_wire(&a.to_wire().unwrap()).unwrap();
        assert_eq!(b.histogram(Phase::Connect).len(), 1);
        assert_eq!(
            b.histogram(Phase::Publish).max(),
            a.histogram(Phase::Publish).max()
        );
        assert_eq!(b.outcomes, a.outcomes);
        let mut c = a.clone();
        c.merge(&b);
        assert_eq!(c.histogram(Phase::Connect).len(), 2);
        assert_eq!(c.error_count(), 2);
        assert_eq!(c.sent, 6);
        assert!(Stats::from_wire("{").is_err());
    }
}
