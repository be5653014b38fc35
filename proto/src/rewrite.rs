//! The CONNECT rewriter: drops the credentials meant for the proxy and keeps every other byte
//! as the client sent it, so the broker sees the client's own CONNECT minus the signature.

use bytes::BufMut;

use crate::connect::FLAG_PASSWORD;
use crate::error::Error;
use crate::framer::FixedHeader;
use crate::packet::Packet;
use crate::properties::Property;
use crate::types::Version;
use crate::varint::{encode_variable_int, variable_int_len};

/// What to remove from a CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRewrite<'p> {
    /// CONNECT user properties (not will properties) whose name starts with this prefix are
    /// removed (5.0). An empty prefix removes none.
    pub strip_user_property_prefix: &'p str,
    /// Remove the password of a 3.1.1 CONNECT (and clear its flag).
    pub strip_v311_password: bool,
    /// Remove the Authentication Method and Data (5.0): the proxy ran the enhanced
    /// authentication itself, and the broker must not start one of its own.
    pub strip_authentication: bool,
}

impl ConnectRewrite<'static> {
    /// FlyTrap's rewrite: `flytrap-*` user properties, the 3.1.1 password (SPEC §1) and the
    /// Authentication Method and Data of the challenge scheme.
    pub const FLYTRAP: ConnectRewrite<'static> = ConnectRewrite {
        strip_user_property_prefix: "flytrap-",
        strip_v311_password: true,
        strip_authentication: true,
    };
}

/// Offset of `inner` inside `outer`; `inner` must be a sub-slice.
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    inner.as_ptr() as usize - outer.as_ptr() as usize
}

