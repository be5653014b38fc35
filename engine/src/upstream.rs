//! The broker side: which broker a client goes to, and opening the connection.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use glommio::net::TcpStream;

/// Places a client on a broker by a stable hash (FNV-1a) of its client identifier, so a
/// reconnecting client finds its session on the same broker.
pub fn pick(brokers: &[SocketAddr], client_id: &str) -> Option<SocketAddr> {
    if brokers.is_empty() {
        return None;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Some(brokers[(h % brokers.len() as u64) as usize])
}

/// Opens a broker connection with `TCP_NODELAY` (MQTT packets are small and latency-bound).
pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    Ok(stream)
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
}
