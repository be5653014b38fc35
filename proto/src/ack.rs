//! PUBACK, PUBREC, PUBREL and PUBCOMP: four packets with one shape.

use bytes::BufMut;

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::reason::ReasonCode;
use crate::types::Version;
use crate::writer;

/// Which of the four publish acknowledgments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckKind {
    /// PUBACK: QoS 1 acknowledgment.
    PubAck,
    /// PUBREC: QoS 2, part 1.
    PubRec,
    /// PUBREL: QoS 2, part 2.
    PubRel,
    /// PUBCOMP: QoS 2, part 3.
    PubComp,
}

impl AckKind {
    /// The packet type.
    pub fn packet_type(self) -> PacketType {
        match self {
            AckKind::PubAck => PacketType::PubAck,
            AckKind::PubRec => PacketType::PubRec,
            AckKind::PubRel => PacketType::PubRel,
            AckKind::PubComp => PacketType::PubComp,
        }
    }
}

/// A borrowed view of a PUBACK, PUBREC, PUBREL or PUBCOMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    /// Which acknowledgment.
    pub kind: AckKind,
    /// The packet identifier of the flow.
    pub packet_id: u16,
    /// Reason code (5.0); always success for 3.1.1.
    pub reason: ReasonCode,
    /// Properties (5.0).
    pub properties: Properties<'a>,
}

impl<'a> Ack<'a> {
    /// An acknowledgment with a reason code and no properties.
    pub fn new(kind: AckKind, packet_id: u16, reason: ReasonCode) -> Ack<'static> {
        Ack {
            kind,
            packet_id,
            reason,
            properties: Properties::EMPTY,
        }
    }

    pub(crate) fn decode_body(
        kind: AckKind,
        body: &'a [u8],
        version: Version,
    ) -> Result<Ack<'a>, Error> {
        let mut r = Reader::new(body, kind.packet_type());
        let packet_id = r.packet_id()?;
        let mut reason = ReasonCode::SUCCESS;
        let mut properties = Properties::EMPTY;
        if version.is_v5() && !r.is_empty() {
            reason = ReasonCode(r.u8(Field::ReasonCode)?);
            if !r.is_empty() {
                properties = Properties::read(&mut r, PropertyContext::PubAck, |_| Ok(()))?;
            }
        }
        r.finish()?;
        Ok(Ack {
            kind,
            packet_id,
            reason,
            properties,
        })
    }

    fn body_len(&self, version: Version) -> usize {
        match version {
            Version::V311 => 2,
            Version::V5 if !self.properties.is_empty() => 3 + self.properties.wire_len(),
            Version::V5 if self.reason != ReasonCode::SUCCESS => 3,
            Version::V5 => 2,
        }
    }

    /// Size of the encoded packet.
    pub fn encoded_len(&self, version: Version) -> usize {
        let body = self.body_len(version);
        writer::fixed_header_len(body) + body
    }

    /// Appends the encoded packet in its shortest form. 3.1.1 has no reason codes: the
    /// reason is not written.
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        let body = self.body_len(version);
        writer::fixed_header(self.kind.packet_type().first_byte(), body, out);
        out.put_u16(self.packet_id);
        if body > 2 {
            out.put_u8(self.reason.0);
        }
        if body > 3 {
            self.properties.write(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;

    #[test]
    fn deny_puback_uses_the_clients_packet_id() {
        let mut out = Vec::new();
        Ack::new(AckKind::PubAck, 0x1234, ReasonCode::NOT_AUTHORIZED).encode(Version::V5, &mut out);
        assert_eq!(out, b"\x40\x03\x12\x34\x87");
        let mut out = Vec::new();
        Ack::new(AckKind::PubRec, 7, ReasonCode::NOT_AUTHORIZED).encode(Version::V5, &mut out);
        assert_eq!(out, b"\x50\x03\x00\x07\x87");
    }

    #[test]
    fn short_forms_decode() {
        assert_eq!(
            Packet::decode(b"\x40\x02\x00\x01", Version::V5),
            Ok(Packet::Ack(Ack::new(
                AckKind::PubAck,
                1,
                ReasonCode::SUCCESS
            )))
        );
        assert_eq!(
            Packet::decode(b"\x62\x03\x00\x01\x92", Version::V5),
            Ok(Packet::Ack(Ack::new(AckKind::PubRel, 1, ReasonCode(0x92))))
        );
        assert_eq!(
            Packet::decode(b"\x70\x04\x00\x01\x00\x00", Version::V5),
            Ok(Packet::Ack(Ack::new(
                AckKind::PubComp,
                1,
                ReasonCode::SUCCESS
            )))
        );
        // 3.1.1 acks are exactly two bytes.
        assert_eq!(
            Packet::decode(b"\x40\x03\x00\x01\x00", Version::V311),
            Err(Error::TrailingBytes {
                packet_type: PacketType::PubAck,
                count: 1
            })
        );
        // PUBREL must carry flags 0b0010.
        assert!(matches!(
            Packet::decode(b"\x60\x02\x00\x01", Version::V5),
            Err(Error::InvalidFlags { .. })
        ));
    }
}
