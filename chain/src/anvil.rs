//! A local dev chain (anvil) for the development profile, the tests and the benchmarks:
//! found, started on a loopback port, waited for, and stopped by PID.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// The private keys of anvil's first dev accounts (the well-known mnemonic "test test … junk").
/// Public knowledge: for dev chains only.
pub const DEV_KEYS: [&str; 4] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
];

/// The platform package of the pinned anvil, under `contracts/node_modules`.
const NPM_BIN: &str = "contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

/// Where anvil is: `$FLYTRAP_ANVIL`, else the pinned npm binary (under the current directory or
/// this source tree), else `anvil` on `PATH`.
pub fn anvil_path() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("FLYTRAP_ANVIL") {
        return Ok(PathBuf::from(p));
    }
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for base in [PathBuf::from("."), source_tree] {
        let p = base.join(NPM_BIN);
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("anvil");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::InvalidInput(
        "anvil not found: run `npm ci` in contracts/ (or `make deps`), put anvil on PATH, or set FLYTRAP_ANVIL".into(),
    ))
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// How to start anvil.
#[derive(Debug, Clone, Default)]
pub struct AnvilOptions {
    /// Port on 127.0.0.1; 0 = a free one.
    pub port: u16,
    /// Mine a block every this many seconds (`--block-time`); `None` = automine (a block per
    /// transaction).
    pub block_time: Option<u64>,
    /// Load the chain from this file at start and write it back at exit (`--state`).
    pub state: Option<PathBuf>,
    /// Where anvil's output goes; `None` = discarded.
    pub log: Option<PathBuf>,
}

/// A running anvil; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Option<Child>,
    port: u16,
}

impl Anvil {
    /// Starts anvil on a free loopback port, automining.
    pub fn start() -> Result<Anvil, Error> {
        Anvil::start_with(&AnvilOptions::default())
    }

    /// Starts anvil and waits (up to 15 s) until it accepts connections.
    pub fn start_with(opts: &AnvilOptions) -> Result<Anvil, Error> {
        let bin = anvil_path()?;
        let mut last_err = None;
        // A free port can be taken between the probe and anvil's bind: try a few.
        for _ in 0..3 {
            let port = if opts.port == 0 {
                free_port()
            } else {
                opts.port
            };
            let mut cmd = Command::new(&bin);
            cmd.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
                // anvil writes old block states to ~/.foundry/anvil/tmp and does not clean
                // up when killed: thousands of blocks per test run filled the disk (74 GB).
                // Nothing here reads historical state (logs and blocks stay available).
                "--max-persisted-states",
                "0",
            ])
            .stdin(Stdio::null());
            if let Some(t) = opts.block_time {
                cmd.args(["--block-time", &t.to_string()]);
            }
            if let Some(s) = &opts.state {
                cmd.arg("--state").arg(s);
            }
            match &opts.log {
                Some(log) => {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log)
                        .map_err(|e| {
                            Error::InvalidInput(format!("cannot open {}: {e}", log.display()))
                        })?;
                    let f2 = f
                        .try_clone()
                        .map_err(|e| Error::InvalidInput(e.to_string()))?;
                    cmd.stdout(f).stderr(f2);
                }
                None => {
                    cmd.stdout(Stdio::null()).stderr(Stdio::null());
                }
            }
            let child = cmd.spawn().map_err(|e| {
                Error::InvalidInput(format!("cannot start anvil ({}): {e}", bin.display()))
            })?;
            let mut anvil = Anvil {
                child: Some(child),
                port,
            };
            match anvil.wait_ready(Duration::from_secs(15)) {
                Ok(()) => return Ok(anvil),
                Err(e) => {
                    last_err = Some(e);
                    anvil.kill();
                    if opts.port != 0 {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::InvalidInput("anvil did not start".into())))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::InvalidInput(format!(
                    "anvil exited at start ({status}) on port {}",
                    self.port
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                // Something answers; make sure it is our anvil and not another process that
                // took the port first (ours would then exit at once on its failed bind).
                std::thread::sleep(Duration::from_millis(150));
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return Err(Error::InvalidInput(format!(
                        "anvil exited at start ({status}) on port {}",
                        self.port
                    )));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::InvalidInput(format!(
                    "anvil did not answer on {addr} within {}s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Its JSON-RPC URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it gracefully (SIGTERM: anvil writes its `--state` file), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let pid = rustix::process::Pid::from_raw(child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills it at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.stop();
    }
}
