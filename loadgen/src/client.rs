//! One client, from its scheduled connect to its DISCONNECT: the driver task that follows the
//! plan, and the reader task that takes the server's packets (acknowledgments, deliveries).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use flytrap_engine::io::{Reader, Stream, Writer, split};
use flytrap_proto::{
    Ack, AckKind, Auth, Connect, Disconnect, Framer, Packet, Properties, Property, PropertyContext,
    Publish, QoS, ReasonCode, Subscribe, Subscription, SubscriptionOptions, Version,
    encode_properties,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{self, Receiver, Sender};
use tokio::time::sleep;

use crate::cli::AuthScheme;
use crate::identity::{Credentials, Identity};
use crate::plan::{Pacing, Plan, Signing, unix_ns};
use crate::shard::Shard;
use crate::stats::Phase;

/// Waits for `fut` at most `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        sleep(limit).await;
        None
    })
    .await
}

/// Whether a reply's code is what the plan expects: with no expectation, any success code
/// (below 0x80: granted QoS, "no matching subscribers" …).
fn as_expected(code: u8, expect: u8) -> bool {
    if expect == 0 {
        code < 0x80
    } else {
        code == expect
    }
}

/// Sleeps until `at` (no-op when it has passed).
pub async fn sleep_until(at: Instant) {
    let now = Instant::now();
    if at > now {
        sleep(at - now).await;
    }
}

type Conn = flytrap_engine::io::BrokerStream;

/// State the driver and the reader share.
struct Shared {
    /// Packet id → scheduled send time of PUBLISHes waiting for their final ack.
    inflight: RefCell<HashMap<u16, Instant>>,
    /// Closed-loop window: a permit per message that may be outstanding.
    window: Semaphore,
    /// The server closed, or the reader failed.
    closed: Cell<bool>,
    /// We are closing: the server's close is expected.
    closing: Cell<bool>,
}

/// Runs client `k` (run-relative index) of `shard`'s share.
pub(crate) async fn run(shard: Rc<Shard>, k: u64) {
    let plan = &shard.plan;
    let client_id = format!("{}{}", plan.client_id, plan.first + k);
    // Signed before the clock starts: the client's own signing is not the server's latency.
    // The challenge scheme can only sign once the challenge is in: that signing is inside.
    let hello = connect_packet(plan, k, &client_id);
    let challenged = (plan.auth == AuthScheme::Challenge && plan.signing != Signing::Unsigned)
        .then(|| Identity::derive(&plan.seed, plan.key_index(k)));
    let started = Instant::now();
    let conn = match connect(&shard, &hello).await {
        Ok(conn) => conn,
        Err(failure) => {
            shard.progress.failed();
            shard.stats.borrow_mut().error(failure);
            return;
        }
    };
    let (reader, writer) = split(conn);
    // CONNACK.
    let mut rx = Rx {
        reader,
        buf: BytesMut::with_capacity(4096),
        framer: Framer::new(1 << 20),
        version: plan.version,
    };
    let bad = plan.signing == Signing::Bad;
    let signed_in = async {
        if let Some(identity) = &challenged
            && let Some(code) = rx.answer_challenge(&writer, identity, bad).await?
        {
            return Ok(code);
        }
        rx.next_connack().await
    };
    let code = match within(plan.timeout, signed_in).await {
        None => Err("timeout: connack".to_string()),
        Some(r) => r,
    };
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            shard.progress.failed();
            shard.stats.borrow_mut().error(e);
            return;
        }
    };
    {
        let mut stats = shard.stats.borrow_mut();
        if plan.records(k) {
            stats.record(Phase::Connect, started.elapsed());
        }
        stats.outcome(format!("connack 0x{code:02x}"));
        if !as_expected(code, plan.expect_connack()) {
            stats.error(format!(
                "connack 0x{code:02x} (expected 0x{:02x})",
                plan.expect_connack()
            ));
        }
    }
    if code != 0 {
        // Refused (expected or not): the server closes; nothing more to do.
        if as_expected(code, plan.expect_connack()) {
            shard.progress.connected();
        } else {
            shard.progress.failed();
        }
        return;
    }
    shard.progress.connected();

    let shared = Rc::new(Shared {
        inflight: RefCell::new(HashMap::new()),
        window: Semaphore::new(match plan.publish.as_ref().map(|p| p.pacing) {
            Some(Pacing::Closed { inflight }) => usize::from(inflight),
            _ => 0,
        }),
        closed: Cell::new(false),
        closing: Cell::new(false),
    });
    let (suback_tx, suback_rx) = mpsc::channel(4);
    let reading = tokio::task::spawn_local(read_loop(
        shard.clone(),
        k,
        rx,
        writer.clone(),
        shared.clone(),
        suback_tx,
    ));
    // MQTT keep-alive: a PINGREQ every keep-alive period, or the server closes the connection
    // after 1.5 periods of silence (clients wait through long ramps before they publish).
    let pinging = (plan.keep_alive > 0).then(|| {
        tokio::task::spawn_local(ping_loop(
            Duration::from_secs(u64::from(plan.keep_alive)),
            writer.clone(),
            shared.clone(),
        ))
    });

    let mut driver = Driver {
        work_at: if plan.start_on_connect {
            Instant::now()
        } else {
            shard.work_at
        },
        shard: shard.clone(),
        k,
        writer: writer.clone(),
        shared: shared.clone(),
        subacks: suback_rx,
        next_id: 1,
    };
    if let Err(e) = driver.drive().await {
        shard.stats.borrow_mut().error(e);
    }
    // A clean end: DISCONNECT, then close our side; the reader sees the server close.
    shared.closing.set(true);
    if !shared.closed.get() {
        let mut out = Vec::new();
        Disconnect::new(ReasonCode::SUCCESS).encode(plan.version, &mut out);
        let _ = within(plan.timeout, writer.send(&out)).await;
    }
    if let Some(p) = pinging {
        p.abort();
    }
    writer.close().await;
    let _ = within(plan.timeout, reading).await;
    shard.progress.disconnected();
}

