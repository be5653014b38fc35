//! The configuration file (SPEC §6): one TOML file, every key also settable through
//! `FLYTRAP_<SECTION>_<KEY>`, unknown keys rejected by name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// The whole file. Sections the running build does not use yet are still parsed and checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: Engine,
    pub listen: Listen,
    pub broker: Broker,
    pub chain: Chain,
    pub auth: Auth,
    pub authz: Authz,
    pub cache: Cache,
    pub ban: Ban,
    pub geo: Geo,
    pub report: Report,
    pub spool: Spool,
    pub metrics: MetricsSection,
    pub limits: Limits,
    pub ui: UiSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Engine {
    /// Worker processes sharing the listeners.
    pub processes: usize,
    /// Cores (shards) per process; 0 = all online cores divided among the processes.
    pub cores: usize,
    /// Busy-poll up to this many microseconds before an idle shard sleeps (0 = never; an
    /// addition to SPEC §6). Polling instead of sleeping saves the wake-up a loopback round
    /// trip otherwise pays per packet (see BENCHMARKS.md). Unset: 50 (`serve::park`).
    pub spin_us: Option<u64>,
    /// Poll for up to `spin_us` after each arrival (bytes read, a connection accepted),
    /// yielding the CPU on every turn and sleeping as soon as another thread took it;
    /// `false` polls the full `spin_us` after each arrival, yielding nothing.
    pub spin_adaptive: bool,
    /// Pin each shard's thread to one CPU (an addition to SPEC §6). Unset: pin when the
    /// shards (of all worker processes) cover every CPU the process may use, one each;
    /// with fewer shards than CPUs the kernel places and moves them, so that a proxy sharing
    /// the CPUs with its broker and clients runs beside whichever it is talking to. See
    /// BENCHMARKS.md, "Pinned or placed by the kernel".
    pub pin: Option<bool>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine {
            processes: 1,
            cores: 0,
            spin_us: None,
            spin_adaptive: true,
            pin: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub proxy_protocol: bool,
}

/// One broker address or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Addresses {
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

impl Addresses {
    pub fn to_vec(&self) -> Vec<SocketAddr> {
        match self {
            Addresses::One(a) => vec![*a],
            Addresses::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Broker {
    pub address: Option<Addresses>,
    pub tls: bool,
    /// CA file for `tls` (an addition to SPEC §6; default: the system's roots).
    pub ca: Option<PathBuf>,
    pub source_addresses: Vec<String>,
    /// Pre-dialled broker connections per shard and broker (additions to SPEC §6, see
    /// README): kept between `pool_min` and `pool_max`, sized by the recent CONNECT rate ×
    /// `pool_horizon_ms`, replaced after `pool_max_idle_s`. `pool_max = 0` turns the pool off.
    pub pool_min: usize,
    pub pool_max: usize,
    pub pool_horizon_ms: u64,
    pub pool_max_idle_s: u64,
    /// CONNECTs in flight to one broker per shard, dial to CONNACK (an addition; 0 = no
    /// bound): the rest wait in the proxy instead of overflowing the broker's listen backlog.
    pub max_pending: usize,
}

impl Default for Broker {
    fn default() -> Self {
        let pool = flytrap_engine::BrokerPoolConfig::default();
        Broker {
            address: None,
            tls: false,
            ca: None,
            source_addresses: Vec::new(),
            pool_min: pool.min,
            pool_max: pool.max,
            pool_horizon_ms: pool.horizon.as_millis() as u64,
            pool_max_idle_s: pool.max_idle.as_secs(),
            max_pending: flytrap_engine::EngineConfig::default().broker_max_pending,
        }
    }
}

impl Broker {
    /// The engine's pool settings; a minimum above the maximum is an error.
    pub fn pool(&self) -> anyhow::Result<flytrap_engine::BrokerPoolConfig> {
        if self.pool_min > self.pool_max {
            bail!(
                "broker.pool_min ({}) is above broker.pool_max ({})",
                self.pool_min,
                self.pool_max
            );
        }
        if self.pool_max > 0 && self.pool_max_idle_s == 0 {
            bail!("broker.pool_max_idle_s must be at least 1 with the pool on");
        }
        Ok(flytrap_engine::BrokerPoolConfig {
            min: self.pool_min,
            max: self.pool_max,
            horizon: std::time::Duration::from_millis(self.pool_horizon_ms),
            max_idle: std::time::Duration::from_secs(self.pool_max_idle_s),
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chain {
    pub rpc: Option<String>,
    pub contract: Option<String>,
    pub key: Option<PathBuf>,
    pub max_gas_per_hour: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub allow_static: bool,
    pub max_clock_skew_s: u64,
    /// Signers whose public keys each shard remembers, so that their next signatures are
    /// verified against the key instead of recovered (0: recover every time).
    pub known_keys: usize,
    /// Only the challenge scheme (MQTT 5 AUTH, `flytrap-siwe-v1`) signs in: signed CONNECTs
    /// get 0x8C Bad authentication method.
    pub require_challenge: bool,
    /// The domain in the challenge scheme's Sign-In with Ethereum message.
    pub challenge_domain: String,
    /// How long a challenge may be answered (and never longer than `limits.connect_timeout_s`).
    pub challenge_ttl_s: u64,
    /// The Chain ID in that message; by default the node's, asked at start.
    pub chain_id: Option<u64>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            allow_static: false,
            max_clock_skew_s: 300,
            known_keys: 4096,
            require_challenge: false,
            challenge_domain: "flytrap".into(),
            challenge_ttl_s: 30,
            chain_id: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unregistered {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DenyAction {
    #[default]
    Reply,
    Disconnect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authz {
    pub unregistered: Unregistered,
    pub deny_action: DenyAction,
    /// Run without the chain: every client and packet allowed (an addition to SPEC §6, for
    /// benchmarks and broker-only setups; never the default).
    pub allow_all: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    pub max_entries: usize,
    pub ttl_s: u64,
    pub max_stale_s: u64,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            max_entries: 100_000,
            ttl_s: 300,
            max_stale_s: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ban {
    pub max_failures: u32,
    pub window_s: u64,
    pub duration_s: u64,
}

impl Default for Ban {
    fn default() -> Self {
        Ban {
            max_failures: 5,
            window_s: 60,
            duration_s: 300,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Geo {
    pub mmdb: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Report {
    pub interval_s: u64,
}

impl Default for Report {
    fn default() -> Self {
        Report { interval_s: 1800 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spool {
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub listen: Option<SocketAddr>,
}

/// `flytrap ui` (an addition to SPEC §6): where the web page listens (`--listen` overrides
/// it; default 127.0.0.1:8080).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSection {
    pub listen: Option<SocketAddr>,
}

/// Connection hygiene (an addition to SPEC §6; see README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub connect_timeout_s: u64,
    /// TLS handshakes in flight per shard; the rest wait in the accept queue (0 = no bound).
    pub max_handshakes: usize,
    /// Listen backlog (capped by the kernel at `net.core.somaxconn`).
    pub listen_backlog: u32,
    pub max_packet_size: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub connection_rate_per_ip: u32,
    pub drain_timeout_s: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout_s: 10,
            max_handshakes: 32,
            listen_backlog: 4096,
            max_packet_size: 1 << 20,
            max_connections: 0,
            max_connections_per_ip: 0,
            connection_rate_per_ip: 0,
            drain_timeout_s: 10,
        }
    }
}

const SECTIONS: [&str; 14] = [
    "engine", "listen", "broker", "chain", "auth", "authz", "cache", "ban", "geo", "report",
    "spool", "metrics", "limits", "ui",
];

/// `FLYTRAP_*` variables that are not configuration keys: what the supervisor tells its
/// workers, and the anvil binary override of the development chain.
const NOT_SETTINGS: [&str; 3] = [
    crate::workers::WORKER_ENV,
    crate::workers::WORKER_METRICS_ENV,
    "FLYTRAP_ANVIL",
];

/// Parses a config text, then applies `FLYTRAP_<SECTION>_<KEY>` variables from `env`.
pub fn parse(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Config> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("FLYTRAP_") else {
            continue;
        };
        if NOT_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) else {
            bail!("unknown configuration variable {name}");
        };
        let key = &rest[section.len() + 1..];
        // A value is TOML if it parses as one (numbers, booleans, lists), else a string.
        let parsed: toml::Value = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("{section} is not a section"))?
            .insert(key.to_string(), parsed);
    }
    Config::deserialize(table).map_err(|e| anyhow::anyhow!("{}", e.message()))
}

/// Reads and parses a config file with the process environment.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, std::env::vars()).with_context(|| format!("{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file() {
        let c = parse(
            r#"
            [engine]
            processes = 2
            [listen]
            tcp = "127.0.0.1:1883"
            [broker]
            address = ["127.0.0.1:1884", "127.0.0.1:1885"]
            [authz]
            unregistered = "allow"
            deny_action = "disconnect"
            "#,
            [],
        )
        .unwrap();
        assert_eq!(c.engine.processes, 2);
        assert_eq!(c.broker.address.unwrap().to_vec().len(), 2);
        assert_eq!(c.authz.deny_action, DenyAction::Disconnect);
        assert_eq!(c.ban.max_failures, 5);
    }

    #[test]
    fn shards_are_pinned_when_they_cover_the_cpus() {
        let cpus = flytrap_engine::runtime::allowed_cpus().len();
        let pin = |text: &str| {
            crate::serve::engine_config(&parse(text, []).unwrap())
                .unwrap()
                .pin
        };
        assert!(pin(""), "one shard per CPU (cores = 0)");
        assert!(pin(&format!("[engine]\ncores = {cpus}\n")));
        assert_eq!(
            pin("[engine]\ncores = 1\n"),
            cpus == 1,
            "fewer shards than CPUs"
        );
        assert!(!pin("[engine]\npin = false\n"));
        assert!(pin("[engine]\ncores = 1\npin = true\n"));
    }

    #[test]
    fn shards_spin_adaptively_by_default() {
        use flytrap_engine::Park;
        use std::time::Duration;
        let park = |text: &str| crate::serve::park(&parse(text, []).unwrap());
        let us = Duration::from_micros;
        assert_eq!(park(""), Park::Adaptive(us(50)));
        assert_eq!(park("[engine]\nspin_us = 20\n"), Park::Adaptive(us(20)));
        assert_eq!(park("[engine]\nspin_us = 0\n"), Park::Sleep);
        assert_eq!(
            park("[engine]\nspin_us = 30\nspin_adaptive = false\n"),
            Park::Spin(us(30))
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = parse("[listen]\ntpc = \"127.0.0.1:1\"\n", [])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `tpc`"), "{e}");
        let e = parse("[lisen]\n", []).unwrap_err().to_string();
        assert!(e.contains("unknown field `lisen`"), "{e}");
        let e = parse("", [("FLYTRAP_NOPE_X".to_string(), "1".to_string())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("FLYTRAP_NOPE_X"), "{e}");
    }

    #[test]
    fn ui_listen_from_the_file_and_the_environment() {
        let c = parse("[ui]\nlisten = \"127.0.0.1:9000\"", []).expect("parse");
        assert_eq!(c.ui.listen, Some("127.0.0.1:9000".parse().expect("addr")));
        let c = parse(
            "[ui]\nlisten = \"127.0.0.1:9000\"",
            [("FLYTRAP_UI_LISTEN".to_string(), "[::1]:9001".to_string())],
        )
        .expect("parse");
        assert_eq!(c.ui.listen, Some("[::1]:9001".parse().expect("addr")));
        let e = parse("[ui]\nlisten = \"nowhere\"", [])
            .expect_err("bad address")
            .to_string();
        assert!(e.contains("socket address"), "{e}");
        assert!(parse("[ui]\nport = 1", []).is_err());
    }

    #[test]
    fn environment_overrides() {
        let c = parse(
            "[broker]\naddress = \"127.0.0.1:1\"\n",
            [
                (
                    "FLYTRAP_BROKER_ADDRESS".to_string(),
                    "127.0.0.1:2".to_string(),
                ),
                ("FLYTRAP_ENGINE_PROCESSES".to_string(), "3".to_string()),
                ("FLYTRAP_AUTH_ALLOW_STATIC".to_string(), "true".to_string()),
                ("PATH".to_string(), "/bin".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(
            c.broker.address.unwrap().to_vec(),
            vec!["127.0.0.1:2".parse().unwrap()]
        );
        assert_eq!(c.engine.processes, 3);
        assert!(c.auth.allow_static);
        assert!(!c.auth.require_challenge);
    }

    #[test]
    fn broker_pool_keys() {
        let on = parse("", []).unwrap().broker.pool().unwrap();
        assert_eq!(on, flytrap_engine::BrokerPoolConfig::default());
        assert!(on.enabled());
        let off = parse("[broker]\npool_max = 0\npool_min = 0\n", [])
            .unwrap()
            .broker
            .pool()
            .unwrap();
        assert!(!off.enabled());
        let c = parse(
            "[broker]\npool_min = 4\npool_max = 8\npool_horizon_ms = 50\npool_max_idle_s = 3\n",
            [],
        )
        .unwrap();
        let p = c.broker.pool().unwrap();
        assert_eq!(
            (p.min, p.max, p.horizon.as_millis(), p.max_idle.as_secs()),
            (4, 8, 50, 3)
        );
        let e = parse("[broker]\npool_min = 9\npool_max = 8\n", [])
            .unwrap()
            .broker
            .pool()
            .unwrap_err()
            .to_string();
        assert!(e.contains("broker.pool_min (9)"), "{e}");
    }
}
