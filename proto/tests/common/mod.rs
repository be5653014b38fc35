//! Generators of valid MQTT packets for the property tests.
//!
//! Strategies produce owned "seeds"; `Seed::encode` turns one into wire bytes through the
//! crate's own encoders, borrowing from the seed.

#![allow(dead_code, unreachable_pub, clippy::type_complexity)]

use flytrap_proto::{
    Ack, AckKind, Auth, ConnAck, Connect, Disconnect, Properties, Property, PropertyContext,
    Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions,
    UnsubAck, Unsubscribe, Version, Will, encode_properties,
};
use proptest::prelude::*;

/// A property before it is tied to a context: a selector and raw values.
#[derive(Debug, Clone)]
pub struct PropSeed {
    sel: u8,
    n: u32,
    s1: String,
    s2: String,
    bin: Vec<u8>,
}

fn mqtt_string(max: usize) -> impl Strategy<Value = String> {
    // Any printable text, multi-byte characters included; never U+0000.
    proptest::string::string_regex(&format!("[a-zA-Z0-9 _\\-é€😀]{{0,{max}}}")).expect("regex")
}

fn topic_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(\\$?[a-z0-9é]{0,4})(/[a-z0-9é]{0,4}){0,3}")
        .expect("regex")
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn topic_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        3 => proptest::string::string_regex("[a-z0-9]{0,3}").expect("regex"),
        1 => Just("+".to_string()),
    ];
    (
        proptest::collection::vec(level, 1..4),
        any::<bool>(),
        proptest::option::of(proptest::string::string_regex("[a-z]{1,3}").expect("regex")),
    )
        .prop_map(|(levels, hash, share)| {
            let mut f = levels.join("/");
            if f.is_empty() {
                f.push('x');
            }
            if hash {
                f.push_str("/#");
            }
            match share {
                Some(g) => format!("$share/{g}/{f}"),
                None => f,
            }
        })
}

fn prop_seed() -> impl Strategy<Value = PropSeed> {
    (
        any::<u8>(),
        any::<u32>(),
        mqtt_string(6),
        mqtt_string(6),
        proptest::collection::vec(any::<u8>(), 0..6),
    )
        .prop_map(|(sel, n, s1, s2, bin)| PropSeed {
            sel,
            n,
            s1,
            s2,
            bin,
        })
}

fn prop_seeds() -> impl Strategy<Value = Vec<PropSeed>> {
    proptest::collection::vec(prop_seed(), 0..5)
}

impl PropSeed {
    /// The property this seed stands for in `ctx`, with values forced into range.
    fn property<'a>(&'a self, ctx: PropertyContext) -> Property<'a> {
        use Property as P;
        let n = self.n;
        let flag = (n & 1) as u8;
        let nz16 = (n as u16).max(1);
        let nz32 = n.max(1);
        let sub_id = (n % 268_435_455).max(1);
        let (s1, s2, bin) = (self.s1.as_str(), self.s2.as_str(), self.bin.as_slice());
        let menu: Vec<Property<'a>> = match ctx {
            PropertyContext::Connect => vec![
                P::SessionExpiryInterval(n),
                P::ReceiveMaximum(nz16),
                P::MaximumPacketSize(nz32),
                P::TopicAliasMaximum(n as u16),
                P::RequestResponseInformation(flag),
                P::RequestProblemInformation(flag),
                P::AuthenticationMethod(s1),
            ],
            PropertyContext::Will => vec![
                P::WillDelayInterval(n),
                P::PayloadFormatIndicator(flag),
                P::MessageExpiryInterval(n),
                P::ContentType(s1),
                P::CorrelationData(bin),
            ],
            PropertyContext::Publish => vec![
                P::PayloadFormatIndicator(flag),
                P::MessageExpiryInterval(n),
                P::ContentType(s1),
                P::CorrelationData(bin),
                P::SubscriptionIdentifier(sub_id),
                P::TopicAlias(nz16),
            ],
            PropertyContext::ConnAck => vec![
                P::SessionExpiryInterval(n),
                P::ReceiveMaximum(nz16),
                P::MaximumQos(flag),
                P::RetainAvailable(flag),
                P::MaximumPacketSize(nz32),
                P::AssignedClientIdentifier(s1),
                P::TopicAliasMaximum(n as u16),
                P::ReasonString(s2),
                P::WildcardSubscriptionAvailable(flag),
                P::SubscriptionIdentifierAvailable(flag),
                P::SharedSubscriptionAvailable(flag),
                P::ServerKeepAlive(n as u16),
                P::ResponseInformation(s1),
                P::ServerReference(s2),
            ],
            PropertyContext::Subscribe => vec![P::SubscriptionIdentifier(sub_id)],
            PropertyContext::Disconnect => vec![
                P::SessionExpiryInterval(n),
                P::ReasonString(s1),
                P::ServerReference(s2),
            ],
            PropertyContext::Auth => vec![P::AuthenticationMethod(s1), P::ReasonString(s2)],
            PropertyContext::PubAck | PropertyContext::SubAck | PropertyContext::UnsubAck => {
                vec![P::ReasonString(s1)]
            }
            PropertyContext::Unsubscribe => vec![],
        };
        // One in three is a user property, which every context allows and which may repeat.
        let idx = usize::from(self.sel) % (menu.len() + (menu.len() / 2).max(1));
        menu.get(idx).copied().unwrap_or(P::UserProperty(s1, s2))
    }
}

