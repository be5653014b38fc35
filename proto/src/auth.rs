//! AUTH (MQTT 5.0 only).

use bytes::BufMut;

use crate::disconnect::{
    reason_and_properties, reason_and_properties_len, write_reason_and_properties,
};
use crate::error::Error;
use crate::packet_type::PacketType;
use crate::properties::{Properties, PropertyContext};
use crate::reason::ReasonCode;
use crate::types::Version;
use crate::writer;

/// A borrowed view of an AUTH packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    /// Reason code: success, continue authentication or re-authenticate.
    pub reason: ReasonCode,
    /// Properties (authentication method and data, reason string, user properties).
    pub properties: Properties<'a>,
}

impl<'a> Auth<'a> {
    pub(crate) fn decode_body(body: &'a [u8]) -> Result<Auth<'a>, Error> {
        let (reason, properties) =
            reason_and_properties(body, Version::V5, PacketType::Auth, PropertyContext::Auth)?;
        if !matches!(reason.0, 0x00 | 0x18 | 0x19) {
            return Err(Error::InvalidReasonCode {
                packet_type: PacketType::Auth,
                code: reason.0,
            });
        }
        Ok(Auth { reason, properties })
    }

    /// Size of the encoded packet.
    pub fn encoded_len(&self) -> usize {
        let body = reason_and_properties_len(self.reason, &self.properties, Version::V5);
        writer::fixed_header_len(body) + body
    }

    /// Appends the encoded packet.
    pub fn encode(&self, out: &mut impl BufMut) {
        write_reason_and_properties(
            PacketType::Auth,
            self.reason,
            &self.properties,
            Version::V5,
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::{Property, encode_properties};
    use crate::{Packet, Version};

    #[test]
    fn round_trip_and_version_rule() {
        let mut raw = Vec::new();
        encode_properties(
            &[
                Property::AuthenticationMethod("SCRAM"),
                Property::AuthenticationData(b"x"),
            ],
            &mut raw,
        );
        let auth = Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Properties::parse_raw(&raw, PropertyContext::Auth).unwrap(),
        };
        let mut out = Vec::new();
        auth.encode(&mut out);
        assert_eq!(out.len(), auth.encoded_len());
        assert_eq!(Packet::decode(&out, Version::V5), Ok(Packet::Auth(auth)));
        assert_eq!(
            Packet::decode(&out, Version::V311),
            Err(Error::ReservedPacketType(15))
        );
        assert!(matches!(
            Packet::decode(b"\xf0\x01\x87", Version::V5),
            Err(Error::InvalidReasonCode { .. })
        ));
    }
}
