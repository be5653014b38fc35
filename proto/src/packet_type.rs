//! The fourteen (fifteen with AUTH) MQTT control packet types and their fixed-header flags.

use core::fmt;

use crate::error::Error;

/// An MQTT control packet type (the high nibble of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 1: client request to connect.
    Connect,
    /// 2: connect acknowledgment.
    ConnAck,
    /// 3: publish message.
    Publish,
    /// 4: QoS 1 publish acknowledgment.
    PubAck,
    /// 5: QoS 2 publish received.
    PubRec,
    /// 6: QoS 2 publish release.
    PubRel,
    /// 7: QoS 2 publish complete.
    PubComp,
    /// 8: subscribe request.
    Subscribe,
    /// 9: subscribe acknowledgment.
    SubAck,
    /// 10: unsubscribe request.
    Unsubscribe,
    /// 11: unsubscribe acknowledgment.
    UnsubAck,
    /// 12: ping request.
    PingReq,
    /// 13: ping response.
    PingResp,
    /// 14: disconnect notification.
    Disconnect,
    /// 15: authentication exchange (MQTT 5.0 only).
    Auth,
}

impl PacketType {
    /// Decodes the packet type of a first byte and checks its flag bits. PUBLISH flags are
    /// checked by the PUBLISH decoder (QoS 3 is the only forbidden value there).
    pub fn from_first_byte(byte: u8) -> Result<PacketType, Error> {
        let flags = byte & 0x0f;
        let packet_type = match byte >> 4 {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => return Ok(PacketType::Publish),
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 => PacketType::Auth,
            other => return Err(Error::ReservedPacketType(other)),
        };
        if flags != packet_type.required_flags() {
            return Err(Error::InvalidFlags { packet_type, flags });
        }
        Ok(packet_type)
    }

    /// The numeric type (1–15).
    pub fn as_u8(self) -> u8 {
        match self {
            PacketType::Connect => 1,
            PacketType::ConnAck => 2,
            PacketType::Publish => 3,
            PacketType::PubAck => 4,
            PacketType::PubRec => 5,
            PacketType::PubRel => 6,
            PacketType::PubComp => 7,
            PacketType::Subscribe => 8,
            PacketType::SubAck => 9,
            PacketType::Unsubscribe => 10,
            PacketType::UnsubAck => 11,
            PacketType::PingReq => 12,
            PacketType::PingResp => 13,
            PacketType::Disconnect => 14,
            PacketType::Auth => 15,
        }
    }

    /// The flag bits every packet but PUBLISH must carry (MQTT-2.1.3-1).
    pub fn required_flags(self) -> u8 {
        match self {
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
            _ => 0,
        }
    }

    /// The first byte of a packet of this type with its required flags.
    pub fn first_byte(self) -> u8 {
        self.as_u8() << 4 | self.required_flags()
    }

    /// The upper-case name used in the specification.
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_first_byte_is_classified() {
        for byte in 0..=255u8 {
            match PacketType::from_first_byte(byte) {
                Ok(PacketType::Publish) => assert_eq!(byte >> 4, 3),
                Ok(t) => assert_eq!(t.first_byte(), byte),
                Err(Error::ReservedPacketType(0)) => assert_eq!(byte >> 4, 0),
                Err(Error::InvalidFlags { packet_type, flags }) => {
                    assert_eq!(packet_type.as_u8(), byte >> 4);
                    assert_ne!(flags, packet_type.required_flags());
                }
                Err(e) => panic!("unexpected {e:?} for {byte:#04x}"),
            }
        }
    }
}
