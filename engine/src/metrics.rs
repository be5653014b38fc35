//! Counters and histograms in Prometheus text format. Each shard writes its own cache-padded
//! block of relaxed atomics (no sharing on the hot path); a scrape sums the blocks.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flytrap_proto::PacketType;

/// Upper bounds (µs) of the latency histogram buckets.
/// Fine from 1 to 100 µs, where a CONNECT's phases on loopback fall.
pub const LATENCY_BUCKETS_US: [u64; 18] = [
    1, 5, 10, 20, 30, 40, 50, 75, 100, 150, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 250_000,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    /// In nanoseconds: the sum of sub-microsecond phases stays exact.
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|&b| ns <= b * 1_000)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// One shard's counters.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct ShardMetrics {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections currently open.
    pub active: AtomicU64,
    /// Connections refused at accept: busy.
    pub refused_busy: AtomicU64,
    /// Connections refused at accept: rate.
    pub refused_rate: AtomicU64,
    /// Connections refused at accept: banned source IP.
    pub refused_banned: AtomicU64,
    /// CONNECTs refused (authentication or will).
    pub connect_denied: AtomicU64,
    /// Packets from clients, by type.
    pub packets_in: [AtomicU64; 16],
    /// Packets to clients, by type.
    pub packets_out: [AtomicU64; 16],
    /// Bytes read from clients.
    pub bytes_in: AtomicU64,
    /// Bytes written to clients.
    pub bytes_out: AtomicU64,
    /// PUBLISH denied.
    pub denied_publish: AtomicU64,
    /// SUBSCRIBE filters denied.
    pub denied_subscribe: AtomicU64,
    /// Deliveries withheld.
    pub denied_deliver: AtomicU64,
    /// Malformed packets (either side).
    pub malformed: AtomicU64,
    /// Broker connections that failed.
    pub broker_unreachable: AtomicU64,
    /// TLS handshakes that failed.
    pub tls_failed: AtomicU64,
    /// Verified CONNECTs that found a pre-dialled broker connection.
    pub broker_pool_hits: AtomicU64,
    /// Verified CONNECTs that dialled the broker themselves (pool empty or off).
    pub broker_pool_misses: AtomicU64,
    /// Pre-dialled connections dropped unused (dead, aged or above the pool's target).
    pub broker_pool_stale: AtomicU64,
    /// Pre-dialled connections ready now.
    pub broker_pool_ready: AtomicU64,
    /// TLS handshakes completed.
    pub tls_handshakes: AtomicU64,
    /// TLS handshakes in flight now.
    pub tls_in_flight: AtomicU64,
    /// The most TLS handshakes this shard ever had in flight at once.
    pub tls_in_flight_max: AtomicU64,
    /// Clients that sent no CONNECT in time.
    pub connect_timeout: AtomicU64,
    /// Accept errors (the shard goes on).
    pub accept_errors: AtomicU64,
    /// Relayed sessions ended, by cause ([`Ended`]).
    pub ended: [AtomicU64; Ended::ALL.len()],
    /// Accept to CONNACK sent to the client.
    pub connect_latency: Histogram,
    /// Client TLS handshakes that succeeded, from their start (the handshake slot taken) to
    /// done: the client's round trips and the proxy's work.
    pub tls_handshake: Histogram,
    /// The parts of the CONNECT's path the proxy waits on, by [`ConnectPhase`].
    pub connect_phases: [Histogram; ConnectPhase::ALL.len()],
    /// Time spent waiting for a pending authorisation answer.
    pub authz_wait: Histogram,
}

/// Why a relayed session (after its CONNACK) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed its connection or sent DISCONNECT.
    ClientClosed,
    /// The broker closed its connection or sent DISCONNECT.
    BrokerClosed,
    /// An I/O error in the client→broker direction: reading the client (reset, timed out),
    /// or writing what it sent on to the broker.
    ClientError,
    /// An I/O error in the broker→client direction.
    BrokerError,
    /// A malformed packet or a protocol violation from either side.
    Violation,
    /// The client was silent for 1.5 × its keep alive.
    KeepAlive,
}

impl Ended {
    /// Every cause, in the order of [`ShardMetrics::ended`].
    pub const ALL: [Ended; 6] = [
        Ended::ClientClosed,
        Ended::BrokerClosed,
        Ended::ClientError,
        Ended::BrokerError,
        Ended::Violation,
        Ended::KeepAlive,
    ];

