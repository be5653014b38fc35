//! Incremental framing: finds packet boundaries in a byte stream.

use bytes::{Bytes, BytesMut};

use crate::MAX_PACKET_SIZE;
use crate::error::Error;
use crate::packet_type::PacketType;
use crate::varint::{self, VarIntError};

/// The fixed header of a packet: its type, flags and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The first byte: packet type and flags.
    pub first_byte: u8,
    /// The packet type, with its flags checked (except PUBLISH, whose flags carry QoS).
    pub packet_type: PacketType,
    /// The remaining length: the size of everything after the fixed header.
    pub remaining_length: u32,
    /// Size of the fixed header itself: 2 to 5 bytes.
    pub header_len: usize,
}

impl FixedHeader {
    /// Reads the fixed header at the start of `buf`. `Ok(None)` means more bytes are needed.
    ///
    /// The first byte's type and flags are checked as soon as it arrives, so garbage is
    /// rejected without waiting for a length.
    pub fn parse(buf: &[u8]) -> Result<Option<FixedHeader>, Error> {
        let Some(&first_byte) = buf.first() else {
            return Ok(None);
        };
        let packet_type = PacketType::from_first_byte(first_byte)?;
        match varint::decode(&buf[1..]) {
            Ok((remaining_length, len)) => Ok(Some(FixedHeader {
                first_byte,
                packet_type,
                remaining_length,
                header_len: 1 + len,
            })),
            Err(VarIntError::Incomplete) => Ok(None),
            Err(VarIntError::Malformed) => Err(Error::MalformedVariableInt),
        }
    }

    /// The four flag bits of the first byte.
    pub fn flags(&self) -> u8 {
        self.first_byte & 0x0f
    }

    /// Size of the whole packet, fixed header included.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_length as usize
    }
}

/// Splits whole packets off the front of a receive buffer.
///
/// The framer holds no buffer of its own: the caller reads into a [`BytesMut`] and calls
/// [`Framer::poll_frame`] until it returns `Ok(None)`. A frame is split off without copying, so
/// it can be written to the other side as it is. Partial reads, one-byte reads and several
/// packets in one read all work the same way.
#[derive(Debug, Clone, Copy)]
pub struct Framer {
    max_packet_size: usize,
}

impl Framer {
    /// A framer that rejects packets larger than `max_packet_size` bytes (fixed header
    /// included), capped at the protocol's own maximum.
    pub fn new(max_packet_size: usize) -> Framer {
        Framer {
            max_packet_size: max_packet_size.min(MAX_PACKET_SIZE),
        }
    }

    /// The limit in force.
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// Checks the header at the front of `buf` without consuming anything. Returns the header
    /// when it is complete; the packet itself may still be incomplete. Errors as soon as the
    /// declared size exceeds the limit, before the body arrives.
    pub fn peek_header(&self, buf: &[u8]) -> Result<Option<FixedHeader>, Error> {
        let Some(header) = FixedHeader::parse(buf)? else {
            return Ok(None);
        };
        if header.packet_len() > self.max_packet_size {
            return Err(Error::PacketTooLarge {
                size: header.packet_len(),
                max: self.max_packet_size,
            });
        }
        Ok(Some(header))
    }

    /// Splits the first whole packet off `buf`, fixed header included. `Ok(None)` means more
    /// bytes are needed and `buf` is untouched.
    pub fn poll_frame(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        Ok(self.poll_frame_with_header(buf)?.map(|(_, frame)| frame))
    }

    /// Like [`Framer::poll_frame`], also returning the parsed fixed header.
    pub fn poll_frame_with_header(
        &self,
        buf: &mut BytesMut,
    ) -> Result<Option<(FixedHeader, Bytes)>, Error> {
        let Some(header) = self.peek_header(buf)? else {
            return Ok(None);
        };
        if buf.len() < header.packet_len() {
            // Reserve the rest now so the next read lands in one allocation.
            buf.reserve(header.packet_len() - buf.len());
            return Ok(None);
        }
        Ok(Some((header, buf.split_to(header.packet_len()).freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINGREQ: &[u8] = &[0xc0, 0x00];
    const PUBLISH: &[u8] = b"\x30\x06\x00\x01ahey";

    #[test]
    fn several_packets_in_one_read() {
        let framer = Framer::new(1024);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(PUBLISH);
        buf.extend_from_slice(PINGREQ);
        buf.extend_from_slice(PUBLISH);
        assert_eq!(framer.poll_frame(&mut buf).unwrap().unwrap(), PUBLISH);
        assert_eq!(framer.poll_frame(&mut buf).unwrap().unwrap(), PINGREQ);
        assert_eq!(framer.poll_frame(&mut buf).unwrap().unwrap(), PUBLISH);
        assert_eq!(framer.poll_frame(&mut buf).unwrap(), None);
        assert!(buf.is_empty());
    }

    #[test]
    fn one_byte_reads() {
        let framer = Framer::new(1024);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for &b in PUBLISH.iter().chain(PINGREQ) {
            buf.extend_from_slice(&[b]);
            while let Some(f) = framer.poll_frame(&mut buf).unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            vec![Bytes::from_static(PUBLISH), Bytes::from_static(PINGREQ)]
        );
    }

    #[test]
    fn four_byte_remaining_length() {
        let framer = Framer::new(MAX_PACKET_SIZE);
        let mut buf = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0x7f][..]);
        let header = framer.peek_header(&buf).unwrap().unwrap();
        assert_eq!(header.remaining_length, 268_435_455);
        assert_eq!(header.header_len, 5);
        assert_eq!(framer.poll_frame(&mut buf).unwrap(), None);
    }

    #[test]
    fn too_large_is_rejected_before_the_body() {
        let framer = Framer::new(100);
        let mut buf = BytesMut::from(&[0x30, 0x80, 0x01][..]);
        assert_eq!(
            framer.poll_frame(&mut buf),
            Err(Error::PacketTooLarge {
                size: 131,
                max: 100
            })
        );
    }

    #[test]
    fn five_byte_length_is_malformed() {
        let framer = Framer::new(MAX_PACKET_SIZE);
        let mut buf = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
        assert_eq!(
            framer.poll_frame(&mut buf),
            Err(Error::MalformedVariableInt)
        );
    }

    #[test]
    fn reserved_type_and_bad_flags_fail_on_the_first_byte() {
        let framer = Framer::new(1024);
        assert_eq!(
            framer.peek_header(&[0x00]),
            Err(Error::ReservedPacketType(0))
        );
        assert_eq!(
            framer.peek_header(&[0x80]),
            Err(Error::InvalidFlags {
                packet_type: PacketType::Subscribe,
                flags: 0
            })
        );
    }
}
