//! [`ChainAuthorizer`]: the engine's authorisation hook backed by the chain (SPEC §1–4).
//!
//! One per shard, built on the shard's own thread. Its permission cache is shard-local; what
//! must be shared by every shard of the process — the replay cache, bans, sensitive-topic
//! accesses, the geo database and the chain handle — lives in one [`AuthzShared`].

use std::cell::RefCell;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use flytrap_chain::{
    Action, Address, Answer, AuditRecord, B256, ChainBan, ChainHandle, Country, Notice, Query,
};
use flytrap_engine::{Authorizer, Check, ConnectInfo, Verdict};
use flytrap_proto::{Connect, ReasonCode, topic};

use crate::bans::{Applied, BanList, BanPolicy};
use crate::cache::{CacheConfig, Lookup, PermCache};
use crate::challenge::{Challenge, ChallengeConfig};
use crate::geo::Geo;
use crate::identity::Verifier;
use crate::replay::ReplayCache;
use crate::sensitive::SensitiveLog;

/// What to do with topics the contract does not know (`authz.unregistered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unregistered {
    /// Neither publishable nor subscribable (the default).
    Deny,
    /// Open to every authenticated client.
    Allow,
}

/// Settings of the authorisation plane.
#[derive(Debug, Clone)]
pub struct AuthzConfig {
    /// `auth.allow_static`.
    pub allow_static: bool,
    /// `auth.max_clock_skew_s`.
    pub max_clock_skew_s: u64,
    /// `auth.known_keys`: signers whose public keys each shard remembers.
    pub known_keys: usize,
    /// `auth.require_challenge`: only the challenge scheme signs in; signed CONNECTs
    /// (timestamped or static) get 0x8C Bad authentication method.
    pub require_challenge: bool,
    /// The challenge scheme's settings (`auth.challenge_domain`, `auth.challenge_ttl_s`, the
    /// chain id).
    pub challenge: ChallengeConfig,
    /// `authz.unregistered`.
    pub unregistered: Unregistered,
    /// `[cache]`.
    pub cache: CacheConfig,
    /// `[ban]`.
    pub ban: BanPolicy,
}

/// State shared by every shard of the process.
#[derive(Debug)]
pub struct AuthzShared {
    config: AuthzConfig,
    chain: ChainHandle,
    replay: ReplayCache,
    bans: BanList,
    geo: Option<Geo>,
    sensitive: SensitiveLog,
    /// The last chain ban applied, so that only the first shard to apply one logs it.
    last_chain_ban: std::sync::Mutex<Option<ChainBan>>,
}

impl AuthzShared {
    /// Shared state over a running chain service.
    pub fn new(config: AuthzConfig, chain: ChainHandle, geo: Option<Geo>) -> Arc<AuthzShared> {
        Arc::new(AuthzShared {
            replay: ReplayCache::new(config.max_clock_skew_s),
            bans: BanList::new(config.ban),
            config,
            chain,
            geo,
            sensitive: SensitiveLog::default(),
            last_chain_ban: std::sync::Mutex::new(None),
        })
    }

    /// Shares the replay cache with other processes through `table` (worker processes); false
    /// if it could not be (see [`ReplayCache::share`]).
    pub fn share_replay(&self, table: flytrap_engine::seen::SeenTable) -> bool {
        self.replay.share(table)
    }

    /// The sensitive-topic accesses since the last call, per topic (worker processes merge
    /// theirs before writing one report per topic).
    pub fn take_sensitive(&self) -> Vec<crate::sensitive::TopicAccesses> {
        self.sensitive.take()
    }

    /// The sensitive-topic accesses since the last call, as audit records for `[from, to]`.
    pub fn take_sensitive_reports(&self, from: u64, to: u64) -> Vec<AuditRecord> {
        self.sensitive
            .take()
            .into_iter()
            .map(|t| AuditRecord::SensitiveReport {
                topic_id: t.topic_id,
                from,
                to,
                publishers: t.publishers,
                receivers: t.receivers,
            })
            .collect()
    }