    /// The `cause` label of `flytrap_sessions_ended_total`.
    pub fn label(self) -> &'static str {
        match self {
            Ended::ClientClosed => "client_closed",
            Ended::BrokerClosed => "broker_closed",
            Ended::ClientError => "client_error",
            Ended::BrokerError => "broker_error",
            Ended::Violation => "violation",
            Ended::KeepAlive => "keep_alive",
        }
    }
}

/// A part of a CONNECT's way to its CONNACK, timed on the shard
/// (`flytrap_connect_phase_seconds`): is a slow CONNECT the proxy's or the broker's?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectPhase {
    /// The CONNECT read → authenticated or refused: decoding, the signature, the replay cache
    /// and the will's check; with enhanced authentication, the whole AUTH exchange.
    Authenticate,
    /// Authenticated → a broker connection in hand: one from the pool, or a dial (and its TLS
    /// handshake).
    BrokerConnection,
    /// A broker connection in hand → the broker's first answer read: the CONNECT's rewrite and
    /// write, and the broker's own time.
    BrokerAnswer,
}

impl ConnectPhase {
    /// Every phase, in the order of [`ShardMetrics::connect_phases`].
    pub const ALL: [ConnectPhase; 3] = [
        ConnectPhase::Authenticate,
        ConnectPhase::BrokerConnection,
        ConnectPhase::BrokerAnswer,
    ];

    /// The `phase` label of `flytrap_connect_phase_seconds`.
    pub fn label(self) -> &'static str {
        match self {
            ConnectPhase::Authenticate => "authenticate",
            ConnectPhase::BrokerConnection => "broker_connection",
            ConnectPhase::BrokerAnswer => "broker_answer",
        }
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl ShardMetrics {
    /// Adds one to a counter.
    pub fn inc(&self, f: impl FnOnce(&ShardMetrics) -> &AtomicU64) {
        inc(f(self));
    }

    /// Counts a packet from a client.
    pub fn packet_in(&self, t: PacketType) {
        inc(&self.packets_in[usize::from(t.as_u8())]);
    }

    /// Counts a packet to a client.
    pub fn packet_out(&self, t: PacketType) {
        inc(&self.packets_out[usize::from(t.as_u8())]);
    }

    /// Counts a relayed session's end.
    pub fn ended(&self, cause: Ended) {
        inc(&self.ended[cause as usize]);
    }

    /// Records how long a CONNECT spent in `phase`.
    pub fn connect_phase(&self, phase: ConnectPhase, d: Duration) {
        self.connect_phases[phase as usize].observe(d);
    }
}

/// All shards' metrics of this process.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    shards: Vec<Arc<ShardMetrics>>,
}

const TYPES: [PacketType; 15] = [
    PacketType::Connect,
    PacketType::ConnAck,
    PacketType::Publish,
    PacketType::PubAck,
    PacketType::PubRec,
    PacketType::PubRel,
    PacketType::PubComp,
    PacketType::Subscribe,
    PacketType::SubAck,
    PacketType::Unsubscribe,
    PacketType::UnsubAck,
    PacketType::PingReq,
    PacketType::PingResp,
    PacketType::Disconnect,
    PacketType::Auth,
];

type CounterRow = (&'static str, &'static str, fn(&ShardMetrics) -> &AtomicU64);
type HistogramRow = (&'static str, &'static str, fn(&ShardMetrics) -> &Histogram);

impl Metrics {
    /// Metrics for `n` shards.
    pub fn new(n: usize) -> Metrics {
        Metrics {
            shards: (0..n).map(|_| Arc::new(ShardMetrics::default())).collect(),
        }
    }

    /// Shard `i`'s block.
    pub fn shard(&self, i: usize) -> Arc<ShardMetrics> {
        self.shards[i].clone()
    }

