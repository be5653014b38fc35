//! Typed decode errors, each mapped to the reason code the peer should receive.

use core::fmt;

use crate::packet_type::PacketType;
use crate::reason::ReasonCode;
use crate::topic::TopicError;

/// The field of a packet an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The fixed header (first byte and remaining length).
    FixedHeader,
    /// CONNECT protocol name.
    ProtocolName,
    /// CONNECT protocol level.
    ProtocolLevel,
    /// CONNECT flags.
    ConnectFlags,
    /// CONNECT keep alive.
    KeepAlive,
    /// A property length.
    PropertyLength,
    /// A property value.
    Property,
    /// CONNECT client identifier.
    ClientId,
    /// CONNECT will topic.
    WillTopic,
    /// CONNECT will payload.
    WillPayload,
    /// CONNECT will QoS.
    WillQos,
    /// CONNECT user name.
    Username,
    /// CONNECT password.
    Password,
    /// PUBLISH topic name.
    TopicName,
    /// PUBLISH QoS bits.
    PublishQos,
    /// A packet identifier.
    PacketId,
    /// A SUBSCRIBE or UNSUBSCRIBE topic filter.
    TopicFilter,
    /// SUBSCRIBE options byte.
    SubscriptionOptions,
    /// A reason code (or 3.1.1 return code).
    ReasonCode,
    /// CONNACK acknowledge flags.
    ConnAckFlags,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::FixedHeader => "fixed header",
            Field::ProtocolName => "protocol name",
            Field::ProtocolLevel => "protocol level",
            Field::ConnectFlags => "connect flags",
            Field::KeepAlive => "keep alive",
            Field::PropertyLength => "property length",
            Field::Property => "property",
            Field::ClientId => "client identifier",
            Field::WillTopic => "will topic",
            Field::WillPayload => "will payload",
            Field::WillQos => "will QoS",
            Field::Username => "user name",
            Field::Password => "password",
            Field::TopicName => "topic name",
            Field::PublishQos => "QoS",
            Field::PacketId => "packet identifier",
            Field::TopicFilter => "topic filter",
            Field::SubscriptionOptions => "subscription options",
            Field::ReasonCode => "reason code",
            Field::ConnAckFlags => "acknowledge flags",
        })
    }
}

