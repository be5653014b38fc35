//! Helpers for FlyTrap's end-to-end tests: real Mosquitto brokers started on free loopback
//! ports, an in-process proxy, and a small blocking MQTT client built on `flytrap-proto`.
//!
//! Every process started here is stopped by PID when its handle drops.

// Test scaffolding: failing loudly (unwrap, expect) is the point.

pub mod stack;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flytrap_engine::{AllowAll, Authorizer, Engine, EngineConfig, Stopper, TlsFiles};
use flytrap_proto::{Framer, Packet, Properties, Publish, QoS, ReasonCode, Version};

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts on `addr`.
pub fn wait_listening(addr: SocketAddr, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Mosquitto broker of our own on a free loopback port.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    /// Its address.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts one and waits until it listens.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with_tls(false)
    }

    /// Starts one; with `tls`, its listener speaks TLS with a certificate for 127.0.0.1
    /// (`<dir>/cert.pem`, see [`Mosquitto::ca`]).
    pub fn start_with_tls(tls: bool) -> Mosquitto {
        // A free port can be taken between the probe and Mosquitto's bind: try a few.
        for _ in 0..5 {
            if let Some(m) = Mosquitto::try_start(tls) {
                return m;
            }
        }
        panic!("mosquitto did not start");
    }

    fn try_start(tls: bool) -> Option<Mosquitto> {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nmax_connections -1\nlog_dest none\n"
        );
        if tls {
            let files = tls_files(dir.path());
            // Started as root, Mosquitto would drop to its own user and lose the key.
            text.push_str(&format!(
                "certfile {}\nkeyfile {}\nuser root\n",
                files.cert.display(),
                files.key.display()
            ));
        }
        std::fs::write(&conf, text).unwrap();
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/deps.sh)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_listening(addr, Duration::from_secs(10));
        // Ours, not another process that took the port first (ours would have exited).
        std::thread::sleep(Duration::from_millis(100));
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        Some(Mosquitto {
            child,
            addr,
            _dir: dir,
        })
    }

    /// The certificate a TLS broker presents (self-signed: it is its own CA).
    pub fn ca(&self) -> PathBuf {
        self._dir.path().join("cert.pem")
    }

    /// Kills the broker (every connection to it ends); [`Mosquitto::restart`] brings it back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same port with the same configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Command::new("mosquitto")
            .arg("-c")
            .arg(self._dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(self.addr, Duration::from_secs(10));
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost, written to `dir`.
pub fn tls_files(dir: &Path) -> TlsFiles {
    let signed =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, signed.cert.pem()).unwrap();
    std::fs::write(&key, signed.key_pair.serialize_pem()).unwrap();
    TlsFiles { cert, key }
}

/// An in-process FlyTrap engine.
#[derive(Debug)]
pub struct Proxy {
    engine: Option<Engine>,
    stopper: Stopper,
    /// Plain TCP listener.
    pub tcp: SocketAddr,
    /// TLS listener, when configured.
    pub tls: Option<SocketAddr>,
    /// The CA file clients should trust for `tls`.
    pub ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// A proxy in front of `brokers`, allowing everything, with a TLS listener too.
    pub fn start(brokers: &[SocketAddr]) -> Proxy {
        Proxy::start_with(brokers, |_| {}, |_| AllowAll)
    }

    /// A proxy with settings adjusted by `tweak` and the given authoriser factory.
    pub fn start_with<A: Authorizer>(
        brokers: &[SocketAddr],
        tweak: impl FnOnce(&mut EngineConfig),
        authz: impl Fn(usize) -> A + Send + Sync + 'static,
    ) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let files = tls_files(dir.path());
        let ca = files.cert.clone();
        let mut config = EngineConfig {
            shards: 2,
            listen_tcp: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            listen_tls: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            tls: Some(files),
            brokers: brokers.to_vec(),
            ..EngineConfig::default()
        };
        tweak(&mut config);
        let engine = Engine::start(config, authz).expect("engine starts");
        let tcp = engine.tcp_addr().expect("tcp listener");
        let tls = engine.tls_addr();
        Proxy {
            stopper: engine.stopper(),
            engine: Some(engine),
            tcp,
            tls,
            ca: Some(ca),
            _dir: dir,
        }
    }

    /// The engine (metrics, stopper).
    pub fn engine(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(e) = self.engine.take() {
            e.wait();
        }
    }
}