/// Opens the connection and sends the CONNECT. Errors are report keys.
async fn connect(shard: &Shard, hello: &[u8]) -> Result<Conn, String> {
    let plan = &shard.plan;
    let limit = plan.timeout;
    let tcp = match within(
        limit,
        flytrap_engine::upstream::connect(plan.target, &shard.sources, limit),
    )
    .await
    {
        None => return Err("timeout: tcp connect".into()),
        Some(Err(e)) => return Err(format!("tcp connect: {}", io_kind(&e))),
        Some(Ok(tcp)) => tcp,
    };
    let mut conn: Conn = match &shard.tls {
        None => Stream::Tcp(tcp),
        Some((connector, name)) => {
            match within(limit, connector.connect(name.clone(), tcp)).await {
                None => return Err("timeout: tls handshake".into()),
                Some(Err(e)) => return Err(format!("tls handshake: {}", io_kind(&e))),
                Some(Ok(tls)) => Stream::Tls(Box::new(tls)),
            }
        }
    };
    let send = async {
        conn.write_all(hello).await?;
        conn.flush().await
    };
    match within(limit, send).await {
        None => Err("timeout: send connect".into()),
        Some(Err(e)) => Err(format!("send connect: {}", io_kind(&e))),
        Some(Ok(())) => Ok(conn),
    }
}

/// The CONNECT of client `k`, signed as the plan says.
pub fn connect_packet(plan: &Plan, k: u64, client_id: &str) -> Vec<u8> {
    if plan.auth == AuthScheme::Challenge && plan.signing != Signing::Unsigned {
        let address = Identity::derive(&plan.seed, plan.key_index(k)).address_hex();
        return encode_challenge_connect(plan.keep_alive, client_id, &address);
    }
    let now = unix_ns() / 1_000_000_000;
    let credentials = match plan.signing {
        Signing::Unsigned => None,
        Signing::Signed => {
            Some(Identity::derive(&plan.seed, plan.key_index(k)).credentials(client_id, now))
        }
        Signing::Bad => Some(Credentials::corrupt(
            &Identity::derive(&plan.seed, plan.key_index(k)),
            client_id,
            now,
        )),
    };
    encode_connect(
        plan.version,
        plan.keep_alive,
        client_id,
        credentials.as_ref(),
    )
}

