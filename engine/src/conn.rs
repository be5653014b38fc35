//! One client connection, from its first byte to its close.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use flytrap_proto::{
    Auth, ConnAck, Connect, ConnectRewrite, Framer, Packet, PacketType, Properties, Property,
    PropertyContext, ReasonCode, Version, encode_properties, rewrite_connect,
};
use futures_lite::future;

use crate::authz::{Authorizer, ConnectInfo};
use crate::io::{BrokerStream, ClientStream, Reader, Writer, split};
use crate::metrics::ConnectPhase;
use crate::pump::{Ctx, End, Shared};
use crate::shard::ShardCtx;

/// Reads until one whole frame is in `buf`, and splits it off.
async fn read_frame<S: tokio::io::AsyncRead + Unpin>(
    rd: &mut Reader<S>,
    buf: &mut BytesMut,
    framer: Framer,
) -> Result<Bytes, Option<flytrap_proto::Error>> {
    loop {
        match framer.poll_frame(buf) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(Some(e)),
        }
        let len = buf.len();
        buf.resize(len + 512.max(buf.capacity() - len), 0);
        let n = rd.read(&mut buf[len..]).await.map_err(|_| None)?;
        buf.truncate(len + n);
        if n == 0 {
            return Err(None);
        }
    }
}

/// The protocol level a CONNECT frame claims, if it gets that far: used to answer a CONNECT
/// that fails to decode in the client's own version.
fn claimed_version(frame: &[u8]) -> Option<Version> {
    let header = flytrap_proto::FixedHeader::parse(frame).ok()??;
    match frame.get(header.header_len + 6) {
        Some(5) => Some(Version::V5),
        Some(4) => Some(Version::V311),
        _ => None,
    }
}

async fn refuse(client: &Writer<ClientStream>, version: Version, reason: ReasonCode) {
    let mut out = BytesMut::with_capacity(8);
    ConnAck::new(reason).encode(version, &mut out);
    let _ = client.send(&out).await;
    client.close().await;
}

/// A connection past its CONNECT: both streams, and what the relay needs.
struct Up<S> {
    rd: Reader<ClientStream>,
    client: Writer<ClientStream>,
    brd: Reader<BrokerStream>,
    broker: Writer<BrokerStream>,
    /// Bytes the client sent after its CONNECT.
    buf: BytesMut,
    /// What the broker sent first: its CONNACK, and anything after it.
    broker_buf: BytesMut,
    session: S,
    version: Version,
    client_alias_maximum: u16,
    keep_alive: u16,
}

/// Drives one accepted (and, for TLS, handshaken) client connection.
///
/// The set-up is boxed: its futures (the CONNECT read, the authorisation check, the broker's
/// connect and TLS handshake) are freed once the connection is up, and only the relay's state
/// stays for the connection's life (idle memory per client).
pub(crate) async fn serve<A: Authorizer>(
    shard: Rc<ShardCtx<A>>,
    stream: ClientStream,
    info: ConnectInfo,
    accepted_at: Instant,
) {
    if let Some(up) = Box::pin(establish(&shard, stream, accepted_at, &info)).await {
        relay(&shard, &info, up).await;
    }
}

