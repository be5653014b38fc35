//! CONNECT: the first packet of every connection, and the one that fixes its protocol version.

use bytes::BufMut;

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::topic::validate_topic_name;
use crate::types::{QoS, Version};
use crate::writer;

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
pub(crate) const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// A borrowed view of a CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Protocol version from the protocol level byte.
    pub version: Version,
    /// Clean start (5.0) / clean session (3.1.1).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// CONNECT properties (empty for 3.1.1).
    pub properties: Properties<'a>,
    /// Client identifier; may be empty.
    pub client_id: &'a str,
    /// The will message, if any.
    pub will: Option<Will<'a>>,
    /// User name, if present.
    pub username: Option<&'a str>,
    /// Password, if present (binary data).
    pub password: Option<&'a [u8]>,
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Will<'a> {
    /// QoS of the will message.
    pub qos: QoS,
    /// Whether the will message is retained.
    pub retain: bool,
    /// Will properties (empty for 3.1.1).
    pub properties: Properties<'a>,
    /// The topic the will is published to.
    pub topic: &'a str,
    /// The will payload.
    pub payload: &'a [u8],
}

impl<'a> Connect<'a> {
    /// Decodes a CONNECT body (everything after the fixed header).
    pub(crate) fn decode_body(body: &'a [u8]) -> Result<Connect<'a>, Error> {
        let mut r = Reader::new(body, PacketType::Connect);
        if r.binary(Field::ProtocolName)? != b"MQTT" {
            return Err(Error::InvalidProtocolName);
        }
        let version = match r.u8(Field::ProtocolLevel)? {
            4 => Version::V311,
            5 => Version::V5,
            other => return Err(Error::UnsupportedProtocolLevel(other)),
        };
        let flags = r.u8(Field::ConnectFlags)?;
        if flags & FLAG_RESERVED != 0 {
            return Err(Error::ConnectReservedFlag);
        }
        let has_will = flags & FLAG_WILL != 0;
        let will_qos = QoS::from_bits((flags >> 3) & 0x03, Field::WillQos)?;
        let will_retain = flags & FLAG_WILL_RETAIN != 0;
        if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(Error::WillFlagsWithoutWill);
        }
        let has_username = flags & FLAG_USERNAME != 0;
        let has_password = flags & FLAG_PASSWORD != 0;
        if version == Version::V311 && has_password && !has_username {
            return Err(Error::PasswordWithoutUsername);
        }
        let keep_alive = r.u16(Field::KeepAlive)?;
        let properties = match version {
            Version::V5 => Properties::read(&mut r, PropertyContext::Connect, |_| Ok(()))?,
            Version::V311 => Properties::EMPTY,
        };
        let client_id = r.utf8(Field::ClientId)?;
        let will = if has_will {
            let properties = match version {
                Version::V5 => Properties::read(&mut r, PropertyContext::Will, |_| Ok(()))?,
                Version::V311 => Properties::EMPTY,
            };
            let topic = r.utf8(Field::WillTopic)?;
            validate_topic_name(topic).map_err(|error| Error::Topic {
                field: Field::WillTopic,
                error,
            })?;
            let payload = r.binary(Field::WillPayload)?;
            Some(Will {
                qos: will_qos,
                retain: will_retain,
                properties,
                topic,
                payload,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.utf8(Field::Username)?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary(Field::Password)?)
        } else {
            None
        };
        r.finish()?;
        Ok(Connect {
            version,
            clean_start: flags & FLAG_CLEAN_START != 0,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= FLAG_CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= FLAG_WILL | will.qos.bits() << 3;
            if will.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= FLAG_USERNAME;
        }
        if self.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        flags
    }

    fn body_len(&self) -> usize {
        let v5 = self.version.is_v5();
        let mut len = 6 + 1 + 1 + 2 + 2 + self.client_id.len();
        if v5 {
            len += self.properties.wire_len();
        }
        if let Some(will) = &self.will {
            if v5 {
                len += will.properties.wire_len();
            }
            len += 2 + will.topic.len() + 2 + will.payload.len();
        }
        len += self.username.map_or(0, |u| 2 + u.len());
        len += self.password.map_or(0, |p| 2 + p.len());
        len
    }

    /// Size of the encoded packet.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        writer::fixed_header_len(body) + body
    }

    /// Appends the encoded packet. Properties are written only for MQTT 5.0.
    pub fn encode(&self, out: &mut impl BufMut) {
        let v5 = self.version.is_v5();
        writer::fixed_header(PacketType::Connect.first_byte(), self.body_len(), out);
        writer::binary(b"MQTT", out);
        out.put_u8(self.version.level());
        out.put_u8(self.flags());
        out.put_u16(self.keep_alive);
        if v5 {
            self.properties.write(out);
        }
        writer::binary(self.client_id.as_bytes(), out);
        if let Some(will) = &self.will {
            if v5 {
                will.properties.write(out);
            }
            writer::binary(will.topic.as_bytes(), out);
            writer::binary(will.payload, out);
        }
        if let Some(u) = self.username {
            writer::binary(u.as_bytes(), out);
        }
        if let Some(p) = self.password {
            writer::binary(p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::{Property, encode_properties};
    use crate::{Packet, Version};

    fn decode(bytes: &[u8]) -> Result<Connect<'_>, Error> {
        match Packet::decode(bytes, Version::V5)? {
            Packet::Connect(c) => Ok(c),
            other => panic!("not a CONNECT: {other:?}"),
        }
    }

    #[test]
    fn v311_minimal() {
        // From MQTT 3.1.1 §3.1: client id "a", clean session, keep alive 60.
        let bytes = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a";
        let c = decode(bytes).unwrap();
        assert_eq!(c.version, Version::V311);
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 60);
        assert_eq!(c.client_id, "a");
        assert_eq!((c.will, c.username, c.password), (None, None, None));
    }

    #[test]
    fn v5_full_round_trip() {
        let mut props = Vec::new();
        encode_properties(
            &[
                Property::SessionExpiryInterval(10),
                Property::UserProperty("flytrap-address", "0xabc"),
            ],
            &mut props,
        );
        let mut will_props = Vec::new();
        encode_properties(&[Property::WillDelayInterval(5)], &mut will_props);
        let c = Connect {
            version: Version::V5,
            clean_start: true,
            keep_alive: 30,
            properties: Properties::parse_raw(&props, PropertyContext::Connect).unwrap(),
            client_id: "sensor-1",
            will: Some(Will {
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties::parse_raw(&will_props, PropertyContext::Will).unwrap(),
                topic: "will/t",
                payload: b"bye",
            }),
            username: Some("u"),
            password: Some(b"p\x00w"),
        };
        let mut out = Vec::new();
        c.encode(&mut out);
        assert_eq!(out.len(), c.encoded_len());
        assert_eq!(decode(&out), Ok(c));
        assert_eq!(c.properties.user_property("flytrap-address"), Some("0xabc"));
    }

    #[test]
    fn flag_rules() {
        let base = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a".to_vec();
        let with_flags = |f: u8| {
            let mut b = base.clone();
            b[9] = f;
            b
        };
        assert_eq!(decode(&with_flags(0x03)), Err(Error::ConnectReservedFlag));
        assert_eq!(decode(&with_flags(0x22)), Err(Error::WillFlagsWithoutWill));
        assert_eq!(decode(&with_flags(0x0a)), Err(Error::WillFlagsWithoutWill));
        assert_eq!(
            decode(&with_flags(0x1e)),
            Err(Error::InvalidQos {
                field: Field::WillQos
            })
        );
        assert_eq!(
            decode(&with_flags(0x42)),
            Err(Error::PasswordWithoutUsername)
        );
    }

    #[test]
    fn protocol_name_and_level() {
        let mut b = b"\x10\x0d\x00\x04MQTT\x03\x02\x00\x3c\x00\x01a".to_vec();
        assert_eq!(decode(&b), Err(Error::UnsupportedProtocolLevel(3)));
        b[4] = b'X';
        assert_eq!(decode(&b), Err(Error::InvalidProtocolName));
    }

    #[test]
    fn will_topic_must_be_a_name() {
        let c = Connect {
            version: Version::V311,
            clean_start: true,
            keep_alive: 0,
            properties: Properties::EMPTY,
            client_id: "",
            will: Some(Will {
                qos: QoS::AtMostOnce,
                retain: false,
                properties: Properties::EMPTY,
                topic: "a/#",
                payload: b"",
            }),
            username: None,
            password: None,
        };
        let mut out = Vec::new();
        c.encode(&mut out);
        assert!(matches!(
            decode(&out),
            Err(Error::Topic {
                field: Field::WillTopic,
                ..
            })
        ));
    }

    #[test]
    fn trailing_bytes() {
        let b = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x01ax";
        assert_eq!(
            decode(b),
            Err(Error::TrailingBytes {
                packet_type: PacketType::Connect,
                count: 1
            })
        );
    }
}
