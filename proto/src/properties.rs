//! MQTT 5.0 properties: validated once on decode, then read through a borrowing iterator.

use bytes::BufMut;

use crate::error::{Error, Field};
use crate::packet_type::PacketType;
use crate::reader::Reader;
use crate::varint::{encode_variable_int, variable_int_len};
use crate::writer;

/// Where a property block sits; each property may appear only in some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyContext {
    /// CONNECT properties.
    Connect,
    /// Will properties in the CONNECT payload.
    Will,
    /// CONNACK properties.
    ConnAck,
    /// PUBLISH properties.
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP properties.
    PubAck,
    /// SUBSCRIBE properties.
    Subscribe,
    /// SUBACK properties.
    SubAck,
    /// UNSUBSCRIBE properties.
    Unsubscribe,
    /// UNSUBACK properties.
    UnsubAck,
    /// DISCONNECT properties.
    Disconnect,
    /// AUTH properties.
    Auth,
}

impl PropertyContext {
    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The packet type that carries this block (CONNECT for will properties).
    pub fn packet_type(self) -> PacketType {
        match self {
            PropertyContext::Connect | PropertyContext::Will => PacketType::Connect,
            PropertyContext::ConnAck => PacketType::ConnAck,
            PropertyContext::Publish => PacketType::Publish,
            PropertyContext::PubAck => PacketType::PubAck,
            PropertyContext::Subscribe => PacketType::Subscribe,
            PropertyContext::SubAck => PacketType::SubAck,
            PropertyContext::Unsubscribe => PacketType::Unsubscribe,
            PropertyContext::UnsubAck => PacketType::UnsubAck,
            PropertyContext::Disconnect => PacketType::Disconnect,
            PropertyContext::Auth => PacketType::Auth,
        }
    }
}

/// A property identifier defined by MQTT 5.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQos = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

/// How a property's value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Byte,
    TwoByte,
    FourByte,
    VarInt,
    Utf8,
    Binary,
    Utf8Pair,
}

impl PropertyId {
    /// Looks up an identifier.
    pub fn from_u32(id: u32) -> Option<PropertyId> {
        use PropertyId::*;
        Some(match id {
            0x01 => PayloadFormatIndicator,
            0x02 => MessageExpiryInterval,
            0x03 => ContentType,
            0x08 => ResponseTopic,
            0x09 => CorrelationData,
            0x0B => SubscriptionIdentifier,
            0x11 => SessionExpiryInterval,
            0x12 => AssignedClientIdentifier,
            0x13 => ServerKeepAlive,
            0x15 => AuthenticationMethod,
            0x16 => AuthenticationData,
            0x17 => RequestProblemInformation,
            0x18 => WillDelayInterval,
            0x19 => RequestResponseInformation,
            0x1A => ResponseInformation,
            0x1C => ServerReference,
            0x1F => ReasonString,
            0x21 => ReceiveMaximum,
            0x22 => TopicAliasMaximum,
            0x23 => TopicAlias,
            0x24 => MaximumQos,
            0x25 => RetainAvailable,
            0x26 => UserProperty,
            0x27 => MaximumPacketSize,
            0x28 => WildcardSubscriptionAvailable,
            0x29 => SubscriptionIdentifierAvailable,
            0x2A => SharedSubscriptionAvailable,
            _ => return None,
        })
    }

    fn shape(self) -> Shape {
        use PropertyId::*;
        match self {
            PayloadFormatIndicator
            | RequestProblemInformation
            | RequestResponseInformation
            | MaximumQos
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => Shape::Byte,
            ServerKeepAlive | ReceiveMaximum | TopicAliasMaximum | TopicAlias => Shape::TwoByte,
            MessageExpiryInterval
            | SessionExpiryInterval
            | WillDelayInterval
            | MaximumPacketSize => Shape::FourByte,
            SubscriptionIdentifier => Shape::VarInt,
            ContentType
            | ResponseTopic
            | AssignedClientIdentifier
            | AuthenticationMethod
            | ResponseInformation
            | ServerReference
            | ReasonString => Shape::Utf8,
            CorrelationData | AuthenticationData => Shape::Binary,
            UserProperty => Shape::Utf8Pair,
        }
    }