/// Steps 1–5: the CONNECT, authentication, the broker, the rewritten CONNECT, the broker's
/// first answer.
async fn establish<A: Authorizer>(
    shard: &ShardCtx<A>,
    stream: ClientStream,
    accepted_at: Instant,
    info: &ConnectInfo,
) -> Option<Up<A::Session>> {
    let metrics = &shard.metrics;
    let framer = Framer::new(shard.config.max_packet_size);
    let (mut rd, client) = split(stream);
    let mut buf = BytesMut::with_capacity(512);

    // 1. CONNECT, within the timeout.
    let read = read_frame(&mut rd, &mut buf, framer);
    let frame = match tokio::time::timeout(shard.config.connect_timeout, read).await {
        Ok(Ok(frame)) => frame,
        Ok(Err(Some(_))) => {
            metrics.inc(|m| &m.malformed);
            client.close().await;
            return None;
        }
        Ok(Err(None)) => return None,
        Err(_) => {
            metrics.inc(|m| &m.connect_timeout);
            client.close().await;
            return None;
        }
    };
    let read_at = Instant::now();
    let connect = match Packet::decode(&frame, Version::V5) {
        Ok(Packet::Connect(c)) => c,
        Ok(_) => {
            // The first packet must be CONNECT (MQTT-3.1.0-1).
            metrics.inc(|m| &m.malformed);
            client.close().await;
            return None;
        }
        Err(e) => {
            metrics.inc(|m| &m.malformed);
            if let Some(v) = claimed_version(&frame) {
                refuse(&client, v, e.reason_code()).await;
                return None;
            }
            client.close().await;
            return None;
        }
    };
    metrics.packet_in(flytrap_proto::PacketType::Connect);
    let version = connect.version;

    // 2. Authentication (and the will topic): the signed CONNECT, or an AUTH exchange (MQTT 5
    //    enhanced authentication) answered within connect_timeout of the accept.
    let method = connect.properties.iter().find_map(|p| match p {
        Property::AuthenticationMethod(m) => Some(m),
        _ => None,
    });
    let authenticated = match method {
        None => shard
            .authz
            .connect(info, &connect)
            .resolve()
            .await
            .map_err(Some),
        Some(method) => {
            let exchange = AuthExchange {
                shard,
                info,
                connect: &connect,
                method,
                deadline: accepted_at + shard.config.connect_timeout,
            };
            exchange.run(&mut rd, &client, &mut buf, framer).await
        }
    };
    let authenticated_at = Instant::now();
    metrics.connect_phase(
        ConnectPhase::Authenticate,
        authenticated_at.duration_since(read_at),
    );
    let session = match authenticated {
        Ok(s) => s,
        Err(Some(reason)) => {
            metrics.inc(|m| &m.connect_denied);
            refuse(&client, version, reason).await;
            return None;
        }
        Err(None) => {
            client.close().await;
            return None;
        }
    };

    // 3. The broker: a pre-dialled connection (TLS done, nothing sent) or a new one.
    let Some(index) = shard.brokers.pick(connect.client_id) else {
        refuse(&client, version, ReasonCode::SERVER_UNAVAILABLE).await;
        return None;
    };
    let (broker, pending) = match shard.brokers.get(index).await {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(addr = %shard.brokers.addr(index), error = %e, "broker unreachable");
            metrics.inc(|m| &m.broker_unreachable);
            refuse(&client, version, ReasonCode::SERVER_UNAVAILABLE).await;
            return None;
        }
    };
    let (mut brd, broker) = split(broker);
    let connected_at = Instant::now();
    metrics.connect_phase(
        ConnectPhase::BrokerConnection,
        connected_at.duration_since(authenticated_at),
    );

    // 4. The CONNECT, without the proxy's credentials.
    let mut rewritten = BytesMut::with_capacity(frame.len());
    let sent = rewrite_connect(&frame, &ConnectRewrite::FLYTRAP, &mut rewritten).is_ok()
        && matches!(
            tokio::time::timeout(shard.config.broker_connect_timeout, broker.send(&rewritten))
                .await,
            Ok(Ok(()))
        );
    if !sent {
        metrics.inc(|m| &m.broker_unreachable);
        refuse(&client, version, ReasonCode::SERVER_UNAVAILABLE).await;
        return None;
    }
    // 5. The broker's first answer (its CONNACK). A port that accepts and then closes — a
    // port forwarder (docker-proxy, HAProxy, ssh -L) in front of a stopped broker, or a broker
    // that drops the connection — is an unreachable broker too: CONNACK 0x88, not a bare close.
    let mut from_broker = BytesMut::new();
    let answer = read_frame(&mut brd, &mut from_broker, framer);
    let answer = tokio::time::timeout(shard.config.broker_connect_timeout, answer).await;
    drop(pending);
    let broker_buf = match answer {
        Ok(Ok(first)) => {
            metrics.connect_phase(ConnectPhase::BrokerAnswer, connected_at.elapsed());
            // Handed to the relay as it came, so the pump sees the CONNACK (alias maximum);
            // after an AUTH exchange, with the client's Authentication Method added.
            let mut b = BytesMut::with_capacity(first.len() + from_broker.len() + 32);
            match method.filter(|_| version == Version::V5) {
                Some(method) => connack_with_method(&first, method, &mut b),
                None => b.extend_from_slice(&first),
            }
            b.extend_from_slice(&from_broker);
            b
        }
        Ok(Err(_)) | Err(_) => {
            tracing::debug!(addr = %shard.brokers.addr(index), "broker closed or silent before its CONNACK");
            metrics.inc(|m| &m.broker_unreachable);
            refuse(&client, version, ReasonCode::SERVER_UNAVAILABLE).await;
            broker.close().await;
            return None;
        }
    };
    let client_alias_maximum = connect
        .properties
        .iter()
        .find_map(|p| match p {
            Property::TopicAliasMaximum(m) => Some(m),
            _ => None,
        })
        .unwrap_or(0);
    let keep_alive = connect.keep_alive;
    metrics.connect_latency.observe(accepted_at.elapsed());
    // The relay forwards the CONNACK on its first poll, before this task next waits; the
    // pool's replacement dials run after that.
    shard.brokers.replenish(index);
    Some(Up {
        rd,
        client,
        brd,
        broker,
        buf,
        broker_buf,
        session,
        version,
        client_alias_maximum,
        keep_alive,
    })
}

