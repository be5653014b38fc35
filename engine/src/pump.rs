//! The two pumps of a connection: client → broker and broker → client.
//!
//! A pump reads into its buffer, walks the whole frames in it, and forwards runs of frames
//! that pass unchanged with one write, straight from the read buffer. Only packets that are
//! answered by the proxy (denials), rewritten (a SUBSCRIBE with denied filters, a merged
//! SUBACK) or withheld break a run. An authorisation answer that is not ready flushes the run
//! first and then waits; frames are handled in order, so packet order per connection is kept.

use std::cell::{Cell, RefCell};
use std::io;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use flytrap_proto::{
    Ack, AckKind, Disconnect, Error as ProtoError, FixedHeader, Framer, Packet, Properties, QoS,
    ReasonCode, SubAck, Subscribe, Subscription, TopicAliases, Version,
};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::authz::{Authorizer, Check, Verdict};
use crate::io::{Reader, Writer};
use crate::metrics::{Ended, ShardMetrics};

/// Why a pump stopped.
#[derive(Debug)]
pub(crate) enum End {
    /// The reading side closed or sent DISCONNECT.
    Closed,
    /// A protocol violation; the peer was told when it could be.
    Violation,
    /// An I/O error.
    Io(io::Error),
    /// The client was silent for 1.5 × its keep alive.
    KeepAlive,
}

impl From<io::Error> for End {
    fn from(e: io::Error) -> End {
        End::Io(e)
    }
}

/// A SUBSCRIBE whose denied filters the proxy answered itself: the broker's SUBACK for the
/// allowed ones is merged back into the client's order.
#[derive(Debug)]
struct PendingSubAck {
    packet_id: u16,
    /// The client's filters in order: `Some(code)` decided by the proxy, `None` sent on.
    codes: Vec<Option<u8>>,
}

/// State both pumps of one connection share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Aliases the client uses towards the broker (maximum from the broker's CONNACK).
    to_broker: TopicAliases,
    /// Aliases the broker uses towards the client (maximum from the client's CONNECT).
    to_client: TopicAliases,
    pending_subacks: Vec<PendingSubAck>,
    /// QoS 2 deliveries the proxy withheld and acknowledged to the broker itself.
    withheld_qos2: Vec<u16>,
}

impl Shared {
    pub(crate) fn new(client_alias_maximum: u16) -> Shared {
        Shared {
            to_client: TopicAliases::new(client_alias_maximum),
            ..Shared::default()
        }
    }
}

/// Everything a pump needs about its connection.
pub(crate) struct Ctx<'c, A: Authorizer, C, B> {
    pub(crate) authz: &'c A,
    pub(crate) session: &'c A::Session,
    pub(crate) version: Version,
    pub(crate) framer: Framer,
    pub(crate) metrics: &'c ShardMetrics,
    pub(crate) shared: &'c RefCell<Shared>,
    pub(crate) client: &'c Writer<C>,
    pub(crate) broker: &'c Writer<B>,
    /// Client read timeout: 1.5 × keep alive (None when keep alive is off).
    pub(crate) client_idle: Option<Duration>,
    /// When the client last sent anything.
    pub(crate) last_client_read: Cell<Instant>,
    pub(crate) deny_disconnect: bool,
}

/// Which peer a pump reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Broker,
}

/// What to do with one frame.
enum Step {
    /// Pass it on unchanged (it joins the current run).
    Forward,
    /// Swallow it.
    Drop,
    /// Swallow it and write these bytes back to the side it came from.
    Reply(BytesMut),
    /// Swallow it and write these bytes to the destination instead.
    Replace(BytesMut),
    /// Write these bytes (if any) back to the sender, then stop.
    Stop(Option<BytesMut>, End),
    /// Pass it on, then stop (a DISCONNECT).
    Last,
    /// The answer needs an await: flush the run, then finish.
    Wait(Wait),
}

/// A decision that waits for the authoriser.
enum Wait {
    /// A PUBLISH from the client.
    Publish {
        check: Check<Verdict>,
        qos: QoS,
        packet_id: Option<u16>,
    },
    /// A PUBLISH from the broker.
    Deliver {
        check: Check<Verdict>,
        qos: QoS,
        packet_id: Option<u16>,
    },
    /// A SUBSCRIBE: one check per filter.
    Subscribe,
}

fn encode(f: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut out = BytesMut::with_capacity(16);
    f(&mut out);
    out
}

fn disconnect(version: Version, reason: ReasonCode) -> Option<BytesMut> {
    version
        .is_v5()
        .then(|| encode(|o| Disconnect::new(reason).encode(Version::V5, o)))
}

