//! The FlyTrap data plane: a thread-per-core MQTT proxy engine on tokio's current-thread
//! runtime (epoll), one per core.
//!
//! One shard thread per core ([`runtime`]), pinned when the process covers its CPUs; each accepts on its own `SO_REUSEPORT` listener, so the
//! kernel spreads connections over the cores and a connection lives on one shard for its whole
//! life. Everything a connection touches is shard-local: no locks on the hot path.
//!
//! The life of a connection (see `ARCHITECTURE.md` for the whole picture):
//!
//! 1. **accept** — limits are checked before any TLS handshake ([`limits`]);
//! 2. **handshake** — TLS if the listener has it ([`tls`]);
//! 3. **CONNECT** — read within `connect_timeout`, decoded by `flytrap-proto`, authenticated
//!    through the [`Authorizer`] hook, rewritten (credentials stripped) and sent to a broker
//!    ([`upstream`]);
//! 4. **forward** — two pumps ([`pump`]) move whole frames both ways; PUBLISH, SUBSCRIBE and
//!    deliveries are checked through the hook first, denials are answered by the proxy;
//! 5. **close** — either side closing ends both.
//!
//! The engine never depends on the chain crate: authorisation arrives through [`Authorizer`],
//! and ships here with [`AllowAll`].

// Input paths return typed errors; an unwrap there would be a crash on bad input.
#![warn(clippy::unwrap_used)]

pub mod authz;
pub mod config;
mod conn;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod proxy_protocol;
mod pump;
pub mod runtime;
pub mod seen;
mod shard;
pub mod tls;
pub mod upstream;

pub use authz::{AllowAll, Authorizer, Check, ConnectInfo, Verdict};
pub use config::{BrokerPoolConfig, EngineConfig, Park, TlsFiles};
pub use metrics::Metrics;
pub use shard::{Engine, EngineError, Stopper};
