//! DISCONNECT.

use bytes::BufMut;

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::reason::ReasonCode;
use crate::types::Version;
use crate::writer;

/// A borrowed view of a DISCONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnect<'a> {
    /// Reason code (5.0); success for 3.1.1.
    pub reason: ReasonCode,
    /// Properties (5.0).
    pub properties: Properties<'a>,
}

impl<'a> Disconnect<'a> {
    /// A DISCONNECT with a reason code and no properties.
    pub fn new(reason: ReasonCode) -> Disconnect<'static> {
        Disconnect {
            reason,
            properties: Properties::EMPTY,
        }
    }

    pub(crate) fn decode_body(body: &'a [u8], version: Version) -> Result<Disconnect<'a>, Error> {
        let (reason, properties) = reason_and_properties(
            body,
            version,
            PacketType::Disconnect,
            PropertyContext::Disconnect,
        )?;
        Ok(Disconnect { reason, properties })
    }

    /// Size of the encoded packet.
    pub fn encoded_len(&self, version: Version) -> usize {
        let body = reason_and_properties_len(self.reason, &self.properties, version);
        writer::fixed_header_len(body) + body
    }

    /// Appends the encoded packet in its shortest form (empty for 3.1.1).
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        write_reason_and_properties(
            PacketType::Disconnect,
            self.reason,
            &self.properties,
            version,
            out,
        );
    }
}

/// The body shared by DISCONNECT and AUTH: nothing (success), a reason code, or a reason
/// code and properties.
pub(crate) fn reason_and_properties<'a>(
    body: &'a [u8],
    version: Version,
    packet_type: PacketType,
    ctx: PropertyContext,
) -> Result<(ReasonCode, Properties<'a>), Error> {
    let mut r = Reader::new(body, packet_type);
    let mut reason = ReasonCode::SUCCESS;
    let mut properties = Properties::EMPTY;
    if version.is_v5() && !r.is_empty() {
        reason = ReasonCode(r.u8(Field::ReasonCode)?);
        if !r.is_empty() {
            properties = Properties::read(&mut r, ctx, |_| Ok(()))?;
        }
    }
    r.finish()?;
    Ok((reason, properties))
}

pub(crate) fn reason_and_properties_len(
    reason: ReasonCode,
    properties: &Properties<'_>,
    version: Version,
) -> usize {
    match version {
        Version::V311 => 0,
        Version::V5 if !properties.is_empty() => 1 + properties.wire_len(),
        Version::V5 if reason != ReasonCode::SUCCESS => 1,
        Version::V5 => 0,
    }
}

pub(crate) fn write_reason_and_properties(
    packet_type: PacketType,
    reason: ReasonCode,
    properties: &Properties<'_>,
    version: Version,
    out: &mut impl BufMut,
) {
    let body = reason_and_properties_len(reason, properties, version);
    writer::fixed_header(packet_type.first_byte(), body, out);
    if body > 0 {
        out.put_u8(reason.0);
    }
    if body > 1 {
        properties.write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;

    #[test]
    fn malformed_packet_disconnect() {
        let mut out = Vec::new();
        Disconnect::new(ReasonCode::MALFORMED_PACKET).encode(Version::V5, &mut out);
        assert_eq!(out, b"\xe0\x01\x81");
        let mut out = Vec::new();
        Disconnect::new(ReasonCode::MALFORMED_PACKET).encode(Version::V311, &mut out);
        assert_eq!(out, b"\xe0\x00");
    }

    #[test]
    fn decode_forms() {
        assert_eq!(
            Packet::decode(b"\xe0\x00", Version::V5),
            Ok(Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)))
        );
        assert_eq!(
            Packet::decode(b"\xe0\x01\x04", Version::V5),
            Ok(Packet::Disconnect(Disconnect::new(
                ReasonCode::DISCONNECT_WITH_WILL
            )))
        );
        assert!(matches!(
            Packet::decode(b"\xe0\x01\x04", Version::V311),
            Err(Error::TrailingBytes { .. })
        ));
    }
}
