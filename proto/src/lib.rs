//! Sans-IO MQTT 5.0 and 3.1.1 codec for FlyTrap.
//!
//! This crate knows the wire format and nothing else: no sockets, no clock, no async. The
//! engine feeds it bytes and gets back packet boundaries ([`Framer`]), borrowed views of the
//! fields authorisation needs ([`Packet`] and friends), and encoders for the packets the proxy
//! writes itself (denials, CONNACK, SUBACK merges, the rewritten CONNECT).
//!
//! Decoding never allocates: every view borrows the frame it was parsed from. Every rule of
//! MQTT 5.0 and 3.1.1 that a proxy must enforce is checked on decode and reported as a typed
//! [`Error`] that maps to the reason code the peer should get ([`Error::reason_code`]). No input
//! can panic or loop; `tests/robustness.rs` feeds arbitrary and mutated packets to prove it.
//!
//! ```
//! use bytes::BytesMut;
//! use flytrap_proto::{Framer, Packet, Version};
//!
//! let mut buf = BytesMut::from(&b"\x30\x0a\x00\x03a/bhello\xc0\x00"[..]);
//! let framer = Framer::new(1024);
//! let frame = framer.poll_frame(&mut buf).unwrap().unwrap();
//! match Packet::decode(&frame, Version::V311).unwrap() {
//!     Packet::Publish(p) => assert_eq!((p.topic, p.payload), ("a/b", &b"hello"[..])),
//!     other => panic!("unexpected {other:?}"),
//! }
//! // The PINGREQ that followed is still in the buffer.
//! assert_eq!(&buf[..], b"\xc0\x00");
//! ```

// Input paths return typed errors; an unwrap there would be a crash on bad input.
#![warn(clippy::unwrap_used)]

mod ack;
mod alias;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod error;
mod framer;
mod packet;
mod packet_type;
mod properties;
mod publish;
mod reader;
mod reason;
mod rewrite;
mod subscribe;
pub mod topic;
mod types;
mod unsubscribe;
mod varint;
mod writer;

pub use ack::{Ack, AckKind};
pub use alias::TopicAliases;
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::Disconnect;
pub use error::{Error, ErrorKind, Field};
pub use framer::{FixedHeader, Framer};
pub use packet::Packet;
pub use packet_type::PacketType;
pub use properties::{Properties, Property, PropertyContext, PropertyId, encode_properties};
pub use publish::Publish;
pub use reason::ReasonCode;
pub use rewrite::{ConnectRewrite, rewrite_connect};
pub use subscribe::{RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions};
pub use topic::TopicError;
pub use types::{QoS, Version};
pub use unsubscribe::{UnsubAck, Unsubscribe};
pub use varint::{MAX_VARIABLE_INT, decode_variable_int, encode_variable_int, variable_int_len};

/// The largest packet MQTT can express: a 4-byte remaining length of 268,435,455 plus the
/// fixed header.
pub const MAX_PACKET_SIZE: usize = 1 + 4 + MAX_VARIABLE_INT as usize;
