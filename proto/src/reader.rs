//! A bounds-checked cursor over one packet's body. Every read names the field it is reading so
//! that a short packet produces an error that says where it was cut.

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::varint::{self, VarIntError};

#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    packet_type: PacketType,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], packet_type: PacketType) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            packet_type,
        }
    }

    pub(crate) fn packet_type(&self) -> PacketType {
        self.packet_type
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn truncated(&self, field: Field) -> Error {
        Error::Truncated {
            packet_type: self.packet_type,
            field,
        }
    }

    pub(crate) fn take(&mut self, n: usize, field: Field) -> Result<&'a [u8], Error> {
        if self.remaining() < n {
            return Err(self.truncated(field));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, Error> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, Error> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, Error> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn variable_int(&mut self, field: Field) -> Result<u32, Error> {
        match varint::decode(&self.buf[self.pos..]) {
            Ok((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            Err(VarIntError::Incomplete) => Err(self.truncated(field)),
            Err(VarIntError::Malformed) => Err(Error::MalformedVariableInt),
        }
    }

    /// A packet identifier, which must not be zero.
    pub(crate) fn packet_id(&mut self) -> Result<u16, Error> {
        match self.u16(Field::PacketId)? {
            0 => Err(Error::PacketIdZero),
            id => Ok(id),
        }
    }

    /// Binary data: a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self, field: Field) -> Result<&'a [u8], Error> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    /// A UTF-8 encoded string: well-formed UTF-8 without U+0000.
    pub(crate) fn utf8(&mut self, field: Field) -> Result<&'a str, Error> {
        let bytes = self.binary(field)?;
        utf8(bytes, field)
    }

    /// Fails if anything is left.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                packet_type: self.packet_type,
                count: self.remaining(),
            })
        }
    }
}

/// Checks an MQTT UTF-8 string (MQTT-1.5.4-1, -2). Surrogates cannot appear: they are not
/// well-formed UTF-8 and `from_utf8` rejects them.
pub(crate) fn utf8(bytes: &[u8], field: Field) -> Result<&str, Error> {
    let s = core::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 { field })?;
    if bytes.contains(&0) {
        return Err(Error::NullCharacter { field });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        let mut r = Reader::new(
            b"\x00\x02hi\x00\x01\x00\x00\x02\xed\xa0",
            PacketType::Connect,
        );
        assert_eq!(r.utf8(Field::ClientId), Ok("hi"));
        assert_eq!(
            r.utf8(Field::ClientId),
            Err(Error::NullCharacter {
                field: Field::ClientId
            })
        );
        // An encoded surrogate half (U+D800) is not UTF-8.
        assert_eq!(
            r.utf8(Field::Username),
            Err(Error::InvalidUtf8 {
                field: Field::Username
            })
        );
    }

    #[test]
    fn truncation_names_the_field() {
        let mut r = Reader::new(b"\x00\x05ab", PacketType::Publish);
        assert_eq!(
            r.utf8(Field::TopicName),
            Err(Error::Truncated {
                packet_type: PacketType::Publish,
                field: Field::TopicName
            })
        );
    }
}
