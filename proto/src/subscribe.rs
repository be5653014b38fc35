//! SUBSCRIBE and SUBACK.

use bytes::BufMut;

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::properties::{Properties, Property, PropertyContext};
use crate::reader::Reader;
use crate::topic::{split_shared, validate_topic_filter};
use crate::types::{QoS, Version};
use crate::writer;

/// What the server does with retained messages when a subscription is made (5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetainHandling {
    /// Send retained messages at subscribe time (0).
    SendAtSubscribe,
    /// Send them only if the subscription is new (1).
    SendIfNew,
    /// Never send them (2).
    DoNotSend,
}

/// The options byte of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// Maximum QoS the client wants.
    pub qos: QoS,
    /// Do not send back the client's own publications (5.0).
    pub no_local: bool,
    /// Keep the RETAIN flag as published (5.0).
    pub retain_as_published: bool,
    /// Retained-message handling (5.0).
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options for a plain subscription at `qos`.
    pub fn qos(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    fn decode(byte: u8, version: Version) -> Result<SubscriptionOptions, Error> {
        let reserved = match version {
            Version::V5 => 0xc0,
            Version::V311 => 0xfc,
        };
        if byte & reserved != 0 {
            return Err(Error::InvalidSubscriptionOptions(byte));
        }
        let retain_handling = match (byte >> 4) & 0x03 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(Error::InvalidSubscriptionOptions(byte)),
        };
        Ok(SubscriptionOptions {
            qos: QoS::from_bits(byte & 0x03, Field::SubscriptionOptions)?,
            no_local: byte & 0x04 != 0,
            retain_as_published: byte & 0x08 != 0,
            retain_handling,
        })
    }

    /// The options byte; 3.1.1 keeps only the QoS bits.
    pub fn to_byte(self, version: Version) -> u8 {
        match version {
            Version::V311 => self.qos.bits(),
            Version::V5 => {
                self.qos.bits()
                    | u8::from(self.no_local) << 2
                    | u8::from(self.retain_as_published) << 3
                    | (self.retain_handling as u8) << 4
            }
        }
    }
}

/// One topic filter of a SUBSCRIBE with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription<'a> {
    /// The filter as sent, `$share/<group>/` prefix included.
    pub filter: &'a str,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// A borrowed view of a SUBSCRIBE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// Packet identifier (never 0).
    pub packet_id: u16,
    /// SUBSCRIBE properties (empty for 3.1.1).
    pub properties: Properties<'a>,
    /// The subscription identifier property, if any (5.0).
    pub subscription_identifier: Option<u32>,
    version: Version,
    entries: &'a [u8],
    count: usize,
}

impl<'a> Subscribe<'a> {
    pub(crate) fn decode_body(body: &'a [u8], version: Version) -> Result<Subscribe<'a>, Error> {
        let mut r = Reader::new(body, PacketType::Subscribe);
        let packet_id = r.packet_id()?;
        let mut subscription_identifier = None;
        let properties = match version {
            Version::V5 => Properties::read(&mut r, PropertyContext::Subscribe, |p| {
                if let Property::SubscriptionIdentifier(id) = *p {
                    subscription_identifier = Some(id);
                }
                Ok(())
            })?,
            Version::V311 => Properties::EMPTY,
        };
        let entries = r.rest();
        let mut count = 0;
        let mut entry_reader = Reader::new(entries, PacketType::Subscribe);
        while !entry_reader.is_empty() {
            read_subscription(&mut entry_reader, version)?;
            count += 1;
        }
        if count == 0 {
            return Err(Error::NoTopicFilters(PacketType::Subscribe));
        }
        Ok(Subscribe {
            packet_id,
            properties,
            subscription_identifier,
            version,
            entries,
            count,
        })
    }

    /// Number of topic filters (at least one).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: a SUBSCRIBE without filters does not decode.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The subscriptions in the client's order.
    pub fn subscriptions(&self) -> impl Iterator<Item = Subscription<'a>> + 'a {
        let version = self.version;
        let mut r = Reader::new(self.entries, PacketType::Subscribe);
        core::iter::from_fn(move || read_subscription(&mut r, version).ok())
    }

    /// Appends the encoded packet, as decoded.
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        let mut body = 2 + self.entries.len();
        if version.is_v5() {
            body += self.properties.wire_len();
        }
        writer::fixed_header(PacketType::Subscribe.first_byte(), body, out);
        out.put_u16(self.packet_id);
        if version.is_v5() {
            self.properties.write(out);
        }
        if version == self.version {
            out.put_slice(self.entries);
        } else {
            for s in self.subscriptions() {
                write_subscription(&s, version, out);
            }
        }
    }