/// Runs `mosquitto_pub` or `mosquitto_sub` with a time limit and returns its output.
pub fn mosquitto_cli(program: &str, args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("20")
        .arg(program)
        .args(args)
        .output()
        .expect("mosquitto clients are installed (scripts/deps.sh)")
}

/// A `mosquitto_sub` running in the background, subscribed.
#[derive(Debug)]
pub struct Sub {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Sub {
    /// Waits for it to exit and returns what it printed, without its `-d` debug lines.
    pub fn wait_with_output(mut self) -> std::io::Result<std::process::Output> {
        let status = self.child.wait()?;
        let _ = self.reader.join(); // every line read before collecting
        let mut stdout = String::new();
        for line in self.lines.try_iter() {
            if !line.starts_with("Client ") && !line.starts_with("Subscribed ") {
                stdout.push_str(&line);
                stdout.push('\n');
            }
        }
        Ok(std::process::Output {
            status,
            stdout: stdout.into_bytes(),
            stderr: Vec::new(),
        })
    }
}

/// Starts `mosquitto_sub` in the background (it must exit by itself: use -C and -W) and
/// returns once the broker has acknowledged its subscriptions, so nothing published after
/// this call can be missed however loaded the machine is.
pub fn spawn_sub(args: &[&str]) -> Sub {
    // stdbuf: mosquitto_sub's stdout is block-buffered on a pipe; its SUBACK line must show
    // as soon as it is printed.
    let mut child = Command::new("timeout")
        .arg("30")
        .args(["stdbuf", "-oL", "mosquitto_sub", "-d"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("received SUBACK") {
                let _ = ready_tx.send(());
            }
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    ready
        .recv_timeout(Duration::from_secs(20))
        .expect("mosquitto_sub subscribed");
    Sub {
        child,
        lines,
        reader,
    }
}

/// A blocking MQTT client speaking raw packets through `flytrap-proto`, for the cases real
/// clients will not produce (fragmented writes, malformed packets, exact bytes).
#[derive(Debug)]
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    buf: BytesMut,
    framer: Framer,
    /// Protocol version used to decode.
    pub version: Version,
}

impl RawClient {
    /// Connects the socket (no MQTT yet).
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// Connects the socket from a given local address and port.
    pub fn connect_from(source: SocketAddr, addr: SocketAddr) -> RawClient {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.bind(&source.into()).unwrap();
        socket.connect(&addr.into()).unwrap();
        RawClient::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> RawClient {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: BytesMut::new(),
            framer: Framer::new(1 << 24),
            version: Version::V5,
        }
    }

    /// Sends an MQTT 5 CONNECT: clean start, no keep alive, no credentials.
    pub fn send_connect(&mut self, client_id: &str) {
        let mut bytes = Vec::new();
        flytrap_proto::Connect {
            version: Version::V5,
            clean_start: true,
            keep_alive: 0,
            properties: Properties::EMPTY,
            client_id,
            will: None,
            username: None,
            password: None,
        }
        .encode(&mut bytes);
        self.send(&bytes);
    }

    /// Writes bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads the next packet's frame; `None` when the peer closed.
    pub fn recv_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(f) = self.framer.poll_frame(&mut self.buf).unwrap() {
                return Some(f.to_vec());
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Sends a QoS 1 PUBLISH (5.0) and returns the reason code of its PUBACK, skipping any
    /// other packet that arrives first.
    pub fn publish_ack(&mut self, topic: &str, id: u16, payload: &[u8]) -> ReasonCode {
        let mut out = Vec::new();
        Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic,
            packet_id: Some(id),
            topic_alias: None,
            properties: Properties::EMPTY,
            payload,
            payload_offset: 0,
        }
        .encode(Version::V5, &mut out);
        self.send(&out);
        loop {
            let frame = self.recv_frame().expect("PUBACK");
            if let Ok(Packet::Ack(a)) = Packet::decode(&frame, Version::V5) {
                assert_eq!(a.packet_id, id);
                return a.reason;
            }
        }
    }

    /// Reads the next packet's frame if one arrives within `wait`.
    pub fn recv_frame_within(&mut self, wait: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(f) = self.framer.poll_frame(&mut self.buf).unwrap() {
                return Some(f.to_vec());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            let read = self.stream.read(&mut chunk);
            self.stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            match read {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// Reads the next packet and hands its decoded view to `f`.
    pub fn recv<T>(&mut self, f: impl FnOnce(Packet<'_>) -> T) -> Option<T> {
        let frame = self.recv_frame()?;
        Some(f(
            Packet::decode(&frame, self.version).expect("valid packet from the proxy")
        ))
    }
}

/// A TCP relay between the proxy and a broker that counts what the proxy sends: connections
/// opened, and bytes towards the broker. Shows that a pre-dialled connection carried nothing.
#[derive(Debug)]
pub struct CountingRelay {
    /// Where the proxy should connect.
    pub addr: SocketAddr,
    counts: std::sync::Arc<RelayCounts>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What a [`CountingRelay`] saw.
#[derive(Debug, Default)]
pub struct RelayCounts {
    /// Connections accepted from the proxy.
    pub connections: std::sync::atomic::AtomicUsize,
    /// Of those, the ones that carried at least one byte towards the broker.
    pub used: std::sync::atomic::AtomicUsize,
    /// Bytes towards the broker, over all connections.
    pub bytes_up: std::sync::atomic::AtomicU64,
}

impl CountingRelay {
    /// A relay on a free loopback port in front of `broker`.
    pub fn start(broker: SocketAddr) -> CountingRelay {
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = std::sync::Arc::new(RelayCounts::default());
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Relaxed) {
                let down = match listener.accept() {
                    Ok((down, _)) => down,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                down.set_nonblocking(false).unwrap();
                let _ = down.set_nodelay(true);
                c.connections.fetch_add(1, Relaxed);
                let Ok(up) = TcpStream::connect(broker) else {
                    continue; // broker down: the proxy sees its socket closed
                };
                let _ = up.set_nodelay(true);
                let (c, s) = (c.clone(), s.clone());
                std::thread::spawn(move || relay_pair(down, up, &c, &s));
            }
        });
        CountingRelay { addr, counts, stop }
    }

    /// The counts so far.
    pub fn counts(&self) -> &RelayCounts {
        &self.counts
    }
}

fn relay_pair(
    down: TcpStream,
    up: TcpStream,
    counts: &RelayCounts,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut down_r, mut up_w) = (down.try_clone().unwrap(), up.try_clone().unwrap());
    let (mut up_r, mut down_w) = (up, down);
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut down_w);
        let _ = down_w.shutdown(std::net::Shutdown::Both);
    });
    down_r
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut chunk = [0u8; 4096];
    let mut used = false;
    loop {
        match down_r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if !used {
                    used = true;
                    counts.used.fetch_add(1, Relaxed);
                }
                counts.bytes_up.fetch_add(n as u64, Relaxed);
                if up_w.write_all(&chunk[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Relaxed) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = up_w.shutdown(std::net::Shutdown::Both);
    let _ = back.join();
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The value of an unlabelled metric in the engine's Prometheus text.
pub fn metric(engine: &Engine, name: &str) -> u64 {
    let text = engine.metrics().render();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}
