//! Worker processes (`engine.processes > 1`).
//!
//! One process can hold only as many connections as its open-file limit allows (two
//! descriptors per client). With N workers, the supervisor starts N copies of `flytrap serve`,
//! each thread-per-core over its share of the cores, all accepting on the same addresses
//! through `SO_REUSEPORT`. The supervisor forwards SIGTERM and SIGHUP, restarts a worker that
//! dies, and serves one `/metrics` page with every worker's series labelled `worker="i"`.
//!
//! With the chain, each worker writes audit records with its own operator key from its own
//! spool ([`operators`]), all share one replay cache ([`replay`]), and worker 0 merges the
//! sensitive-topic reports of all ([`sensitive`]); bans are shared through the chain (every
//! worker's event follower enforces every `Banned` record). Per-process state: failure counts,
//! permission caches, and the per-IP connection limits and rates,
//! enforced by each worker for the connections it accepted (with N workers an IP may hold up
//! to N × the limit).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Config;

pub mod operators;
pub mod replay;
pub mod sensitive;

/// The environment variable that makes a `flytrap serve` a worker: `index/count`.
pub const WORKER_ENV: &str = "FLYTRAP_WORKER";

/// Where a worker serves its own metrics for the supervisor (loopback, chosen by the
/// supervisor among free ports).
pub const WORKER_METRICS_ENV: &str = "FLYTRAP_WORKER_METRICS";

/// Which worker this process is, if it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    pub index: usize,
    pub count: usize,
}

impl Worker {
    /// Reads `FLYTRAP_WORKER`.
    pub fn from_env() -> anyhow::Result<Option<Worker>> {
        let Ok(value) = std::env::var(WORKER_ENV) else {
            return Ok(None);
        };
        let parsed = value
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
        match parsed {
            Some((index, count)) if index < count => Ok(Some(Worker { index, count })),
            _ => bail!("{WORKER_ENV}={value:?} is not index/count"),
        }
    }

    /// This worker's CPUs: an even share of the online CPUs (wrapping when there are more
    /// workers than CPUs).
    pub fn cpus(&self, online: usize, cores: usize) -> Vec<usize> {
        let per = if cores > 0 {
            cores
        } else {
            (online / self.count).max(1)
        };
        (0..per)
            .map(|k| (self.index * per + k) % online.max(1))
            .collect()
    }

    /// Where the supervisor asked this worker to serve its metrics, if anywhere.
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        match std::env::var(WORKER_METRICS_ENV) {
            Err(_) => Ok(None),
            Ok(v) => v
                .parse()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{WORKER_METRICS_ENV}={v:?} is not an address")),
        }
    }
}

/// One free loopback port per worker for its metrics, chosen once at start, so that a
/// restarted worker binds the same one.
fn worker_metrics_addrs(count: usize) -> anyhow::Result<Vec<SocketAddr>> {
    (0..count)
        .map(|_| {
            let l =
                TcpListener::bind(("127.0.0.1", 0)).context("no free port for worker metrics")?;
            Ok(l.local_addr()?)
        })
        .collect()
}