/// The broker's CONNACK for a client that signed in by enhanced authentication: a successful
/// CONNACK must carry the Authentication Method of the exchange (MQTT-4.12.0-5), and the broker
/// never saw one (the rewrite strips it). Anything else (a refusal, a CONNACK that already has
/// the method, one that fails to decode) goes to the client as the broker sent it.
fn connack_with_method(first: &[u8], method: &str, out: &mut BytesMut) {
    if let Ok(Packet::ConnAck(ack)) = Packet::decode(first, Version::V5) {
        let has_method = ack
            .properties
            .iter()
            .any(|p| matches!(p, Property::AuthenticationMethod(_)));
        if ack.reason == ReasonCode::SUCCESS && !has_method {
            let mut raw = Vec::with_capacity(ack.properties.as_bytes().len() + method.len() + 3);
            raw.extend_from_slice(ack.properties.as_bytes());
            encode_properties(&[Property::AuthenticationMethod(method)], &mut raw);
            if let Ok(properties) = Properties::parse_raw(&raw, PropertyContext::ConnAck) {
                ConnAck { properties, ..ack }.encode(Version::V5, out);
                return;
            }
        }
    }
    out.extend_from_slice(first);
}

/// Step 2 for a CONNECT with an Authentication Method: one challenge, one answer.
struct AuthExchange<'a, 'c, A: Authorizer> {
    shard: &'a ShardCtx<A>,
    info: &'a ConnectInfo,
    connect: &'a Connect<'c>,
    method: &'a str,
    /// The answer must be in by then (connect_timeout after the accept).
    deadline: Instant,
}

