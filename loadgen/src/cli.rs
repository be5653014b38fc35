//! The command line: one subcommand per scenario, each with exactly the flags it uses.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Drives an MQTT server (FlyTrap, or a broker directly) with many clients, each with its own
/// key and a signed CONNECT (SPEC §1), and writes HDR latency histograms per phase (`.hgrm`),
/// a JSON summary and a latency plot (SVG).
///
/// Every run is bounded: clients connect on a schedule (--ramp), the work phase lasts at most
/// --duration, and every wait has a --timeout. Targets must be on 127.0.0.0/8 or ::1 unless
/// --allow-remote is given.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Connect storm: every client connects (TCP, TLS, CONNECT→CONNACK), holds the
    /// connection for --hold seconds, then disconnects.
    Connect {
        #[command(flatten)]
        common: Common,
        /// Seconds each client stays connected after the ramp (all of them concurrently).
        #[arg(long, default_value_t = 0.0, value_name = "SECS")]
        hold: f64,
    },
    /// Every client subscribes --subscriptions times, one SUBSCRIBE→SUBACK at a time.
    Subscribe {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        sub: SubArgs,
    },
    /// Every client publishes: open loop at --rate/--total-rate (latency from the scheduled
    /// send time, so a stall is not hidden: coordinated-omission correction), or closed
    /// loop with --inflight messages outstanding.
    Publish {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        publish: PubArgs,
    },
    /// Fan-out: the first --subscribers clients subscribe to their group's topic, the others
    /// publish to theirs; end-to-end latency from a timestamp in the payload.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        publish: PubArgs,
        /// How many of the clients subscribe (the rest publish).
        #[arg(long, default_value_t = 1, value_name = "N")]
        subscribers: u64,
        /// Topic groups: client i uses group i mod G ({g} in topics).
        #[arg(long, default_value_t = 1, value_name = "G")]
        groups: u64,
    },
    /// Mixed: every client subscribes to its group's topic and publishes to it.
    Mixed {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        publish: PubArgs,
        /// Topic groups: client i uses group i mod G ({g} in topics).
        #[arg(long, default_value_t = 10, value_name = "G")]
        groups: u64,
    },
    /// Prints the address (and with --secret, the private key) of clients --first to
    /// --first + --count - 1 under --seed, one per line: what to grant before a run.
    Keys {
        /// Key seed (the same as the run's).
        #[arg(long, default_value = DEFAULT_SEED)]
        seed: String,
        /// First client index.
        #[arg(long, default_value_t = 0)]
        first: u64,
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Also print each private key (address, space, key).
        #[arg(long)]
        secret: bool,
    },
}

/// The seed when none is given.
pub const DEFAULT_SEED: &str = "flytrap-loadgen";

/// How clients sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthScheme {
    /// The signed CONNECT of SPEC §1 (timestamped).
    Timestamped,
    /// The challenge scheme: MQTT 5 enhanced authentication (`flytrap-siwe-v1`), one AUTH
    /// round trip more; the CONNECT latency includes it and the client's signing.
    Challenge,
}

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mqtt {
    /// MQTT 5.0 (credentials in user properties).
    #[value(name = "5")]
    V5,
    /// MQTT 3.1.1 (credentials in user name and password).
    #[value(name = "3.1.1")]
    V311,
}

/// When clients start their work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Start {
    /// All at once, after the ramp.
    Together,
    /// Each after its own CONNACK.
    Connected,
}

