//! TLS termination with rustls: certificates loaded from PEM files, reloadable (SIGHUP)
//! without a restart. Each shard keeps its own `Arc` of the current config and refreshes it
//! when the generation counter moves, so a handshake takes no lock.
//!
//! Keys: ECDSA (P-256, P-384), Ed25519 or RSA, in PKCS#8, SEC1 or PKCS#1 PEM. A P-256 key is
//! the cheap one to handshake with (see BENCHMARKS.md, handshakes per core): the development
//! profile and the benchmarks make P-256 certificates.
//!
//! Reconnecting clients resume with TLS 1.3 session tickets (stateless: the ticket carries
//! the session, encrypted under a key that rotates every 6 hours), which skips the signature
//! and the certificate on the server. One ticket is sent per full handshake.

use std::fs::File;
use std::io::BufReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::server::ProducesTickets;

use crate::config::TlsFiles;

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No certificate in the certificate file.
    #[error("no certificate in {0}")]
    NoCertificate(String),
    /// No private key in the key file.
    #[error("no private key in {0}")]
    NoKey(String),
    /// rustls refused the pair.
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Session tickets sent after each full TLS 1.3 handshake (each is single-use; a client that
/// reconnects once per session needs one).
const TLS13_TICKETS: usize = 1;

/// The ticket key holder of a new process (it rotates its own keys).
pub fn new_ticketer() -> Result<Arc<dyn ProducesTickets>, TlsError> {
    Ok(rustls::crypto::ring::Ticketer::new()?)
}

/// Loads a rustls server config (TLS 1.2 and 1.3) from PEM files, with a fresh ticketer.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    load_with(files, new_ticketer()?)
}

/// Loads a rustls server config (TLS 1.2 and 1.3) from PEM files, issuing and accepting
/// session tickets with `ticketer` (kept across reloads, so sessions survive a certificate
/// renewal of the same server).
pub fn load_with(
    files: &TlsFiles,
    ticketer: Arc<dyn ProducesTickets>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let read_err = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| TlsError::Read { path, source }
    };
    let mut cert_reader = BufReader::new(File::open(&files.cert).map_err(read_err(&files.cert))?);
    let certs = rustls_pemfile::certs(&mut cert_reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err(&files.cert))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.display().to_string()));
    }
    let mut key_reader = BufReader::new(File::open(&files.key).map_err(read_err(&files.key))?);
    let key = rustls_pemfile::private_key(&mut key_reader)
        .map_err(read_err(&files.key))?
        .ok_or_else(|| TlsError::NoKey(files.key.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.ticketer = ticketer;
    config.send_tls13_tickets = TLS13_TICKETS;
    Ok(Arc::new(config))
}

/// The system's CA bundle on Debian.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A rustls client config for broker connections, trusting the certificates in `ca` (PEM), or
/// the system's roots.
pub fn client_config(ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let path = ca.unwrap_or(std::path::Path::new(SYSTEM_ROOTS));
    let read_err = |source| TlsError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(read_err)?);
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut reader) {
        roots.add(cert.map_err(read_err)?)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The current TLS config, shared by all shards, replaced on reload.
#[derive(Debug)]
pub struct TlsStore {
    files: TlsFiles,
    ticketer: Arc<dyn ProducesTickets>,
    current: Mutex<Arc<ServerConfig>>,
    generation: AtomicU64,
}

impl TlsStore {
    /// Loads the files once.
    pub fn new(files: TlsFiles) -> Result<TlsStore, TlsError> {
        let ticketer = new_ticketer()?;
        let config = load_with(&files, ticketer.clone())?;
        Ok(TlsStore {
            files,
            ticketer,
            current: Mutex::new(config),
            generation: AtomicU64::new(0),
        })
    }

    /// Reloads the files; on error the old certificates stay in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load_with(&self.files, self.ticketer.clone())?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = config;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A shard's view of the store: the config it uses and the generation it was taken at.
#[derive(Debug)]
pub(crate) struct ShardTls {
    store: Arc<TlsStore>,
    config: Arc<ServerConfig>,
    generation: u64,
}

impl ShardTls {
    pub(crate) fn new(store: Arc<TlsStore>) -> ShardTls {
        let generation = store.generation();
        let config = store.current();
        ShardTls {
            store,
            config,
            generation,
        }
    }

    /// The config to handshake with, refreshed if a reload happened.
    pub(crate) fn config(&mut self) -> Arc<ServerConfig> {
        let generation = self.store.generation();
        if generation != self.generation {
            self.config = self.store.current();
            self.generation = generation;
        }
        self.config.clone()
    }
}
