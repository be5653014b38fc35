//! MQTT 5.0 reason codes and their MQTT 3.1.1 counterparts.

use core::fmt;

/// An MQTT 5.0 reason code. Values below 0x80 are successes, the rest failures.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

impl ReasonCode {
    /// Success / normal disconnection / granted QoS 0.
    pub const SUCCESS: ReasonCode = ReasonCode(0x00);
    /// Granted QoS 1.
    pub const GRANTED_QOS_1: ReasonCode = ReasonCode(0x01);
    /// Granted QoS 2.
    pub const GRANTED_QOS_2: ReasonCode = ReasonCode(0x02);
    /// Disconnect with will message.
    pub const DISCONNECT_WITH_WILL: ReasonCode = ReasonCode(0x04);
    /// No matching subscribers.
    pub const NO_MATCHING_SUBSCRIBERS: ReasonCode = ReasonCode(0x10);
    /// No subscription existed.
    pub const NO_SUBSCRIPTION_EXISTED: ReasonCode = ReasonCode(0x11);
    /// Continue authentication.
    pub const CONTINUE_AUTHENTICATION: ReasonCode = ReasonCode(0x18);
    /// Re-authenticate.
    pub const RE_AUTHENTICATE: ReasonCode = ReasonCode(0x19);
    /// Unspecified error.
    pub const UNSPECIFIED_ERROR: ReasonCode = ReasonCode(0x80);
    /// Malformed packet.
    pub const MALFORMED_PACKET: ReasonCode = ReasonCode(0x81);
    /// Protocol error.
    pub const PROTOCOL_ERROR: ReasonCode = ReasonCode(0x82);
    /// Implementation specific error.
    pub const IMPLEMENTATION_SPECIFIC_ERROR: ReasonCode = ReasonCode(0x83);
    /// Unsupported protocol version.
    pub const UNSUPPORTED_PROTOCOL_VERSION: ReasonCode = ReasonCode(0x84);
    /// Client identifier not valid.
    pub const CLIENT_IDENTIFIER_NOT_VALID: ReasonCode = ReasonCode(0x85);
    /// Bad user name or password.
    pub const BAD_USER_NAME_OR_PASSWORD: ReasonCode = ReasonCode(0x86);
    /// Not authorized.
    pub const NOT_AUTHORIZED: ReasonCode = ReasonCode(0x87);
    /// Server unavailable.
    pub const SERVER_UNAVAILABLE: ReasonCode = ReasonCode(0x88);
    /// Server busy.
    pub const SERVER_BUSY: ReasonCode = ReasonCode(0x89);
    /// Banned.
    pub const BANNED: ReasonCode = ReasonCode(0x8A);
    /// Bad authentication method (CONNACK, DISCONNECT).
    pub const BAD_AUTHENTICATION_METHOD: ReasonCode = ReasonCode(0x8C);
    /// Server shutting down.
    pub const SERVER_SHUTTING_DOWN: ReasonCode = ReasonCode(0x8B);
    /// Keep alive timeout.
    pub const KEEP_ALIVE_TIMEOUT: ReasonCode = ReasonCode(0x8D);
    /// Topic filter invalid.
    pub const TOPIC_FILTER_INVALID: ReasonCode = ReasonCode(0x8F);
    /// Topic name invalid.
    pub const TOPIC_NAME_INVALID: ReasonCode = ReasonCode(0x90);
    /// Packet identifier in use.
    pub const PACKET_IDENTIFIER_IN_USE: ReasonCode = ReasonCode(0x91);
    /// Packet identifier not found.
    pub const PACKET_IDENTIFIER_NOT_FOUND: ReasonCode = ReasonCode(0x92);
    /// Receive maximum exceeded.
    pub const RECEIVE_MAXIMUM_EXCEEDED: ReasonCode = ReasonCode(0x93);
    /// Topic alias invalid.
    pub const TOPIC_ALIAS_INVALID: ReasonCode = ReasonCode(0x94);
    /// Packet too large.
    pub const PACKET_TOO_LARGE: ReasonCode = ReasonCode(0x95);
    /// Quota exceeded.
    pub const QUOTA_EXCEEDED: ReasonCode = ReasonCode(0x97);
    /// Payload format invalid.
    pub const PAYLOAD_FORMAT_INVALID: ReasonCode = ReasonCode(0x99);
    /// Shared subscriptions not supported.
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9E);
    /// Connection rate exceeded.
    pub const CONNECTION_RATE_EXCEEDED: ReasonCode = ReasonCode(0x9F);

    /// Whether this code reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The MQTT 3.1.1 CONNACK return code closest to this CONNACK reason code (SPEC §2).
    pub fn to_v311_connack(self) -> u8 {
        match self.0 {
            0x00 => 0,
            0x84 => 1,
            0x85 => 2,
            0x86 | 0x8C => 4,
            0x87 | 0x8A => 5,
            _ => 3,
        }
    }

    /// The MQTT 5.0 reason code for an MQTT 3.1.1 CONNACK return code.
    pub fn from_v311_connack(code: u8) -> ReasonCode {
        match code {
            0 => ReasonCode::SUCCESS,
            1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            3 => ReasonCode::SERVER_UNAVAILABLE,
            4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            5 => ReasonCode::NOT_AUTHORIZED,
            _ => ReasonCode::UNSPECIFIED_ERROR,
        }
    }

    /// The MQTT 3.1.1 SUBACK return code: granted QoS 0–2, or 0x80 for any failure.
    pub fn to_v311_suback(self) -> u8 {
        if self.0 <= 2 { self.0 } else { 0x80 }
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReasonCode({:#04x})", self.0)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_connack_table() {
        // SPEC §2: the 3.1.1 return code in brackets.
        assert_eq!(ReasonCode::SUCCESS.to_v311_connack(), 0);
        assert_eq!(ReasonCode::BAD_USER_NAME_OR_PASSWORD.to_v311_connack(), 4);
        assert_eq!(ReasonCode::BAD_AUTHENTICATION_METHOD.to_v311_connack(), 4);
        assert_eq!(ReasonCode::NOT_AUTHORIZED.to_v311_connack(), 5);
        assert_eq!(ReasonCode::BANNED.to_v311_connack(), 5);
        assert_eq!(ReasonCode::SERVER_UNAVAILABLE.to_v311_connack(), 3);
        assert_eq!(ReasonCode::SERVER_BUSY.to_v311_connack(), 3);
        assert_eq!(ReasonCode::CONNECTION_RATE_EXCEEDED.to_v311_connack(), 3);
    }

    #[test]
    fn suback_failure_maps_to_0x80() {
        assert_eq!(ReasonCode::NOT_AUTHORIZED.to_v311_suback(), 0x80);
        assert_eq!(ReasonCode::GRANTED_QOS_2.to_v311_suback(), 2);
    }
}