/// Flags every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The MQTT server (proxy or broker), HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1883", value_parser = parse_target)]
    pub target: SocketAddr,
    /// Allow a target outside 127.0.0.0/8 and ::1 (load tests against other machines).
    #[arg(long)]
    pub allow_remote: bool,
    /// Number of clients.
    #[arg(long, short = 'n', default_value_t = 100, value_name = "N")]
    pub clients: u64,
    /// New connections per second, over all workers and cores.
    #[arg(long, default_value_t = 1000.0, value_name = "PER_SEC")]
    pub ramp: f64,
    /// MQTT version.
    #[arg(long, value_enum, default_value = "5")]
    pub mqtt: Mqtt,
    /// Speak TLS, trusting the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// TLS server name to verify (with --ca).
    #[arg(long, default_value = "localhost", value_name = "NAME")]
    pub server_name: String,
    /// Seed of the client keys: client i's key is keccak256(seed ‖ i ‖ 0). Runs with the
    /// same seed use the same addresses (see `loadgen keys`).
    #[arg(long, default_value = DEFAULT_SEED)]
    pub seed: String,
    /// Index of the first client (client ids and keys are numbered from it).
    #[arg(long, default_value_t = 0, value_name = "I")]
    pub first: u64,
    /// Distinct keys: client k signs with key first + (k mod K). 0 = one key per client.
    /// Fewer keys mean fewer grants to make before a run with many clients.
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub keys: u64,
    /// Clients whose latencies are not recorded (the first N, as warm-up; their replies
    /// still count in outcomes and errors). The paper ran 105 and discarded 5.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub discard: u64,
    /// Client identifier prefix; client i is PREFIX + i.
    #[arg(long, default_value = "loadgen-", value_name = "PREFIX")]
    pub client_id: String,
    /// Send no credentials (a plain broker or HAProxy as the target).
    #[arg(long, conflicts_with = "bad_signature")]
    pub unsigned: bool,
    /// How clients sign in (challenge: MQTT 5 only).
    #[arg(
        long,
        value_enum,
        default_value = "timestamped",
        conflicts_with = "unsigned"
    )]
    pub auth: AuthScheme,
    /// Sign for the wrong client id, so every CONNECT fails verification (deny path; use
    /// with --expect 0x86).
    #[arg(long)]
    pub bad_signature: bool,
    /// The reason code the scenario's replies should carry (CONNACK, SUBACK, PUBACK/PUBREC):
    /// e.g. 0x86 with --bad-signature, 0x87 to load the deny path with unauthorised topics.
    /// Replies with this code count as expected; any other code is an error. Default: success.
    #[arg(long, value_parser = parse_code, value_name = "CODE")]
    pub expect: Option<u8>,
    /// MQTT keep-alive in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub keep_alive: u16,
    /// When a client starts its work (subscribing, publishing, holding): `together`, all at
    /// once after the ramp and --settle (a burst from every client, as in the paper's
    /// scalability test), or `connected`, each right after its own CONNACK (one client at a
    /// time with a slow ramp, as in the paper's latency test).
    #[arg(long, value_enum, default_value = "together")]
    pub start: Start,
    /// Seconds between the end of the ramp and the start of the work phase.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub settle: f64,
    /// Longest work phase in seconds (publishing, holding); the run stops itself after it.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Longest wait for any one reply or connection, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
    /// Local source addresses, e.g. 127.0.0.2-127.0.0.20 (comma-separated addresses or
    /// ranges): each gives another ~28,000 ports, to open more than 65,535 connections.
    #[arg(long, value_delimiter = ',', value_name = "ADDRS")]
    pub source: Vec<String>,
    /// Worker processes; each holds its share of the clients (a process may hold at most
    /// its open-file limit of connections). One merged report.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub workers: u32,
    /// CPUs to run on, one executor pinned to each (e.g. 0 or 0,1). Default: one unpinned
    /// executor per available CPU.
    #[arg(long, value_delimiter = ',', value_name = "CPUS")]
    pub cores: Vec<usize>,
    /// Directory for the results (created): summary.json, <phase>.hgrm, latency.svg.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A label stored in the summary.
    #[arg(long, default_value = "")]
    pub label: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Internal: this process is worker I of N of a parent loadgen.
    #[arg(long, hide = true, value_name = "I/N")]
    pub worker: Option<String>,
    /// Internal: the run's time origin (Unix ns), shared by all workers.
    #[arg(long, hide = true)]
    pub epoch_ns: Option<u64>,
}

/// Flags of scenarios that subscribe.
#[derive(Debug, Clone, Args)]
pub struct SubArgs {
    /// Topic filter; {i} is the client index.
    #[arg(long, default_value = "loadgen/{i}", value_name = "FILTER")]
    pub filter: String,
    /// SUBSCRIBEs per client, one at a time.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub subscriptions: u32,
    /// Subscription QoS.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub sub_qos: u8,
}

/// Flags of scenarios that publish.
#[derive(Debug, Clone, Args)]
pub struct PubArgs {
    /// Topic; {i} is the client index, {g} its group.
    #[arg(long, default_value = "loadgen/{g}", value_name = "TOPIC")]
    pub topic: String,
    /// QoS of the PUBLISHes (and of fan-out subscriptions).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes (at least 16: a timestamp and the sender's index).
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    pub payload: usize,
    /// Messages per second per client (open loop).
    #[arg(long, value_name = "PER_SEC", conflicts_with = "total_rate")]
    pub rate: Option<f64>,
    /// Messages per second over all publishing clients (open loop).
    #[arg(long, value_name = "PER_SEC")]
    pub total_rate: Option<f64>,
    /// Closed loop (no rate): messages outstanding per client.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub inflight: u16,
    /// Messages per client; 0 = until --duration ends.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub messages: u64,
}

fn parse_target(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

fn parse_code(s: &str) -> Result<u8, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not a reason code (0..255, decimal or 0x-hex)"))
}
