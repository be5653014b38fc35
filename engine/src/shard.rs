//! Shards: one runtime thread per core ([`crate::runtime`]), each with its own listeners and
//! state.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flytrap_proto::{ConnAck, Framer, Packet};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::authz::{Authorizer, ConnectInfo};
use crate::config::EngineConfig;
use crate::io::{ClientStream, Stream};
use crate::limits::{Admission, Limits, Refusal};
use crate::metrics::{Metrics, ShardMetrics};
use crate::tls::{ShardTls, TlsError, TlsStore};
use crate::upstream::pool::BrokerPool;
use crate::upstream::{Dialer, SourcePool};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A TLS listener without certificates.
    #[error("listen.tls is set but listen.cert / listen.key are not")]
    TlsWithoutCertificate,
    /// Nothing to listen on.
    #[error("no listener configured (listen.tcp or listen.tls)")]
    NoListener,
    /// No broker to forward to.
    #[error("no broker address configured")]
    NoBroker,
    /// A shard's thread could not be started (or pinned).
    #[error("cannot start shard {shard}: {source}")]
    Shard {
        /// Shard index.
        shard: usize,
        /// The cause.
        source: std::io::Error,
    },
}

/// Per-shard context shared by the shard's connections (shard-local: `Rc`, no locks).
pub(crate) struct ShardCtx<A> {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) authz: A,
    pub(crate) metrics: Arc<ShardMetrics>,
    /// Broker connections: dialled ahead, or on demand.
    pub(crate) brokers: Rc<BrokerPool>,
    limits: Arc<Limits>,
    tls: RefCell<Option<ShardTls>>,
    /// Handshake slots (`max_handshakes`); `None` = unbounded.
    handshake_slots: Option<Arc<Semaphore>>,
    stopping: Arc<AtomicBool>,
}

/// Stops the engine or reloads its certificates, from any thread (signal handlers).
#[derive(Debug, Clone)]
pub struct Stopper {
    stopping: Arc<AtomicBool>,
    listener_fds: Arc<Vec<RawFd>>,
    tls: Option<Arc<TlsStore>>,
}

impl Stopper {
    /// Stops accepting; open connections get `drain_timeout` to finish.
    pub fn stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        for &fd in self.listener_fds.iter() {
            // SAFETY: `fd` is a listening socket owned by a running shard; shards only close
            // their listeners after `stopping` is set, and this runs once (the swap above).
            // shutdown() on it makes the pending accept fail so that the shard stops.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
    }

    /// Whether a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Reloads the TLS certificate and key; on error the old ones stay.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        match &self.tls {
            Some(store) => store.reload(),
            None => Ok(()),
        }
    }
}

/// A running engine.
#[derive(Debug)]
pub struct Engine {
    handles: Vec<crate::runtime::ShardThread<()>>,
    stopper: Stopper,
    metrics: Metrics,
    tcp: Option<SocketAddr>,
    tls: Option<SocketAddr>,
}

/// `n` listening sockets sharing one address through `SO_REUSEPORT`; port 0 is resolved by
/// the first so that all shards share the same port.
fn bind_group(
    addr: SocketAddr,
    n: usize,
    backlog: u32,
) -> Result<(SocketAddr, Vec<Socket>), EngineError> {
    let err = |source| EngineError::Bind { addr, source };
    let mut sockets = Vec::with_capacity(n);
    let mut local = addr;
    for _ in 0..n {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(err)?;
        s.set_reuse_address(true).map_err(err)?;
        s.set_reuse_port(true).map_err(err)?;
        // Accepted sockets inherit TCP_NODELAY from their listener (Linux): set once here,
        // not once per client.
        s.set_nodelay(true).map_err(err)?;
        s.bind(&local.into()).map_err(err)?;
        s.listen(i32::try_from(backlog).unwrap_or(i32::MAX))
            .map_err(err)?;
        local = s.local_addr().map_err(err)?.as_socket().unwrap_or(local);
        sockets.push(s);
    }
    Ok((local, sockets))
}

