//! The authorisation hook: how the engine asks "may this connection do this?".
//!
//! Each shard builds its own [`Authorizer`], so an implementation can keep shard-local state
//! (caches) without locks. Answers come back as a [`Check`]: `Ready` when known at once (a
//! cache hit, no allocation), or `Pending` with a future the connection awaits. Only that
//! connection waits; the shard goes on with the others, and since a connection handles its
//! packets one at a time, their order is kept while an answer is pending.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use flytrap_proto::{Connect, ReasonCode};

/// Allow, or deny with the reason code the client should see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Refuse, with this reason (0x87 Not authorized for an ACL denial).
    Deny(ReasonCode),
}

/// An answer now, or later.
pub enum Check<T> {
    /// Known now.
    Ready(T),
    /// Known when the future completes.
    Pending(Pin<Box<dyn Future<Output = T>>>),
}

impl<T> Check<T> {
    /// Waits for the answer.
    pub async fn resolve(self) -> T {
        match self {
            Check::Ready(v) => v,
            Check::Pending(f) => f.await,
        }
    }
}

impl<T> std::fmt::Debug for Check<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Check::Ready(_) => "Check::Ready",
            Check::Pending(_) => "Check::Pending",
        })
    }
}

/// What the engine knows about a connecting client.
#[derive(Debug, Clone, Copy)]
pub struct ConnectInfo {
    /// The client's address: the TCP peer, or the one a PROXY protocol header gave.
    pub peer: SocketAddr,
    /// Whether the client came in over TLS.
    pub tls: bool,
}

/// The questions the engine asks. `Session` is what an implementation remembers about an
/// authenticated connection (its identity, for instance).
pub trait Authorizer: 'static {
    /// Per-connection state created by a successful [`Authorizer::connect`].
    type Session: 'static;

    /// What an implementation keeps between the challenge it sends in AUTH and the client's
    /// answer (MQTT 5 enhanced authentication); `()` for one that offers none.
    type Challenge: 'static;

    /// May a connection from `ip` be accepted at all? Asked at accept, after the PROXY header
    /// and before any TLS handshake (bans). Refused TLS clients are closed; plain TCP clients
    /// get a CONNACK with the reason.
    fn admit(&self, ip: std::net::IpAddr) -> Result<(), ReasonCode> {
        let _ = ip;
        Ok(())
    }

    /// May this CONNECT proceed? On success, the session; on failure, the CONNACK reason.
    /// The will message, if any, is part of the question.
    fn connect(
        &self,
        info: &ConnectInfo,
        connect: &Connect<'_>,
    ) -> Check<Result<Self::Session, ReasonCode>>;

    /// A 5.0 CONNECT with an Authentication Method: the challenge to send (the Authentication
    /// Data of an AUTH 0x18) and the state to keep until the answer, or the CONNACK reason.
    /// The default speaks no method: 0x8C Bad authentication method.
    fn challenge(
        &self,
        info: &ConnectInfo,
        connect: &Connect<'_>,
    ) -> Result<(Self::Challenge, Vec<u8>), ReasonCode> {
        let _ = (info, connect);
        Err(ReasonCode::BAD_AUTHENTICATION_METHOD)
    }

    /// The client's answer to a [`Authorizer::challenge`] (the Authentication Data of its AUTH
    /// 0x18). Then as [`Authorizer::connect`]: the session, or the CONNACK reason.
    fn answer(
        &self,
        info: &ConnectInfo,
        connect: &Connect<'_>,
        challenge: Self::Challenge,
        data: &[u8],
    ) -> Check<Result<Self::Session, ReasonCode>> {
        let _ = (info, connect, challenge, data);
        Check::Ready(Err(ReasonCode::BAD_AUTHENTICATION_METHOD))
    }

    /// May the client publish to `topic` (aliases already resolved)?
    fn publish(&self, session: &Self::Session, topic: &str) -> Check<Verdict>;

    /// May the client subscribe to `filter` (as sent, `$share/` prefix included)?
    fn subscribe(&self, session: &Self::Session, filter: &str) -> Check<Verdict>;

    /// May a PUBLISH on `topic` from the broker be delivered to the client?
    fn deliver(&self, session: &Self::Session, topic: &str) -> Check<Verdict>;
}

/// Allows everything: the engine's default, and the baseline of its benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    type Session = ();
    type Challenge = ();

    fn connect(&self, _: &ConnectInfo, _: &Connect<'_>) -> Check<Result<(), ReasonCode>> {
        Check::Ready(Ok(()))
    }

    fn publish(&self, _: &(), _: &str) -> Check<Verdict> {
        Check::Ready(Verdict::Allow)
    }

    fn subscribe(&self, _: &(), _: &str) -> Check<Verdict> {
        Check::Ready(Verdict::Allow)
    }

    fn deliver(&self, _: &(), _: &str) -> Check<Verdict> {
        Check::Ready(Verdict::Allow)
    }
}
