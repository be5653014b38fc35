//! Helpers shared by the encoders.

use bytes::BufMut;

use crate::varint::{encode_variable_int, variable_int_len};

/// Writes a fixed header for a body of `remaining` bytes.
pub(crate) fn fixed_header(first_byte: u8, remaining: usize, out: &mut impl BufMut) {
    out.put_u8(first_byte);
    encode_variable_int(remaining_u32(remaining), out);
}

/// Size of a fixed header for a body of `remaining` bytes.
pub(crate) fn fixed_header_len(remaining: usize) -> usize {
    1 + variable_int_len(remaining_u32(remaining))
}

fn remaining_u32(remaining: usize) -> u32 {
    u32::try_from(remaining)
        .ok()
        .filter(|&r| r <= crate::MAX_VARIABLE_INT)
        .expect("packet body larger than MQTT allows")
}

/// Writes a length-prefixed string or binary field.
///
/// # Panics
/// If `bytes` is longer than 65,535 bytes: no MQTT string can be.
pub(crate) fn binary(bytes: &[u8], out: &mut impl BufMut) {
    let len = u16::try_from(bytes.len()).expect("MQTT string or binary field over 65,535 bytes");
    out.put_u16(len);
    out.put_slice(bytes);
}

/// Writes a property block (length then raw properties).
pub(crate) fn properties(raw: &[u8], out: &mut impl BufMut) {
    encode_variable_int(remaining_u32(raw.len()), out);
    out.put_slice(raw);
}

/// Size of a property block with its length prefix.
pub(crate) fn properties_len(raw: &[u8]) -> usize {
    variable_int_len(remaining_u32(raw.len())) + raw.len()
}