async fn resolve<T>(check: Check<T>, metrics: &ShardMetrics) -> T {
    match check {
        Check::Ready(v) => v,
        Check::Pending(f) => {
            let t = Instant::now();
            let v = f.await;
            metrics.authz_wait.observe(t.elapsed());
            v
        }
    }
}

/// Smallest and largest single read. Reads grow while they come back full and shrink when
/// they come back mostly empty, so that small packets do not pay for zeroing a large window
/// and large ones do not take many small reads.
const READ_MIN: usize = 512;
const READ_MAX: usize = 256 << 10;

/// The shard's scratch space for reads of idle connections (see [`fill`]).
const SCRATCH: usize = 64 << 10;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// Reads more bytes into `buf`, at most `*read_size`. `Ok(0)` is end of stream.
///
/// An idle connection holds no buffer: when a read finds nothing and `buf` is empty (no
/// partial frame), its allocation is released and the read waits without one; the bytes that
/// wake it are read into the shard's scratch space and copied into a buffer of their size.
/// tokio reads only once the socket is readable, inside one poll, so the scratch space is
/// borrowed for that poll alone. A busy connection (data ready, or a partial frame) reads
/// straight into its own buffer, with no copy.
async fn fill<S: AsyncRead + Unpin>(
    rd: &mut Reader<S>,
    buf: &mut BytesMut,
    read_size: &mut usize,
) -> io::Result<usize> {
    let mut released = false;
    let result = std::future::poll_fn(|cx| {
        if !released {
            let len = buf.len();
            buf.resize(len + *read_size, 0);
            match rd.poll_read(cx, &mut buf[len..]) {
                Poll::Ready(result) => {
                    buf.truncate(len + *result.as_ref().unwrap_or(&0));
                    return Poll::Ready(result);
                }
                Poll::Pending => {
                    buf.truncate(len);
                    if len == 0 {
                        *buf = BytesMut::new();
                        released = true;
                    }
                    return Poll::Pending;
                }
            }
        }
        SCRATCH_BUF.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let want = (*read_size).min(scratch.len());
            let result = rd.poll_read(cx, &mut scratch[..want]);
            if let Poll::Ready(Ok(n)) = result {
                buf.reserve(n.max(READ_MIN));
                buf.extend_from_slice(&scratch[..n]);
            }
            result
        })
    })
    .await;
    let n = *result.as_ref().unwrap_or(&0);
    if n == *read_size {
        *read_size = (*read_size * 2).min(READ_MAX);
    } else if n < *read_size / 4 {
        *read_size = (*read_size / 2).max(READ_MIN);
    }
    result
}

/// A pump's buffer and the run of frames at its front waiting to be forwarded.
struct Pump {
    buf: BytesMut,
    run: usize,
    read_size: usize,
}

impl Pump {
    async fn flush<W: AsyncWrite + Unpin>(&mut self, to: &Writer<W>) -> io::Result<()> {
        if self.run > 0 {
            let chunk = self.buf.split_to(self.run);
            self.run = 0;
            to.send(&chunk).await?;
        }
        Ok(())
    }

    /// The next whole frame after the run, if any.
    fn next_frame(&mut self, framer: Framer) -> Result<Option<FixedHeader>, ProtoError> {
        match framer.peek_header(&self.buf[self.run..])? {
            Some(h) if self.buf.len() - self.run >= h.packet_len() => Ok(Some(h)),
            _ => Ok(None),
        }
    }

    /// Applies a decided step to the frame of `len` bytes after the run.
    async fn apply<W: AsyncWrite + Unpin, V: AsyncWrite + Unpin>(
        &mut self,
        step: Step,
        len: usize,
        to: &Writer<W>,
        back: &Writer<V>,
    ) -> Result<(), End> {
        match step {
            Step::Forward => self.run += len,
            Step::Drop => {
                self.flush(to).await?;
                self.buf.advance(len);
            }
            Step::Reply(bytes) => {
                self.flush(to).await?;
                self.buf.advance(len);
                back.send(&bytes).await?;
            }
            Step::Replace(bytes) => {
                self.flush(to).await?;
                self.buf.advance(len);
                to.send(&bytes).await?;
            }
            Step::Last => {
                self.run += len;
                self.flush(to).await?;
                return Err(End::Closed);
            }
            Step::Stop(last, end) => {
                self.flush(to).await?;
                if let Some(bytes) = last {
                    let _ = back.send(&bytes).await;
                }
                return Err(end);
            }
            Step::Wait(_) => unreachable!("waits are resolved before apply"),
        }
        Ok(())
    }
}