/// Runs the supervisor until SIGTERM/SIGINT, then stops the workers.
pub fn supervise(config: &Config, config_path: &Path) -> anyhow::Result<()> {
    let count = config.engine.processes;
    // With the chain, each worker writes audit records with its own operator key.
    let _chain = match config.authz.allow_all {
        true => None,
        false => Some(operators::start(config, count)?),
    };
    for (name, addr) in [
        ("listen.tcp", config.listen.tcp),
        ("listen.tls", config.listen.tls),
    ] {
        if addr.is_some_and(|a| a.port() == 0) {
            bail!("{name}: a fixed port is needed with engine.processes > 1");
        }
    }
    let exe = std::env::current_exe().context("cannot find the flytrap executable")?;
    let children: Arc<Mutex<Vec<Option<Child>>>> =
        Arc::new(Mutex::new((0..count).map(|_| None).collect()));
    let metrics_addrs = match config.metrics.listen {
        Some(_) => worker_metrics_addrs(count)?,
        None => Vec::new(),
    };
    let start = |i: usize| -> anyhow::Result<Child> {
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--config")
            .arg(config_path)
            .env(WORKER_ENV, format!("{i}/{count}"));
        if let Some(addr) = metrics_addrs.get(i) {
            cmd.env(WORKER_METRICS_ENV, addr.to_string());
        }
        cmd.spawn()
            .with_context(|| format!("cannot start worker {i}"))
    };
    for i in 0..count {
        let child = start(i)?;
        tracing::info!(worker = i, pid = child.id(), "worker started");
        children.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(child);
    }
    if let Some(addr) = config.metrics.listen {
        serve_metrics(addr, metrics_addrs.clone())?;
    }

    let stopping = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    {
        let children = children.clone();
        let stopping = stopping.clone();
        std::thread::spawn(move || {
            for signal in signals.forever() {
                if signal != signal_hook::consts::SIGHUP {
                    stopping.store(true, Ordering::SeqCst);
                }
                let Ok(signal) = nix::sys::signal::Signal::try_from(signal) else {
                    continue;
                };
                for child in children
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .flatten()
                {
                    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                    let _ = nix::sys::signal::kill(pid, signal);
                }
            }
        });
    }
    // Restart a worker that dies; finish when all have stopped after a stop request. A worker
    // that keeps dying at once (a bad config) ends the supervisor instead of looping.
    let mut quick_deaths = 0;
    let started_at = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let mut guard = children.lock().unwrap_or_else(|p| p.into_inner());
        let mut alive = 0;
        for (i, slot) in guard.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            match child.try_wait() {
                Ok(None) => alive += 1,
                Ok(Some(status)) => {
                    *slot = None;
                    if !stopping.load(Ordering::SeqCst) {
                        if started_at.elapsed() < Duration::from_secs(10) {
                            quick_deaths += 1;
                            if quick_deaths > count * 3 {
                                stopping.store(true, Ordering::SeqCst);
                                for c in guard.iter_mut().flatten() {
                                    let _ = c.kill();
                                    let _ = c.wait();
                                }
                                bail!("workers keep failing at start (last: worker {i}, {status})");
                            }
                        }
                        tracing::warn!(worker = i, %status, "worker died; restarting");
                        std::thread::sleep(Duration::from_millis(500));
                        *slot = Some(start(i)?);
                        alive += 1;
                    }
                }
                Err(e) => bail!("cannot watch worker {i}: {e}"),
            }
        }
        if alive == 0 && stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
    }
}

/// Adds `worker="i"` to every series of one worker's exposition.
fn label_worker(text: &str, worker: usize, out: &mut BTreeMap<String, Vec<String>>, first: bool) {
    let mut family = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            family = rest.split(' ').nth(1).unwrap_or_default().to_string();
            if first {
                out.entry(family.clone())
                    .or_default()
                    .push(line.to_string());
            }
            continue;
        }
        let labelled = match line.find('{') {
            Some(i) => format!("{}{{worker=\"{worker}\",{}", &line[..i], &line[i + 1..]),
            None => match line.split_once(' ') {
                Some((name, value)) => format!("{name}{{worker=\"{worker}\"}} {value}"),
                None => continue,
            },
        };
        out.entry(family.clone()).or_default().push(labelled);
    }
}

fn fetch(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn serve_metrics(addr: SocketAddr, workers: Vec<SocketAddr>) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("cannot serve metrics on {addr}"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.read(&mut [0u8; 1024]);
            let mut families = BTreeMap::new();
            for (i, worker) in workers.iter().enumerate() {
                if let Some(text) = fetch(*worker) {
                    label_worker(&text, i, &mut families, i == 0);
                }
            }
            let body: String = families.into_values().flatten().map(|l| l + "\n").collect();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(())
}

/// The config path to hand to workers.
pub fn config_path(path: Option<&Path>) -> anyhow::Result<PathBuf> {
    match path {
        Some(p) => {
            Ok(std::fs::canonicalize(p).with_context(|| format!("cannot find {}", p.display()))?)
        }
        None => bail!("engine.processes > 1 needs a config file (--config)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_shares() {
        let w = |index, count| Worker { index, count };
        assert_eq!(w(0, 2).cpus(2, 0), vec![0]);
        assert_eq!(w(1, 2).cpus(2, 0), vec![1]);
        assert_eq!(w(3, 4).cpus(2, 0), vec![1]);
        assert_eq!(w(1, 2).cpus(8, 0), vec![4, 5, 6, 7]);
    }

    #[test]
    fn labels() {
        let mut out = BTreeMap::new();
        label_worker(
            "# HELP a x\n# TYPE a counter\na 3\nb{type=\"X\"} 1\n",
            1,
            &mut out,
            true,
        );
        let all: Vec<String> = out.into_values().flatten().collect();
        assert!(all.contains(&"a{worker=\"1\"} 3".to_string()));
        assert!(all.contains(&"b{worker=\"1\",type=\"X\"} 1".to_string()));
    }
}
