//! What the engine needs to run, as plain data. The `flytrap` binary fills it from TOML.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Certificate chain and private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// What an idle shard does before it sleeps in the kernel until the next event (see
/// [`crate::runtime`]).
///
/// Sleeping costs a wake-up per event (the kernel's scheduler and epoll's: about half of what
/// a proxy adds to a loopback round trip, see BENCHMARKS.md); polling costs CPU that a broker
/// sharing the core may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Park {
    /// Sleep at once.
    Sleep,
    /// Poll this long after every arrival (bytes read, a connection accepted), then sleep.
    Spin(Duration),
    /// Poll up to this long after every arrival, yielding the CPU on every turn to any thread
    /// ready to run on it, and sleep as soon as one took it (the CPU is contended).
    Adaptive(Duration),
}

impl Default for Park {
    fn default() -> Park {
        Park::Adaptive(Duration::from_micros(50))
    }
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Number of shards (runtime threads), each on one CPU (pinned to it if `pin`).
    pub shards: usize,
    /// CPUs to pin shards to, in order; empty = the first `shards` CPUs available.
    pub cpus: Vec<usize>,
    /// Pin each shard's thread to its CPU in `cpus`; `false` leaves placement to the
    /// kernel's scheduler, within the CPUs the process may use.
    pub pin: bool,
    /// Plain TCP listener.
    pub listen_tcp: Option<SocketAddr>,
    /// TLS listener.
    pub listen_tls: Option<SocketAddr>,
    /// Certificate and key for the TLS listener.
    pub tls: Option<TlsFiles>,
    /// Brokers; a client is placed on one by a hash of its client identifier.
    pub brokers: Vec<SocketAddr>,
    /// Local addresses broker connections are opened from, round-robin (empty = the
    /// kernel's choice).
    pub source_addresses: Vec<std::net::IpAddr>,
    /// Speak TLS to the brokers.
    pub broker_tls: bool,
    /// CA certificates (PEM) that sign the brokers' certificates; without it, the system's
    /// roots (`/etc/ssl/certs/ca-certificates.crt`).
    pub broker_ca: Option<PathBuf>,
    /// Expect a PROXY protocol (v1 or v2) header on every client connection.
    pub proxy_protocol: bool,
    /// Time allowed for the TLS handshake, and then again for a complete CONNECT
    /// (slow-loris defence). It starts when the shard takes the connection from the accept
    /// queue, so time spent waiting there for a handshake slot does not count.
    pub connect_timeout: Duration,
    /// TLS handshakes in flight per shard (0 = unbounded). Further TLS connections wait in
    /// the kernel's accept queue until one finishes: admission control, so that handshakes
    /// on saturated CPUs finish in bounded time instead of all timing out together.
    pub max_handshakes: usize,
    /// Listen backlog of every listener (the kernel caps it at `net.core.somaxconn`): the
    /// accept queue that holds connections waiting for a handshake slot.
    pub listen_backlog: u32,
    /// Time allowed to open the broker connection.
    pub broker_connect_timeout: Duration,
    /// Pre-dialled broker connections (see [`crate::upstream::pool`]).
    pub broker_pool: BrokerPoolConfig,
    /// CONNECTs a shard has in flight to one broker at once, from the dial (or the pooled
    /// connection) to the broker's CONNACK (0 = unbounded). Further verified CONNECTs wait in
    /// the proxy: a burst of dials would overflow the broker's listen backlog (Mosquitto's is
    /// 100) and each dropped SYN costs its client a one-second retransmission.
    pub broker_max_pending: usize,
    /// Largest packet accepted from either side, fixed header included.
    pub max_packet_size: usize,
    /// Connections held at once by this process (0 = unlimited).
    pub max_connections: usize,
    /// Connections held at once from one source IP by this process (0 = unlimited).
    pub max_connections_per_ip: usize,
    /// New connections per second per source IP, checked at accept (0 = unlimited).
    pub connection_rate_per_ip: u32,
    /// How long a SIGTERM waits for connections to finish before closing them.
    pub drain_timeout: Duration,
    /// What an idle shard does before it sleeps in the kernel.
    pub park: Park,
    /// Close the connection after a denied PUBLISH (`authz.deny_action = "disconnect"`).
    pub deny_disconnect: bool,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            shards: 1,
            cpus: Vec::new(),
            pin: true,
            listen_tcp: None,
            listen_tls: None,
            tls: None,
            brokers: Vec::new(),
            source_addresses: Vec::new(),
            broker_tls: false,
            broker_ca: None,
            proxy_protocol: false,
            connect_timeout: Duration::from_secs(10),
            max_handshakes: 32,
            listen_backlog: 4096,
            broker_connect_timeout: Duration::from_secs(5),
            broker_pool: BrokerPoolConfig::default(),
            broker_max_pending: 64,
            max_packet_size: 1 << 20,
            max_connections: 0,
            max_connections_per_ip: 0,
            connection_rate_per_ip: 0,
            drain_timeout: Duration::from_secs(10),
            deny_disconnect: false,
            park: Park::default(),
        }
    }
}

/// How many broker connections a shard keeps dialled ahead, per broker address: TCP connected
/// (and TLS handshaken for `broker_tls`), no MQTT byte sent, so a client's CONNECT does not
/// wait for a handshake to the broker once it is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerPoolConfig {
    /// Kept ready even when no client connects. `min = max = 0` turns the pool off.
    pub min: usize,
    /// Kept ready at most.
    pub max: usize,
    /// Between these bounds the pool holds the recent CONNECT rate (an exponentially weighted
    /// average over about a second) times this: what arrives while a connection is re-dialled.
    pub horizon: Duration,
    /// A pooled connection unused this long is closed and replaced (brokers close sockets that
    /// send no CONNECT: Mosquitto after 1.5 × 20 or 60 s).
    pub max_idle: Duration,
}

impl BrokerPoolConfig {
    /// No pooling: every client's broker connection is dialled after its CONNECT is verified.
    pub const OFF: BrokerPoolConfig = BrokerPoolConfig {
        min: 0,
        max: 0,
        horizon: Duration::ZERO,
        max_idle: Duration::ZERO,
    };

    /// Whether connections are pooled at all.
    pub fn enabled(&self) -> bool {
        self.max > 0
    }
}

impl Default for BrokerPoolConfig {
    fn default() -> BrokerPoolConfig {
        BrokerPoolConfig {
            min: 2,
            max: 64,
            horizon: Duration::from_millis(20),
            max_idle: Duration::from_secs(10),
        }
    }
}
