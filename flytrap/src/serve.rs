//! `flytrap serve`: builds the engine's settings from the config and runs until SIGTERM.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use flytrap_engine::{AllowAll, Engine, EngineConfig, Park, TlsFiles};

use crate::config::{self, Config, DenyAction};
use crate::dev;

/// Runs the proxy with a config file, or the development profile without one.
pub fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let (config, _broker) = match config_path {
        Some(path) => (config::load(path)?, None),
        None => {
            let state = Path::new(dev::STATE_DIR);
            let mut config = dev::config(state);
            // The development profile honours FLYTRAP_* variables too.
            let overrides = config::parse("", std::env::vars())?;
            if overrides.broker.address.is_some() {
                config.broker.address = overrides.broker.address;
            }
            dev::ensure_certificate(state)?;
            let broker = match config.broker.address.as_ref().map(|a| a.to_vec()) {
                Some(list) if list == [dev::BROKER] => dev::ensure_broker(state, dev::BROKER)?,
                _ => None,
            };
            let (chain, anvil) =
                crate::devchain::ensure_dev_chain_at(state, crate::devchain::CHAIN)?;
            config.chain.rpc = Some(chain.rpc);
            config.chain.contract = Some(format!("{:#x}", chain.contract));
            config.chain.key = Some(chain.key);
            (config, Some((broker, anvil)))
        }
    };
    let worker = crate::workers::Worker::from_env()?;
    if worker.is_none() && config.engine.processes > 1 {
        return crate::workers::supervise(&config, &crate::workers::config_path(config_path)?);
    }
    let mut engine_config = engine_config(&config)?;
    let mut metrics_listen = config.metrics.listen;
    if let Some(w) = worker {
        let allowed = flytrap_engine::runtime::allowed_cpus();
        engine_config.cpus = w
            .cpus(allowed.len(), config.engine.cores)
            .into_iter()
            .map(|i| allowed[i])
            .collect();
        engine_config.shards = engine_config.cpus.len();
        engine_config.pin = pin_shards(&config, engine_config.shards * w.count, allowed.len());
        metrics_listen = w.metrics_addr()?;
    }
    // The defaults depend on the CPUs the process was given: say what they came to.
    tracing::info!(
        shards = engine_config.shards,
        cpus = ?engine_config.cpus,
        pinned = engine_config.pin,
        park = ?engine_config.park,
        "engine"
    );
    let plane = crate::plane::Plane::start(&config, worker)?;
    let engine = match &plane {
        crate::plane::Plane::AllowAll => Engine::start(engine_config, |_shard| AllowAll),
        crate::plane::Plane::Chain { shared, .. } => {
            let shared = shared.clone();
            Engine::start(engine_config, move |_shard| {
                flytrap_authz::ChainAuthorizer::new(shared.clone())
            })
        }
    }
    .context("cannot start the engine")?;
    if let Some(addr) = engine.tcp_addr() {
        tracing::info!(%addr, "listening (MQTT over TCP)");
    }
    if let Some(addr) = engine.tls_addr() {
        tracing::info!(%addr, "listening (MQTT over TLS)");
    }
    if let Some(addr) = metrics_listen {
        let addr = flytrap_engine::metrics::serve(addr, engine.metrics())
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tracing::info!(%addr, "metrics on http://{addr}/metrics");
    }
    let stopper = engine.stopper();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])?;
    std::thread::Builder::new().name("flytrap-signals".into()).spawn(move || {
        for signal in signals.forever() {
            if signal == signal_hook::consts::SIGHUP {
                match stopper.reload_tls() {
                    Ok(()) => tracing::info!("certificates reloaded"),
                    Err(e) => tracing::error!(error = %e, "certificate reload failed; keeping the old ones"),
                }
            } else {
                tracing::info!("stopping: no new connections, draining");
                stopper.stop();
            }
        }
    })?;
    engine.wait();
    plane.stop();
    tracing::info!("stopped");
    Ok(())
}

/// Whether shards are pinned: as configured, or when `total_shards` (over all worker
/// processes) cover the `allowed` CPUs, one shard per CPU. With fewer shards than CPUs the
/// broker and clients share them, and the kernel's placement beside them measured faster
/// than a pinned shard.
fn pin_shards(c: &Config, total_shards: usize, allowed: usize) -> bool {
    c.engine.pin.unwrap_or(total_shards >= allowed)
}

/// What an idle shard does before it sleeps: `engine.spin_us` and `engine.spin_adaptive` as
/// configured; unset, adaptive spinning for 50 µs after each arrival, pinned or not. The spin
/// yields the CPU on every turn and stops as soon as another thread took it, so a broker or
/// client that shares the CPU runs first (BENCHMARKS.md, "tokio instead of glommio").
pub(crate) fn park(c: &Config) -> Park {
    let spin_us = c.engine.spin_us.unwrap_or(50);
    match (spin_us, c.engine.spin_adaptive) {
        (0, _) => Park::Sleep,
        (us, true) => Park::Adaptive(Duration::from_micros(us)),
        (us, false) => Park::Spin(Duration::from_micros(us)),
    }
}

/// The engine's settings from the config file. Shards run on the CPUs the process is allowed
/// (so `taskset -c 1 flytrap serve` runs on CPU 1), `engine.cores` of them at most, pinned
/// as [`pin_shards`] says.
pub fn engine_config(c: &Config) -> anyhow::Result<EngineConfig> {
    let allowed = flytrap_engine::runtime::allowed_cpus();
    let cpus: Vec<usize> = if c.engine.cores > 0 {
        (0..c.engine.cores)
            .map(|i| allowed[i % allowed.len()])
            .collect()
    } else {
        allowed.clone()
    };
    let shards = cpus.len();
    let pin = pin_shards(c, shards, allowed.len());
    let tls = match (&c.listen.cert, &c.listen.key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    Ok(EngineConfig {
        shards,
        cpus,
        pin,
        listen_tcp: c.listen.tcp,
        listen_tls: c.listen.tls,
        tls,
        brokers: c
            .broker
            .address
            .as_ref()
            .map(|a| a.to_vec())
            .unwrap_or_default(),
        source_addresses: flytrap_engine::upstream::parse_source_addresses(
            &c.broker.source_addresses,
        )
        .map_err(|e| anyhow::anyhow!("broker.source_addresses: {e}"))?,
        proxy_protocol: c.listen.proxy_protocol,
        broker_tls: c.broker.tls,
        broker_ca: c.broker.ca.clone(),
        connect_timeout: Duration::from_secs(c.limits.connect_timeout_s.max(1)),
        broker_connect_timeout: Duration::from_secs(5),
        broker_pool: c.broker.pool()?,
        broker_max_pending: c.broker.max_pending,
        max_packet_size: c.limits.max_packet_size,
        max_connections: c.limits.max_connections,
        max_connections_per_ip: c.limits.max_connections_per_ip,
        connection_rate_per_ip: c.limits.connection_rate_per_ip,
        drain_timeout: Duration::from_secs(c.limits.drain_timeout_s),
        deny_disconnect: c.authz.deny_action == DenyAction::Disconnect,
        park: park(c),
        max_handshakes: c.limits.max_handshakes,
        listen_backlog: c.limits.listen_backlog,
    })
}
