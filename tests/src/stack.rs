//! A whole FlyTrap stack for authorisation tests: a real anvil with the contract deployed, the
//! chain service, a real Mosquitto, and the proxy with the chain-backed authoriser.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flytrap_authz::bans::BanPolicy;
use flytrap_authz::cache::CacheConfig;
use flytrap_authz::{AuthzConfig, AuthzShared, ChainAuthorizer, Unregistered};
use flytrap_chain::anvil::{Anvil, AnvilOptions, DEV_KEYS};
use flytrap_chain::{
    Action, Address, B256, ChainConfig, ChainService, Client, PrivateKeySigner, TopicSpec,
};
use flytrap_proto::{
    Connect, Packet, Properties, Property, PropertyContext, ReasonCode, Version, Will,
    encode_properties,
};

use crate::{CountingRelay, Mosquitto, Proxy, RawClient};

/// Everything running.
pub struct Stack {
    /// Async runtime for chain calls from the (blocking) tests.
    pub rt: tokio::runtime::Runtime,
    /// The node.
    pub anvil: Anvil,
    /// The operator's client (topic owner).
    pub owner: Client,
    /// The broker.
    pub broker: Mosquitto,
    /// The byte-counting relay between proxy and broker, with [`StackOptions::relay`].
    pub relay: Option<CountingRelay>,
    /// The proxy.
    pub proxy: Proxy,
    /// The chain service behind the proxy.
    pub service: Option<ChainService>,
    /// Shared authorisation state.
    pub shared: Arc<AuthzShared>,
    /// The audit spool folder.
    pub spool: tempfile::TempDir,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stack")
    }
}

/// Settings a test may change.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// `[ban]`.
    pub ban: BanPolicy,
    /// `authz.unregistered`.
    pub unregistered: Unregistered,
    /// Expect PROXY headers.
    pub proxy_protocol: bool,
    /// A `.mmdb` for geo.
    pub mmdb: Option<std::path::PathBuf>,
    /// `cache.max_stale_s`.
    pub max_stale: Duration,
    /// `auth.require_challenge`.
    pub require_challenge: bool,
    /// `auth.challenge_ttl_s`.
    pub challenge_ttl_s: u64,
    /// Put a [`CountingRelay`] between the proxy and the broker.
    pub relay: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            ban: BanPolicy {
                max_failures: 1000,
                window: Duration::from_secs(60),
                duration: Duration::from_secs(300),
            },
            unregistered: Unregistered::Deny,
            proxy_protocol: false,
            mmdb: None,
            max_stale: Duration::from_secs(60),
            require_challenge: false,
            challenge_ttl_s: 30,
            relay: false,
        }
    }
}

impl Stack {
    /// Starts everything with default settings.
    pub fn start() -> Stack {
        Stack::start_with(StackOptions::default())
    }

    /// Starts everything.
    pub fn start_with(opts: StackOptions) -> Stack {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let spool = tempfile::tempdir().unwrap();
        let anvil = Anvil::start_with(&AnvilOptions {
            state: Some(spool.path().join("anvil-state.json")),
            ..AnvilOptions::default()
        })
        .expect("anvil (cd contracts && npm ci)");
        let operator: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
        let (owner, _) = rt
            .block_on(Client::deploy(&anvil.url(), operator.clone()))
            .unwrap();
        let mut config = ChainConfig::new(anvil.url(), owner.address());
        config.key = Some(operator);
        config.spool_dir = Some(spool.path().to_path_buf());
        config.poll_interval = Duration::from_millis(100);
        config.audit_max_backoff = Duration::from_secs(1);
        let service = ChainService::start(config).unwrap();
        let geo = opts
            .mmdb
            .as_deref()
            .map(|p| flytrap_authz::geo::Geo::open(p).unwrap());
        let shared = AuthzShared::new(
            AuthzConfig {
                allow_static: false,
                max_clock_skew_s: 300,
                known_keys: 4096,
                require_challenge: opts.require_challenge,
                challenge: flytrap_authz::challenge::ChallengeConfig {
                    domain: "flytrap.test".into(),
                    chain_id: 31337, // anvil's
                    ttl_s: opts.challenge_ttl_s,
                },
                unregistered: opts.unregistered,
                cache: CacheConfig {
                    max_entries: 10_000,
                    ttl: Duration::from_secs(300),
                    deny_ttl: Duration::from_secs(1),
                    max_stale: opts.max_stale,
                },
                ban: opts.ban,
            },
            service.handle(),
            geo,
        );
        let broker = Mosquitto::start();
        let relay = opts.relay.then(|| CountingRelay::start(broker.addr));
        let upstream = relay.as_ref().map_or(broker.addr, |r| r.addr);
        let factory_shared = shared.clone();
        let proxy_protocol = opts.proxy_protocol;
        let proxy = Proxy::start_with(
            &[upstream],
            |c| c.proxy_protocol = proxy_protocol,
            move |_| ChainAuthorizer::new(factory_shared.clone()),
        );
        Stack {
            rt,
            anvil,
            owner,
            broker,
            relay,
            proxy,
            service: Some(service),
            shared,
            spool,
        }
    }