impl Engine {
    /// Binds the listeners and starts one shard per configured core. `make_authorizer` runs
    /// once on each shard's own thread, so the authoriser may hold shard-local state.
    pub fn start<A, F>(config: EngineConfig, make_authorizer: F) -> Result<Engine, EngineError>
    where
        A: Authorizer,
        F: Fn(usize) -> A + Send + Sync + 'static,
    {
        if config.listen_tcp.is_none() && config.listen_tls.is_none() {
            return Err(EngineError::NoListener);
        }
        if config.brokers.is_empty() {
            return Err(EngineError::NoBroker);
        }
        let shards = config.shards.max(1);
        let tls_store = match (&config.listen_tls, &config.tls) {
            (Some(_), Some(files)) => Some(Arc::new(TlsStore::new(files.clone())?)),
            (Some(_), None) => return Err(EngineError::TlsWithoutCertificate),
            _ => None,
        };
        let broker_tls = if config.broker_tls {
            Some(crate::tls::client_config(config.broker_ca.as_deref())?)
        } else {
            None
        };
        let backlog = config.listen_backlog;
        let mut tcp_group = config
            .listen_tcp
            .map(|a| bind_group(a, shards, backlog))
            .transpose()?;
        let mut tls_group = config
            .listen_tls
            .map(|a| bind_group(a, shards, backlog))
            .transpose()?;
        let tcp = tcp_group.as_ref().map(|g| g.0);
        let tls = tls_group.as_ref().map(|g| g.0);
        let listener_fds: Vec<RawFd> = tcp_group
            .iter()
            .chain(tls_group.iter())
            .flat_map(|g| g.1.iter().map(|s| s.as_raw_fd()))
            .collect();
        let stopper = Stopper {
            stopping: Arc::new(AtomicBool::new(false)),
            listener_fds: Arc::new(listener_fds),
            tls: tls_store.clone(),
        };
        let metrics = Metrics::new(shards);
        let limits = Limits::new(
            config.max_connections,
            config.max_connections_per_ip,
            config.connection_rate_per_ip,
        );
        let config = Arc::new(config);
        let make_authorizer = Arc::new(make_authorizer);
        let allowed = crate::runtime::allowed_cpus();
        let mut handles = Vec::with_capacity(shards);
        for shard in 0..shards {
            let tcp_socket = tcp_group.as_mut().map(|g| g.1.remove(0));
            let tls_socket = tls_group.as_mut().map(|g| g.1.remove(0));
            let cpu = config
                .cpus
                .get(shard)
                .copied()
                .unwrap_or(allowed[shard % allowed.len()]);
            let config = config.clone();
            let make_authorizer = make_authorizer.clone();
            let shard_metrics = metrics.shard(shard);
            let limits = limits.clone();
            let stopping = stopper.stopping.clone();
            let tls_store = tls_store.clone();
            let broker_tls = broker_tls.clone();
            let handle = crate::runtime::spawn(
                format!("flytrap-shard-{shard}"),
                config.pin.then_some(cpu),
                config.park,
                move || async move {
                    let dialer = Dialer {
                        sources: SourcePool::new(config.source_addresses.clone(), shard),
                        tls: broker_tls.map(tokio_rustls::TlsConnector::from),
                        timeout: config.broker_connect_timeout,
                    };
                    let handshake_slots = (config.max_handshakes > 0)
                        .then(|| Arc::new(Semaphore::new(config.max_handshakes)));
                    let ctx = Rc::new(ShardCtx {
                        authz: make_authorizer(shard),
                        brokers: BrokerPool::new(
                            &config.brokers,
                            dialer,
                            config.broker_pool,
                            config.broker_max_pending,
                            shard_metrics.clone(),
                        ),
                        config,
                        metrics: shard_metrics,
                        limits,
                        tls: RefCell::new(tls_store.map(ShardTls::new)),
                        handshake_slots,
                        stopping,
                    });
                    run_shard(ctx, tcp_socket, tls_socket).await;
                },
            )
            .map_err(|source| EngineError::Shard { shard, source })?;
            handles.push(handle);
        }
        Ok(Engine {
            handles,
            stopper,
            metrics,
            tcp,
            tls,
        })
    }