    fn sum(&self, f: impl Fn(&ShardMetrics) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// One histogram's buckets, sum and count, summed over shards; `labels` (`k="v"`, or
    /// empty) go before `le`.
    fn render_histogram(
        &self,
        out: &mut String,
        name: &str,
        labels: &str,
        f: impl Fn(&ShardMetrics) -> &Histogram,
    ) {
        let (sep, braces) = if labels.is_empty() {
            ("", String::new())
        } else {
            (",", format!("{{{labels}}}"))
        };
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_US
            .iter()
            .map(Some)
            .chain([None])
            .enumerate()
        {
            cumulative += self
                .shards
                .iter()
                .map(|s| f(s).buckets[i].load(Ordering::Relaxed))
                .sum::<u64>();
            let le = match bound {
                Some(us) => (*us as f64 / 1e6).to_string(),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum: u64 = self
            .shards
            .iter()
            .map(|s| f(s).sum_ns.load(Ordering::Relaxed))
            .sum();
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}\n{name}_count{braces} {cumulative}",
            sum as f64 / 1e9
        );
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [CounterRow; 19] = [
            (
                "flytrap_refused_banned_total",
                "Connections refused: banned IP.",
                |s| &s.refused_banned,
            ),
            (
                "flytrap_connections_accepted_total",
                "Client connections accepted.",
                |s| &s.accepted,
            ),
            (
                "flytrap_connect_denied_total",
                "CONNECTs refused by authentication.",
                |s| &s.connect_denied,
            ),
            (
                "flytrap_bytes_received_total",
                "Bytes read from clients.",
                |s| &s.bytes_in,
            ),
            (
                "flytrap_bytes_sent_total",
                "Bytes written to clients.",
                |s| &s.bytes_out,
            ),
            (
                "flytrap_denied_publish_total",
                "PUBLISH packets denied.",
                |s| &s.denied_publish,
            ),
            (
                "flytrap_denied_subscribe_total",
                "Topic filters denied.",
                |s| &s.denied_subscribe,
            ),
            (
                "flytrap_denied_delivery_total",
                "Deliveries withheld from clients.",
                |s| &s.denied_deliver,
            ),
            (
                "flytrap_malformed_packets_total",
                "Malformed packets from either side.",
                |s| &s.malformed,
            ),
            (
                "flytrap_broker_unreachable_total",
                "Broker connections that failed.",
                |s| &s.broker_unreachable,
            ),
            (
                "flytrap_broker_pool_hits_total",
                "CONNECTs that took a pre-dialled broker connection.",
                |s| &s.broker_pool_hits,
            ),
            (
                "flytrap_broker_pool_misses_total",
                "CONNECTs that dialled the broker themselves.",
                |s| &s.broker_pool_misses,
            ),
            (
                "flytrap_broker_pool_dropped_total",
                "Pre-dialled broker connections dropped unused (dead, aged, surplus).",
                |s| &s.broker_pool_stale,
            ),
            (
                "flytrap_tls_handshake_failures_total",
                "TLS handshakes that failed.",
                |s| &s.tls_failed,
            ),
            (
                "flytrap_tls_handshakes_total",
                "TLS handshakes completed.",
                |s| &s.tls_handshakes,
            ),
            (
                "flytrap_connect_timeouts_total",
                "Clients that sent no CONNECT in time.",
                |s| &s.connect_timeout,
            ),
            ("flytrap_accept_errors_total", "Accept errors.", |s| {
                &s.accept_errors
            }),
            (
                "flytrap_refused_busy_total",
                "Connections refused: too many.",
                |s| &s.refused_busy,
            ),
            (
                "flytrap_refused_rate_total",
                "Connections refused: rate per IP.",
                |s| &s.refused_rate,
            ),
        ];
        for (name, help, f) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                self.sum(f)
            );
        }
        let _ = writeln!(
            out,
            "# HELP flytrap_connections_active Client connections open.\n# TYPE flytrap_connections_active gauge\nflytrap_connections_active {}",
            self.sum(|s| &s.active)
        );
        let _ = writeln!(
            out,
            "# HELP flytrap_broker_pool_ready Pre-dialled broker connections ready.\n# TYPE flytrap_broker_pool_ready gauge\nflytrap_broker_pool_ready {}",
            self.sum(|s| &s.broker_pool_ready)
        );
        let _ = writeln!(
            out,
            "# HELP flytrap_tls_handshakes_in_flight TLS handshakes in progress.\n# TYPE flytrap_tls_handshakes_in_flight gauge\nflytrap_tls_handshakes_in_flight {}",
            self.sum(|s| &s.tls_in_flight)
        );
        let _ = writeln!(
            out,
            "# HELP flytrap_tls_handshakes_in_flight_max The most TLS handshakes one shard had in progress at once.\n# TYPE flytrap_tls_handshakes_in_flight_max gauge\nflytrap_tls_handshakes_in_flight_max {}",
            self.shards
                .iter()
                .map(|s| s.tls_in_flight_max.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0)
        );
        for (name, dir) in [
            ("flytrap_packets_received_total", 0),
            ("flytrap_packets_sent_total", 1),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} Packets by type ({}).\n# TYPE {name} counter",
                if dir == 0 {
                    "from clients"
                } else {
                    "to clients"
                }
            );
            for t in TYPES {
                let i = usize::from(t.as_u8());
                let v: u64 = self
                    .shards
                    .iter()
                    .map(|s| {
                        if dir == 0 {
                            &s.packets_in[i]
                        } else {
                            &s.packets_out[i]
                        }
                        .load(Ordering::Relaxed)
                    })
                    .sum();
                let _ = writeln!(out, "{name}{{type=\"{}\"}} {v}", t.name());
            }
        }
        let name = "flytrap_sessions_ended_total";
        let _ = writeln!(
            out,
            "# HELP {name} Relayed sessions ended, by cause.\n# TYPE {name} counter"
        );
        for cause in Ended::ALL {
            let v: u64 = self.sum(|s| &s.ended[cause as usize]);
            let _ = writeln!(out, "{name}{{cause=\"{}\"}} {v}", cause.label());
        }
        let histograms: [HistogramRow; 3] = [
            ("flytrap_connect_seconds", "Accept to CONNACK.", |s| {
                &s.connect_latency
            }),
            (
                "flytrap_tls_handshake_seconds",
                "Client TLS handshakes that succeeded, start to done.",
                |s| &s.tls_handshake,
            ),
            (
                "flytrap_authz_wait_seconds",
                "Waits for pending authorisation answers.",
                |s| &s.authz_wait,
            ),
        ];
        for (name, help, f) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            self.render_histogram(&mut out, name, "", f);
        }
        let name = "flytrap_connect_phase_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Parts of the way from CONNECT to CONNACK, by phase.\n# TYPE {name} histogram"
        );
        for phase in ConnectPhase::ALL {
            let label = format!("phase=\"{}\"", phase.label());
            self.render_histogram(&mut out, name, &label, move |s| {
                &s.connect_phases[phase as usize]
            });
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` from a background thread (plain HTTP/1.1, one request per
/// connection): scrapes never touch a shard.
pub fn serve(
    addr: std::net::SocketAddr,
    metrics: Metrics,
) -> std::io::Result<std::net::SocketAddr> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("flytrap-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut req = [0u8; 1024];
            let n = stream.read(&mut req).unwrap_or(0);
            let (status, body) = if req[..n].starts_with(b"GET /metrics") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "try /metrics\n".to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sums_over_shards() {
        let m = Metrics::new(2);
        m.shard(0).inc(|s| &s.accepted);
        m.shard(1).inc(|s| &s.accepted);
        m.shard(1).packet_in(PacketType::Publish);
        m.shard(0)
            .connect_latency
            .observe(Duration::from_micros(40));
        m.shard(1)
            .connect_phase(ConnectPhase::Authenticate, Duration::from_nanos(600));
        m.shard(0)
            .connect_phase(ConnectPhase::Authenticate, Duration::from_micros(30));
        let text = m.render();
        assert!(text.contains("flytrap_connections_accepted_total 2\n"));
        assert!(text.contains("flytrap_packets_received_total{type=\"PUBLISH\"} 1\n"));
        assert!(text.contains("flytrap_connect_seconds_bucket{le=\"0.00005\"} 1\n"));
        assert!(text.contains("flytrap_connect_seconds_count 1\n"));
        assert!(text.contains("flytrap_connect_seconds_sum 0.00004\n"));
        // Phases: labelled, summed over shards, sums exact below a microsecond.
        let phase = "flytrap_connect_phase_seconds";
        assert!(text.contains(&format!(
            "{phase}_bucket{{phase=\"authenticate\",le=\"0.000001\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "{phase}_bucket{{phase=\"authenticate\",le=\"0.00002\"}} 1\n"
        )));
        // A bucket's bound is inclusive.
        assert!(text.contains(&format!(
            "{phase}_bucket{{phase=\"authenticate\",le=\"0.00003\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "{phase}_sum{{phase=\"authenticate\"}} 0.0000306\n"
        )));
        assert!(text.contains(&format!("{phase}_count{{phase=\"authenticate\"}} 2\n")));
        assert!(text.contains(&format!("{phase}_count{{phase=\"broker_answer\"}} 0\n")));
        assert_eq!(
            text.matches(&format!("# TYPE {phase} histogram")).count(),
            1
        );
    }
}