/// A clean-start CONNECT carrying `credentials` as SPEC §1 says for `version`.
pub fn encode_connect(
    version: Version,
    keep_alive: u16,
    client_id: &str,
    credentials: Option<&Credentials>,
) -> Vec<u8> {
    let mut raw = Vec::new();
    let props;
    let password;
    let (username, pass) = match (version, credentials) {
        (Version::V5, Some(c)) => {
            props = c.user_properties();
            let list: Vec<Property<'_>> = props
                .iter()
                .map(|(k, v)| Property::UserProperty(k, v))
                .collect();
            encode_properties(&list, &mut raw);
            (None, None)
        }
        (Version::V311, Some(c)) => {
            password = c.password_v311();
            (Some(c.address.as_str()), Some(password.as_bytes()))
        }
        (_, None) => (None, None),
    };
    let properties = Properties::parse_raw(&raw, PropertyContext::Connect)
        .unwrap_or_else(|_| unreachable!("three user properties are valid"));
    let mut out = Vec::with_capacity(256);
    Connect {
        version,
        clean_start: true,
        keep_alive,
        properties,
        client_id,
        will: None,
        username,
        password: pass,
    }
    .encode(&mut out);
    out
}

/// The Authentication Method of the challenge scheme.
pub const CHALLENGE_METHOD: &str = "flytrap-siwe-v1";

/// A clean-start MQTT 5 CONNECT that asks for the challenge scheme for `address`.
pub fn encode_challenge_connect(keep_alive: u16, client_id: &str, address: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    encode_properties(
        &[
            Property::AuthenticationMethod(CHALLENGE_METHOD),
            Property::AuthenticationData(address.as_bytes()),
        ],
        &mut raw,
    );
    let properties = Properties::parse_raw(&raw, PropertyContext::Connect)
        .unwrap_or_else(|_| unreachable!("a method and its data are valid"));
    let mut out = Vec::with_capacity(128);
    Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive,
        properties,
        client_id,
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut out);
    out
}

/// The AUTH answering a challenge `message`: its EIP-191 signature by `identity` (of another
/// message when `bad`, for the deny path), as `0x`-hex Authentication Data.
pub fn encode_challenge_answer(identity: &Identity, message: &[u8], bad: bool) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    let signed = if bad {
        format!("{text}\nnot the challenge")
    } else {
        text.into_owned()
    };
    let signature = format!("0x{}", hex::encode(identity.personal_sign(&signed)));
    let mut raw = Vec::new();
    encode_properties(
        &[
            Property::AuthenticationMethod(CHALLENGE_METHOD),
            Property::AuthenticationData(signature.as_bytes()),
        ],
        &mut raw,
    );
    let properties = Properties::parse_raw(&raw, PropertyContext::Auth)
        .unwrap_or_else(|_| unreachable!("a method and its data are valid"));
    let mut out = Vec::with_capacity(raw.len() + 8);
    Auth {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties,
    }
    .encode(&mut out);
    out
}

fn io_kind(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => {
            // "Connection refused (os error 111)" → "Connection refused"
            let text = e.to_string();
            text.split(" (os error").next().unwrap_or(&text).to_string()
        }
        None => e.kind().to_string(),
    }
}

/// The read side: frames from the server.
struct Rx {
    reader: Reader<Conn>,
    buf: BytesMut,
    framer: Framer,
    version: Version,
}

