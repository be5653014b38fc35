//! The broker side: which broker a client goes to, and opening the connection (ahead of
//! time, through [`pool`]).

pub mod pool;

use std::cell::Cell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::TcpStream;

use crate::io::{BrokerStream, Stream};

/// Places a client on a broker by a stable hash (FNV-1a) of its client identifier, so a
/// reconnecting client finds its session on the same broker.
pub fn pick(brokers: &[SocketAddr], client_id: &str) -> Option<SocketAddr> {
    pick_index(brokers.len(), client_id).map(|i| brokers[i])
}

/// [`pick`] as an index into a list of `n` brokers.
pub fn pick_index(n: usize, client_id: &str) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Some((h % n as u64) as usize)
}

/// Parses source addresses: single addresses (`127.0.0.2`, `::1`) or inclusive IPv4 ranges
/// (`127.0.0.2-127.0.0.20`). The error names the entry.
pub fn parse_source_addresses(entries: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for entry in entries {
        let bad = || {
            format!("invalid source address {entry:?} (an IP address or a range a.b.c.d-a.b.c.e)")
        };
        match entry.split_once('-') {
            None => out.push(entry.trim().parse::<IpAddr>().map_err(|_| bad())?),
            Some((from, to)) => {
                let from: std::net::Ipv4Addr = from.trim().parse().map_err(|_| bad())?;
                let to: std::net::Ipv4Addr = to.trim().parse().map_err(|_| bad())?;
                let (from, to) = (u32::from(from), u32::from(to));
                if from > to || to - from >= 1 << 16 {
                    return Err(bad());
                }
                out.extend((from..=to).map(|a| IpAddr::V4(a.into())));
            }
        }
    }
    Ok(out)
}

/// A shard's round-robin over the configured local source addresses.
///
/// One source address gives at most one connection per local port towards a broker address:
/// about 28,000 with the default port range. Binding each upstream socket to the next address
/// of the pool, with `IP_BIND_ADDRESS_NO_PORT` so that the kernel picks the port at connect
/// time from the whole 4-tuple, lifts the paper's 65,535-connection ceiling.
#[derive(Debug, Default)]
pub struct SourcePool {
    addresses: Vec<IpAddr>,
    next: Cell<usize>,
}

impl SourcePool {
    /// A pool starting at `offset` so that shards do not all begin on the same address.
    pub fn new(addresses: Vec<IpAddr>, offset: usize) -> SourcePool {
        SourcePool {
            next: Cell::new(offset % addresses.len().max(1)),
            addresses,
        }
    }

    fn take(&self, family_of: SocketAddr) -> Option<IpAddr> {
        let n = self.addresses.len();
        for _ in 0..n {
            let i = self.next.get();
            self.next.set((i + 1) % n);
            let a = self.addresses[i];
            if a.is_ipv4() == family_of.is_ipv4() {
                return Some(a);
            }
        }
        None
    }
}

/// `IP_BIND_ADDRESS_NO_PORT` from linux/in.h: defer the local port choice to connect().
const IP_BIND_ADDRESS_NO_PORT: libc::c_int = 24;

/// A non-blocking TCP socket with `TCP_NODELAY` whose connect to `to` has been started by a
/// plain connect(2), from `source` when given; and whether that connect is still in progress.
///
/// On loopback and fast links the handshake is usually done when connect(2) returns, so the
/// CONNECT can be written without a turn of the shard's loop.
fn start_connect(source: Option<IpAddr>, to: SocketAddr) -> io::Result<(TcpStream, bool)> {
    let socket = Socket::new(
        Domain::for_address(to),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if let Some(source) = source {
        let one: libc::c_int = 1;
        // SAFETY: `socket` is an open socket we own; the option value is a live c_int whose
        // size is passed alongside, as setsockopt(2) requires.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    socket.set_nodelay(true)?;
    let in_progress = match socket.connect(&SockAddr::from(to)) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) => return Err(e),
    };
    Ok((
        TcpStream::from_std(std::net::TcpStream::from(socket))?,
        in_progress,
    ))
}

/// Opens a TCP connection with `TCP_NODELAY` (MQTT packets are small and latency-bound),
/// from the next source address of `pool` when it has one (for clients such as `loadgen`).
///
/// With a source address the connect completes in the background: the first write waits for
/// it, and a refused connection shows up as that write's error. The caller bounds that write
/// with the same timeout.
pub async fn connect(
    addr: SocketAddr,
    pool: &SourcePool,
    timeout: Duration,
) -> io::Result<TcpStream> {
    if let Some(source) = pool.take(addr) {
        return Ok(start_connect(Some(source), addr)?.0);
    }
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// How a shard opens broker connections: from its source addresses, with TLS when the
/// brokers speak it, each step within one timeout.
pub struct Dialer {
    /// The shard's source addresses.
    pub sources: SourcePool,
    /// TLS to the brokers.
    pub tls: Option<tokio_rustls::TlsConnector>,
    /// Bound on the TCP connect, and again on the TLS handshake.
    pub timeout: Duration,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("sources", &self.sources)
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Dialer {
    /// A connection to `addr` ready for the CONNECT: TCP established (and TLS handshaken), no
    /// MQTT byte sent.
    pub async fn dial(&self, addr: SocketAddr) -> io::Result<BrokerStream> {
        let timed_out = || io::Error::from(io::ErrorKind::TimedOut);
        let (tcp, in_progress) = start_connect(self.sources.take(addr), addr)?;
        // A connect still in progress: writable once established (or failed); the socket's
        // error says which.
        if in_progress {
            tokio::time::timeout(self.timeout, tcp.writable())
                .await
                .map_err(|_| timed_out())??;
            if let Some(e) = tcp.take_error()? {
                return Err(e);
            }
        }
        let Some(connector) = &self.tls else {
            return Ok(Stream::Tcp(tcp));
        };
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let handshake = connector.connect(name, tcp);
        match tokio::time::timeout(self.timeout, handshake).await {
            Ok(Ok(s)) => Ok(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => {
                tracing::warn!(%addr, error = %e, "broker TLS handshake failed");
                Err(e)
            }
            Err(_) => Err(timed_out()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_spread() {
        let brokers: Vec<SocketAddr> = (0..3)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 1884 + i)))
            .collect();
        assert_eq!(pick(&brokers, "a"), pick(&brokers, "a"));
        let mut hits = [0; 3];
        for i in 0..3000 {
            let b = pick(&brokers, &format!("client-{i}")).unwrap_or(brokers[0]);
            hits[usize::from(b.port() - 1884)] += 1;
        }
        assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
        assert_eq!(pick(&[], "a"), None);
    }

    #[test]
    fn source_address_ranges() {
        let parsed = parse_source_addresses(&["127.0.0.2-127.0.0.4".into(), "::1".into()]).unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[2], IpAddr::from([127, 0, 0, 4]));
        assert!(parse_source_addresses(&["127.0.0.9-127.0.0.2".into()]).is_err());
        assert!(
            parse_source_addresses(&["nope".into()])
                .unwrap_err()
                .contains("\"nope\"")
        );
    }
}
