//! `flytrap-bench`: the measuring client of the side-by-side benchmarks in `bench/`.
//!
//! `rtt` times PUBLISH→PUBACK (QoS 1) or SUBSCRIBE→SUBACK one at a time on one connection
//! (closed loop, so each sample is one full round trip); `throughput` keeps a window of QoS 1
//! PUBLISHes in flight and counts acknowledgments per second. Results are JSON on stdout with
//! microsecond percentiles from an HDR histogram.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use flytrap_proto::{
    Connect, Framer, Packet, Properties, Publish, QoS, Subscribe, Subscription,
    SubscriptionOptions, Version,
};
use hdrhistogram::Histogram;

#[derive(Debug, Parser)]
#[command(
    name = "flytrap-bench",
    about = "Measuring client for FlyTrap's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Op {
    Publish,
    Subscribe,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Round-trip latency, one request at a time.
    Rtt {
        /// MQTT server (broker or proxy), loopback only.
        #[arg(long)]
        target: SocketAddr,
        /// Which round trip.
        #[arg(long, value_enum, default_value = "publish")]
        op: Op,
        /// Samples kept.
        #[arg(long, default_value_t = 20_000)]
        samples: u64,
        /// Samples discarded first.
        #[arg(long, default_value_t = 1_000)]
        warmup: u64,
        /// PUBLISH payload size in bytes.
        #[arg(long, default_value_t = 16)]
        payload: usize,
        /// A label for the JSON.
        #[arg(long, default_value = "")]
        label: String,
        /// Sign the CONNECT with this key file (SPEC §1), for a FlyTrap that checks.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        /// Speak TLS, trusting this CA file (server name: localhost).
        #[arg(long)]
        tls_ca: Option<std::path::PathBuf>,
    },
    /// CONNECT→CONNACK latency over fresh connections, one at a time.
    Connect {
        /// MQTT server (broker or proxy), loopback only.
        #[arg(long)]
        target: SocketAddr,
        /// Connections timed.
        #[arg(long, default_value_t = 100)]
        samples: u64,
        /// Connections made first and not timed.
        #[arg(long, default_value_t = 10)]
        warmup: u64,
        /// Pause between connections, in milliseconds.
        #[arg(long, default_value_t = 5)]
        gap_ms: u64,
        #[arg(long, default_value = "")]
        label: String,
        /// Sign each CONNECT with this key file (a fresh timestamp and client id each time).
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        /// Speak TLS, trusting this CA file (server name: localhost).
        #[arg(long)]
        tls_ca: Option<std::path::PathBuf>,
    },
    /// Acknowledged PUBLISHes per second with a window in flight.
    Throughput {
        #[arg(long)]
        target: SocketAddr,
        /// Seconds to run.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// PUBLISHes in flight.
        #[arg(long, default_value_t = 64)]
        window: u16,
        #[arg(long, default_value_t = 16)]
        payload: usize,
        #[arg(long, default_value = "")]
        label: String,
        /// Sign the CONNECT with this key file.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
    },
}

/// A plain or TLS stream.
trait Io: Read + Write {}
impl<T: Read + Write> Io for T {}

struct Conn {
    stream: Box<dyn Io>,
    buf: bytes::BytesMut,
    framer: Framer,
}

fn tls_connection(ca: &std::path::Path) -> anyhow::Result<rustls::ClientConnection> {
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = std::io::BufReader::new(std::fs::File::open(ca)?);
    for cert in rustls_pemfile::certs(&mut reader) {
        roots.add(cert?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    Ok(rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        name,
    )?)
}

/// A CONNECT for `client_id`, signed with `key` when given (SPEC §1).
fn connect_packet(client_id: &str, key: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    let props: Vec<(&'static str, String)> = match key {
        Some(path) => {
            let signer = flytrap_chain::keyfile::read_key(path)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            flytrap_chain::sign::sign_connect(&signer, client_id, now)?.user_properties()
        }
        None => Vec::new(),
    };
    let list: Vec<flytrap_proto::Property<'_>> = props
        .iter()
        .map(|(k, v)| flytrap_proto::Property::UserProperty(k, v))
        .collect();
    let mut raw = Vec::new();
    flytrap_proto::encode_properties(&list, &mut raw);
    let mut out = Vec::new();
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::parse_raw(&raw, flytrap_proto::PropertyContext::Connect)?,
        client_id,
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut out);
    Ok(out)
}

impl Conn {
    fn open(
        target: SocketAddr,
        client_id: &str,
        key: Option<&std::path::Path>,
        tls_ca: Option<&std::path::Path>,
    ) -> anyhow::Result<Conn> {
        let connect = connect_packet(client_id, key)?;
        let mut c = Conn::transport(target, tls_ca)?;
        c.mqtt_connect(&connect)?;
        Ok(c)
    }

