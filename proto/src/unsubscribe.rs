//! UNSUBSCRIBE and UNSUBACK.

use bytes::BufMut;

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::topic::validate_topic_filter;
use crate::types::Version;
use crate::writer;

/// A borrowed view of an UNSUBSCRIBE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    /// Packet identifier (never 0).
    pub packet_id: u16,
    /// UNSUBSCRIBE properties (empty for 3.1.1).
    pub properties: Properties<'a>,
    entries: &'a [u8],
    count: usize,
}

impl<'a> Unsubscribe<'a> {
    pub(crate) fn decode_body(body: &'a [u8], version: Version) -> Result<Unsubscribe<'a>, Error> {
        let mut r = Reader::new(body, PacketType::Unsubscribe);
        let packet_id = r.packet_id()?;
        let properties = match version {
            Version::V5 => Properties::read(&mut r, PropertyContext::Unsubscribe, |_| Ok(()))?,
            Version::V311 => Properties::EMPTY,
        };
        let entries = r.rest();
        let mut count = 0;
        let mut entry_reader = Reader::new(entries, PacketType::Unsubscribe);
        while !entry_reader.is_empty() {
            read_filter(&mut entry_reader)?;
            count += 1;
        }
        if count == 0 {
            return Err(Error::NoTopicFilters(PacketType::Unsubscribe));
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            entries,
            count,
        })
    }

    /// Number of topic filters (at least one).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: an UNSUBSCRIBE without filters does not decode.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The filters in the client's order.
    pub fn filters(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut r = Reader::new(self.entries, PacketType::Unsubscribe);
        core::iter::from_fn(move || read_filter(&mut r).ok())
    }

    /// Appends the encoded packet, as decoded.
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        Self::write(version, self.packet_id, self.properties, self.entries, out);
    }

    /// Encodes an UNSUBSCRIBE from parts.
    pub fn encode_from(
        version: Version,
        packet_id: u16,
        properties: Properties<'_>,
        filters: &[&str],
        out: &mut impl BufMut,
    ) {
        let mut entries = Vec::with_capacity(filters.iter().map(|f| 2 + f.len()).sum());
        for f in filters {
            writer::binary(f.as_bytes(), &mut entries);
        }
        Self::write(version, packet_id, properties, &entries, out);
    }

    fn write(
        version: Version,
        packet_id: u16,
        properties: Properties<'_>,
        entries: &[u8],
        out: &mut impl BufMut,
    ) {
        let mut body = 2 + entries.len();
        if version.is_v5() {
            body += properties.wire_len();
        }
        writer::fixed_header(PacketType::Unsubscribe.first_byte(), body, out);
        out.put_u16(packet_id);
        if version.is_v5() {
            properties.write(out);
        }
        out.put_slice(entries);
    }
}

fn read_filter<'a>(r: &mut Reader<'a>) -> Result<&'a str, Error> {
    let filter = r.utf8(Field::TopicFilter)?;
    validate_topic_filter(filter).map_err(|error| Error::Topic {
        field: Field::TopicFilter,
        error,
    })?;
    Ok(filter)
}

/// A borrowed view of an UNSUBACK packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubAck<'a> {
    /// Packet identifier of the UNSUBSCRIBE it answers.
    pub packet_id: u16,
    /// UNSUBACK properties (empty for 3.1.1).
    pub properties: Properties<'a>,
    /// One reason code per filter (5.0); empty for 3.1.1, which has none.
    pub reason_codes: &'a [u8],
}

impl<'a> UnsubAck<'a> {
    pub(crate) fn decode_body(body: &'a [u8], version: Version) -> Result<UnsubAck<'a>, Error> {
        let mut r = Reader::new(body, PacketType::UnsubAck);
        let packet_id = r.packet_id()?;
        match version {
            Version::V311 => {
                r.finish()?;
                Ok(UnsubAck {
                    packet_id,
                    properties: Properties::EMPTY,
                    reason_codes: &[],
                })
            }
            Version::V5 => {
                let properties = Properties::read(&mut r, PropertyContext::UnsubAck, |_| Ok(()))?;
                let reason_codes = r.rest();
                if reason_codes.is_empty() {
                    return Err(Error::Truncated {
                        packet_type: PacketType::UnsubAck,
                        field: Field::ReasonCode,
                    });
                }
                Ok(UnsubAck {
                    packet_id,
                    properties,
                    reason_codes,
                })
            }
        }
    }

    fn body_len(&self, version: Version) -> usize {
        match version {
            Version::V311 => 2,
            Version::V5 => 2 + self.properties.wire_len() + self.reason_codes.len(),
        }
    }

    /// Size of the encoded packet.
    pub fn encoded_len(&self, version: Version) -> usize {
        let body = self.body_len(version);
        writer::fixed_header_len(body) + body
    }

    /// Appends the encoded packet; 3.1.1 drops the properties and reason codes.
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        writer::fixed_header(
            PacketType::UnsubAck.first_byte(),
            self.body_len(version),
            out,
        );
        out.put_u16(self.packet_id);
        if version.is_v5() {
            self.properties.write(out);
            out.put_slice(self.reason_codes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;

    #[test]
    fn round_trip_both_versions() {
        for v in [Version::V311, Version::V5] {
            let mut out = Vec::new();
            Unsubscribe::encode_from(v, 5, Properties::EMPTY, &["a/+", "$share/g/b"], &mut out);
            let Ok(Packet::Unsubscribe(u)) = Packet::decode(&out, v) else {
                panic!("no UNSUBSCRIBE");
            };
            assert_eq!(u.filters().collect::<Vec<_>>(), ["a/+", "$share/g/b"]);
            assert_eq!(u.packet_id, 5);
        }
    }

    #[test]
    fn empty_and_unsuback() {
        assert_eq!(
            Packet::decode(b"\xa2\x02\x00\x01", Version::V311),
            Err(Error::NoTopicFilters(PacketType::Unsubscribe))
        );
        let ack = UnsubAck {
            packet_id: 2,
            properties: Properties::EMPTY,
            reason_codes: &[0x00, 0x11],
        };
        let mut out = Vec::new();
        ack.encode(Version::V5, &mut out);
        assert_eq!(Packet::decode(&out, Version::V5), Ok(Packet::UnsubAck(ack)));
        let mut v311 = Vec::new();
        ack.encode(Version::V311, &mut v311);
        assert_eq!(v311, b"\xb0\x02\x00\x02");
    }
}