    /// Registers `name` (owned by the operator).
    pub fn topic(&self, name: &str, spec: TopicSpec) -> B256 {
        self.rt
            .block_on(self.owner.create_topic(name, &spec, "test"))
            .unwrap()
            .0
    }

    /// Grants `action` on `name` to `who`.
    pub fn grant(&self, name: &str, who: Address, action: Action) {
        let id = flytrap_chain::types::topic_id(name);
        self.rt
            .block_on(self.owner.grant(id, who, action, "test"))
            .unwrap();
    }

    /// Waits until the proxy's event follower has processed the node's latest block, so that
    /// every change made so far has reached the shards' caches.
    pub fn settle(&self) {
        let head = self.rt.block_on(self.owner.block_number()).unwrap();
        let handle = self.service.as_ref().unwrap().handle();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while handle.status().follower_block < head {
            assert!(
                std::time::Instant::now() < deadline,
                "the follower never reached block {head}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The shards apply the notices on their own threads.
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Stops the node gracefully (it saves its chain).
    pub fn stop_node(&mut self) {
        self.anvil.stop();
    }

    /// Starts the node again on the same port with the saved chain.
    pub fn restart_node(&mut self) {
        self.anvil = Anvil::start_with(&AnvilOptions {
            port: self.anvil.port(),
            state: Some(self.spool.path().join("anvil-state.json")),
            ..AnvilOptions::default()
        })
        .unwrap();
    }

    /// Revokes `action` on `name` from `who`.
    pub fn revoke(&self, name: &str, who: Address, action: Action) {
        let id = flytrap_chain::types::topic_id(name);
        self.rt
            .block_on(self.owner.revoke(id, who, action, "test"))
            .unwrap();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(s) = self.service.take() {
            s.shutdown();
        }
    }
}

/// A fresh client key.
pub fn new_key() -> PrivateKeySigner {
    PrivateKeySigner::random()
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signed MQTT 5.0 CONNECT.
pub fn signed_connect(
    key: &PrivateKeySigner,
    client_id: &str,
    timestamp: u64,
    will: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let creds = flytrap_chain::sign::sign_connect(key, client_id, timestamp).unwrap();
    let props: Vec<(&str, String)> = creds.user_properties();
    let list: Vec<Property<'_>> = props
        .iter()
        .map(|(k, v)| Property::UserProperty(k, v))
        .collect();
    let mut raw = Vec::new();
    encode_properties(&list, &mut raw);
    let mut out = Vec::new();
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::parse_raw(&raw, PropertyContext::Connect).unwrap(),
        client_id,
        will: will.map(|(topic, payload)| Will {
            qos: flytrap_proto::QoS::AtMostOnce,
            retain: false,
            properties: Properties::EMPTY,
            topic,
            payload,
        }),
        username: None,
        password: None,
    }
    .encode(&mut out);
    out
}

/// Connects with `bytes` as the CONNECT and returns the client and the CONNACK reason (`None`
/// when the connection was closed without one).
pub fn connect_with(addr: SocketAddr, bytes: &[u8]) -> (RawClient, Option<ReasonCode>) {
    let mut c = RawClient::connect(addr);
    c.send(bytes);
    let reason = c.recv(|p| match p {
        Packet::ConnAck(a) => a.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    });
    (c, reason)
}

/// A 3.1.1 CONNECT with `username` and `password`; returns the CONNACK frame.
pub fn connect_v311(addr: SocketAddr, client_id: &str, username: &str, password: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Connect {
        version: Version::V311,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::EMPTY,
        client_id,
        will: None,
        username: Some(username),
        password: Some(password.as_bytes()),
    }
    .encode(&mut out);
    let mut c = RawClient::connect(addr);
    c.version = Version::V311;
    c.send(&out);
    c.recv_frame().unwrap()
}

/// A GeoIP database in `dir` that places 192.0.2.0/24 in Germany and 198.51.100.0/24 in the
/// United States (addresses a test sends through a PROXY protocol header).
pub fn countries_mmdb(dir: &std::path::Path) -> std::path::PathBuf {
    let mmdb = dir.join("countries.mmdb");
    let made = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/geo/make_mmdb.py"))
        .arg(&mmdb)
        .args(["192.0.2.0/24=DE", "198.51.100.0/24=US"])
        .status()
        .expect("python3 with mmdb-writer (scripts/deps.sh)");
    assert!(made.success());
    mmdb
}

/// Connects a signed client.
pub fn connect_signed(
    addr: SocketAddr,
    key: &PrivateKeySigner,
    client_id: &str,
) -> (RawClient, Option<ReasonCode>) {
    connect_with(addr, &signed_connect(key, client_id, now(), None))
}

/// The challenge scheme's Authentication Method.
pub const SIWE: &str = "flytrap-siwe-v1";

/// An MQTT 5.0 CONNECT with Authentication Method `method` and Authentication Data `data`.
pub fn challenge_connect(client_id: &str, method: &str, data: Option<&[u8]>) -> Vec<u8> {
    let mut list = vec![Property::AuthenticationMethod(method)];
    if let Some(d) = data {
        list.push(Property::AuthenticationData(d));
    }
    let mut raw = Vec::new();
    encode_properties(&list, &mut raw);
    let mut out = Vec::new();
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::parse_raw(&raw, PropertyContext::Connect).unwrap(),
        client_id,
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut out);
    out
}

/// An AUTH 0x18 of the challenge scheme carrying `data`.
pub fn auth_answer(data: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    encode_properties(
        &[
            Property::AuthenticationMethod(SIWE),
            Property::AuthenticationData(data),
        ],
        &mut raw,
    );
    let mut out = Vec::new();
    flytrap_proto::Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties::parse_raw(&raw, PropertyContext::Auth).unwrap(),
    }
    .encode(&mut out);
    out
}

/// Sends `connect` and reads the proxy's challenge: `Ok(message)` from its AUTH 0x18, or
/// `Err(the CONNACK reason)` when it refused at once (`Err(None)`: closed).
pub fn open_challenge(
    addr: SocketAddr,
    connect: &[u8],
) -> (RawClient, Result<String, Option<ReasonCode>>) {
    let mut c = RawClient::connect(addr);
    c.send(connect);
    let got = c.recv(|p| match p {
        Packet::Auth(a) => {
            assert_eq!(a.reason, ReasonCode::CONTINUE_AUTHENTICATION);
            let mut method = None;
            let mut data = None;
            for p in a.properties.iter() {
                match p {
                    Property::AuthenticationMethod(m) => method = Some(m.to_string()),
                    Property::AuthenticationData(d) => data = Some(d.to_vec()),
                    _ => {}
                }
            }
            assert_eq!(method.as_deref(), Some(SIWE), "AUTH carries the method");
            Ok(String::from_utf8(data.expect("AUTH carries the challenge")).unwrap())
        }
        Packet::ConnAck(a) => Err(Some(a.reason)),
        other => panic!("expected AUTH or CONNACK, got {other:?}"),
    });
    (c, got.unwrap_or(Err(None)))
}

/// The CONNACK reason the client gets next (`None`: closed without one).
pub fn next_connack(c: &mut RawClient) -> Option<ReasonCode> {
    c.recv(|p| match p {
        Packet::ConnAck(a) => a.reason,
        other => panic!("expected CONNACK, got {other:?}"),
    })
}

/// The whole challenge exchange, signed by `key`: the client and the CONNACK reason.
pub fn connect_challenge(
    addr: SocketAddr,
    key: &PrivateKeySigner,
    client_id: &str,
) -> (RawClient, Option<ReasonCode>) {
    let address = format!("{:#x}", key.address());
    let hello = challenge_connect(client_id, SIWE, Some(address.as_bytes()));
    let (mut c, challenge) = open_challenge(addr, &hello);
    let message = match challenge {
        Ok(m) => m,
        Err(reason) => return (c, reason),
    };
    let signature = flytrap_chain::sign::sign(key, &message).unwrap();
    c.send(&auth_answer(
        format!("0x{}", hex::encode(signature)).as_bytes(),
    ));
    let reason = c.recv(|p| match p {
        Packet::ConnAck(a) => {
            if a.reason == ReasonCode::SUCCESS {
                let method = a.properties.iter().find_map(|p| match p {
                    flytrap_proto::Property::AuthenticationMethod(m) => Some(m.to_owned()),
                    _ => None,
                });
                assert_eq!(
                    method.as_deref(),
                    Some(SIWE),
                    "a successful CONNACK after AUTH names the method (MQTT-4.12.0-5)"
                );
            }
            a.reason
        }
        other => panic!("expected CONNACK, got {other:?}"),
    });
    (c, reason)
}