    /// The TCP connection (and the whole TLS handshake), no MQTT yet.
    fn transport(target: SocketAddr, tls_ca: Option<&std::path::Path>) -> anyhow::Result<Conn> {
        if !target.ip().is_loopback() {
            bail!("{target} is not a loopback address: benchmarks only target this machine");
        }
        let mut tcp =
            TcpStream::connect(target).with_context(|| format!("cannot connect to {target}"))?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let stream: Box<dyn Io> = match tls_ca {
            Some(ca) => {
                let mut conn = tls_connection(ca)?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut tcp)?;
                }
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
            None => Box::new(tcp),
        };
        Ok(Conn {
            stream,
            buf: bytes::BytesMut::with_capacity(64 << 10),
            framer: Framer::new(1 << 20),
        })
    }

    /// Sends `connect` and waits for a successful CONNACK.
    fn mqtt_connect(&mut self, connect: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(connect)?;
        let frame = self.next_frame()?;
        match Packet::decode(&frame, Version::V5)? {
            Packet::ConnAck(a) if !a.reason.is_error() => Ok(()),
            other => bail!("CONNECT refused: {other:?}"),
        }
    }

    fn next_frame(&mut self) -> anyhow::Result<bytes::Bytes> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            if let Some(f) = self.framer.poll_frame(&mut self.buf)? {
                return Ok(f);
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn next_ack(&mut self) -> anyhow::Result<u16> {
        loop {
            let f = self.next_frame()?;
            match Packet::decode(&f, Version::V5)? {
                Packet::Ack(a) => return Ok(a.packet_id),
                Packet::SubAck(a) => return Ok(a.packet_id),
                _ => continue,
            }
        }
    }
}

fn publish(id: u16, payload: &[u8], out: &mut Vec<u8>) {
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "bench/t",
        packet_id: Some(id),
        topic_alias: None,
        properties: Properties::EMPTY,
        payload,
        payload_offset: 0,
    }
    .encode(Version::V5, out);
}

fn next_id(id: u16) -> u16 {
    if id == u16::MAX { 1 } else { id + 1 }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Rtt {
            target,
            op,
            samples,
            warmup,
            payload,
            label,
            key,
            tls_ca,
        } => {
            let mut c = Conn::open(
                target,
                &format!("bench-rtt-{}-{}", std::process::id(), label),
                key.as_deref(),
                tls_ca.as_deref(),
            )?;
            let payload = vec![0x5a; payload];
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut out = Vec::with_capacity(payload.len() + 64);
            let mut id = 0u16;
            let started = Instant::now();
            for i in 0..warmup + samples {
                id = next_id(id);
                out.clear();
                match op {
                    Op::Publish => publish(id, &payload, &mut out),
                    Op::Subscribe => Subscribe::encode_from(
                        Version::V5,
                        id,
                        Properties::EMPTY,
                        &[Subscription {
                            filter: "bench/s",
                            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
                        }],
                        &mut out,
                    ),
                }
                let t = Instant::now();
                c.stream.write_all(&out)?;
                let got = c.next_ack()?;
                let us = t.elapsed().as_nanos().div_ceil(1000) as u64;
                if got != id {
                    bail!("acknowledgment for {got}, expected {id}");
                }
                if i >= warmup {
                    hist.record(us.max(1))?;
                }
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({
                    "label": label, "op": format!("{op:?}").to_lowercase(), "samples": hist.len(),
                    "p50_us": hist.value_at_quantile(0.5), "p90_us": hist.value_at_quantile(0.9),
                    "p99_us": hist.value_at_quantile(0.99), "p999_us": hist.value_at_quantile(0.999),
                    "max_us": hist.max(), "mean_us": hist.mean(), "seconds": secs,
                })
            );
        }
        Command::Connect {
            target,
            samples,
            warmup,
            gap_ms,
            label,
            key,
            tls_ca,
        } => {
            let mut connack = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let disconnect = [0xe0, 0x00];
            for i in 0..warmup + samples {
                // Signing happens before either clock starts.
                let id = format!("bench-conn-{}-{label}-{i}", std::process::id());
                let connect = connect_packet(&id, key.as_deref())?;
                std::thread::sleep(Duration::from_millis(gap_ms));
                let opened = Instant::now();
                let mut c = Conn::transport(target, tls_ca.as_deref())?;
                let sent = Instant::now();
                c.mqtt_connect(&connect)?;
                let us = |from: Instant| (from.elapsed().as_nanos().div_ceil(1000) as u64).max(1);
                let (one, all) = (us(sent), us(opened));
                if i >= warmup {
                    connack.record(one)?;
                    total.record(all)?;
                }
                c.stream.write_all(&disconnect)?;
            }
            let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p);
            println!(
                "{}",
                serde_json::json!({
                    "label": label, "op": "connect", "samples": connack.len(),
                    "p50_us": q(&connack, 0.5), "p90_us": q(&connack, 0.9),
                    "p99_us": q(&connack, 0.99), "max_us": connack.max(), "mean_us": connack.mean(),
                    "total_p50_us": q(&total, 0.5), "total_p99_us": q(&total, 0.99),
                })
            );
        }
        Command::Throughput {
            target,
            seconds,
            window,
            payload,
            label,
            key,
        } => {
            let mut c = Conn::open(
                target,
                &format!("bench-tput-{}-{}", std::process::id(), label),
                key.as_deref(),
                None,
            )?;
            let payload = vec![0x5a; payload];
            let mut out = Vec::new();
            let mut id = 0u16;
            for _ in 0..window {
                id = next_id(id);
                publish(id, &payload, &mut out);
            }
            c.stream.write_all(&out)?;
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let started = Instant::now();
            let mut acked = 0u64;
            while Instant::now() < deadline {
                c.next_ack()?;
                acked += 1;
                id = next_id(id);
                out.clear();
                publish(id, &payload, &mut out);
                c.stream.write_all(&out)?;
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({
                    "label": label, "acked": acked, "seconds": secs,
                    "msgs_per_s": acked as f64 / secs, "window": window,
                })
            );
        }
    }
    Ok(())
}