impl Rx {
    async fn next_frame(&mut self) -> Result<bytes::Bytes, String> {
        loop {
            match self.framer.poll_frame(&mut self.buf) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(format!("malformed from server: {e}")),
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(4096);
            }
            let spare = self.buf.capacity() - self.buf.len();
            let start = self.buf.len();
            self.buf.resize(start + spare, 0);
            let n = self.reader.read(&mut self.buf[start..]).await;
            match n {
                Ok(0) => {
                    self.buf.truncate(start);
                    return Err("closed by server".into());
                }
                Ok(n) => self.buf.truncate(start + n),
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(format!("read: {}", io_kind(&e)));
                }
            }
        }
    }

    /// Waits for the challenge (AUTH 0x18) and sends the signed answer. `Some(code)` when the
    /// server answered the CONNECT with a CONNACK instead (refused at once).
    async fn answer_challenge(
        &mut self,
        writer: &Writer<Conn>,
        identity: &Identity,
        bad: bool,
    ) -> Result<Option<u8>, String> {
        let frame = self
            .next_frame()
            .await
            .map_err(|e| format!("{e} before auth"))?;
        let message = match Packet::decode(&frame, self.version) {
            Ok(Packet::ConnAck(a)) => return Ok(Some(a.reason.0)),
            Ok(Packet::Auth(a)) if a.reason == ReasonCode::CONTINUE_AUTHENTICATION => a
                .properties
                .iter()
                .find_map(|p| match p {
                    Property::AuthenticationData(d) => Some(d),
                    _ => None,
                })
                .ok_or("auth without a challenge")?,
            Ok(other) => return Err(format!("{:?} instead of auth", other.packet_type())),
            Err(e) => return Err(format!("malformed auth: {e}")),
        };
        let answer = encode_challenge_answer(identity, message, bad);
        writer
            .send(&answer)
            .await
            .map_err(|e| format!("send auth: {}", io_kind(&e)))?;
        Ok(None)
    }

    async fn next_connack(&mut self) -> Result<u8, String> {
        let frame = self
            .next_frame()
            .await
            .map_err(|e| format!("{e} before connack"))?;
        match Packet::decode(&frame, self.version) {
            Ok(Packet::ConnAck(a)) => Ok(a.reason.0),
            Ok(other) => Err(format!("{:?} instead of connack", other.packet_type())),
            Err(e) => Err(format!("malformed connack: {e}")),
        }
    }
}

/// Takes acknowledgments and deliveries until the server closes.
async fn read_loop(
    shard: Rc<Shard>,
    k: u64,
    mut rx: Rx,
    writer: Writer<Conn>,
    shared: Rc<Shared>,
    subacks: Sender<(u16, u8)>,
) {
    let version = rx.version;
    let expect = shard.plan.expect_puback();
    let mut out = Vec::with_capacity(16);
    loop {
        let frame = match rx.next_frame().await {
            Ok(f) => f,
            Err(e) => {
                if !shared.closing.get() {
                    shard.stats.borrow_mut().error(e);
                }
                break;
            }
        };
        let packet = match Packet::decode(&frame, version) {
            Ok(p) => p,
            Err(e) => {
                shard
                    .stats
                    .borrow_mut()
                    .error(format!("malformed from server: {e}"));
                break;
            }
        };
        out.clear();
        match packet {
            Packet::Ack(a) => match a.kind {
                AckKind::PubAck | AckKind::PubComp => {
                    finish(&shard, k, &shared, a.packet_id, a.reason.0, a.kind, expect);
                }
                AckKind::PubRec => {
                    if a.reason.is_error() {
                        finish(&shard, k, &shared, a.packet_id, a.reason.0, a.kind, expect);
                    } else {
                        Ack::new(AckKind::PubRel, a.packet_id, ReasonCode::SUCCESS)
                            .encode(version, &mut out);
                    }
                }
                AckKind::PubRel => {
                    Ack::new(AckKind::PubComp, a.packet_id, ReasonCode::SUCCESS)
                        .encode(version, &mut out);
                }
            },
            Packet::SubAck(a) => {
                let code = a.reason_codes.first().copied().unwrap_or(0x80);
                let _ = subacks.try_send((a.packet_id, code));
            }
            Packet::Publish(p) => {
                delivered(&shard, &p);
                match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => {
                        Ack::new(AckKind::PubAck, id, ReasonCode::SUCCESS).encode(version, &mut out)
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        Ack::new(AckKind::PubRec, id, ReasonCode::SUCCESS).encode(version, &mut out)
                    }
                    _ => {}
                }
            }
            Packet::Disconnect(d) => {
                if !shared.closing.get() {
                    shard
                        .stats
                        .borrow_mut()
                        .error(format!("disconnect 0x{:02x} from server", d.reason.0));
                }
                break;
            }
            _ => {}
        }
        if !out.is_empty() && writer.send(&out).await.is_err() {
            break;
        }
    }
    shared.closed.set(true);
    shared.window.close();
}