/// Encodes the seeds as a raw property block valid in `ctx` (repeats of single-valued
/// properties are dropped).
pub fn raw_properties(seeds: &[PropSeed], ctx: PropertyContext) -> Vec<u8> {
    let mut list: Vec<Property<'_>> = Vec::new();
    for s in seeds {
        let p = s.property(ctx);
        let repeatable = matches!(p, Property::UserProperty(..))
            || (matches!(p, Property::SubscriptionIdentifier(_))
                && ctx == PropertyContext::Publish);
        if repeatable || !list.iter().any(|q| q.id() == p.id()) {
            list.push(p);
        }
    }
    let mut raw = Vec::new();
    encode_properties(&list, &mut raw);
    raw
}

fn props<'a>(raw: &'a [u8], ctx: PropertyContext) -> Properties<'a> {
    Properties::parse_raw(raw, ctx).expect("generated properties are valid")
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

/// A valid packet of any type, owned.
#[derive(Debug, Clone)]
pub enum Seed {
    Connect {
        v5: bool,
        clean: bool,
        keep_alive: u16,
        props: Vec<PropSeed>,
        client_id: String,
        will: Option<(QoS, bool, Vec<PropSeed>, String, Vec<u8>)>,
        username: Option<String>,
        password: Option<Vec<u8>>,
    },
    ConnAck {
        session_present: bool,
        reason: u8,
        props: Vec<PropSeed>,
    },
    Publish {
        qos: QoS,
        dup: bool,
        retain: bool,
        topic: String,
        packet_id: u16,
        props: Vec<PropSeed>,
        payload: Vec<u8>,
    },
    Ack {
        kind: u8,
        packet_id: u16,
        reason: u8,
        props: Vec<PropSeed>,
    },
    Subscribe {
        packet_id: u16,
        props: Vec<PropSeed>,
        subs: Vec<(String, QoS, bool, bool, u8)>,
    },
    SubAck {
        packet_id: u16,
        props: Vec<PropSeed>,
        codes: Vec<u8>,
    },
    Unsubscribe {
        packet_id: u16,
        props: Vec<PropSeed>,
        filters: Vec<String>,
    },
    UnsubAck {
        packet_id: u16,
        props: Vec<PropSeed>,
        codes: Vec<u8>,
    },
    PingReq,
    PingResp,
    Disconnect {
        reason: u8,
        props: Vec<PropSeed>,
    },
    Auth {
        reason: u8,
        props: Vec<PropSeed>,
    },
}