    /// The bound plain TCP address (port 0 resolved).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The bound TLS address (port 0 resolved).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// A handle to stop the engine or reload certificates.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until every shard has stopped (after [`Stopper::stop`]).
    pub fn wait(self) {
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// The shard's listener on a socket bound and listening.
fn into_listener(socket: Socket) -> std::io::Result<TcpListener> {
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

async fn run_shard<A: Authorizer>(ctx: Rc<ShardCtx<A>>, tcp: Option<Socket>, tls: Option<Socket>) {
    tokio::task::spawn_local(ctx.brokers.clone().maintain());
    let mut loops = Vec::new();
    for (socket, tls) in [(tcp, false), (tls, true)] {
        let Some(socket) = socket else { continue };
        match into_listener(socket) {
            Ok(listener) => loops.push(tokio::task::spawn_local(accept_loop(
                ctx.clone(),
                listener,
                tls,
            ))),
            Err(e) => tracing::error!(error = %e, "cannot register a listener"),
        }
    }
    for l in loops {
        let _ = l.await;
    }
    // No new client will take a pre-dialled connection: close them now.
    ctx.brokers.close();
    // Drain: give open connections time to finish.
    let deadline = Instant::now() + ctx.config.drain_timeout;
    while ctx.metrics.active.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn accept_loop<A: Authorizer>(ctx: Rc<ShardCtx<A>>, listener: TcpListener, tls: bool) {
    loop {
        // Admission control: a TLS connection is taken from the accept queue only when a
        // handshake slot is free; until then it waits in the kernel's backlog, and its
        // handshake timeout has not started.
        let slot = match (&ctx.handshake_slots, tls) {
            (Some(slots), true) => slots.clone().acquire_owned().await.ok(),
            _ => None,
        };
        // The peer's address comes with the accept: no getpeername.
        let (stream, tcp_peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                if ctx.stopping.load(Ordering::SeqCst) {
                    return;
                }
                // One failed accept (EMFILE, ECONNABORTED, ...) never stops the shard.
                ctx.metrics.inc(|m| &m.accept_errors);
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if ctx.stopping.load(Ordering::SeqCst) {
            return;
        }
        let accepted_at = Instant::now();
        // Its CONNECT (or ClientHello) follows within microseconds: worth the spin.
        crate::runtime::arrived();
        ctx.metrics.inc(|m| &m.accepted);
        tokio::task::spawn_local(serve_accepted(
            ctx.clone(),
            stream,
            tcp_peer,
            tls.then_some(slot),
            accepted_at,
        ));
    }
}

/// One accepted connection, for its whole life.
///
/// Both phases are boxed: this future lives as long as the connection, and a future is as
/// large as its largest await point, so keeping the set-up's state out of it keeps what an
/// idle client costs down to the relay's own state.
/// `tls`: `Some` for a TLS listener, with its handshake slot (if bounded).
async fn serve_accepted<A: Authorizer>(
    ctx: Rc<ShardCtx<A>>,
    stream: TcpStream,
    tcp_peer: SocketAddr,
    tls: Option<Option<OwnedSemaphorePermit>>,
    accepted_at: Instant,
) {
    let Some((client, info, admission)) =
        Box::pin(admit(&ctx, stream, tcp_peer, tls, accepted_at)).await
    else {
        return;
    };
    Box::pin(crate::conn::serve(ctx.clone(), client, info, accepted_at)).await;
    drop(admission);
    ctx.metrics.active.fetch_sub(1, Ordering::Relaxed);
}

/// Everything between accept and the CONNECT: the PROXY header, the limits, the handshake.
/// `None` when the connection ends here (refused, or the handshake failed). The handshake
/// slot in `tls` is given back when the handshake ends, whichever way.
async fn admit<A: Authorizer>(
    ctx: &ShardCtx<A>,
    mut stream: TcpStream,
    tcp_peer: SocketAddr,
    tls: Option<Option<OwnedSemaphorePermit>>,
    accepted_at: Instant,
) -> Option<(ClientStream, ConnectInfo, Admission)> {
    let (tls, _slot) = match tls {
        Some(slot) => (true, slot),
        None => (false, None),
    };
    // Behind a load balancer the client's address comes from the PROXY header, read before
    // any limit is checked and before the TLS handshake.
    let peer = if ctx.config.proxy_protocol {
        let header = tokio::time::timeout(
            ctx.config.connect_timeout,
            crate::proxy_protocol::read_header(&mut stream),
        )
        .await;
        match header {
            Ok(Ok(Some(addr))) => addr,
            Ok(Ok(None)) => tcp_peer,
            _ => {
                ctx.metrics.inc(|m| &m.malformed);
                return None;
            }
        }
    } else {
        tcp_peer
    };
    if let Err(reason) = ctx.authz.admit(peer.ip()) {
        ctx.metrics.inc(|m| &m.refused_banned);
        if !tls {
            refuse_plain(stream, reason, ctx.config.max_packet_size).await;
        }
        return None;
    }
    let admission = match ctx.limits.admit(peer.ip(), accepted_at) {
        Ok(a) => a,
        Err(refusal) => {
            ctx.metrics.inc(|m| match refusal {
                Refusal::Busy => &m.refused_busy,
                Refusal::Rate => &m.refused_rate,
            });
            if !tls {
                refuse_plain(stream, refusal.reason_code(), ctx.config.max_packet_size).await;
            }
            return None;
        }
    };
    ctx.metrics.active.fetch_add(1, Ordering::Relaxed);
    let info = ConnectInfo { peer, tls };
    let client = if tls {
        let config = ctx.tls.borrow_mut().as_mut().map(|t| t.config());
        match config {
            Some(config) => {
                let in_flight = InFlight::start(&ctx.metrics);
                let started = Instant::now();
                let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                let done = match tokio::time::timeout(ctx.config.connect_timeout, accept).await {
                    Ok(Ok(s)) => {
                        ctx.metrics.inc(|m| &m.tls_handshakes);
                        ctx.metrics.tls_handshake.observe(started.elapsed());
                        Some(Stream::Tls(Box::new(s)))
                    }
                    _ => {
                        ctx.metrics.inc(|m| &m.tls_failed);
                        None
                    }
                };
                drop(in_flight);
                done
            }
            None => None,
        }
    } else {
        Some(Stream::Tcp(stream))
    };
    match client {
        Some(client) => Some((client, info, admission)),
        None => {
            ctx.metrics.active.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

/// One TLS handshake counted in the shard's in-flight gauge (and its high-water mark) while
/// it lives.
struct InFlight<'m>(&'m ShardMetrics);

impl<'m> InFlight<'m> {
    fn start(metrics: &'m ShardMetrics) -> InFlight<'m> {
        let now = metrics.tls_in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        metrics.tls_in_flight_max.fetch_max(now, Ordering::Relaxed);
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.tls_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A plain TCP client over the limits: read its CONNECT briefly so the refusal can be a
/// CONNACK in its own protocol version, then close.
async fn refuse_plain(
    mut stream: TcpStream,
    reason: flytrap_proto::ReasonCode,
    max_packet_size: usize,
) {
    let framer = Framer::new(max_packet_size.min(64 * 1024));
    let mut buf = BytesMut::with_capacity(512);
    let read = async {
        loop {
            if let Ok(Some(frame)) = framer.poll_frame(&mut buf) {
                return Some(frame);
            }
            let len = buf.len();
            buf.resize(len + 512, 0);
            let n = stream.read(&mut buf[len..]).await.ok()?;
            buf.truncate(len + n);
            if n == 0 {
                return None;
            }
        }
    };
    let frame = tokio::time::timeout(Duration::from_secs(2), read).await;
    if let Ok(Some(frame)) = frame
        && let Ok(Packet::Connect(c)) = Packet::decode(&frame, flytrap_proto::Version::V5)
    {
        let mut out = BytesMut::new();
        ConnAck::new(reason).encode(c.version, &mut out);
        let _ = stream.write_all(&out).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accept path no longer sets TCP_NODELAY per client: it relies on the listener's
    /// being inherited, which this checks on the running kernel.
    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let (addr, mut sockets) = bind_group("127.0.0.1:0".parse().unwrap(), 1, 16).unwrap();
        let listener = std::net::TcpListener::from(sockets.remove(0));
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