    /// The contexts this property may appear in (table 2-4 of MQTT 5.0).
    fn allowed(self) -> u16 {
        use PropertyContext as C;
        use PropertyId::*;
        let ctx: &[C] = match self {
            PayloadFormatIndicator
            | MessageExpiryInterval
            | ContentType
            | ResponseTopic
            | CorrelationData => &[C::Publish, C::Will],
            SubscriptionIdentifier => &[C::Publish, C::Subscribe],
            SessionExpiryInterval => &[C::Connect, C::ConnAck, C::Disconnect],
            AssignedClientIdentifier
            | ServerKeepAlive
            | ResponseInformation
            | MaximumQos
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => &[C::ConnAck],
            AuthenticationMethod | AuthenticationData => &[C::Connect, C::ConnAck, C::Auth],
            RequestProblemInformation | RequestResponseInformation => &[C::Connect],
            WillDelayInterval => &[C::Will],
            ServerReference => &[C::ConnAck, C::Disconnect],
            ReasonString => &[
                C::ConnAck,
                C::PubAck,
                C::SubAck,
                C::UnsubAck,
                C::Disconnect,
                C::Auth,
            ],
            ReceiveMaximum | TopicAliasMaximum | MaximumPacketSize => &[C::Connect, C::ConnAck],
            TopicAlias => &[C::Publish],
            UserProperty => return u16::MAX,
        };
        ctx.iter().fold(0, |acc, c| acc | c.bit())
    }

    /// Whether the property may appear more than once in `ctx`.
    fn repeatable(self, ctx: PropertyContext) -> bool {
        self == PropertyId::UserProperty
            || (self == PropertyId::SubscriptionIdentifier && ctx == PropertyContext::Publish)
    }
}

