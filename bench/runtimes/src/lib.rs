//! Shared by the forwarders: the command line, and the MQTT walk of a read.

use flytrap_proto::{Framer, Packet, Version};

/// `fwd-<runtime> LISTEN_PORT UPSTREAM_PORT` (loopback only).
pub fn ports() -> (u16, u16) {
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a port number"))
        .collect();
    match args[..] {
        [listen, upstream] => (listen, upstream),
        _ => panic!("usage: fwd-<runtime> LISTEN_PORT UPSTREAM_PORT"),
    }
}

/// Whether to frame and decode what is forwarded (`FWD_MQTT=1`).
pub fn mqtt() -> bool {
    std::env::var("FWD_MQTT").is_ok_and(|v| v == "1")
}

/// What a forwarder does with the bytes it has: forward them all (`mqtt` false), or frame
/// and decode every whole MQTT 5 packet at the front and forward those, keeping a partial one
/// for the next read. Returns how many bytes at the front to forward, or `None` for a packet
/// that does not parse (the connection is then dropped).
pub fn walk(mqtt: bool, buf: &[u8]) -> Option<usize> {
    if !mqtt {
        return Some(buf.len());
    }
    let framer = Framer::new(1 << 20);
    let mut at = 0;
    while let Some(header) = framer.peek_header(&buf[at..]).ok()? {
        let len = header.packet_len();
        if buf.len() - at < len {
            break;
        }
        std::hint::black_box(Packet::decode(&buf[at..at + len], Version::V5).ok()?);
        at += len;
    }
    Some(at)
}
