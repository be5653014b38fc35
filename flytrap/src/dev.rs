//! The development profile (SPEC §5): everything on 127.0.0.1, a broker started when none
//! answers, a self-signed certificate, state kept in `./.flytrap/`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::config::{Addresses, Config};

/// Where the development profile keeps its state.
pub const STATE_DIR: &str = ".flytrap";

pub const PROXY_TCP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1883);
pub const PROXY_TLS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8883);
pub const BROKER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1884);
pub const METRICS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

/// The configuration of the development profile.
pub fn config(state: &Path) -> Config {
    let mut c = Config::default();
    c.listen.tcp = Some(PROXY_TCP);
    c.listen.tls = Some(PROXY_TLS);
    c.listen.cert = Some(state.join("tls/cert.pem"));
    c.listen.key = Some(state.join("tls/key.pem"));
    c.broker.address = Some(Addresses::One(BROKER));
    c.metrics.listen = Some(METRICS);
    c.spool.dir = Some(state.join("spool"));
    c
}

/// Makes the self-signed certificate for localhost once.
pub fn ensure_certificate(state: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = state.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let signed = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .context("cannot make a self-signed certificate")?;
    write_private(&key, signed.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, signed.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    Ok((cert, key))
}

/// Writes a file readable by its owner only (keys).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// A broker this process started; stopped when dropped.
#[derive(Debug)]
pub struct StartedBroker(Child);

impl Drop for StartedBroker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a Mosquitto on `addr` unless something already answers there.
pub fn ensure_broker(state: &Path, addr: SocketAddr) -> anyhow::Result<Option<StartedBroker>> {
    if answers(addr) {
        tracing::info!(%addr, "using the broker already listening");
        return Ok(None);
    }
    let conf = state.join("mosquitto.conf");
    std::fs::create_dir_all(state)?;
    std::fs::write(
        &conf,
        format!(
            "# Written by flytrap serve (development profile).\nlistener {} {}\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\nlog_dest stderr\n",
            addr.port(),
            addr.ip()
        ),
    )?;
    let log = std::fs::File::create(state.join("mosquitto.log"))?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context(
            "cannot start mosquitto (install it: apt-get install mosquitto, or run `make run`)",
        )?;
    let started = StartedBroker(child);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !answers(addr) {
        if Instant::now() > deadline {
            bail!(
                "mosquitto did not start on {addr}; see {}",
                state.join("mosquitto.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!(%addr, "started mosquitto");
    Ok(Some(started))
}