pub fn seed() -> impl Strategy<Value = Seed> {
    let connect = (
        any::<bool>(),
        any::<bool>(),
        any::<u16>(),
        prop_seeds(),
        mqtt_string(23),
        proptest::option::of((
            qos(),
            any::<bool>(),
            prop_seeds(),
            topic_name(),
            proptest::collection::vec(any::<u8>(), 0..20),
        )),
        proptest::option::of(mqtt_string(12)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
    )
        .prop_map(
            |(v5, clean, keep_alive, props, client_id, will, username, password)| {
                // 3.1.1 forbids a password without a user name.
                let username = if !v5 && password.is_some() && username.is_none() {
                    Some(String::new())
                } else {
                    username
                };
                Seed::Connect {
                    v5,
                    clean,
                    keep_alive,
                    props,
                    client_id,
                    will,
                    username,
                    password,
                }
            },
        );
    let publish = (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        prop_seeds(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(
            |(qos, dup, retain, topic, packet_id, props, payload)| Seed::Publish {
                dup: dup && qos != QoS::AtMostOnce,
                qos,
                retain,
                topic,
                packet_id,
                props,
                payload,
            },
        );
    let subscribe = (
        packet_id(),
        prop_seeds(),
        proptest::collection::vec(
            (topic_filter(), qos(), any::<bool>(), any::<bool>(), 0u8..3),
            1..4,
        ),
    )
        .prop_map(|(packet_id, props, subs)| Seed::Subscribe {
            packet_id,
            props,
            subs,
        });
    let suback_code = prop_oneof![
        Just(0u8),
        Just(1),
        Just(2),
        Just(0x80),
        Just(0x87),
        Just(0x8F),
        Just(0x97)
    ];
    prop_oneof![
        connect,
        (any::<bool>(), any::<u8>(), prop_seeds()).prop_map(|(session_present, reason, props)| {
            Seed::ConnAck {
                session_present,
                reason,
                props,
            }
        }),
        publish,
        (0u8..4, packet_id(), any::<u8>(), prop_seeds()).prop_map(
            |(kind, packet_id, reason, props)| Seed::Ack {
                kind,
                packet_id,
                reason,
                props
            }
        ),
        subscribe,
        (
            packet_id(),
            prop_seeds(),
            proptest::collection::vec(suback_code, 1..5)
        )
            .prop_map(|(packet_id, props, codes)| Seed::SubAck {
                packet_id,
                props,
                codes
            }),
        (
            packet_id(),
            prop_seeds(),
            proptest::collection::vec(topic_filter(), 1..4)
        )
            .prop_map(|(packet_id, props, filters)| Seed::Unsubscribe {
                packet_id,
                props,
                filters
            }),
        (
            packet_id(),
            prop_seeds(),
            proptest::collection::vec(prop_oneof![Just(0u8), Just(0x11), Just(0x87)], 1..4)
        )
            .prop_map(|(packet_id, props, codes)| Seed::UnsubAck {
                packet_id,
                props,
                codes
            }),
        Just(Seed::PingReq),
        Just(Seed::PingResp),
        (any::<u8>(), prop_seeds()).prop_map(|(reason, props)| Seed::Disconnect { reason, props }),
        (prop_oneof![Just(0u8), Just(0x18), Just(0x19)], prop_seeds())
            .prop_map(|(reason, props)| Seed::Auth { reason, props }),
    ]
}

impl Seed {
    /// Whether this seed only exists in MQTT 5.0.
    pub fn v5_only(&self) -> bool {
        matches!(self, Seed::Auth { .. })
    }

    /// The version a CONNECT seed speaks, or `other` for any other packet.
    pub fn version(&self, other: Version) -> Version {
        match self {
            Seed::Connect { v5: true, .. } => Version::V5,
            Seed::Connect { v5: false, .. } => Version::V311,
            _ => other,
        }
    }

    /// Encodes the seed for `version` with the crate's encoders.
    pub fn encode(&self, version: Version) -> Vec<u8> {
        use PropertyContext as C;
        let mut out = Vec::new();
        match self {
            Seed::Connect {
                v5,
                clean,
                keep_alive,
                props: p,
                client_id,
                will,
                username,
                password,
            } => {
                let raw = raw_properties(p, C::Connect);
                let will_raw = will.as_ref().map(|w| raw_properties(&w.2, C::Will));
                let version = if *v5 { Version::V5 } else { Version::V311 };
                let empty_unless_v5 = |r: &'_ [u8]| if *v5 { r.to_vec() } else { Vec::new() };
                let raw = empty_unless_v5(&raw);
                let will_raw = will_raw.map(|r| empty_unless_v5(&r));
                Connect {
                    version,
                    clean_start: *clean,
                    keep_alive: *keep_alive,
                    properties: props(&raw, C::Connect),
                    client_id,
                    will: will.as_ref().map(|(qos, retain, _, topic, payload)| Will {
                        qos: *qos,
                        retain: *retain,
                        properties: props(will_raw.as_deref().unwrap_or_default(), C::Will),
                        topic,
                        payload,
                    }),
                    username: username.as_deref(),
                    password: password.as_deref(),
                }
                .encode(&mut out);
            }
            Seed::ConnAck {
                session_present,
                reason,
                props: p,
            } => {
                let raw = raw_properties(p, C::ConnAck);
                let reason = match version {
                    Version::V5 => ReasonCode(*reason),
                    Version::V311 => ReasonCode::from_v311_connack(reason % 6),
                };
                ConnAck {
                    session_present: *session_present,
                    reason,
                    properties: props(&raw, C::ConnAck),
                }
                .encode(version, &mut out);
            }
            Seed::Publish {
                qos,
                dup,
                retain,
                topic,
                packet_id,
                props: p,
                payload,
            } => {
                let raw = raw_properties(p, C::Publish);
                Publish {
                    dup: *dup,
                    qos: *qos,
                    retain: *retain,
                    topic,
                    packet_id: (*qos != QoS::AtMostOnce).then_some(*packet_id),
                    topic_alias: None,
                    properties: props(&raw, C::Publish),
                    payload,
                    payload_offset: 0,
                }
                .encode(version, &mut out);
            }
            Seed::Ack {
                kind,
                packet_id,
                reason,
                props: p,
            } => {
                let raw = raw_properties(p, C::PubAck);
                let kind = [
                    AckKind::PubAck,
                    AckKind::PubRec,
                    AckKind::PubRel,
                    AckKind::PubComp,
                ][usize::from(*kind)];
                Ack {
                    kind,
                    packet_id: *packet_id,
                    reason: ReasonCode(*reason),
                    properties: props(&raw, C::PubAck),
                }
                .encode(version, &mut out);
            }
            Seed::Subscribe {
                packet_id,
                props: p,
                subs,
            } => {
                let raw = raw_properties(p, C::Subscribe);
                let subs: Vec<Subscription<'_>> = subs
                    .iter()
                    .map(|(filter, qos, no_local, rap, rh)| {
                        let shared = filter.starts_with("$share/");
                        let options = match version {
                            Version::V311 => SubscriptionOptions::qos(*qos),
                            Version::V5 => SubscriptionOptions {
                                qos: *qos,
                                no_local: *no_local && !shared,
                                retain_as_published: *rap,
                                retain_handling: [
                                    RetainHandling::SendAtSubscribe,
                                    RetainHandling::SendIfNew,
                                    RetainHandling::DoNotSend,
                                ][usize::from(*rh)],
                            },
                        };
                        Subscription { filter, options }
                    })
                    .collect();
                Subscribe::encode_from(
                    version,
                    *packet_id,
                    props(&raw, C::Subscribe),
                    &subs,
                    &mut out,
                );
            }
            Seed::SubAck {
                packet_id,
                props: p,
                codes,
            } => {
                let raw = raw_properties(p, C::SubAck);
                let codes: Vec<u8> = match version {
                    Version::V5 => codes.clone(),
                    Version::V311 => codes
                        .iter()
                        .map(|&c| ReasonCode(c).to_v311_suback())
                        .collect(),
                };
                SubAck {
                    packet_id: *packet_id,
                    properties: props(&raw, C::SubAck),
                    reason_codes: &codes,
                }
                .encode(version, &mut out);
            }
            Seed::Unsubscribe {
                packet_id,
                props: p,
                filters,
            } => {
                let raw = raw_properties(p, C::Unsubscribe);
                let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
                Unsubscribe::encode_from(
                    version,
                    *packet_id,
                    props(&raw, C::Unsubscribe),
                    &filters,
                    &mut out,
                );
            }
            Seed::UnsubAck {
                packet_id,
                props: p,
                codes,
            } => {
                let raw = raw_properties(p, C::UnsubAck);
                UnsubAck {
                    packet_id: *packet_id,
                    properties: props(&raw, C::UnsubAck),
                    reason_codes: codes,
                }
                .encode(version, &mut out);
            }
            Seed::PingReq => out.extend_from_slice(&[0xc0, 0x00]),
            Seed::PingResp => out.extend_from_slice(&[0xd0, 0x00]),
            Seed::Disconnect { reason, props: p } => {
                let raw = raw_properties(p, C::Disconnect);
                Disconnect {
                    reason: ReasonCode(*reason),
                    properties: props(&raw, C::Disconnect),
                }
                .encode(version, &mut out);
            }
            Seed::Auth { reason, props: p } => {
                let raw = raw_properties(p, C::Auth);
                Auth {
                    reason: ReasonCode(*reason),
                    properties: props(&raw, C::Auth),
                }
                .encode(&mut out);
            }
        }
        out
    }
}

pub fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V311), Just(Version::V5)]
}
