//! A validated run: the command line checked once (every mistake is a one-line error before
//! anything connects), the scenario reduced to what each client does, and the schedule.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use flytrap_proto::{QoS, Version};

use crate::cli::{Command, Common, Mqtt, PubArgs, SubArgs};

/// What the clients of a run do after they connect.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// Stay connected for the work phase (at most `hold`).
    Connect {
        /// How long.
        hold: Duration,
    },
    /// SUBSCRIBE, one at a time.
    Subscribe,
    /// PUBLISH.
    Publish,
    /// Subscribers and publishers.
    Fanout {
        /// Clients (the first ones) that subscribe.
        subscribers: u64,
    },
    /// Every client subscribes and publishes.
    Mixed,
}

impl Scenario {
    /// Its name, as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Connect { .. } => "connect",
            Scenario::Subscribe => "subscribe",
            Scenario::Publish => "publish",
            Scenario::Fanout { .. } => "fanout",
            Scenario::Mixed => "mixed",
        }
    }
}

/// How a client signs its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// SPEC §1 timestamped credentials.
    Signed,
    /// No credentials.
    Unsigned,
    /// Credentials that do not verify.
    Bad,
}

/// How publishers pace themselves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Message k of a client is due at work start + k × interval (open loop).
    Open {
        /// Between two messages of one client.
        interval: Duration,
    },
    /// At most this many unacknowledged messages per client (closed loop).
    Closed {
        /// Window.
        inflight: u16,
    },
}

/// Publishing.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// Topic template ({i}, {g}).
    pub topic: String,
    /// QoS.
    pub qos: QoS,
    /// Payload bytes (≥ 16).
    pub payload: usize,
    /// Pace.
    pub pacing: Pacing,
    /// Messages per client (0 = until the work phase ends).
    pub messages: u64,
}

/// Subscribing.
#[derive(Debug, Clone)]
pub struct SubscribePlan {
    /// Filter template ({i}, {g}, {j} = the subscription's number).
    pub filter: String,
    /// SUBSCRIBEs per client.
    pub count: u32,
    /// Requested QoS.
    pub qos: QoS,
}

/// Everything a run needs, shared read-only by every executor.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What clients do.
    pub scenario: Scenario,
    /// Where they connect.
    pub target: SocketAddr,
    /// TLS: CA file and server name.
    pub tls: Option<(PathBuf, String)>,
    /// MQTT version.
    pub version: Version,
    /// Key seed.
    pub seed: String,
    /// First client index.
    pub first: u64,
    /// Clients in the whole run (all workers).
    pub clients: u64,
    /// Connections per second in the whole run.
    pub ramp: f64,
    /// Distinct keys (0: one per client).
    pub keys: u64,
    /// Leading clients whose latencies are not recorded.
    pub discard: u64,
    /// Client id prefix.
    pub client_id: String,
    /// Credentials.
    pub signing: Signing,
    /// Sign-in scheme.
    pub auth: crate::cli::AuthScheme,
    /// Expected reason code of the scenario's replies (`--expect`).
    pub expect: Option<u8>,
    /// Keep-alive.
    pub keep_alive: u16,
    /// Each client starts its work at its own CONNACK (else all together after the ramp).
    pub start_on_connect: bool,
    /// Pause after the ramp.
    pub settle: Duration,
    /// Work phase limit.
    pub duration: Duration,
    /// Any one wait.
    pub timeout: Duration,
    /// Source address pool.
    pub sources: Vec<IpAddr>,
    /// Worker processes.
    pub workers: u32,
    /// This process: worker `index` of `workers` (0 of 1 when alone).
    pub worker_index: u32,
    /// Pinned CPUs (empty: unpinned, one executor per CPU).
    pub cores: Vec<usize>,
    /// Results directory.
    pub out: PathBuf,
    /// Label.
    pub label: String,
    /// No progress bar.
    pub quiet: bool,
    /// Time origin of the schedule (Unix ns).
    pub epoch_ns: u64,
    /// Publishing, when the scenario publishes.
    pub publish: Option<PublishPlan>,
    /// Subscribing, when the scenario subscribes.
    pub subscribe: Option<SubscribePlan>,
    /// Topic groups.
    pub groups: u64,
    /// The command line, for the summary.
    pub argv: Vec<String>,
}

/// Unix time now in ns.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("--{name} {s} is not a duration"))
}