impl<A: Authorizer, C: AsyncRead + AsyncWrite + Unpin, B: AsyncRead + AsyncWrite + Unpin>
    Ctx<'_, A, C, B>
{
    /// Client → broker, until either side ends it.
    pub(crate) async fn client_to_broker(&self, rd: &mut Reader<C>, buf: BytesMut) -> End {
        self.pump(Side::Client, rd, buf, self.broker, self.client)
            .await
    }

    /// Broker → client, until either side ends it; `buf` holds what the broker sent first.
    pub(crate) async fn broker_to_client(&self, rd: &mut Reader<B>, buf: BytesMut) -> End {
        self.pump(Side::Broker, rd, buf, self.client, self.broker)
            .await
    }

    /// One direction: frames read from `side` go `to` the other side; the proxy's own answers
    /// go `back`.
    async fn pump<R, W, V>(
        &self,
        side: Side,
        rd: &mut Reader<R>,
        buf: BytesMut,
        to: &Writer<W>,
        back: &Writer<V>,
    ) -> End
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
        V: AsyncWrite + Unpin,
    {
        let mut pump = Pump {
            buf,
            run: 0,
            read_size: READ_MIN,
        };
        // Every way out breaks 'run, so that the end is counted in one place (a wrapping
        // future would add to the connection's resident state).
        let end = 'run: loop {
            loop {
                let header = match pump.next_frame(self.framer) {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(e) => {
                        break 'run Box::pin(self.violation(side, &mut pump, to, back, e)).await;
                    }
                };
                let len = header.packet_len();
                let frame = &pump.buf[pump.run..pump.run + len];
                let step = match side {
                    Side::Client => self.decide_from_client(frame),
                    Side::Broker => self.decide_from_broker(frame),
                };
                let step = match step {
                    Step::Wait(wait) => {
                        if let Err(e) = pump.flush(to).await {
                            break 'run e.into();
                        }
                        Box::pin(self.finish_wait(wait, &pump.buf[..len])).await
                    }
                    step => step,
                };
                // Forwarding is the common step and needs no await; the others are boxed
                // so that the pump's future (alive as long as the connection) stays small.
                match step {
                    Step::Forward => pump.run += len,
                    step => {
                        if let Err(end) = Box::pin(pump.apply(step, len, to, back)).await {
                            break 'run end;
                        }
                    }
                }
            }
            if let Err(e) = pump.flush(to).await {
                break 'run e.into();
            }
            match fill(rd, &mut pump.buf, &mut pump.read_size).await {
                Ok(0) => break 'run End::Closed,
                Ok(n) => match side {
                    Side::Client => {
                        self.last_client_read.set(Instant::now());
                        self.metrics.bytes_in.fetch_add(n as u64, Relaxed);
                    }
                    Side::Broker => {
                        self.metrics.bytes_out.fetch_add(n as u64, Relaxed);
                    }
                },
                Err(e) => break 'run End::Io(e),
            }
        };
        self.metrics.ended(match (&end, side) {
            (End::KeepAlive, _) => Ended::KeepAlive,
            (End::Violation, _) => Ended::Violation,
            (End::Closed, Side::Client) => Ended::ClientClosed,
            (End::Closed, Side::Broker) => Ended::BrokerClosed,
            (End::Io(_), Side::Client) => Ended::ClientError,
            (End::Io(_), Side::Broker) => Ended::BrokerError,
        });
        end
    }

    /// A frame that does not parse: nothing of it is forwarded; a client is told why (5.0).
    async fn violation<W: AsyncWrite + Unpin, V: AsyncWrite + Unpin>(
        &self,
        side: Side,
        pump: &mut Pump,
        to: &Writer<W>,
        back: &Writer<V>,
        e: ProtoError,
    ) -> End {
        self.metrics.inc(|m| &m.malformed);
        let _ = pump.flush(to).await;
        if side == Side::Client
            && let Some(bytes) = disconnect(self.version, e.reason_code())
        {
            let _ = back.send(&bytes).await;
        }
        End::Violation
    }

    /// Ends the connection when the client has been silent for 1.5 × its keep alive. One timer
    /// per keep-alive period, not one per read.
    pub(crate) async fn keep_alive(&self) -> End {
        let Some(idle) = self.client_idle else {
            return std::future::pending().await;
        };
        loop {
            let deadline = self.last_client_read.get() + idle;
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(deadline - now).await;
        }
        self.metrics.ended(Ended::KeepAlive);
        // MQTT 5 §4.13: the server may say why before it closes (boxed: this future lives as
        // long as the connection).
        if let Some(bytes) = disconnect(self.version, ReasonCode::KEEP_ALIVE_TIMEOUT) {
            let _ = Box::pin(self.client.send(&bytes)).await;
        }
        End::KeepAlive
    }

    /// Decides what to do with a frame from the client without waiting, when it can.
    fn decide_from_client(&self, frame: &[u8]) -> Step {
        let packet = match Packet::decode(frame, self.version) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.inc(|m| &m.malformed);
                return Step::Stop(disconnect(self.version, e.reason_code()), End::Violation);
            }
        };
        self.metrics.packet_in(packet.packet_type());
        match packet {
            Packet::Publish(p) => {
                let mut shared = self.shared.borrow_mut();
                let topic = match shared.to_broker.resolve(p.topic, p.topic_alias) {
                    Ok(t) => t,
                    Err(e) => {
                        self.metrics.inc(|m| &m.malformed);
                        return Step::Stop(
                            disconnect(self.version, e.reason_code()),
                            End::Violation,
                        );
                    }
                };
                let check = self.authz.publish(self.session, topic);
                drop(shared);
                match check {
                    Check::Ready(v) => self.publish_verdict(v, p.qos, p.packet_id),
                    check => Step::Wait(Wait::Publish {
                        check,
                        qos: p.qos,
                        packet_id: p.packet_id,
                    }),
                }
            }
            Packet::Subscribe(_) => Step::Wait(Wait::Subscribe),
            Packet::Connect(_) => {
                // A second CONNECT is a protocol error (MQTT-3.1.0-2).
                Step::Stop(
                    disconnect(self.version, ReasonCode::PROTOCOL_ERROR),
                    End::Violation,
                )
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                // Server-to-client packets from a client.
                Step::Stop(
                    disconnect(self.version, ReasonCode::PROTOCOL_ERROR),
                    End::Violation,
                )
            }
            Packet::Disconnect(_) => Step::Last,
            _ => Step::Forward,
        }
    }

    fn publish_verdict(&self, verdict: Verdict, qos: QoS, packet_id: Option<u16>) -> Step {
        let reason = match verdict {
            Verdict::Allow => return Step::Forward,
            Verdict::Deny(reason) => reason,
        };
        self.metrics.inc(|m| &m.denied_publish);
        if self.version == Version::V311 && qos != QoS::AtMostOnce {
            // 3.1.1 has no way to refuse a PUBLISH but closing (SPEC §2).
            return Step::Stop(None, End::Violation);
        }
        let ack = match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => Ack::new(AckKind::PubAck, id, reason),
            (QoS::ExactlyOnce, Some(id)) => Ack::new(AckKind::PubRec, id, reason),
            _ => return Step::Drop,
        };
        let reply = encode(|o| ack.encode(self.version, o));
        if self.deny_disconnect {
            return Step::Stop(Some(reply), End::Violation);
        }
        Step::Reply(reply)
    }

    /// Decides what to do with a frame from the broker without waiting, when it can.
    fn decide_from_broker(&self, frame: &[u8]) -> Step {
        let packet = match Packet::decode(frame, self.version) {
            Ok(p) => p,
            Err(_) => {
                self.metrics.inc(|m| &m.malformed);
                return Step::Stop(None, End::Violation);
            }
        };
        self.metrics.packet_out(packet.packet_type());
        match packet {
            Packet::ConnAck(c) => {
                let maximum = c.properties.iter().find_map(|p| match p {
                    flytrap_proto::Property::TopicAliasMaximum(m) => Some(m),
                    _ => None,
                });
                self.shared
                    .borrow_mut()
                    .to_broker
                    .set_maximum(maximum.unwrap_or(0));
                Step::Forward
            }
            Packet::Publish(p) => {
                let mut shared = self.shared.borrow_mut();
                let Ok(topic) = shared.to_client.resolve(p.topic, p.topic_alias) else {
                    self.metrics.inc(|m| &m.malformed);
                    return Step::Stop(None, End::Violation);
                };
                let check = self.authz.deliver(self.session, topic);
                drop(shared);
                match check {
                    Check::Ready(v) => self.deliver_verdict(v, p.qos, p.packet_id),
                    check => Step::Wait(Wait::Deliver {
                        check,
                        qos: p.qos,
                        packet_id: p.packet_id,
                    }),
                }
            }
            Packet::Ack(a) if a.kind == AckKind::PubRel => {
                let mut shared = self.shared.borrow_mut();
                match shared
                    .withheld_qos2
                    .iter()
                    .position(|&id| id == a.packet_id)
                {
                    Some(i) => {
                        shared.withheld_qos2.swap_remove(i);
                        let comp = Ack::new(AckKind::PubComp, a.packet_id, ReasonCode::SUCCESS);
                        Step::Reply(encode(|o| comp.encode(self.version, o)))
                    }
                    None => Step::Forward,
                }
            }
            Packet::SubAck(s) => self.merge_suback(&s),
            _ => Step::Forward,
        }
    }

    fn deliver_verdict(&self, verdict: Verdict, qos: QoS, packet_id: Option<u16>) -> Step {
        if verdict == Verdict::Allow {
            return Step::Forward;
        }
        self.metrics.inc(|m| &m.denied_deliver);
        // The broker still expects its flow to complete: the proxy acknowledges for the client.
        match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                let ack = Ack::new(AckKind::PubAck, id, ReasonCode::SUCCESS);
                Step::Reply(encode(|o| ack.encode(self.version, o)))
            }
            (QoS::ExactlyOnce, Some(id)) => {
                self.shared.borrow_mut().withheld_qos2.push(id);
                let ack = Ack::new(AckKind::PubRec, id, ReasonCode::SUCCESS);
                Step::Reply(encode(|o| ack.encode(self.version, o)))
            }
            _ => Step::Drop,
        }
    }

    fn merge_suback(&self, ack: &SubAck<'_>) -> Step {
        let mut shared = self.shared.borrow_mut();
        let Some(i) = shared
            .pending_subacks
            .iter()
            .position(|p| p.packet_id == ack.packet_id)
        else {
            return Step::Forward;
        };
        let pending = shared.pending_subacks.swap_remove(i);
        let mut broker_codes = ack.reason_codes.iter();
        let codes: Vec<u8> = pending
            .codes
            .iter()
            .map(|c| c.unwrap_or_else(|| broker_codes.next().copied().unwrap_or(0x80)))
            .collect();
        let merged = SubAck {
            packet_id: ack.packet_id,
            properties: ack.properties,
            reason_codes: &codes,
        };
        Step::Replace(encode(|o| merged.encode(self.version, o)))
    }

    /// Finishes a decision that had to wait. `frame` is the frame itself, now at the front
    /// of the buffer.
    async fn finish_wait(&self, wait: Wait, frame: &[u8]) -> Step {
        match wait {
            Wait::Publish {
                check,
                qos,
                packet_id,
            } => {
                let v = resolve(check, self.metrics).await;
                self.publish_verdict(v, qos, packet_id)
            }
            Wait::Deliver {
                check,
                qos,
                packet_id,
            } => {
                let v = resolve(check, self.metrics).await;
                self.deliver_verdict(v, qos, packet_id)
            }
            Wait::Subscribe => self.subscribe(frame).await,
        }
    }

    /// Checks every filter of a SUBSCRIBE; forwards it whole, forwards the allowed subset
    /// and remembers the rest for the SUBACK merge, or answers it entirely.
    async fn subscribe(&self, frame: &[u8]) -> Step {
        let Ok(Packet::Subscribe(sub)) = Packet::decode(frame, self.version) else {
            return Step::Stop(None, End::Violation);
        };
        let mut denied: Vec<Option<u8>> = Vec::with_capacity(sub.len());
        for s in sub.subscriptions() {
            let verdict = resolve(self.authz.subscribe(self.session, s.filter), self.metrics).await;
            denied.push(match verdict {
                Verdict::Allow => None,
                Verdict::Deny(reason) => {
                    self.metrics.inc(|m| &m.denied_subscribe);
                    Some(match self.version {
                        Version::V5 => reason.0,
                        Version::V311 => 0x80,
                    })
                }
            });
        }
        if denied.iter().all(Option::is_none) {
            return Step::Forward;
        }
        if denied.iter().all(Option::is_some) {
            let codes: Vec<u8> = denied.iter().map(|c| c.unwrap_or(0x80)).collect();
            let ack = SubAck {
                packet_id: sub.packet_id,
                properties: Properties::EMPTY,
                reason_codes: &codes,
            };
            return Step::Reply(encode(|o| ack.encode(self.version, o)));
        }
        let allowed: Vec<Subscription<'_>> = sub
            .subscriptions()
            .zip(&denied)
            .filter(|(_, d)| d.is_none())
            .map(|(s, _)| s)
            .collect();
        self.shared
            .borrow_mut()
            .pending_subacks
            .push(PendingSubAck {
                packet_id: sub.packet_id,
                codes: denied,
            });
        Step::Replace(encode(|o| {
            Subscribe::encode_from(self.version, sub.packet_id, sub.properties, &allowed, o)
        }))
    }
}

use std::sync::atomic::Ordering::Relaxed;