    /// Encodes a SUBSCRIBE from parts, for example the allowed subset of a client's filters.
    pub fn encode_from(
        version: Version,
        packet_id: u16,
        properties: Properties<'_>,
        subscriptions: &[Subscription<'_>],
        out: &mut impl BufMut,
    ) {
        let mut body = 2 + subscriptions
            .iter()
            .map(|s| 3 + s.filter.len())
            .sum::<usize>();
        if version.is_v5() {
            body += properties.wire_len();
        }
        writer::fixed_header(PacketType::Subscribe.first_byte(), body, out);
        out.put_u16(packet_id);
        if version.is_v5() {
            properties.write(out);
        }
        for s in subscriptions {
            write_subscription(s, version, out);
        }
    }
}

fn read_subscription<'a>(r: &mut Reader<'a>, version: Version) -> Result<Subscription<'a>, Error> {
    let filter = r.utf8(Field::TopicFilter)?;
    validate_topic_filter(filter).map_err(|error| Error::Topic {
        field: Field::TopicFilter,
        error,
    })?;
    let options = SubscriptionOptions::decode(r.u8(Field::SubscriptionOptions)?, version)?;
    if options.no_local && matches!(split_shared(filter), Ok((Some(_), _))) {
        return Err(Error::NoLocalOnSharedSubscription);
    }
    Ok(Subscription { filter, options })
}

fn write_subscription(s: &Subscription<'_>, version: Version, out: &mut impl BufMut) {
    writer::binary(s.filter.as_bytes(), out);
    out.put_u8(s.options.to_byte(version));
}

/// A borrowed view of a SUBACK packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubAck<'a> {
    /// Packet identifier of the SUBSCRIBE it answers.
    pub packet_id: u16,
    /// SUBACK properties (empty for 3.1.1).
    pub properties: Properties<'a>,
    /// One code per filter, in the SUBSCRIBE's order (3.1.1 return codes for 3.1.1).
    pub reason_codes: &'a [u8],
}

impl<'a> SubAck<'a> {
    pub(crate) fn decode_body(body: &'a [u8], version: Version) -> Result<SubAck<'a>, Error> {
        let mut r = Reader::new(body, PacketType::SubAck);
        let packet_id = r.packet_id()?;
        let properties = match version {
            Version::V5 => Properties::read(&mut r, PropertyContext::SubAck, |_| Ok(()))?,
            Version::V311 => Properties::EMPTY,
        };
        let reason_codes = r.rest();
        if reason_codes.is_empty() {
            return Err(Error::Truncated {
                packet_type: PacketType::SubAck,
                field: Field::ReasonCode,
            });
        }
        if let Some(&code) = reason_codes
            .iter()
            .find(|&&c| !valid_suback_code(c, version))
        {
            return Err(Error::InvalidReasonCode {
                packet_type: PacketType::SubAck,
                code,
            });
        }
        Ok(SubAck {
            packet_id,
            properties,
            reason_codes,
        })
    }

    /// Size of the encoded packet.
    pub fn encoded_len(&self, version: Version) -> usize {
        let body = self.body_len(version);
        writer::fixed_header_len(body) + body
    }

    fn body_len(&self, version: Version) -> usize {
        let mut body = 2 + self.reason_codes.len();
        if version.is_v5() {
            body += self.properties.wire_len();
        }
        body
    }

    /// Appends the encoded packet. For 3.1.1 every failure code is written as 0x80.
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        writer::fixed_header(PacketType::SubAck.first_byte(), self.body_len(version), out);
        out.put_u16(self.packet_id);
        match version {
            Version::V5 => {
                self.properties.write(out);
                out.put_slice(self.reason_codes);
            }
            Version::V311 => {
                for &c in self.reason_codes {
                    out.put_u8(crate::ReasonCode(c).to_v311_suback());
                }
            }
        }
    }
}