impl Plan {
    /// Checks the command line of a scenario.
    pub fn from_command(command: &Command, argv: Vec<String>) -> anyhow::Result<Plan> {
        let (common, scenario, publish, subscribe, groups) = match command {
            Command::Connect { common, hold } => (
                common,
                Scenario::Connect {
                    hold: seconds("hold", *hold)?,
                },
                None,
                None,
                1,
            ),
            Command::Subscribe { common, sub } => {
                (common, Scenario::Subscribe, None, Some(sub.clone()), 1)
            }
            Command::Publish { common, publish } => {
                (common, Scenario::Publish, Some(publish.clone()), None, 1)
            }
            Command::Fanout {
                common,
                publish,
                subscribers,
                groups,
            } => {
                ensure!(
                    *subscribers >= 1 && *subscribers < common.clients,
                    "--subscribers must be between 1 and --clients - 1 (some clients publish)"
                );
                (
                    common,
                    Scenario::Fanout {
                        subscribers: *subscribers,
                    },
                    Some(publish.clone()),
                    Some(subscribe_to_topic(publish)),
                    *groups,
                )
            }
            Command::Mixed {
                common,
                publish,
                groups,
            } => (
                common,
                Scenario::Mixed,
                Some(publish.clone()),
                Some(subscribe_to_topic(publish)),
                *groups,
            ),
            Command::Keys { .. } => bail!("`keys` is not a scenario"),
        };
        ensure!(groups >= 1, "--groups must be at least 1");
        let publish = publish
            .map(|p| publish_plan(&p, common.clients, &scenario))
            .transpose()?;
        let subscribe = subscribe.map(|s| {
            anyhow::Ok(SubscribePlan {
                filter: s.filter,
                count: s.subscriptions,
                qos: qos(s.sub_qos),
            })
        });
        let subscribe = subscribe.transpose()?;
        Self::common(common, scenario, publish, subscribe, groups, argv)
    }

