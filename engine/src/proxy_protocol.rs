//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer puts before the
//! client's bytes to say who the client is. With `listen.proxy_protocol` on, the address it
//! gives is the one used for limits, bans and geo.
//!
//! The parser is sans-IO. The reader takes exactly the header's bytes off the socket, so the
//! bytes after it (a TLS ClientHello, an MQTT CONNECT) are left untouched.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header (spec §2.1).
const V1_MAX: usize = 107;

/// Why a PROXY header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Neither a v1 nor a v2 signature.
    #[error("no PROXY protocol header")]
    Missing,
    /// A v1 line that does not parse.
    #[error("malformed PROXY v1 header")]
    MalformedV1,
    /// A v2 header with a bad version, command or length.
    #[error("malformed PROXY v2 header")]
    MalformedV2,
}

/// Parses a complete v1 line (with its CRLF). `None` source: `UNKNOWN`.
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let text = std::str::from_utf8(line).map_err(|_| ProxyHeaderError::MalformedV1)?;
    let text = text
        .strip_suffix("\r\n")
        .ok_or(ProxyHeaderError::MalformedV1)?;
    let mut parts = text.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(ProxyHeaderError::MalformedV1);
    }
    let family = parts.next().ok_or(ProxyHeaderError::MalformedV1)?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields[..] else {
        return Err(ProxyHeaderError::MalformedV1);
    };
    let ip: IpAddr = match family {
        "TCP4" => src.parse::<Ipv4Addr>().map(IpAddr::V4),
        "TCP6" => src.parse::<Ipv6Addr>().map(IpAddr::V6),
        _ => return Err(ProxyHeaderError::MalformedV1),
    }
    .map_err(|_| ProxyHeaderError::MalformedV1)?;
    let port: u16 = sport.parse().map_err(|_| ProxyHeaderError::MalformedV1)?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Parses a v2 header body: `head` is the 16-byte fixed part, `body` the `len` bytes after it.
/// `None` source: a LOCAL command or an unsupported family.
pub fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    if head[..12] != V2_SIGNATURE || head[12] >> 4 != 2 {
        return Err(ProxyHeaderError::MalformedV2);
    }
    match head[12] & 0x0f {
        0 => return Ok(None), // LOCAL: the balancer's own health check
        1 => {}
        _ => return Err(ProxyHeaderError::MalformedV2),
    }
    let addr = match head[13] {
        0x11 | 0x12 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            SocketAddr::new(ip.into(), u16::from_be_bytes([body[8], body[9]]))
        }
        0x21 | 0x22 if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            SocketAddr::new(
                Ipv6Addr::from(octets).into(),
                u16::from_be_bytes([body[32], body[33]]),
            )
        }
        0x11 | 0x12 | 0x21 | 0x22 => return Err(ProxyHeaderError::MalformedV2),
        _ => return Ok(None),
    };
    Ok(Some(addr))
}

/// Reads one PROXY header off `stream`, consuming exactly its bytes. Returns the client
/// address it names (`None` for LOCAL/UNKNOWN: keep the TCP peer).
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<SocketAddr>> {
    let invalid = |e: ProxyHeaderError| io::Error::new(io::ErrorKind::InvalidData, e);
    let mut head = [0u8; 16];
    stream.read_exact(&mut head[..6]).await?;
    if &head[..6] == b"PROXY " {
        let mut line = head[..6].to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(invalid(ProxyHeaderError::MalformedV1));
            }
            let mut b = [0u8; 1];
            stream.read_exact(&mut b).await?;
            line.push(b[0]);
        }
        return parse_v1(&line).map_err(invalid);
    }
    if head[..6] != V2_SIGNATURE[..6] {
        return Err(invalid(ProxyHeaderError::Missing));
    }
    stream.read_exact(&mut head[6..]).await?;
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    parse_v2(&head, &body).map_err(invalid)
}

/// Encodes a v2 PROXY header for a TCP client (for tests and the load generator).
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21);
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        _ => {
            let v6 = |a: SocketAddr| match a.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(source).octets());
            out.extend_from_slice(&v6(destination).octets());
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_lines() {
        assert_eq!(
            parse_v1(b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 1883\r\n"),
            Ok(Some("192.0.2.1:56324".parse().unwrap()))
        );
        assert_eq!(
            parse_v1(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 1883\r\n"),
            Ok(Some("[2001:db8::1]:4000".parse().unwrap()))
        );
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n"), Ok(None));
        for bad in [
            &b"PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
            b"PROXY UDP4 a b 1 2\r\n",
        ] {
            assert_eq!(parse_v1(bad), Err(ProxyHeaderError::MalformedV1));
        }
    }

    #[test]
    fn v2_round_trip() {
        for (s, d) in [
            ("192.0.2.7:1234", "127.0.0.1:1883"),
            ("[2001:db8::7]:1234", "[::1]:1883"),
        ] {
            let bytes = encode_v2(s.parse().unwrap(), d.parse().unwrap());
            let head: [u8; 16] = bytes[..16].try_into().unwrap();
            assert_eq!(parse_v2(&head, &bytes[16..]), Ok(Some(s.parse().unwrap())));
        }
    }

    #[test]
    fn v2_local_and_bad() {
        let mut bytes = encode_v2(
            "192.0.2.7:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        bytes[12] = 0x20;
        let head: [u8; 16] = bytes[..16].try_into().unwrap();
        assert_eq!(parse_v2(&head, &bytes[16..]), Ok(None));
        bytes[12] = 0x31;
        let head: [u8; 16] = bytes[..16].try_into().unwrap();
        assert_eq!(
            parse_v2(&head, &bytes[16..]),
            Err(ProxyHeaderError::MalformedV2)
        );
        let head: [u8; 16] = encode_v2(
            "192.0.2.7:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        )[..16]
            .try_into()
            .unwrap();
        assert_eq!(parse_v2(&head, &[0; 4]), Err(ProxyHeaderError::MalformedV2));
    }

    #[test]
    fn reader_takes_exactly_the_header() {
        let mut input = encode_v2(
            "192.0.2.9:77".parse().unwrap(),
            "127.0.0.1:1883".parse().unwrap(),
        );
        input.extend_from_slice(b"\x10rest");
        let mut cursor = std::io::Cursor::new(input);
        let addr = futures_lite::future::block_on(read_header(&mut cursor)).unwrap();
        assert_eq!(addr, Some("192.0.2.9:77".parse().unwrap()));
        let mut rest = Vec::new();
        futures_lite::future::block_on(cursor.read_to_end(&mut rest)).unwrap();
        assert_eq!(rest, b"\x10rest");

        let mut cursor =
            std::io::Cursor::new(b"PROXY TCP4 10.1.2.3 10.0.0.1 5 6\r\n\x16\x03".to_vec());
        let addr = futures_lite::future::block_on(read_header(&mut cursor)).unwrap();
        assert_eq!(addr, Some("10.1.2.3:5".parse().unwrap()));
        let mut rest = Vec::new();
        futures_lite::future::block_on(cursor.read_to_end(&mut rest)).unwrap();
        assert_eq!(rest, b"\x16\x03");

        let mut cursor = std::io::Cursor::new(b"\x10\x0d\x00\x04MQTT\x04".to_vec());
        assert!(futures_lite::future::block_on(read_header(&mut cursor)).is_err());
    }
}