/// Every way a packet can break the MQTT 5.0 or 3.1.1 rules a proxy enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A variable byte integer (remaining length or property length) longer than four bytes or
    /// longer than its value needs.
    #[error("malformed variable byte integer")]
    MalformedVariableInt,
    /// The packet is larger than the configured or negotiated maximum.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// Packet type 0, or 15 (AUTH) on an MQTT 3.1.1 connection.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// The low four bits of the first byte are not the ones the packet type requires.
    #[error("invalid fixed-header flags {flags:#06b} for {packet_type}")]
    InvalidFlags {
        /// The packet type.
        packet_type: PacketType,
        /// The four flag bits received.
        flags: u8,
    },
    /// The frame handed to a decoder is not one whole packet.
    #[error("frame length does not match its remaining length")]
    FrameLength,
    /// A field runs past the end of the packet.
    #[error("{packet_type} ends inside its {field}")]
    Truncated {
        /// The packet type.
        packet_type: PacketType,
        /// The field that was cut.
        field: Field,
    },
    /// Bytes left over after the last field.
    #[error("{packet_type} has {count} bytes after its last field")]
    TrailingBytes {
        /// The packet type.
        packet_type: PacketType,
        /// How many bytes were left.
        count: usize,
    },
    /// A UTF-8 string field is not well-formed UTF-8 (this includes encoded surrogates).
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        field: Field,
    },
    /// A UTF-8 string field contains U+0000 (MQTT-1.5.4-2).
    #[error("{field} contains U+0000")]
    NullCharacter {
        /// The field.
        field: Field,
    },
    /// CONNECT protocol name is not `MQTT`.
    #[error("protocol name is not \"MQTT\"")]
    InvalidProtocolName,
    /// CONNECT protocol level is neither 4 (3.1.1) nor 5 (5.0).
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    /// CONNECT flags bit 0 is set (MQTT-3.1.2-3).
    #[error("CONNECT reserved flag is set")]
    ConnectReservedFlag,
    /// Will QoS or will retain set while the will flag is clear (MQTT-3.1.2-11, -13).
    #[error("will QoS or will retain set without the will flag")]
    WillFlagsWithoutWill,
    /// MQTT 3.1.1: password flag set without the user name flag (MQTT-3.1.2-22).
    #[error("password without a user name")]
    PasswordWithoutUsername,
    /// A QoS field holds 3.
    #[error("{field} is 3, which is not a valid QoS")]
    InvalidQos {
        /// The field.
        field: Field,
    },
    /// A packet identifier of 0 where one is required (MQTT-2.2.1-3).
    #[error("packet identifier 0")]
    PacketIdZero,
    /// DUP set on a QoS 0 PUBLISH (MQTT-3.3.1-2).
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQos0,
    /// A property identifier MQTT 5.0 does not define.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u32),
    /// A property that may not appear in this packet.
    #[error("property {id:#04x} is not allowed in {packet_type}")]
    PropertyNotAllowed {
        /// The property identifier.
        id: u8,
        /// The packet type.
        packet_type: PacketType,
    },
    /// A single-valued property given twice.
    #[error("property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    /// A property value outside its range (a zero receive maximum, a flag of 2, ...).
    #[error("property {0:#04x} has an invalid value")]
    InvalidPropertyValue(u8),
    /// Authentication data without an authentication method.
    #[error("authentication data without an authentication method")]
    AuthDataWithoutMethod,
    /// A PUBLISH with an empty topic and no topic alias.
    #[error("empty topic name without a topic alias")]
    EmptyTopic,
    /// A topic alias of 0 (MQTT-3.3.2-8).
    #[error("topic alias 0")]
    TopicAliasZero,
    /// A topic name or filter that breaks the topic rules.
    #[error("{field}: {error}")]
    Topic {
        /// Which field held it.
        field: Field,
        /// What is wrong with it.
        error: TopicError,
    },
    /// A SUBSCRIBE or UNSUBSCRIBE with no topic filter (MQTT-3.8.3-2, 3.10.3-2).
    #[error("{0} carries no topic filter")]
    NoTopicFilters(PacketType),
    /// Reserved bits set in SUBSCRIBE options, or retain handling 3.
    #[error("invalid subscription options {0:#04x}")]
    InvalidSubscriptionOptions(u8),
    /// No Local set on a shared subscription (MQTT-3.8.3-4).
    #[error("no-local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// CONNACK flags with reserved bits set (MQTT-3.2.2-1).
    #[error("CONNACK reserved flags set")]
    ConnAckReservedFlags,
    /// A topic alias of 0 or above the receiver's Topic Alias Maximum.
    #[error("topic alias {0} is outside the allowed range")]
    TopicAliasInvalid(u16),
    /// An empty topic with an alias that was never set.
    #[error("topic alias {0} has no topic")]
    UnknownTopicAlias(u16),
    /// A reason or return code the packet type does not define.
    #[error("reason code {code:#04x} is not valid in {packet_type}")]
    InvalidReasonCode {
        /// The packet type.
        packet_type: PacketType,
        /// The code received.
        code: u8,
    },
}

/// How the peer should be told about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The bytes cannot be parsed as the packet they claim to be (reason 0x81).
    Malformed,
    /// Parsable, but the protocol forbids it (reason 0x82).
    ProtocolError,
}

impl Error {
    /// Whether the packet is unparsable or merely forbidden.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::PacketIdZero
            | Error::DupWithQos0
            | Error::DuplicateProperty(_)
            | Error::InvalidPropertyValue(_)
            | Error::AuthDataWithoutMethod
            | Error::TopicAliasZero
            | Error::TopicAliasInvalid(_)
            | Error::UnknownTopicAlias(_)
            | Error::EmptyTopic
            | Error::NoTopicFilters(_)
            | Error::NoLocalOnSharedSubscription
            | Error::PropertyNotAllowed { .. }
            | Error::UnsupportedProtocolLevel(_)
            | Error::PacketTooLarge { .. } => ErrorKind::ProtocolError,
            _ => ErrorKind::Malformed,
        }
    }

    /// The MQTT 5.0 reason code to put in the CONNACK or DISCONNECT that answers this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Error::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            Error::UnsupportedProtocolLevel(_) | Error::InvalidProtocolName => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            Error::TopicAliasZero | Error::TopicAliasInvalid(_) => ReasonCode::TOPIC_ALIAS_INVALID,
            Error::Topic {
                field: Field::TopicFilter,
                ..
            } => ReasonCode::TOPIC_FILTER_INVALID,
            Error::Topic { .. } | Error::EmptyTopic => ReasonCode::TOPIC_NAME_INVALID,
            Error::InvalidQos {
                field: Field::WillQos,
            } => ReasonCode::MALFORMED_PACKET,
            e if e.kind() == ErrorKind::ProtocolError => ReasonCode::PROTOCOL_ERROR,
            _ => ReasonCode::MALFORMED_PACKET,
        }
    }
}