impl<A: Authorizer> AuthExchange<'_, '_, A> {
    /// Sends AUTH 0x18 with the authoriser's challenge and hands it the client's AUTH 0x18
    /// answer. `Err(Some(reason))`: refuse with a CONNACK; `Err(None)`: just close (silence
    /// past the deadline, EOF, or the client's DISCONNECT).
    async fn run(
        self,
        rd: &mut Reader<ClientStream>,
        client: &Writer<ClientStream>,
        buf: &mut BytesMut,
        framer: Framer,
    ) -> Result<A::Session, Option<ReasonCode>> {
        let metrics = &self.shard.metrics;
        let (state, challenge) = self
            .shard
            .authz
            .challenge(self.info, self.connect)
            .map_err(Some)?;
        let mut raw = Vec::with_capacity(challenge.len() + self.method.len() + 8);
        encode_properties(
            &[
                Property::AuthenticationMethod(self.method),
                Property::AuthenticationData(&challenge),
            ],
            &mut raw,
        );
        let properties = Properties::parse_raw(&raw, PropertyContext::Auth)
            .map_err(|_| Some(ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR))?;
        let auth = Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties,
        };
        let mut out = BytesMut::with_capacity(auth.encoded_len());
        auth.encode(&mut out);
        client.send(&out).await.map_err(|_| None)?;

        let wait = self.deadline.saturating_duration_since(Instant::now());
        let read = read_frame(rd, buf, framer);
        let frame = match tokio::time::timeout(wait, read).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(Some(e))) => {
                metrics.inc(|m| &m.malformed);
                return Err(Some(e.reason_code()));
            }
            Ok(Err(None)) => return Err(None),
            Err(_) => {
                metrics.inc(|m| &m.connect_timeout);
                return Err(None);
            }
        };
        let answer = match Packet::decode(&frame, Version::V5) {
            Ok(Packet::Auth(a)) => a,
            Ok(Packet::Disconnect(_)) => return Err(None),
            Ok(_) => return Err(Some(ReasonCode::PROTOCOL_ERROR)),
            Err(e) => {
                metrics.inc(|m| &m.malformed);
                return Err(Some(e.reason_code()));
            }
        };
        metrics.packet_in(PacketType::Auth);
        let (mut method, mut data) = (None, None);
        for p in answer.properties.iter() {
            match p {
                Property::AuthenticationMethod(m) => method = Some(m),
                Property::AuthenticationData(d) => data = Some(d),
                _ => {}
            }
        }
        // The answer continues the CONNECT's method (MQTT-4.12.0-5).
        if answer.reason != ReasonCode::CONTINUE_AUTHENTICATION || method != Some(self.method) {
            return Err(Some(ReasonCode::PROTOCOL_ERROR));
        }
        self.shard
            .authz
            .answer(self.info, self.connect, state, data.unwrap_or_default())
            .resolve()
            .await
            .map_err(Some)
    }
}

/// Step 6: both directions until one ends.
async fn relay<A: Authorizer>(shard: &ShardCtx<A>, info: &ConnectInfo, up: Up<A::Session>) {
    let Up {
        mut rd,
        client,
        mut brd,
        broker,
        buf,
        broker_buf,
        session,
        version,
        client_alias_maximum,
        keep_alive,
    } = up;
    let shared = RefCell::new(Shared::new(client_alias_maximum));
    let ctx = Ctx {
        authz: &shard.authz,
        session: &session,
        version,
        framer: Framer::new(shard.config.max_packet_size),
        metrics: &shard.metrics,
        shared: &shared,
        client: &client,
        broker: &broker,
        client_idle: (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500)),
        last_client_read: std::cell::Cell::new(Instant::now()),
        deny_disconnect: shard.config.deny_disconnect,
    };
    let end = future::or(
        future::or(
            ctx.client_to_broker(&mut rd, buf),
            ctx.broker_to_client(&mut brd, broker_buf),
        ),
        ctx.keep_alive(),
    )
    .await;
    match &end {
        End::KeepAlive => tracing::debug!(peer = %info.peer, "keep-alive expired"),
        End::Io(e) => tracing::debug!(peer = %info.peer, error = %e, "connection error"),
        End::Violation => tracing::debug!(peer = %info.peer, "protocol violation"),
        End::Closed => {}
    }
    broker.close().await;
    client.close().await;
}
