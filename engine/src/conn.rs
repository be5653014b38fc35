//! One client connection, from its first byte to its close.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use flytrap_proto::{
    ConnAck, ConnectRewrite, Framer, Packet, Property, ReasonCode, Version, rewrite_connect,
};
use futures_lite::future;

use crate::authz::{Authorizer, ConnectInfo};
use crate::io::{BrokerStream, ClientStream, Reader, Stream, Writer, split};
use crate::pump::{Ctx, End, Shared};
use crate::shard::ShardCtx;
use crate::upstream;

/// Reads until one whole frame is in `buf`, and splits it off.
async fn read_frame<S: futures_lite::io::AsyncRead + Unpin>(
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
    let frame =
        match glommio::timer::timeout(shard.config.connect_timeout, async { Ok(read.await) }).await
        {
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

    // 2. Authentication (and the will topic).
    let session = match shard.authz.connect(info, &connect).resolve().await {
        Ok(s) => s,
        Err(reason) => {
            metrics.inc(|m| &m.connect_denied);
            refuse(&client, version, reason).await;
            return None;
        }
    };

    // 3. The broker.
    let Some(addr) = upstream::pick(&shard.config.brokers, connect.client_id) else {
        refuse(&client, version, ReasonCode::SERVER_UNAVAILABLE).await;
        return None;
    };
    let broker =
        match upstream::connect(addr, &shard.sources, shard.config.broker_connect_timeout).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "broker unreachable");
                metrics.inc(|m| &m.broker_unreachable);
                refuse(&client, version, ReasonCode::SERVER_UNAVAILABLE).await;
                return None;
            }
        };
    let broker: BrokerStream = match &shard.broker_tls {
        None => Stream::Tcp(broker),
        Some(connector) => {
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let handshake = connector.connect(name, broker);
            match glommio::timer::timeout(shard.config.broker_connect_timeout, async {
                Ok(handshake.await)
            })
            .await
            {
                Ok(Ok(s)) => Stream::Tls(Box::new(s)),
                Ok(Err(e)) => {
                    tracing::warn!(%addr, error = %e, "broker TLS handshake failed");
                    metrics.inc(|m| &m.broker_unreachable);
                    refuse(&client, version, ReasonCode::SERVER_UNAVAILABLE).await;
                    return None;
                }
                Err(_) => {
                    metrics.inc(|m| &m.broker_unreachable);
                    refuse(&client, version, ReasonCode::SERVER_UNAVAILABLE).await;
                    return None;
                }
            }
        }
    };
    let (mut brd, broker) = split(broker);

    // 4. The CONNECT, without the proxy's credentials.
    // With a source address the connect completes during this first write: bound it too.
    let mut rewritten = BytesMut::with_capacity(frame.len());
    let sent = rewrite_connect(&frame, &ConnectRewrite::FLYTRAP, &mut rewritten).is_ok()
        && matches!(
            glommio::timer::timeout(shard.config.broker_connect_timeout, async {
                Ok(broker.send(&rewritten).await)
            })
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
    let answer = glommio::timer::timeout(shard.config.broker_connect_timeout, async {
        Ok(answer.await)
    })
    .await;
    let broker_buf = match answer {
        Ok(Ok(first)) => {
            // Handed to the relay as it came, so the pump sees the CONNACK (alias maximum).
            let mut b = BytesMut::with_capacity(first.len() + from_broker.len());
            b.extend_from_slice(&first);
            b.extend_from_slice(&from_broker);
            b
        }
        Ok(Err(_)) | Err(_) => {
            tracing::debug!(%addr, "broker closed or silent before its CONNACK");
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
    metrics
        .connect_latency
        .observe_us(accepted_at.elapsed().as_micros() as u64);
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
        End::Io(e) if e.kind() == io::ErrorKind::TimedOut => {
            tracing::debug!(peer = %info.peer, "keep-alive expired");
        }
        End::Io(e) => tracing::debug!(peer = %info.peer, error = %e, "connection error"),
        End::Violation => tracing::debug!(peer = %info.peer, "protocol violation"),
        End::Closed => {}
    }
    broker.close().await;
    client.close().await;
}
