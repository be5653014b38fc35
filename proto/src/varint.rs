//! The variable byte integer of MQTT (remaining length, property lengths, some properties).

use bytes::BufMut;

/// The largest value a variable byte integer can hold (four bytes of seven bits).
pub const MAX_VARIABLE_INT: u32 = 268_435_455;

/// Why a variable byte integer could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarIntError {
    /// More bytes are needed.
    Incomplete,
    /// A fifth continuation byte, or a longer encoding than the value needs.
    Malformed,
}

/// Decodes a variable byte integer at the start of `buf`, returning the value and the number of
/// bytes it took. `Ok(None)` means `buf` ends before the integer does.
///
/// Encodings longer than necessary (`0x80 0x00` for 0) are rejected: MQTT-1.5.5-1 requires the
/// minimum number of bytes, and accepting them would let two parsers disagree on lengths.
pub fn decode_variable_int(buf: &[u8]) -> Result<Option<(u32, usize)>, crate::Error> {
    match decode(buf) {
        Ok(v) => Ok(Some(v)),
        Err(VarIntError::Incomplete) => Ok(None),
        Err(VarIntError::Malformed) => Err(crate::Error::MalformedVariableInt),
    }
}

pub(crate) fn decode(buf: &[u8]) -> Result<(u32, usize), VarIntError> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(VarIntError::Malformed);
            }
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 4 {
        Err(VarIntError::Malformed)
    } else {
        Err(VarIntError::Incomplete)
    }
}

/// Number of bytes `value` takes as a variable byte integer (1–4). Values above
/// [`MAX_VARIABLE_INT`] are not encodable; callers check that first.
pub fn variable_int_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `value` as a variable byte integer.
///
/// # Panics
/// If `value` exceeds [`MAX_VARIABLE_INT`]: encoders check sizes before they write.
pub fn encode_variable_int(value: u32, out: &mut impl BufMut) {
    assert!(
        value <= MAX_VARIABLE_INT,
        "variable byte integer out of range"
    );
    let mut v = value;
    loop {
        let mut byte = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if v == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_round_trip() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_VARIABLE_INT,
        ] {
            let mut buf = Vec::new();
            encode_variable_int(v, &mut buf);
            assert_eq!(buf.len(), variable_int_len(v));
            assert_eq!(decode(&buf), Ok((v, buf.len())));
        }
    }

    #[test]
    fn spec_examples() {
        assert_eq!(decode(&[0x00]), Ok((0, 1)));
        assert_eq!(decode(&[0x7f]), Ok((127, 1)));
        assert_eq!(decode(&[0x80, 0x01]), Ok((128, 2)));
        assert_eq!(decode(&[0xff, 0x7f]), Ok((16_383, 2)));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0x7f]), Ok((MAX_VARIABLE_INT, 4)));
    }

    #[test]
    fn incomplete_and_malformed() {
        assert_eq!(decode(&[]), Err(VarIntError::Incomplete));
        assert_eq!(decode(&[0x80]), Err(VarIntError::Incomplete));
        assert_eq!(decode(&[0xff, 0xff, 0xff]), Err(VarIntError::Incomplete));
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(VarIntError::Malformed)
        );
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(VarIntError::Malformed)
        );
        // Non-minimal encodings.
        assert_eq!(decode(&[0x80, 0x00]), Err(VarIntError::Malformed));
        assert_eq!(decode(&[0x81, 0x80, 0x00]), Err(VarIntError::Malformed));
    }
}