/// Writes `frame` (a whole CONNECT) to `out` with the parts named by `rewrite` removed.
/// Returns the number of bytes removed; 0 means `out` received an exact copy.
pub fn rewrite_connect(
    frame: &[u8],
    rewrite: &ConnectRewrite<'_>,
    out: &mut impl BufMut,
) -> Result<usize, Error> {
    let connect = match Packet::decode(frame, Version::V5)? {
        Packet::Connect(c) => c,
        other => {
            return Err(Error::InvalidFlags {
                packet_type: other.packet_type(),
                flags: frame[0] & 0x0f,
            });
        }
    };
    let header = FixedHeader::parse(frame)?.ok_or(Error::FrameLength)?;
    // Variable header before the properties: name (6), level, flags, keep alive (2).
    let flags_at = header.header_len + 7;
    let props_len_at = header.header_len + 10;

    let strip_props =
        connect.version == Version::V5 && !rewrite.strip_user_property_prefix.is_empty();
    let strip_password = connect.version == Version::V311 && rewrite.strip_v311_password;
    let strip_auth = connect.version == Version::V5 && rewrite.strip_authentication;
    let dropped = |p: &Property<'_>| match p {
        Property::UserProperty(k, _) => {
            strip_props && k.starts_with(rewrite.strip_user_property_prefix)
        }
        Property::AuthenticationMethod(_) | Property::AuthenticationData(_) => strip_auth,
        _ => false,
    };

    let removed_props: usize = connect
        .properties
        .iter_raw()
        .filter(|(p, _)| dropped(p))
        .map(|(_, raw)| raw.len())
        .sum();
    let password_len = match connect.password {
        Some(p) if strip_password => 2 + p.len(),
        _ => 0,
    };
    if removed_props == 0 && password_len == 0 {
        out.put_slice(frame);
        return Ok(0);
    }

    let props = connect.properties.as_bytes();
    let (props_start, props_end, new_props_len) = if connect.version == Version::V5 {
        let start = offset_in(frame, props);
        (start, start + props.len(), props.len() - removed_props)
    } else {
        (props_len_at, props_len_at, 0)
    };
    let old_props_header = props_start - props_len_at;
    let new_props_header = if connect.version == Version::V5 {
        variable_int_len(new_props_len as u32)
    } else {
        0
    };
    let body_len = frame.len() - header.header_len;
    let new_body = body_len - old_props_header + new_props_header - removed_props - password_len;

    out.put_u8(frame[0]);
    encode_variable_int(new_body as u32, out);
    out.put_slice(&frame[header.header_len..flags_at]);
    let flags = frame[flags_at];
    out.put_u8(if password_len > 0 {
        flags & !FLAG_PASSWORD
    } else {
        flags
    });
    out.put_slice(&frame[flags_at + 1..props_len_at]);
    if connect.version == Version::V5 {
        encode_variable_int(new_props_len as u32, out);
        for (_, raw) in connect.properties.iter_raw().filter(|(p, _)| !dropped(p)) {
            out.put_slice(raw);
        }
    }
    // The password is the last field: everything after the properties up to it is kept.
    out.put_slice(&frame[props_end..frame.len() - password_len]);
    Ok(frame.len() - (1 + variable_int_len(new_body as u32) + new_body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Connect;
    use crate::Will;
    use crate::properties::{Properties, PropertyContext, encode_properties};
    use crate::types::QoS;

    fn connect_v5(props: &[Property<'_>], raw: &mut Vec<u8>) -> Vec<u8> {
        encode_properties(props, raw);
        let mut will_raw = Vec::new();
        encode_properties(
            &[Property::UserProperty("flytrap-keep", "will")],
            &mut will_raw,
        );
        let c = Connect {
            version: Version::V5,
            clean_start: true,
            keep_alive: 60,
            properties: Properties::parse_raw(raw, PropertyContext::Connect).unwrap(),
            client_id: "sensor-1",
            will: Some(Will {
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::parse_raw(&will_raw, PropertyContext::Will).unwrap(),
                topic: "w",
                payload: b"bye",
            }),
            username: Some("user"),
            password: Some(b"secret"),
        };
        let mut out = Vec::new();
        c.encode(&mut out);
        out
    }

    #[test]
    fn strips_flytrap_properties_only() {
        let mut raw = Vec::new();
        let frame = connect_v5(
            &[
                Property::SessionExpiryInterval(5),
                Property::UserProperty("flytrap-address", "0xabc"),
                Property::UserProperty("app", "1"),
                Property::UserProperty("flytrap-signature", "0xdef"),
                Property::ReceiveMaximum(10),
            ],
            &mut raw,
        );
        let mut out = Vec::new();
        let removed = rewrite_connect(&frame, &ConnectRewrite::FLYTRAP, &mut out).unwrap();
        assert_eq!(removed, frame.len() - out.len());

        let Ok(Packet::Connect(c)) = Packet::decode(&out, Version::V5) else {
            panic!("rewritten CONNECT does not decode");
        };
        assert_eq!(
            c.properties.iter().collect::<Vec<_>>(),
            [
                Property::SessionExpiryInterval(5),
                Property::UserProperty("app", "1"),
                Property::ReceiveMaximum(10)
            ]
        );
        // Will properties, user name and the 5.0 password are untouched.
        let will = c.will.unwrap();
        assert_eq!(will.properties.user_property("flytrap-keep"), Some("will"));
        assert_eq!(
            (c.username, c.password),
            (Some("user"), Some(&b"secret"[..]))
        );
        assert_eq!(c.client_id, "sensor-1");
    }

    #[test]
    fn strips_the_authentication_method_and_data() {
        let mut raw = Vec::new();
        let frame = connect_v5(
            &[
                Property::AuthenticationMethod("flytrap-siwe-v1"),
                Property::UserProperty("app", "1"),
                Property::AuthenticationData(b"0x1a642f0e3c3af545e7acbd38b07251b3990914f1"),
            ],
            &mut raw,
        );
        let mut out = Vec::new();
        rewrite_connect(&frame, &ConnectRewrite::FLYTRAP, &mut out).unwrap();
        let Ok(Packet::Connect(c)) = Packet::decode(&out, Version::V5) else {
            panic!("rewritten CONNECT does not decode");
        };
        assert_eq!(
            c.properties.iter().collect::<Vec<_>>(),
            [Property::UserProperty("app", "1")]
        );
        // Kept when the rewrite does not ask for it.
        let keep = ConnectRewrite {
            strip_authentication: false,
            ..ConnectRewrite::FLYTRAP
        };
        let mut out = Vec::new();
        assert_eq!(rewrite_connect(&frame, &keep, &mut out), Ok(0));
        assert_eq!(out, frame);
    }

    #[test]
    fn no_match_is_an_exact_copy() {
        let mut raw = Vec::new();
        let frame = connect_v5(&[Property::UserProperty("app", "1")], &mut raw);
        let mut out = Vec::new();
        assert_eq!(
            rewrite_connect(&frame, &ConnectRewrite::FLYTRAP, &mut out),
            Ok(0)
        );
        assert_eq!(out, frame);
    }

    #[test]
    fn v311_password_is_removed() {
        let c = Connect {
            version: Version::V311,
            clean_start: false,
            keep_alive: 10,
            properties: Properties::EMPTY,
            client_id: "dev",
            will: None,
            username: Some("0x1a642f0e3c3af545e7acbd38b07251b3990914f1"),
            password: Some(b"1700000000:0xsig"),
        };
        let mut frame = Vec::new();
        c.encode(&mut frame);
        let mut out = Vec::new();
        rewrite_connect(&frame, &ConnectRewrite::FLYTRAP, &mut out).unwrap();
        let expected = Connect {
            password: None,
            ..c
        };
        let mut want = Vec::new();
        expected.encode(&mut want);
        assert_eq!(out, want);
    }

    #[test]
    fn remaining_length_shrinks_across_a_varint_boundary() {
        // 130 bytes of properties, of which a 20-byte flytrap one goes: the remaining length
        // drops below 128 and its encoding from two bytes to one.
        let long = "x".repeat(100);
        let mut raw = Vec::new();
        let frame = connect_v5(
            &[Property::UserProperty("flytrap-address", &long)],
            &mut raw,
        );
        let mut out = Vec::new();
        rewrite_connect(&frame, &ConnectRewrite::FLYTRAP, &mut out).unwrap();
        let Ok(Packet::Connect(c)) = Packet::decode(&out, Version::V5) else {
            panic!("rewritten CONNECT does not decode");
        };
        assert!(c.properties.is_empty());
        assert!(out.len() < 128);
    }
}
