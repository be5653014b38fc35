//! PUBLISH: the packet on the hot path. Decoding reads the topic, packet identifier and
//! properties and stops; the payload is only located.

use bytes::BufMut;

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::properties::{Properties, Property, PropertyContext};
use crate::reader::Reader;
use crate::topic::validate_topic_name;
use crate::types::{QoS, Version};
use crate::writer;

/// A borrowed view of a PUBLISH packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    /// Re-delivery flag.
    pub dup: bool,
    /// Quality of service.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name as sent; empty when a topic alias stands for it (5.0).
    pub topic: &'a str,
    /// Packet identifier; present exactly when QoS > 0.
    pub packet_id: Option<u16>,
    /// Topic alias property, if any (5.0).
    pub topic_alias: Option<u16>,
    /// All PUBLISH properties (empty for 3.1.1).
    pub properties: Properties<'a>,
    /// The application message.
    pub payload: &'a [u8],
    /// Offset of the payload from the start of the frame (fixed header included).
    pub payload_offset: usize,
}

impl<'a> Publish<'a> {
    /// Decodes a PUBLISH body. `header_len` is the size of the fixed header before `body`.
    pub(crate) fn decode_body(
        first_byte: u8,
        header_len: usize,
        body: &'a [u8],
        version: Version,
    ) -> Result<Publish<'a>, Error> {
        let dup = first_byte & 0x08 != 0;
        let qos = QoS::from_bits((first_byte >> 1) & 0x03, Field::PublishQos)?;
        let retain = first_byte & 0x01 != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(Error::DupWithQos0);
        }
        let mut r = Reader::new(body, PacketType::Publish);
        let topic = r.utf8(Field::TopicName)?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(r.packet_id()?),
        };
        let mut topic_alias = None;
        let properties = match version {
            Version::V5 => Properties::read(&mut r, PropertyContext::Publish, |p| {
                if let Property::TopicAlias(a) = *p {
                    topic_alias = Some(a);
                }
                Ok(())
            })?,
            Version::V311 => Properties::EMPTY,
        };
        if topic.is_empty() {
            if topic_alias.is_none() {
                return Err(Error::EmptyTopic);
            }
        } else {
            validate_topic_name(topic).map_err(|error| Error::Topic {
                field: Field::TopicName,
                error,
            })?;
        }
        let payload_offset = header_len + r.position();
        let payload = r.rest();
        Ok(Publish {
            dup,
            qos,
            retain,
            topic,
            packet_id,
            topic_alias,
            properties,
            payload,
            payload_offset,
        })
    }

    /// The first byte: type, DUP, QoS and RETAIN.
    pub fn first_byte(&self) -> u8 {
        PacketType::Publish.first_byte()
            | u8::from(self.dup) << 3
            | self.qos.bits() << 1
            | u8::from(self.retain)
    }

    fn body_len(&self, version: Version) -> usize {
        let mut len = 2 + self.topic.len() + self.payload.len();
        if self.qos != QoS::AtMostOnce {
            len += 2;
        }
        if version.is_v5() {
            len += self.properties.wire_len();
        }
        len
    }

    /// Size of the encoded packet.
    pub fn encoded_len(&self, version: Version) -> usize {
        let body = self.body_len(version);
        writer::fixed_header_len(body) + body
    }

    /// Appends the encoded packet. The packet identifier is written when QoS > 0 (0 if the
    /// view has none, which decoders reject), properties only for 5.0; `topic_alias` is
    /// informational: the alias travels in `properties`.
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        writer::fixed_header(self.first_byte(), self.body_len(version), out);
        writer::binary(self.topic.as_bytes(), out);
        if self.qos != QoS::AtMostOnce {
            out.put_u16(self.packet_id.unwrap_or(0));
        }
        if version.is_v5() {
            self.properties.write(out);
        }
        out.put_slice(self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;
    use crate::properties::encode_properties;

    fn decode(bytes: &[u8], v: Version) -> Result<Publish<'_>, Error> {
        match Packet::decode(bytes, v)? {
            Packet::Publish(p) => Ok(p),
            other => panic!("not a PUBLISH: {other:?}"),
        }
    }

    #[test]
    fn v311_qos1() {
        let p = decode(b"\x32\x09\x00\x03a/b\x00\x07hi", Version::V311).unwrap();
        assert_eq!(p.topic, "a/b");
        assert_eq!(p.qos, QoS::AtLeastOnce);
        assert_eq!(p.packet_id, Some(7));
        assert_eq!(p.payload, b"hi");
        assert_eq!(p.payload_offset, 9);
    }

    #[test]
    fn v5_alias_and_empty_topic() {
        let mut props = Vec::new();
        encode_properties(&[Property::TopicAlias(4)], &mut props);
        let p = Publish {
            dup: false,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "",
            packet_id: Some(9),
            topic_alias: Some(4),
            properties: Properties::parse_raw(&props, PropertyContext::Publish).unwrap(),
            payload: b"x",
            payload_offset: 0,
        };
        let mut out = Vec::new();
        p.encode(Version::V5, &mut out);
        let d = decode(&out, Version::V5).unwrap();
        assert_eq!(d.topic_alias, Some(4));
        assert_eq!(d.topic, "");
        assert_eq!(d.payload_offset, out.len() - 1);
    }

    #[test]
    fn rules() {
        // QoS 3.
        assert_eq!(
            decode(b"\x36\x05\x00\x01a\x00\x01", Version::V5),
            Err(Error::InvalidQos {
                field: Field::PublishQos
            })
        );
        // DUP with QoS 0.
        assert_eq!(
            decode(b"\x38\x04\x00\x01a\x00", Version::V5),
            Err(Error::DupWithQos0)
        );
        // Packet id 0.
        assert_eq!(
            decode(b"\x32\x06\x00\x01a\x00\x00\x00", Version::V5),
            Err(Error::PacketIdZero)
        );
        // Empty topic without alias, in both versions.
        assert_eq!(
            decode(b"\x30\x03\x00\x00\x00", Version::V5),
            Err(Error::EmptyTopic)
        );
        assert_eq!(
            decode(b"\x30\x02\x00\x00", Version::V311),
            Err(Error::EmptyTopic)
        );
        // Wildcards in a topic name.
        assert!(matches!(
            decode(b"\x30\x04\x00\x01#\x00", Version::V5),
            Err(Error::Topic {
                field: Field::TopicName,
                ..
            })
        ));
        // Topic alias 0.
        assert_eq!(
            decode(b"\x30\x07\x00\x01a\x03\x23\x00\x00", Version::V5),
            Err(Error::TopicAliasZero)
        );
    }
}