    /// Hands a record to the audit spool without waiting on the caller's thread. The chain
    /// thread appends it durably; a full queue makes the spawned task wait, never drop it.
    fn audit(&self, record: AuditRecord) {
        let chain = self.chain.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = chain.audit(record).await {
                tracing::error!(error = %e, "audit record could not be spooled");
            }
        });
    }

    /// Applies a ban (or a lift) recorded on the chain by any operator.
    pub fn chain_ban(&self, ban: &ChainBan) {
        let applied = self.bans.apply(ban, unix_now(), Instant::now());
        let fresh = self.last_chain_ban.lock().map(|mut last| {
            let fresh = *last != Some(*ban);
            *last = Some(*ban);
            fresh
        });
        if fresh.unwrap_or(true) {
            match applied {
                Applied::Banned => {
                    tracing::info!(ip = %ban.ip, until = ban.until, block = ban.block, "ban from the chain enforced")
                }
                Applied::Lifted => {
                    tracing::info!(ip = %ban.ip, block = ban.block, "ban lifted on the chain")
                }
                Applied::Ignored => {}
            }
        }
    }

    /// Counts a failure from `ip`; a resulting ban is recorded on the chain.
    fn failure(&self, ip: IpAddr) {
        if let Some(ban) = self.bans.record_failure(ip, Instant::now()) {
            let now = unix_now();
            tracing::warn!(%ip, failures = ban.failures, "banned");
            self.audit(AuditRecord::Ban {
                ip,
                until: now + ban.duration.as_secs(),
                failures: ban.failures,
                time: now,
            });
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a connection is known by after its CONNECT.
#[derive(Debug)]
pub struct Session {
    /// The proven address.
    pub address: Address,
    /// The client's IP (from the PROXY header when there is one).
    pub ip: IpAddr,
    /// Its country, when a geo database is configured and knows the IP.
    pub country: Option<Country>,
    /// The topic filters it subscribed to (without `$share/` prefixes), for delivery checks.
    subscriptions: Rc<RefCell<Vec<Box<str>>>>,
}

/// The facts a decision needs, copied out of the session so a pending check owns them.
#[derive(Debug, Clone, Copy)]
struct Who {
    address: Address,
    ip: IpAddr,
    country: Option<Country>,
}

impl Session {
    fn who(&self) -> Who {
        Who {
            address: self.address,
            ip: self.ip,
            country: self.country,
        }
    }
}

/// Whether a check is the client's own action (failures count towards bans) or a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Publish,
    Subscribe,
    Deliver,
}

impl Use {
    fn action(self) -> Action {
        match self {
            Use::Publish => Action::Publish,
            Use::Subscribe | Use::Deliver => Action::Subscribe,
        }
    }
}

/// The engine hook of one shard.
#[derive(Debug)]
pub struct ChainAuthorizer {
    shared: Arc<AuthzShared>,
    verifier: Rc<Verifier>,
    cache: Rc<RefCell<PermCache>>,
}

impl ChainAuthorizer {
    /// Builds the shard's authoriser and starts its invalidation listener. Call on the shard's
    /// own executor.
    pub fn new(shared: Arc<AuthzShared>) -> ChainAuthorizer {
        let cache = Rc::new(RefCell::new(PermCache::new(shared.config.cache)));
        let mut notices = shared.chain.subscribe();
        let listener_cache = Rc::downgrade(&cache);
        let listener_shared = shared.clone();
        tokio::task::spawn_local(async move {
            while let Some(notice) = notices.recv().await {
                let Some(cache) = listener_cache.upgrade() else {
                    return;
                };
                match notice {
                    Notice::Changed(inv) => cache.borrow_mut().invalidate(&inv),
                    Notice::FlushAll => cache.borrow_mut().clear(),
                    // Every shard applies it (idempotent): one list per process, so the first
                    // one to see it bans the IP for all of them.
                    Notice::Banned(ban) => listener_shared.chain_ban(&ban),
                }
            }
        });
        ChainAuthorizer {
            verifier: Rc::new(Verifier::new(
                shared.config.allow_static,
                shared.config.max_clock_skew_s,
                shared.config.known_keys,
            )),
            shared,
            cache,
        }
    }

    /// Decides from an answer, recording what must be recorded.
    fn evaluate(
        shared: &AuthzShared,
        who: &Who,
        topic_id: B256,
        usage: Use,
        answer: &Answer,
    ) -> Verdict {
        let deny = |shared: &AuthzShared| {
            if usage != Use::Deliver {
                shared.failure(who.ip);
            }
            Verdict::Deny(ReasonCode::NOT_AUTHORIZED)
        };
        if !answer.exists {
            return match shared.config.unregistered {
                Unregistered::Allow => Verdict::Allow,
                Unregistered::Deny => deny(shared),
            };
        }
        if !answer.allowed {
            return deny(shared);
        }
        if !answer.countries.is_empty()
            && !who.country.is_some_and(|c| answer.countries.contains(&c))
        {
            if usage != Use::Deliver {
                shared.audit(AuditRecord::WrongCountry {
                    client: who.address,
                    topic_id,
                    ip: who.ip,
                    country: who.country.unwrap_or(Country(*b"ZZ")),
                    time: unix_now(),
                });
            }
            return deny(shared);
        }
        if answer.sensitive {
            match usage {
                Use::Publish => shared.sensitive.published(topic_id, who.address),
                Use::Deliver => shared.sensitive.received(topic_id, who.address),
                Use::Subscribe => {}
            }
        }
        Verdict::Allow
    }

    /// The answer for (`topic`, who, action): from the cache, or from the chain.
    fn answer(
        &self,
        topic: &str,
        who: Address,
        action: Action,
    ) -> (B256, Result<Rc<Answer>, PendingAnswer>) {
        let mut cache = self.cache.borrow_mut();
        let topic_id = cache.topic_id(topic);
        let fallback = match cache.get(topic_id, who, action, Instant::now()) {
            Lookup::Fresh(a) => return (topic_id, Ok(a)),
            Lookup::Expired {
                answer,
                usable_if_down: true,
            } => Some(answer),
            Lookup::Expired { .. } | Lookup::Miss => None,
        };
        drop(cache);
        let chain = self.shared.chain.clone();
        let cache = self.cache.clone();
        let query = Query {
            topic_id,
            who,
            action,
        };
        (
            topic_id,
            Err(Box::pin(async move {
                match chain.check(query).await {
                    Ok(a) => {
                        Some(
                            cache
                                .borrow_mut()
                                .insert(topic_id, who, action, a, Instant::now()),
                        )
                    }
                    Err(e) => {
                        // Node down: no new grant; a recent grant may serve (SPEC §4).
                        tracing::debug!(error = %e, "cold check failed");
                        fallback
                    }
                }
            })),
        )
    }

    fn check(&self, who: Who, topic: &str, usage: Use) -> Check<Verdict> {
        let (topic_id, answer) = self.answer(topic, who.address, usage.action());
        match answer {
            Ok(a) => Check::Ready(Self::evaluate(&self.shared, &who, topic_id, usage, &a)),
            Err(pending) => {
                let shared = self.shared.clone();
                Check::Pending(Box::pin(async move {
                    match pending.await {
                        Some(a) => Self::evaluate(&shared, &who, topic_id, usage, &a),
                        None => {
                            if usage != Use::Deliver {
                                shared.failure(who.ip);
                            }
                            Verdict::Deny(ReasonCode::NOT_AUTHORIZED)
                        }
                    }
                }))
            }
        }
    }
}

/// An answer the chain is asked for; `None` when it could not answer and no stale grant may
/// stand in.
type PendingAnswer = Pin<Box<dyn std::future::Future<Output = Option<Rc<Answer>>>>>;

impl Authorizer for ChainAuthorizer {
    type Session = Session;
    type Challenge = Challenge;

    fn admit(&self, ip: IpAddr) -> Result<(), ReasonCode> {
        if self.shared.bans.is_banned(ip, Instant::now()) {
            Err(ReasonCode::BANNED)
        } else {
            Ok(())
        }
    }

    fn connect(
        &self,
        info: &ConnectInfo,
        connect: &Connect<'_>,
    ) -> Check<Result<Session, ReasonCode>> {
        let ip = info.peer.ip();
        let now = unix_now();
        let claimed = || {
            crate::identity::credentials(connect)
                .ok()
                .map(|c| Address::from(c.address))
        };
        if self.shared.config.require_challenge {
            tracing::debug!(%ip, "signed CONNECT refused: auth.require_challenge");
            return self.refused(ip, ReasonCode::BAD_AUTHENTICATION_METHOD, claimed());
        }
        let identity = match self.verifier.verify(connect, now) {
            Ok(id) => id,
            Err(e) => {
                tracing::debug!(%ip, error = %e, "CONNECT refused");
                return self.refused(ip, ReasonCode::BAD_USER_NAME_OR_PASSWORD, claimed());
            }
        };
        let address = Address::from(identity.address);
        if let Some(ts) = identity.timestamp
            && !self
                .shared
                .replay
                .first_use(&identity.message_hash, ts, now)
        {
            tracing::debug!(%ip, "replayed CONNECT");
            return self.refused(ip, ReasonCode::BAD_USER_NAME_OR_PASSWORD, Some(address));
        }
        self.signed_in(ip, address, connect)
    }

    fn challenge(
        &self,
        info: &ConnectInfo,
        connect: &Connect<'_>,
    ) -> Result<(Challenge, Vec<u8>), ReasonCode> {
        let ip = info.peer.ip();
        // A fresh nonce per connection from the thread's CSPRNG: nothing to share or remember
        // beyond this connection.
        let nonce: [u8; 16] = rand::random();
        match Challenge::begin(&self.shared.config.challenge, connect, nonce, unix_now()) {
            Ok((challenge, message)) => Ok((challenge, message.into_bytes())),
            Err(e) => {
                tracing::debug!(%ip, error = %e, "AUTH exchange refused");
                let code = e.reason_code();
                let _ = self.refused(ip, code, None);
                Err(code)
            }
        }
    }

    fn answer(
        &self,
        info: &ConnectInfo,
        connect: &Connect<'_>,
        challenge: Challenge,
        data: &[u8],
    ) -> Check<Result<Session, ReasonCode>> {
        let ip = info.peer.ip();
        match challenge.finish(&self.verifier, data, unix_now()) {
            Ok(identity) => self.signed_in(ip, Address::from(identity.address), connect),
            Err(e) => {
                tracing::debug!(%ip, error = %e, "AUTH answer refused");
                self.refused(
                    ip,
                    e.reason_code(),
                    Some(Address::from(challenge.address())),
                )
            }
        }
    }

    fn publish(&self, session: &Session, topic: &str) -> Check<Verdict> {
        self.check(session.who(), topic, Use::Publish)
    }

    fn subscribe(&self, session: &Session, filter: &str) -> Check<Verdict> {
        // `$share/<group>/F` is a subscription to F (SPEC §3).
        let filter = match topic::split_shared(filter) {
            Ok((_, f)) => f,
            Err(_) => return Check::Ready(Verdict::Deny(ReasonCode::TOPIC_FILTER_INVALID)),
        };
        // Remembered now (so deliveries right after the SUBACK are matched) and forgotten if
        // the answer is a denial.
        let added = {
            let mut list = session.subscriptions.borrow_mut();
            let new = !list.iter().any(|s| &**s == filter);
            if new {
                list.push(filter.into());
            }
            new
        };
        let forget = move |subs: &RefCell<Vec<Box<str>>>, v: Verdict, filter: &str| {
            if v != Verdict::Allow && added {
                subs.borrow_mut().retain(|s| &**s != filter);
            }
        };
        match self.check(session.who(), filter, Use::Subscribe) {
            Check::Ready(v) => {
                forget(&session.subscriptions, v, filter);
                Check::Ready(v)
            }
            Check::Pending(f) => {
                let subs = session.subscriptions.clone();
                let filter: Box<str> = filter.into();
                Check::Pending(Box::pin(async move {
                    let v = f.await;
                    forget(&subs, v, &filter);
                    v
                }))
            }
        }
    }

    fn deliver(&self, session: &Session, topic_name: &str) -> Check<Verdict> {
        // A registered topic needs its own subscription right; otherwise the registered
        // filter the subscription matched decides (SPEC §3). A broad filter cannot leak a
        // separately registered topic.
        let who = session.who();
        let (topic_id, answer) = self.answer(topic_name, who.address, Action::Subscribe);
        // Collected only when the topic is not registered (or not known yet): a delivery of a
        // registered topic, the common case, allocates nothing here.
        let matching = || -> Vec<Box<str>> {
            session
                .subscriptions
                .borrow()
                .iter()
                .filter(|f| topic::matches(f, topic_name))
                .cloned()
                .collect()
        };
        match answer {
            Ok(a) if a.exists => Check::Ready(Self::evaluate(
                &self.shared,
                &who,
                topic_id,
                Use::Deliver,
                &a,
            )),
            Ok(_) => self.deliver_via_filters(who, matching()),
            Err(pending) => {
                let filters = matching();
                let this_shared = self.shared.clone();
                let me = self.clone_for_pending();
                Check::Pending(Box::pin(async move {
                    match pending.await {
                        Some(a) if a.exists => {
                            Self::evaluate(&this_shared, &who, topic_id, Use::Deliver, &a)
                        }
                        Some(_) => me.deliver_via_filters(who, filters).resolve().await,
                        None => Verdict::Deny(ReasonCode::NOT_AUTHORIZED),
                    }
                }))
            }
        }
    }
}

impl ChainAuthorizer {
    /// A refused sign-in: counted towards a ban and recorded on the chain.
    fn refused(
        &self,
        ip: IpAddr,
        code: ReasonCode,
        client: Option<Address>,
    ) -> Check<Result<Session, ReasonCode>> {
        self.shared.failure(ip);
        self.shared.audit(AuditRecord::ConnectFailed {
            ip,
            client,
            reason: code.0,
            time: unix_now(),
        });
        Check::Ready(Err(code))
    }

    /// A proven address: its session, once the will topic (a publish) is allowed.
    fn signed_in(
        &self,
        ip: IpAddr,
        address: Address,
        connect: &Connect<'_>,
    ) -> Check<Result<Session, ReasonCode>> {
        let session = Session {
            address,
            ip,
            country: self.shared.geo.as_ref().and_then(|g| g.country(ip)),
            subscriptions: Rc::new(RefCell::new(Vec::new())),
        };
        // The will message is a publish to the will topic, checked now.
        let Some(will) = connect.will else {
            return Check::Ready(Ok(session));
        };
        match self.check(session.who(), will.topic, Use::Publish) {
            Check::Ready(Verdict::Allow) => Check::Ready(Ok(session)),
            Check::Ready(Verdict::Deny(_)) => Check::Ready(Err(ReasonCode::NOT_AUTHORIZED)),
            Check::Pending(f) => Check::Pending(Box::pin(async move {
                match f.await {
                    Verdict::Allow => Ok(session),
                    Verdict::Deny(_) => Err(ReasonCode::NOT_AUTHORIZED),
                }
            })),
        }
    }

    fn clone_for_pending(&self) -> ChainAuthorizer {
        ChainAuthorizer {
            shared: self.shared.clone(),
            verifier: self.verifier.clone(),
            cache: self.cache.clone(),
        }
    }

    /// Delivery of an unregistered topic: allowed if a filter the client subscribed with and
    /// that matches it grants the subscription (or, with `unregistered = "allow"`, if no
    /// registered filter is involved).
    fn deliver_via_filters(&self, who: Who, filters: Vec<Box<str>>) -> Check<Verdict> {
        if filters.is_empty() {
            return Check::Ready(match self.shared.config.unregistered {
                Unregistered::Allow => Verdict::Allow,
                Unregistered::Deny => Verdict::Deny(ReasonCode::NOT_AUTHORIZED),
            });
        }
        let mut pending = Vec::new();
        for f in &filters {
            match self.check(who, f, Use::Deliver) {
                Check::Ready(Verdict::Allow) => return Check::Ready(Verdict::Allow),
                Check::Ready(Verdict::Deny(_)) => {}
                Check::Pending(p) => pending.push(p),
            }
        }
        if pending.is_empty() {
            return Check::Ready(Verdict::Deny(ReasonCode::NOT_AUTHORIZED));
        }
        Check::Pending(Box::pin(async move {
            for p in pending {
                if p.await == Verdict::Allow {
                    return Verdict::Allow;
                }
            }
            Verdict::Deny(ReasonCode::NOT_AUTHORIZED)
        }))
    }
}