fn valid_suback_code(code: u8, version: Version) -> bool {
    match version {
        Version::V311 => matches!(code, 0x00..=0x02 | 0x80),
        Version::V5 => matches!(
            code,
            0x00..=0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;

    fn decode(bytes: &[u8], v: Version) -> Result<Subscribe<'_>, Error> {
        match Packet::decode(bytes, v)? {
            Packet::Subscribe(s) => Ok(s),
            other => panic!("not a SUBSCRIBE: {other:?}"),
        }
    }

    #[test]
    fn v5_several_filters_round_trip() {
        let subs = [
            Subscription {
                filter: "a/+",
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            },
            Subscription {
                filter: "b/#",
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            Subscription {
                filter: "$share/g/c",
                options: SubscriptionOptions::qos(QoS::AtMostOnce),
            },
        ];
        let mut out = Vec::new();
        Subscribe::encode_from(Version::V5, 10, Properties::EMPTY, &subs, &mut out);
        let s = decode(&out, Version::V5).unwrap();
        assert_eq!(s.packet_id, 10);
        assert_eq!(s.len(), 3);
        assert_eq!(s.subscriptions().collect::<Vec<_>>(), subs);
        let mut again = Vec::new();
        s.encode(Version::V5, &mut again);
        assert_eq!(again, out);
    }

    #[test]
    fn rules() {
        // No filters.
        assert_eq!(
            decode(b"\x82\x03\x00\x01\x00", Version::V5),
            Err(Error::NoTopicFilters(PacketType::Subscribe))
        );
        // Reserved option bits.
        assert_eq!(
            decode(b"\x82\x07\x00\x01\x00\x00\x01a\xc0", Version::V5),
            Err(Error::InvalidSubscriptionOptions(0xc0))
        );
        assert_eq!(
            decode(b"\x82\x06\x00\x01\x00\x01a\x04", Version::V311),
            Err(Error::InvalidSubscriptionOptions(0x04))
        );
        // Retain handling 3.
        assert_eq!(
            decode(b"\x82\x07\x00\x01\x00\x00\x01a\x30", Version::V5),
            Err(Error::InvalidSubscriptionOptions(0x30))
        );
        // QoS 3.
        assert_eq!(
            decode(b"\x82\x07\x00\x01\x00\x00\x01a\x03", Version::V5),
            Err(Error::InvalidQos {
                field: Field::SubscriptionOptions
            })
        );
        // Invalid filter.
        assert!(matches!(
            decode(b"\x82\x08\x00\x01\x00\x00\x02a#\x00", Version::V5),
            Err(Error::Topic {
                field: Field::TopicFilter,
                ..
            })
        ));
        // Packet id 0.
        assert_eq!(
            decode(b"\x82\x07\x00\x00\x00\x00\x01a\x00", Version::V5),
            Err(Error::PacketIdZero)
        );
    }

    #[test]
    fn no_local_on_shared_is_a_protocol_error() {
        let subs = [Subscription {
            filter: "$share/g/a",
            options: SubscriptionOptions {
                no_local: true,
                ..SubscriptionOptions::qos(QoS::AtMostOnce)
            },
        }];
        let mut out = Vec::new();
        Subscribe::encode_from(Version::V5, 1, Properties::EMPTY, &subs, &mut out);
        assert_eq!(
            decode(&out, Version::V5),
            Err(Error::NoLocalOnSharedSubscription)
        );
    }

    #[test]
    fn suback_round_trip_and_v311_mapping() {
        let ack = SubAck {
            packet_id: 3,
            properties: Properties::EMPTY,
            reason_codes: &[0x01, 0x87, 0x00],
        };
        let mut out = Vec::new();
        ack.encode(Version::V5, &mut out);
        assert_eq!(out.len(), ack.encoded_len(Version::V5));
        assert_eq!(Packet::decode(&out, Version::V5), Ok(Packet::SubAck(ack)));
        let mut v311 = Vec::new();
        ack.encode(Version::V311, &mut v311);
        assert_eq!(v311, b"\x90\x05\x00\x03\x01\x80\x00");
        assert_eq!(
            Packet::decode(b"\x90\x03\x00\x03\x87", Version::V311),
            Err(Error::InvalidReasonCode {
                packet_type: PacketType::SubAck,
                code: 0x87
            })
        );
    }
}