    fn common(
        c: &Common,
        scenario: Scenario,
        publish: Option<PublishPlan>,
        subscribe: Option<SubscribePlan>,
        groups: u64,
        argv: Vec<String>,
    ) -> anyhow::Result<Plan> {
        let ip = c.target.ip();
        ensure!(
            ip.is_loopback() || c.allow_remote,
            "--target {} is not on 127.0.0.0/8 or ::1 (pass --allow-remote to load another machine)",
            c.target
        );
        ensure!(c.clients >= 1, "--clients must be at least 1");
        ensure!(
            c.discard < c.clients,
            "--discard {} leaves no client to measure (--clients {})",
            c.discard,
            c.clients
        );
        ensure!(
            c.ramp.is_finite() && c.ramp > 0.0,
            "--ramp must be a positive number of connections per second"
        );
        ensure!(c.workers >= 1, "--workers must be at least 1");
        ensure!(
            u64::from(c.workers) <= c.clients,
            "--workers {} is more than --clients {}",
            c.workers,
            c.clients
        );
        let settle = seconds("settle", c.settle)?;
        let duration = seconds("duration", c.duration)?;
        let timeout = seconds("timeout", c.timeout)?;
        ensure!(!timeout.is_zero(), "--timeout must be positive");
        let sources = flytrap_engine::upstream::parse_source_addresses(&c.source)
            .map_err(|e| anyhow::anyhow!("--source: {e}"))?;
        if let Some(bad) = sources.iter().find(|a| a.is_ipv4() != c.target.is_ipv4()) {
            bail!(
                "--source {bad} is not of the target's address family ({})",
                c.target
            );
        }
        ensure!(
            c.auth != crate::cli::AuthScheme::Challenge || c.mqtt == Mqtt::V5,
            "--auth challenge needs --mqtt 5 (AUTH packets are MQTT 5 only)"
        );
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(bad) = c.cores.iter().find(|&&cpu| cpu >= online) {
            bail!("--cores {bad}: this machine has CPUs 0..{}", online - 1);
        }
        let tls = match &c.ca {
            Some(ca) => {
                std::fs::metadata(ca).with_context(|| format!("--ca {}", ca.display()))?;
                Some((ca.clone(), c.server_name.clone()))
            }
            None => None,
        };
        let (worker_index, workers) = match &c.worker {
            Some(spec) => parse_worker(spec)?,
            None => (0, c.workers),
        };
        let signing = if c.unsigned {
            Signing::Unsigned
        } else if c.bad_signature {
            Signing::Bad
        } else {
            Signing::Signed
        };
        let out = c.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!(
                "loadgen-results/{}-{}",
                scenario.name(),
                unix_ns() / 1_000_000_000
            ))
        });
        Ok(Plan {
            scenario,
            target: c.target,
            tls,
            version: match c.mqtt {
                Mqtt::V5 => Version::V5,
                Mqtt::V311 => Version::V311,
            },
            seed: c.seed.clone(),
            first: c.first,
            clients: c.clients,
            ramp: c.ramp,
            keys: c.keys,
            discard: c.discard,
            client_id: c.client_id.clone(),
            signing,
            auth: c.auth,
            expect: c.expect,
            keep_alive: c.keep_alive,
            start_on_connect: c.start == crate::cli::Start::Connected,
            settle,
            duration,
            timeout,
            sources,
            workers,
            worker_index,
            cores: c.cores.clone(),
            out,
            label: c.label.clone(),
            quiet: c.quiet,
            // Workers get the parent's origin; a lone process starts shortly after now.
            epoch_ns: c.epoch_ns.unwrap_or_else(|| unix_ns() + 50_000_000),
            publish,
            subscribe,
            groups,
            argv,
        })
    }

    /// Offset of client `k` (0-based within the run) from the origin: its connect time.
    pub fn connect_at(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.ramp)
    }

    /// Offset of the work phase from the origin: after the whole ramp and the settle time.
    pub fn work_at(&self) -> Duration {
        self.connect_at(self.clients) + self.settle
    }

    /// Client ids and keys of this process: run-relative indices k ≡ worker (mod workers).
    pub fn my_clients(&self) -> impl Iterator<Item = u64> + '_ {
        (u64::from(self.worker_index)..self.clients).step_by(self.workers as usize)
    }

    /// The CONNACK code to expect: `--expect` in the connect scenario, else success (0).
    pub fn expect_connack(&self) -> u8 {
        match self.scenario {
            Scenario::Connect { .. } => self.expect.unwrap_or(0),
            _ => 0,
        }
    }

    /// The SUBACK code to expect: `--expect` in the subscribe scenario, else success (0).
    pub fn expect_suback(&self) -> u8 {
        match self.scenario {
            Scenario::Subscribe => self.expect.unwrap_or(0),
            _ => 0,
        }
    }

    /// The PUBACK/PUBREC code to expect: `--expect` where the scenario publishes.
    pub fn expect_puback(&self) -> u8 {
        match self.scenario {
            Scenario::Publish | Scenario::Fanout { .. } | Scenario::Mixed => {
                self.expect.unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// The key index of client `k`.
    pub fn key_index(&self, k: u64) -> u64 {
        self.first + if self.keys == 0 { k } else { k % self.keys }
    }

    /// Whether client `k`'s latencies are recorded (not a discarded warm-up client).
    pub fn records(&self, k: u64) -> bool {
        k >= self.discard
    }

    /// Whether client `k` (run-relative) publishes.
    pub fn publishes(&self, k: u64) -> bool {
        match self.scenario {
            Scenario::Publish | Scenario::Mixed => true,
            Scenario::Fanout { subscribers } => k >= subscribers,
            _ => false,
        }
    }

    /// Whether client `k` subscribes.
    pub fn subscribes(&self, k: u64) -> bool {
        match self.scenario {
            Scenario::Subscribe | Scenario::Mixed => true,
            Scenario::Fanout { subscribers } => k < subscribers,
            _ => false,
        }
    }

    /// A topic or filter template for client `k` (`j`: the subscription's number).
    pub fn expand(&self, template: &str, k: u64, j: u32) -> String {
        let i = self.first + k;
        template
            .replace("{i}", &i.to_string())
            .replace("{g}", &(k % self.groups).to_string())
            .replace("{j}", &j.to_string())
    }
}

/// Fan-out and mixed subscribers: one subscription to the publishers' topic, at their QoS.
fn subscribe_to_topic(publish: &PubArgs) -> SubArgs {
    SubArgs {
        filter: publish.topic.clone(),
        subscriptions: 1,
        sub_qos: publish.qos,
    }
}

fn publish_plan(p: &PubArgs, clients: u64, scenario: &Scenario) -> anyhow::Result<PublishPlan> {
    ensure!(
        p.payload >= 16,
        "--payload must be at least 16 bytes (a timestamp and the sender's index)"
    );
    ensure!(
        p.payload <= 256 << 20,
        "--payload is larger than MQTT's 256 MiB packet limit"
    );
    let publishers = match scenario {
        Scenario::Fanout { subscribers } => clients - subscribers,
        _ => clients,
    };
    let per_client = match (p.rate, p.total_rate) {
        (Some(r), _) => Some(r),
        (None, Some(t)) => Some(t / publishers as f64),
        (None, None) => None,
    };
    let pacing = match per_client {
        Some(r) => {
            ensure!(
                r.is_finite() && r > 0.0,
                "the publishing rate must be a positive number of messages per second"
            );
            Pacing::Open {
                interval: Duration::from_secs_f64(1.0 / r),
            }
        }
        None => {
            ensure!(
                p.qos > 0,
                "--qos 0 needs --rate or --total-rate (no acknowledgments to pace on)"
            );
            ensure!(p.inflight >= 1, "--inflight must be at least 1");
            Pacing::Closed {
                inflight: p.inflight,
            }
        }
    };
    Ok(PublishPlan {
        topic: p.topic.clone(),
        qos: qos(p.qos),
        payload: p.payload,
        pacing,
        messages: p.messages,
    })
}

fn parse_worker(spec: &str) -> anyhow::Result<(u32, u32)> {
    let bad = || anyhow::anyhow!("--worker {spec:?}: expected I/N");
    let (i, n) = spec.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    ensure!(i < n, "--worker {spec:?}: I must be below N");
    Ok((i, n))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn plan(args: &[&str]) -> anyhow::Result<Plan> {
        let mut argv = vec!["loadgen"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(&argv)?;
        Plan::from_command(&cli.command, vec![])
    }

    fn err(args: &[&str]) -> String {
        plan(args).unwrap_err().to_string()
    }

    #[test]
    fn refuses_what_cannot_run() {
        assert!(err(&["publish", "--target", "10.1.2.3:1883"]).contains("--allow-remote"));
        assert!(plan(&["publish", "--target", "10.1.2.3:1883", "--allow-remote"]).is_ok());
        assert!(err(&["publish", "--qos", "0"]).contains("--rate"));
        assert!(err(&["publish", "--payload", "8"]).contains("16 bytes"));
        assert!(err(&["fanout", "-n", "4", "--subscribers", "4"]).contains("--subscribers"));
        assert!(err(&["connect", "--ramp", "0"]).contains("--ramp"));
        assert!(err(&["connect", "--source", "127.0.0.9-127.0.0.1"]).contains("--source"));
        assert!(err(&["connect", "--source", "::1"]).contains("family"));
        assert!(err(&["connect", "--cores", "999"]).contains("--cores"));
        assert!(err(&["connect", "--ca", "/nonexistent.pem"]).contains("--ca"));
        assert!(err(&["connect", "-n", "2", "--workers", "3"]).contains("--workers"));
        assert!(Cli::try_parse_from(["loadgen", "publish", "--qos", "3"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "connect", "--expect", "zz"]).is_err());
    }

    #[test]
    fn schedule_and_roles() {
        let p = plan(&[
            "fanout",
            "-n",
            "10",
            "--subscribers",
            "2",
            "--groups",
            "2",
            "--ramp",
            "100",
            "--settle",
            "0.5",
            "--total-rate",
            "80",
            "--workers",
            "3",
        ])
        .unwrap();
        assert_eq!(p.connect_at(50), Duration::from_millis(500));
        assert_eq!(p.work_at(), Duration::from_millis(600));
        assert!(p.subscribes(1) && !p.publishes(1));
        assert!(p.publishes(2) && !p.subscribes(2));
        // 80 msg/s over 8 publishers: 10 each.
        let Some(PublishPlan {
            pacing: Pacing::Open { interval },
            ..
        }) = p.publish
        else {
            panic!("open loop expected")
        };
        assert_eq!(interval, Duration::from_millis(100));
        assert_eq!(p.expand("t/{g}/{i}", 3, 0), "t/1/3");
        assert_eq!(p.my_clients().collect::<Vec<_>>(), vec![0, 3, 6, 9]);
    }
}