/// Sends a PINGREQ every `period` until the connection ends (the reader ignores PINGRESPs).
async fn ping_loop(period: Duration, writer: Writer<Conn>, shared: Rc<Shared>) {
    const PINGREQ: [u8; 2] = [0xc0, 0x00];
    loop {
        sleep(period).await;
        if shared.closed.get() || shared.closing.get() || writer.send(&PINGREQ).await.is_err() {
            return;
        }
    }
}

/// The final acknowledgment of a PUBLISH flow.
fn finish(shard: &Shard, k: u64, shared: &Shared, id: u16, code: u8, kind: AckKind, expect: u8) {
    let Some(due) = shared.inflight.borrow_mut().remove(&id) else {
        return;
    };
    let name = match kind {
        AckKind::PubAck => "puback",
        AckKind::PubRec => "pubrec",
        _ => "pubcomp",
    };
    {
        let mut stats = shard.stats.borrow_mut();
        if shard.plan.records(k) {
            stats.record(Phase::Publish, due.elapsed());
        }
        stats.outcome(format!("{name} 0x{code:02x}"));
        if !as_expected(code, expect) {
            stats.error(format!("{name} 0x{code:02x} (expected 0x{expect:02x})"));
        }
    }
    shard.progress.acked();
    shared.window.add_permits(1);
}

/// A delivery: end-to-end latency from the publisher's scheduled time in the payload.
fn delivered(shard: &Shard, p: &Publish<'_>) {
    shard.progress.received();
    let mut stats = shard.stats.borrow_mut();
    stats.received += 1;
    let word = |at: usize| {
        p.payload
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    };
    // Bytes 0..8: the due time; 8..16: the sender's client index.
    if let (Some(sent), Some(sender)) = (word(0), word(8)) {
        let now = unix_ns();
        let measured = shard.plan.records(sender.wrapping_sub(shard.plan.first));
        if measured && sent > 0 && now >= sent {
            stats.record(Phase::EndToEnd, Duration::from_nanos(now - sent));
        }
    }
}

/// Follows the plan for one connected client.
struct Driver {
    /// When this client's work phase starts.
    work_at: Instant,
    shard: Rc<Shard>,
    k: u64,
    writer: Writer<Conn>,
    shared: Rc<Shared>,
    subacks: Receiver<(u16, u8)>,
    next_id: u16,
}

impl Driver {
    async fn drive(&mut self) -> Result<(), String> {
        let shard = self.shard.clone();
        let plan = &shard.plan;
        if plan.subscribes(self.k) {
            // Fan-out and mixed subscribe right after CONNACK; the subscribe scenario at the
            // work phase.
            if matches!(plan.scenario, crate::plan::Scenario::Subscribe) {
                sleep_until(self.work_at).await;
            }
            self.subscribe_all().await?;
        }
        sleep_until(self.work_at).await;
        if plan.publishes(self.k) {
            self.publish_all().await?;
        } else if !matches!(plan.scenario, crate::plan::Scenario::Subscribe) {
            // Hold (connect scenario) or listen (fan-out subscribers) until the work ends.
            let hold = match plan.scenario {
                crate::plan::Scenario::Connect { hold } => hold.min(plan.duration),
                _ => plan.duration + shard.drain_grace(),
            };
            let until = self.work_at + hold;
            while Instant::now() < until && !self.shared.closed.get() {
                sleep((until - Instant::now()).min(Duration::from_millis(100))).await;
            }
        }
        Ok(())
    }