/// One property, borrowing its strings and binary data from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Property<'a> {
    PayloadFormatIndicator(u8),
    MessageExpiryInterval(u32),
    ContentType(&'a str),
    ResponseTopic(&'a str),
    CorrelationData(&'a [u8]),
    SubscriptionIdentifier(u32),
    SessionExpiryInterval(u32),
    AssignedClientIdentifier(&'a str),
    ServerKeepAlive(u16),
    AuthenticationMethod(&'a str),
    AuthenticationData(&'a [u8]),
    RequestProblemInformation(u8),
    WillDelayInterval(u32),
    RequestResponseInformation(u8),
    ResponseInformation(&'a str),
    ServerReference(&'a str),
    ReasonString(&'a str),
    ReceiveMaximum(u16),
    TopicAliasMaximum(u16),
    TopicAlias(u16),
    MaximumQos(u8),
    RetainAvailable(u8),
    UserProperty(&'a str, &'a str),
    MaximumPacketSize(u32),
    WildcardSubscriptionAvailable(u8),
    SubscriptionIdentifierAvailable(u8),
    SharedSubscriptionAvailable(u8),
}

impl<'a> Property<'a> {
    /// The property's identifier.
    pub fn id(&self) -> PropertyId {
        use Property as P;
        use PropertyId as I;
        match self {
            P::PayloadFormatIndicator(_) => I::PayloadFormatIndicator,
            P::MessageExpiryInterval(_) => I::MessageExpiryInterval,
            P::ContentType(_) => I::ContentType,
            P::ResponseTopic(_) => I::ResponseTopic,
            P::CorrelationData(_) => I::CorrelationData,
            P::SubscriptionIdentifier(_) => I::SubscriptionIdentifier,
            P::SessionExpiryInterval(_) => I::SessionExpiryInterval,
            P::AssignedClientIdentifier(_) => I::AssignedClientIdentifier,
            P::ServerKeepAlive(_) => I::ServerKeepAlive,
            P::AuthenticationMethod(_) => I::AuthenticationMethod,
            P::AuthenticationData(_) => I::AuthenticationData,
            P::RequestProblemInformation(_) => I::RequestProblemInformation,
            P::WillDelayInterval(_) => I::WillDelayInterval,
            P::RequestResponseInformation(_) => I::RequestResponseInformation,
            P::ResponseInformation(_) => I::ResponseInformation,
            P::ServerReference(_) => I::ServerReference,
            P::ReasonString(_) => I::ReasonString,
            P::ReceiveMaximum(_) => I::ReceiveMaximum,
            P::TopicAliasMaximum(_) => I::TopicAliasMaximum,
            P::TopicAlias(_) => I::TopicAlias,
            P::MaximumQos(_) => I::MaximumQos,
            P::RetainAvailable(_) => I::RetainAvailable,
            P::UserProperty(..) => I::UserProperty,
            P::MaximumPacketSize(_) => I::MaximumPacketSize,
            P::WildcardSubscriptionAvailable(_) => I::WildcardSubscriptionAvailable,
            P::SubscriptionIdentifierAvailable(_) => I::SubscriptionIdentifierAvailable,
            P::SharedSubscriptionAvailable(_) => I::SharedSubscriptionAvailable,
        }
    }

    /// Reads one property at the reader's position.
    fn read(r: &mut Reader<'a>) -> Result<Property<'a>, Error> {
        use Property as P;
        use PropertyId as I;
        let raw_id = r.variable_int(Field::Property)?;
        let id = PropertyId::from_u32(raw_id).ok_or(Error::UnknownProperty(raw_id))?;
        let f = Field::Property;
        Ok(match id.shape() {
            Shape::Byte => {
                let v = r.u8(f)?;
                match id {
                    I::PayloadFormatIndicator => P::PayloadFormatIndicator(v),
                    I::RequestProblemInformation => P::RequestProblemInformation(v),
                    I::RequestResponseInformation => P::RequestResponseInformation(v),
                    I::MaximumQos => P::MaximumQos(v),
                    I::RetainAvailable => P::RetainAvailable(v),
                    I::WildcardSubscriptionAvailable => P::WildcardSubscriptionAvailable(v),
                    I::SubscriptionIdentifierAvailable => P::SubscriptionIdentifierAvailable(v),
                    _ => P::SharedSubscriptionAvailable(v),
                }
            }
            Shape::TwoByte => {
                let v = r.u16(f)?;
                match id {
                    I::ServerKeepAlive => P::ServerKeepAlive(v),
                    I::ReceiveMaximum => P::ReceiveMaximum(v),
                    I::TopicAliasMaximum => P::TopicAliasMaximum(v),
                    _ => P::TopicAlias(v),
                }
            }
            Shape::FourByte => {
                let v = r.u32(f)?;
                match id {
                    I::MessageExpiryInterval => P::MessageExpiryInterval(v),
                    I::SessionExpiryInterval => P::SessionExpiryInterval(v),
                    I::WillDelayInterval => P::WillDelayInterval(v),
                    _ => P::MaximumPacketSize(v),
                }
            }
            Shape::VarInt => P::SubscriptionIdentifier(r.variable_int(f)?),
            Shape::Utf8 => {
                let v = r.utf8(f)?;
                match id {
                    I::ContentType => P::ContentType(v),
                    I::ResponseTopic => P::ResponseTopic(v),
                    I::AssignedClientIdentifier => P::AssignedClientIdentifier(v),
                    I::AuthenticationMethod => P::AuthenticationMethod(v),
                    I::ResponseInformation => P::ResponseInformation(v),
                    I::ServerReference => P::ServerReference(v),
                    _ => P::ReasonString(v),
                }
            }
            Shape::Binary => {
                let v = r.binary(f)?;
                match id {
                    I::CorrelationData => P::CorrelationData(v),
                    _ => P::AuthenticationData(v),
                }
            }
            Shape::Utf8Pair => P::UserProperty(r.utf8(f)?, r.utf8(f)?),
        })
    }

    /// Checks the value against its range.
    fn check_value(&self) -> Result<(), Error> {
        use Property as P;
        let ok = match *self {
            P::PayloadFormatIndicator(v)
            | P::RequestProblemInformation(v)
            | P::RequestResponseInformation(v)
            | P::MaximumQos(v)
            | P::RetainAvailable(v)
            | P::WildcardSubscriptionAvailable(v)
            | P::SubscriptionIdentifierAvailable(v)
            | P::SharedSubscriptionAvailable(v) => v <= 1,
            P::ReceiveMaximum(v) => v != 0,
            P::MaximumPacketSize(v) => v != 0,
            P::SubscriptionIdentifier(v) => v != 0,
            P::TopicAlias(0) => return Err(Error::TopicAliasZero),
            P::ResponseTopic(t) => crate::topic::validate_topic_name(t).is_ok(),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidPropertyValue(self.id() as u8))
        }
    }

    /// Size of the encoded property.
    pub fn encoded_len(&self) -> usize {
        use Property as P;
        1 + match *self {
            P::PayloadFormatIndicator(_)
            | P::RequestProblemInformation(_)
            | P::RequestResponseInformation(_)
            | P::MaximumQos(_)
            | P::RetainAvailable(_)
            | P::WildcardSubscriptionAvailable(_)
            | P::SubscriptionIdentifierAvailable(_)
            | P::SharedSubscriptionAvailable(_) => 1,
            P::ServerKeepAlive(_)
            | P::ReceiveMaximum(_)
            | P::TopicAliasMaximum(_)
            | P::TopicAlias(_) => 2,
            P::MessageExpiryInterval(_)
            | P::SessionExpiryInterval(_)
            | P::WillDelayInterval(_)
            | P::MaximumPacketSize(_) => 4,
            P::SubscriptionIdentifier(v) => variable_int_len(v),
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => 2 + s.len(),
            P::CorrelationData(b) | P::AuthenticationData(b) => 2 + b.len(),
            P::UserProperty(k, v) => 4 + k.len() + v.len(),
        }
    }

    /// Appends the encoded property.
    pub fn encode(&self, out: &mut impl BufMut) {
        use Property as P;
        out.put_u8(self.id() as u8);
        match *self {
            P::PayloadFormatIndicator(v)
            | P::RequestProblemInformation(v)
            | P::RequestResponseInformation(v)
            | P::MaximumQos(v)
            | P::RetainAvailable(v)
            | P::WildcardSubscriptionAvailable(v)
            | P::SubscriptionIdentifierAvailable(v)
            | P::SharedSubscriptionAvailable(v) => out.put_u8(v),
            P::ServerKeepAlive(v)
            | P::ReceiveMaximum(v)
            | P::TopicAliasMaximum(v)
            | P::TopicAlias(v) => out.put_u16(v),
            P::MessageExpiryInterval(v)
            | P::SessionExpiryInterval(v)
            | P::WillDelayInterval(v)
            | P::MaximumPacketSize(v) => out.put_u32(v),
            P::SubscriptionIdentifier(v) => encode_variable_int(v, out),
            P::ContentType(s)
            | P::ResponseTopic(s)
            | P::AssignedClientIdentifier(s)
            | P::AuthenticationMethod(s)
            | P::ResponseInformation(s)
            | P::ServerReference(s)
            | P::ReasonString(s) => writer::binary(s.as_bytes(), out),
            P::CorrelationData(b) | P::AuthenticationData(b) => writer::binary(b, out),
            P::UserProperty(k, v) => {
                writer::binary(k.as_bytes(), out);
                writer::binary(v.as_bytes(), out);
            }
        }
    }
}

/// Encodes a list of properties as a raw block (without its length prefix), ready for
/// [`Properties::parse_raw`].
pub fn encode_properties(list: &[Property<'_>], out: &mut impl BufMut) {
    for p in list {
        p.encode(out);
    }
}

/// A validated block of properties, borrowed from the packet (without its length prefix).
///
/// Empty for MQTT 3.1.1 packets, which have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Properties<'a> {
    raw: &'a [u8],
}

impl<'a> Properties<'a> {
    /// No properties.
    pub const EMPTY: Properties<'static> = Properties { raw: &[] };

    /// Validates a raw block of properties for `ctx`: known identifiers, allowed in `ctx`,
    /// single-valued ones once, values in range, strings well-formed.
    pub fn parse_raw(raw: &'a [u8], ctx: PropertyContext) -> Result<Properties<'a>, Error> {
        let mut r = Reader::new(raw, ctx.packet_type());
        Properties::validate(&mut r, ctx, |_| Ok(()))?;
        Ok(Properties { raw })
    }

    /// Reads a length-prefixed block for `ctx` and validates it, calling `visit` on each
    /// property so that a decoder can pick out the ones it needs in the same pass.
    pub(crate) fn read(
        r: &mut Reader<'a>,
        ctx: PropertyContext,
        visit: impl FnMut(&Property<'a>) -> Result<(), Error>,
    ) -> Result<Properties<'a>, Error> {
        let len = r.variable_int(Field::PropertyLength)?;
        let raw = r.take(len as usize, Field::PropertyLength)?;
        let mut inner = Reader::new(raw, r.packet_type());
        Properties::validate(&mut inner, ctx, visit)?;
        Ok(Properties { raw })
    }

    fn validate(
        r: &mut Reader<'a>,
        ctx: PropertyContext,
        mut visit: impl FnMut(&Property<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // Identifiers are all below 64: one bit each records what has been seen.
        let mut seen: u64 = 0;
        while !r.is_empty() {
            let p = Property::read(r)?;
            let id = p.id();
            if id.allowed() & ctx.bit() == 0 {
                return Err(Error::PropertyNotAllowed {
                    id: id as u8,
                    packet_type: ctx.packet_type(),
                });
            }
            let bit = 1u64 << (id as u8);
            if seen & bit != 0 && !id.repeatable(ctx) {
                return Err(Error::DuplicateProperty(id as u8));
            }
            seen |= bit;
            p.check_value()?;
            visit(&p)?;
        }
        let method = 1u64 << (PropertyId::AuthenticationMethod as u8);
        let data = 1u64 << (PropertyId::AuthenticationData as u8);
        if seen & data != 0 && seen & method == 0 {
            return Err(Error::AuthDataWithoutMethod);
        }
        Ok(())
    }

    /// The raw bytes (no length prefix).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The properties in wire order.
    pub fn iter(&self) -> PropertyIter<'a> {
        PropertyIter {
            reader: Reader::new(self.raw, PacketType::Connect),
        }
    }

    /// The properties in wire order, each with its raw encoding.
    pub fn iter_raw(&self) -> impl Iterator<Item = (Property<'a>, &'a [u8])> + 'a {
        let raw = self.raw;
        let mut reader = Reader::new(raw, PacketType::Connect);
        core::iter::from_fn(move || {
            let start = reader.position();
            let p = Property::read(&mut reader).ok()?;
            Some((p, &raw[start..reader.position()]))
        })
    }

    /// The user properties, in order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.iter().filter_map(|p| match p {
            Property::UserProperty(k, v) => Some((k, v)),
            _ => None,
        })
    }

    /// The first user property with this name.
    pub fn user_property(&self, name: &str) -> Option<&'a str> {
        self.user_properties()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Size on the wire, length prefix included.
    pub fn wire_len(&self) -> usize {
        writer::properties_len(self.raw)
    }

    pub(crate) fn write(&self, out: &mut impl BufMut) {
        writer::properties(self.raw, out);
    }
}

/// Iterator over a validated property block.
#[derive(Debug)]
pub struct PropertyIter<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = Property<'a>;

    fn next(&mut self) -> Option<Property<'a>> {
        // The block was validated when it was parsed, so reading cannot fail here; stopping
        // on an error keeps this total anyway.
        Property::read(&mut self.reader).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(list: &[Property<'_>]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_properties(list, &mut v);
        v
    }

    #[test]
    fn round_trip_every_property() {
        let all = [
            Property::PayloadFormatIndicator(1),
            Property::MessageExpiryInterval(60),
            Property::ContentType("text/plain"),
            Property::ResponseTopic("r/t"),
            Property::CorrelationData(b"\x00\x01"),
            Property::SubscriptionIdentifier(268_435_455),
            Property::UserProperty("k", "v"),
            Property::UserProperty("k", "w"),
        ];
        let bytes = raw(&all);
        let props = Properties::parse_raw(&bytes, PropertyContext::Publish).unwrap();
        assert_eq!(props.iter().collect::<Vec<_>>(), all);
        assert_eq!(
            bytes.len(),
            all.iter().map(|p| p.encoded_len()).sum::<usize>()
        );
        assert_eq!(props.user_property("k"), Some("v"));
    }

    #[test]
    fn not_allowed_in_context() {
        let bytes = raw(&[Property::TopicAlias(3)]);
        assert_eq!(
            Properties::parse_raw(&bytes, PropertyContext::Connect),
            Err(Error::PropertyNotAllowed {
                id: 0x23,
                packet_type: PacketType::Connect
            })
        );
    }

    #[test]
    fn duplicates() {
        let bytes = raw(&[Property::ReceiveMaximum(1), Property::ReceiveMaximum(2)]);
        assert_eq!(
            Properties::parse_raw(&bytes, PropertyContext::Connect),
            Err(Error::DuplicateProperty(0x21))
        );
        // Subscription identifiers repeat in PUBLISH but not in SUBSCRIBE.
        let bytes = raw(&[
            Property::SubscriptionIdentifier(1),
            Property::SubscriptionIdentifier(2),
        ]);
        assert!(Properties::parse_raw(&bytes, PropertyContext::Publish).is_ok());
        assert_eq!(
            Properties::parse_raw(&bytes, PropertyContext::Subscribe),
            Err(Error::DuplicateProperty(0x0B))
        );
    }

    #[test]
    fn values_out_of_range() {
        for (p, ctx, err) in [
            (
                Property::ReceiveMaximum(0),
                PropertyContext::Connect,
                Error::InvalidPropertyValue(0x21),
            ),
            (
                Property::PayloadFormatIndicator(2),
                PropertyContext::Publish,
                Error::InvalidPropertyValue(0x01),
            ),
            (
                Property::SubscriptionIdentifier(0),
                PropertyContext::Subscribe,
                Error::InvalidPropertyValue(0x0B),
            ),
            (
                Property::TopicAlias(0),
                PropertyContext::Publish,
                Error::TopicAliasZero,
            ),
            (
                Property::ResponseTopic("a/+"),
                PropertyContext::Publish,
                Error::InvalidPropertyValue(0x08),
            ),
            (
                Property::AuthenticationData(b"x"),
                PropertyContext::Connect,
                Error::AuthDataWithoutMethod,
            ),
        ] {
            assert_eq!(Properties::parse_raw(&raw(&[p]), ctx), Err(err), "{p:?}");
        }
    }

    #[test]
    fn unknown_and_truncated() {
        assert_eq!(
            Properties::parse_raw(&[0x7f, 0], PropertyContext::Publish),
            Err(Error::UnknownProperty(0x7f))
        );
        assert!(matches!(
            Properties::parse_raw(&[0x02, 0, 0], PropertyContext::Publish),
            Err(Error::Truncated { .. })
        ));
    }
}
