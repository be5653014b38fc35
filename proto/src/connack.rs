//! CONNACK.

use bytes::BufMut;

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::reason::ReasonCode;
use crate::types::Version;
use crate::writer;

/// A borrowed view of a CONNACK packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnAck<'a> {
    /// Whether the server resumed a session.
    pub session_present: bool,
    /// The 5.0 reason code. A 3.1.1 return code is mapped to its 5.0 equivalent on decode
    /// and back on encode ([`ReasonCode::to_v311_connack`]).
    pub reason: ReasonCode,
    /// CONNACK properties (5.0).
    pub properties: Properties<'a>,
}

impl<'a> ConnAck<'a> {
    /// A CONNACK with a reason code, no session and no properties.
    pub fn new(reason: ReasonCode) -> ConnAck<'static> {
        ConnAck {
            session_present: false,
            reason,
            properties: Properties::EMPTY,
        }
    }

    pub(crate) fn decode_body(body: &'a [u8], version: Version) -> Result<ConnAck<'a>, Error> {
        let mut r = Reader::new(body, PacketType::ConnAck);
        let flags = r.u8(Field::ConnAckFlags)?;
        if flags & 0xfe != 0 {
            return Err(Error::ConnAckReservedFlags);
        }
        let code = r.u8(Field::ReasonCode)?;
        let (reason, properties) = match version {
            Version::V311 => {
                if code > 5 {
                    return Err(Error::InvalidReasonCode {
                        packet_type: PacketType::ConnAck,
                        code,
                    });
                }
                (ReasonCode::from_v311_connack(code), Properties::EMPTY)
            }
            Version::V5 => (
                ReasonCode(code),
                Properties::read(&mut r, PropertyContext::ConnAck, |_| Ok(()))?,
            ),
        };
        r.finish()?;
        Ok(ConnAck {
            session_present: flags & 0x01 != 0,
            reason,
            properties,
        })
    }

    fn body_len(&self, version: Version) -> usize {
        match version {
            Version::V311 => 2,
            Version::V5 => 2 + self.properties.wire_len(),
        }
    }

    /// Size of the encoded packet.
    pub fn encoded_len(&self, version: Version) -> usize {
        let body = self.body_len(version);
        writer::fixed_header_len(body) + body
    }

    /// Appends the encoded packet.
    pub fn encode(&self, version: Version, out: &mut impl BufMut) {
        writer::fixed_header(
            PacketType::ConnAck.first_byte(),
            self.body_len(version),
            out,
        );
        out.put_u8(u8::from(self.session_present));
        match version {
            Version::V311 => out.put_u8(self.reason.to_v311_connack()),
            Version::V5 => {
                out.put_u8(self.reason.0);
                self.properties.write(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;

    #[test]
    fn encodes_spec_denials() {
        let mut out = Vec::new();
        ConnAck::new(ReasonCode::BAD_USER_NAME_OR_PASSWORD).encode(Version::V5, &mut out);
        assert_eq!(out, b"\x20\x03\x00\x86\x00");
        let mut out = Vec::new();
        ConnAck::new(ReasonCode::BAD_USER_NAME_OR_PASSWORD).encode(Version::V311, &mut out);
        assert_eq!(out, b"\x20\x02\x00\x04");
    }

    #[test]
    fn decodes_and_checks_flags() {
        assert_eq!(
            Packet::decode(b"\x20\x02\x01\x00", Version::V311),
            Ok(Packet::ConnAck(ConnAck {
                session_present: true,
                reason: ReasonCode::SUCCESS,
                properties: Properties::EMPTY
            }))
        );
        assert_eq!(
            Packet::decode(b"\x20\x02\x02\x00", Version::V311),
            Err(Error::ConnAckReservedFlags)
        );
        assert_eq!(
            Packet::decode(b"\x20\x02\x00\x06", Version::V311),
            Err(Error::InvalidReasonCode {
                packet_type: PacketType::ConnAck,
                code: 6
            })
        );
    }
}
