//! Any packet: decode a frame into the view of its type, or encode a view.

use bytes::BufMut;

use crate::ack::{Ack, AckKind};
use crate::auth::Auth;
use crate::connack::ConnAck;
use crate::connect::Connect;
use crate::disconnect::Disconnect;
use crate::error::Error;
use crate::framer::FixedHeader;
use crate::packet_type::PacketType;
use crate::publish::Publish;
use crate::reader::Reader;
use crate::subscribe::{SubAck, Subscribe};
use crate::types::Version;
use crate::unsubscribe::{UnsubAck, Unsubscribe};
use crate::writer;

/// A decoded packet, borrowing its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNECT.
    Connect(Connect<'a>),
    /// CONNACK.
    ConnAck(ConnAck<'a>),
    /// PUBLISH.
    Publish(Publish<'a>),
    /// PUBACK, PUBREC, PUBREL or PUBCOMP.
    Ack(Ack<'a>),
    /// SUBSCRIBE.
    Subscribe(Subscribe<'a>),
    /// SUBACK.
    SubAck(SubAck<'a>),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe<'a>),
    /// UNSUBACK.
    UnsubAck(UnsubAck<'a>),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect<'a>),
    /// AUTH (5.0).
    Auth(Auth<'a>),
}

impl<'a> Packet<'a> {
    /// Decodes one whole packet, fixed header included (a frame from
    /// [`Framer`](crate::Framer)). `version` is the connection's protocol version; a CONNECT
    /// brings its own and ignores it.
    pub fn decode(frame: &'a [u8], version: Version) -> Result<Packet<'a>, Error> {
        let header = FixedHeader::parse(frame)?.ok_or(Error::FrameLength)?;
        if frame.len() != header.packet_len() {
            return Err(Error::FrameLength);
        }
        let body = &frame[header.header_len..];
        let ack = |kind| Ack::decode_body(kind, body, version).map(Packet::Ack);
        match header.packet_type {
            PacketType::Connect => Connect::decode_body(body).map(Packet::Connect),
            PacketType::ConnAck => ConnAck::decode_body(body, version).map(Packet::ConnAck),
            PacketType::Publish => {
                Publish::decode_body(header.first_byte, header.header_len, body, version)
                    .map(Packet::Publish)
            }
            PacketType::PubAck => ack(AckKind::PubAck),
            PacketType::PubRec => ack(AckKind::PubRec),
            PacketType::PubRel => ack(AckKind::PubRel),
            PacketType::PubComp => ack(AckKind::PubComp),
            PacketType::Subscribe => Subscribe::decode_body(body, version).map(Packet::Subscribe),
            PacketType::SubAck => SubAck::decode_body(body, version).map(Packet::SubAck),
            PacketType::Unsubscribe => {
                Unsubscribe::decode_body(body, version).map(Packet::Unsubscribe)
            }
            PacketType::UnsubAck => UnsubAck::decode_body(body, version).map(Packet::UnsubAck),
            PacketType::PingReq => empty(body, PacketType::PingReq).map(|()| Packet::PingReq),
            PacketType::PingResp => empty(body, PacketType::PingResp).map(|()| Packet::PingResp),
            PacketType::Disconnect => {
                Disconnect::decode_body(body, version).map(Packet::Disconnect)
            }
            PacketType::Auth => match version {
                Version::V5 => Auth::decode_body(body).map(Packet::Auth),
                Version::V311 => Err(Error::ReservedPacketType(15)),
            },
        }
    }

    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::Ack(a) => a.kind.packet_type(),
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// Appends the encoded packet. A CONNECT is written in its own version.
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        match self {
            Packet::Connect(p) => p.encode(out),
            Packet::ConnAck(p) => p.encode(version, out),
            Packet::Publish(p) => p.encode(version, out),
            Packet::Ack(p) => p.encode(version, out),
            Packet::Subscribe(p) => p.encode(version, out),
            Packet::SubAck(p) => p.encode(version, out),
            Packet::Unsubscribe(p) => p.encode(version, out),
            Packet::UnsubAck(p) => p.encode(version, out),
            Packet::PingReq => writer::fixed_header(PacketType::PingReq.first_byte(), 0, out),
            Packet::PingResp => writer::fixed_header(PacketType::PingResp.first_byte(), 0, out),
            Packet::Disconnect(p) => p.encode(version, out),
            Packet::Auth(p) => p.encode(out),
        }
    }
}

fn empty(body: &[u8], packet_type: PacketType) -> Result<(), Error> {
    Reader::new(body, packet_type).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_must_be_exactly_one_packet() {
        assert_eq!(
            Packet::decode(b"\xc0\x00\x00", Version::V5),
            Err(Error::FrameLength)
        );
        assert_eq!(
            Packet::decode(b"\x30\x05\x00", Version::V5),
            Err(Error::FrameLength)
        );
        assert_eq!(Packet::decode(b"", Version::V5), Err(Error::FrameLength));
        assert_eq!(
            Packet::decode(b"\xc0\x01\x00", Version::V5),
            Err(Error::TrailingBytes {
                packet_type: PacketType::PingReq,
                count: 1
            })
        );
        assert_eq!(
            Packet::decode(b"\xd0\x00", Version::V311),
            Ok(Packet::PingResp)
        );
    }
}