    fn packet_id(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.shared.inflight.borrow().contains_key(&id) {
                return id;
            }
        }
    }

    async fn subscribe_all(&mut self) -> Result<(), String> {
        let shard = self.shard.clone();
        let plan = &shard.plan;
        let Some(sub) = &plan.subscribe else {
            return Ok(());
        };
        for j in 0..sub.count {
            let filter = plan.expand(&sub.filter, self.k, j);
            let id = self.packet_id();
            let mut out = Vec::new();
            Subscribe::encode_from(
                plan.version,
                id,
                Properties::EMPTY,
                &[Subscription {
                    filter: &filter,
                    options: SubscriptionOptions::qos(sub.qos),
                }],
                &mut out,
            );
            let started = Instant::now();
            self.writer
                .send(&out)
                .await
                .map_err(|e| format!("send subscribe: {}", io_kind(&e)))?;
            let code = loop {
                match within(plan.timeout, self.subacks.recv()).await {
                    None => return Err("timeout: suback".into()),
                    Some(None) => return Err("closed by server before suback".into()),
                    Some(Some((got, code))) if got == id => break code,
                    Some(Some(_)) => continue,
                };
            };
            let mut stats = shard.stats.borrow_mut();
            if plan.records(self.k) {
                stats.record(crate::stats::Phase::Subscribe, started.elapsed());
            }
            stats.outcome(format!("suback 0x{code:02x}"));
            if !as_expected(code, plan.expect_suback()) {
                stats.error(format!(
                    "suback 0x{code:02x} (expected 0x{:02x})",
                    plan.expect_suback()
                ));
            }
        }
        Ok(())
    }

    async fn publish_all(&mut self) -> Result<(), String> {
        let shard = self.shard.clone();
        let plan = &shard.plan;
        let Some(p) = &plan.publish else {
            return Ok(());
        };
        let topic = plan.expand(&p.topic, self.k, 0);
        let end = self.work_at + plan.duration;
        let mut payload = vec![b'x'; p.payload];
        payload[8..16].copy_from_slice(&(plan.first + self.k).to_be_bytes());
        let mut out = Vec::with_capacity(p.payload + topic.len() + 16);
        let mut n: u64 = 0;
        // Spread each client's first message over one interval so that clients do not fire
        // in lockstep.
        let offset = match p.pacing {
            Pacing::Open { interval } => interval.mul_f64(shard.jitter(self.k)),
            Pacing::Closed { .. } => Duration::ZERO,
        };
        while p.messages == 0 || n < p.messages {
            if self.shared.closed.get() {
                return Err("closed by server while publishing".into());
            }
            let due = match p.pacing {
                Pacing::Open { interval } => {
                    let due = self.work_at + offset + interval.mul_f64(n as f64);
                    if due >= end {
                        break;
                    }
                    sleep_until(due).await;
                    due
                }
                Pacing::Closed { .. } => {
                    if Instant::now() >= end {
                        break;
                    }
                    // Closed loop is QoS 1 or 2 (the plan refuses QoS 0 without a rate): a
                    // unit of the window per message, given back by its final ack.
                    let left = end.saturating_duration_since(Instant::now());
                    match within(left, self.shared.window.acquire()).await {
                        None => break,
                        Some(Err(_)) => return Err("closed by server while publishing".into()),
                        // Given back by the final ack ([`finish`]), not by a drop.
                        Some(Ok(permit)) => permit.forget(),
                    }
                    Instant::now()
                }
            };
            let id = (p.qos != QoS::AtMostOnce).then(|| self.packet_id());
            let stamp = shard.unix_ns_of(due);
            payload[..8].copy_from_slice(&stamp.to_be_bytes());
            out.clear();
            Publish {
                dup: false,
                qos: p.qos,
                retain: false,
                topic: &topic,
                packet_id: id,
                topic_alias: None,
                properties: Properties::EMPTY,
                payload: &payload,
                payload_offset: 0,
            }
            .encode(plan.version, &mut out);
            if let Some(id) = id {
                self.shared.inflight.borrow_mut().insert(id, due);
            }
            self.writer
                .send(&out)
                .await
                .map_err(|e| format!("send publish: {}", io_kind(&e)))?;
            n += 1;
            shard.stats.borrow_mut().sent += 1;
            shard.progress.sent();
        }
        if p.messages > 0 && n < p.messages {
            // Connected too late (or too slow) for the work phase: say so, never silently.
            shard.stats.borrow_mut().error(format!(
                "publish: the work phase ended with {} of --messages {} sent",
                n, p.messages
            ));
        }
        // Drain: wait for outstanding acknowledgments.
        let until = Instant::now().max(end) + shard.drain_grace();
        while !self.shared.inflight.borrow().is_empty() && !self.shared.closed.get() {
            if Instant::now() >= until {
                let lost = self.shared.inflight.borrow().len() as u64;
                let mut stats = shard.stats.borrow_mut();
                for _ in 0..lost {
                    stats.error("timeout: publish ack".into());
                }
                break;
            }
            sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}
