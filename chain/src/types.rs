//! The plain types the rest of FlyTrap sees: actions, topic ids, permission queries and
//! answers, countries, fees, invalidations.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use alloy::primitives::{Address, B256, FixedBytes, keccak256};

use crate::Error;

/// A fee equal to this closes an action to self-service `join` (the contract's `JOIN_CLOSED`,
/// 2¹²⁸ − 1): only the owner's grants add members.
pub const JOIN_CLOSED: u128 = u128::MAX;

/// The id of a topic: `keccak256` of its exact name, computed off-chain as the contract expects.
pub fn topic_id(name: &str) -> B256 {
    keccak256(name.as_bytes())
}

/// What a client wants to do on a topic (the contract's action codes 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Publish (code 0).
    Publish,
    /// Subscribe (code 1).
    Subscribe,
}

impl Action {
    /// The contract's code of the action.
    pub fn code(self) -> u8 {
        match self {
            Action::Publish => 0,
            Action::Subscribe => 1,
        }
    }

    /// The action of a contract code; `None` for anything else (255 = "no action", topic-wide).
    pub fn from_code(code: u8) -> Option<Action> {
        match code {
            0 => Some(Action::Publish),
            1 => Some(Action::Subscribe),
            _ => None,
        }
    }

    /// `pub` or `sub`, as on the command line.
    pub fn short(self) -> &'static str {
        match self {
            Action::Publish => "pub",
            Action::Subscribe => "sub",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

impl FromStr for Action {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "pub" | "publish" => Ok(Action::Publish),
            "sub" | "subscribe" => Ok(Action::Subscribe),
            _ => Err(Error::InvalidInput(format!(
                "unknown action '{s}' (expected pub or sub)"
            ))),
        }
    }
}

/// One permission question: may `who` do `action` on the topic `topic_id`?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Query {
    /// `topic_id(name)` of the registered topic (or filter) string.
    pub topic_id: B256,
    /// The client's address.
    pub who: Address,
    /// Publish or subscribe.
    pub action: Action,
}

impl Query {
    /// Bytes of one packed `checkBatch` query.
    pub const PACKED_LEN: usize = 53;

    /// The packed form `checkBatch` takes: topic id (32 bytes) ‖ address (20) ‖ action (1).
    pub fn pack_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.topic_id.as_slice());
        out.extend_from_slice(self.who.as_slice());
        out.push(self.action.code());
    }

    /// A query on the topic named `name`.
    pub fn new(name: &str, who: Address, action: Action) -> Query {
        Query {
            topic_id: topic_id(name),
            who,
            action,
        }
    }
}

/// The chain's answer to a [`Query`]. An unknown topic gives `exists = false` and everything
/// else false or empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answer {
    /// The topic is registered.
    pub exists: bool,
    /// The address holds the action on the topic.
    pub allowed: bool,
    /// The topic is sensitive (accesses are reported).
    pub sensitive: bool,
    /// Where the topic may be used from; empty = anywhere.
    pub countries: Vec<Country>,
}

/// An ISO 3166 alpha-2 country code, upper-case ASCII (`bytes2` in the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country(pub [u8; 2]);

impl Country {
    /// The code as the contract's `bytes2`.
    pub fn to_bytes2(self) -> FixedBytes<2> {
        FixedBytes(self.0)
    }

    /// From the contract's `bytes2` (not validated: the contract validated it on the way in).
    pub fn from_bytes2(b: FixedBytes<2>) -> Country {
        Country(b.0)
    }

    /// The code as text (`"DE"`); non-ASCII bytes are shown as `?`.
    pub fn as_str(&self) -> String {
        self.0
            .iter()
            .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
            .collect()
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl FromStr for Country {
    type Err = Error;
    /// Two ASCII letters; lower case is accepted and upper-cased (the contract wants upper).
    fn from_str(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(Error::InvalidInput(format!(
                "bad country code '{s}' (expected two letters, ISO 3166 alpha-2, e.g. DE)"
            )));
        }
        Ok(Country([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
        ]))
    }
}

/// A join fee as the contract encodes it in a `uint128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fee {
    /// Anyone may join for free (0).
    Free,
    /// No self-service join: only the owner's grants (`JOIN_CLOSED`).
    Closed,
    /// Joining costs this many wei.
    Wei(u128),
}

impl Fee {
    /// The contract's encoding.
    pub fn to_raw(self) -> u128 {
        match self {
            Fee::Free => 0,
            Fee::Closed => JOIN_CLOSED,
            Fee::Wei(w) => w,
        }
    }

    /// Can the contract store this fee exactly? It keeps a fee as a 40-bit code, m × 10^e with
    /// m < 2^34 (any fee up to 17,179,869,183 wei, and beyond that any fee with enough trailing
    /// zeros); any other fee reverts `BadFee()`. `Free` and `Closed` always can.
    pub fn is_representable(self) -> bool {
        match self {
            Fee::Free | Fee::Closed => true,
            Fee::Wei(w) => fee_representable(w),
        }
    }

    /// `Ok` if [`is_representable`](Self::is_representable), else a one-line
    /// [`Error::InvalidInput`] saying why and what the nearest storable fees are.
    pub fn check(self) -> Result<(), Error> {
        let Fee::Wei(w) = self else { return Ok(()) };
        if fee_representable(w) {
            return Ok(());
        }
        // the nearest storable fees: w rounded down / up to its significant digits
        let mut unit: u128 = 1;
        while w / unit >= FEE_MANTISSA_LIMIT {
            unit *= 10;
        }
        let q = w / unit;
        let down = q * unit;
        // (q + 1) × unit, unless q + 1 = 2^34, which is not storable: then the next multiple
        // of 10 × unit
        let up = if q + 1 == FEE_MANTISSA_LIMIT {
            (FEE_MANTISSA_LIMIT / 10 + 1).checked_mul(unit * 10)
        } else {
            (q + 1).checked_mul(unit)
        }
        .filter(|&u| u != JOIN_CLOSED);
        Err(Error::InvalidInput(format!(
            "fee {w} wei cannot be stored exactly: a fee must be m × 10^e wei with m < 2^34{}",
            match up {
                Some(u) => format!(" (nearest: {down} or {u})"),
                None => format!(" (nearest: {down})"),
            }
        )))
    }

    /// From the contract's encoding.
    pub fn from_raw(raw: u128) -> Fee {
        match raw {
            0 => Fee::Free,
            JOIN_CLOSED => Fee::Closed,
            w => Fee::Wei(w),
        }
    }
}

impl fmt::Display for Fee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fee::Free => f.write_str("free"),
            Fee::Closed => f.write_str("closed"),
            Fee::Wei(w) => write!(f, "{w} wei"),
        }
    }
}

/// Fees are m × 10^e with m below this (the contract's 34-bit mantissa).
const FEE_MANTISSA_LIMIT: u128 = 1 << 34;

/// Is `wei` m × 10^e with m < 2^34 (what the contract's 40-bit fee code stores exactly)?
/// [`JOIN_CLOSED`] is stored as a code of its own and counts as representable.
pub fn fee_representable(wei: u128) -> bool {
    if wei == JOIN_CLOSED {
        return true;
    }
    let mut m = wei;
    while m >= FEE_MANTISSA_LIMIT {
        if !m.is_multiple_of(10) {
            return false;
        }
        m /= 10;
    }
    true
}

/// What a topic is, as `topic()` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// `topic_id(name)`.
    pub id: B256,
    /// The registered string (may be a filter with `+`/`#`).
    pub name: String,
    /// Its owner (creator).
    pub owner: Address,
    /// Where it may be used from; empty = anywhere.
    pub countries: Vec<Country>,
    /// The fee to join as publisher.
    pub pub_fee: Fee,
    /// The fee to join as subscriber.
    pub sub_fee: Fee,
    /// Accesses are reported.
    pub sensitive: bool,
}

/// The settings of a topic, for `createTopic` and `updateTopic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Where it may be used from; empty = anywhere.
    pub countries: Vec<Country>,
    /// The fee to join as publisher.
    pub pub_fee: Fee,
    /// The fee to join as subscriber.
    pub sub_fee: Fee,
    /// Accesses are reported.
    pub sensitive: bool,
}

impl Default for TopicSpec {
    /// A private topic: open from anywhere, closed to self-service join, not sensitive.
    fn default() -> Self {
        TopicSpec {
            countries: Vec::new(),
            pub_fee: Fee::Closed,
            sub_fee: Fee::Closed,
            sensitive: false,
        }
    }
}

/// The kind of an ACL change (`AclChanged.change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// The topic was created (address = owner, topic-wide).
    Created,
    /// The owner granted the action to the address.
    Granted,
    /// The owner revoked the action from the address.
    Revoked,
    /// The address paid to join.
    Joined,
    /// Countries, fees or the sensitive flag changed (address = owner, topic-wide).
    Updated,
    /// A code this build does not know (a newer contract).
    Other(u8),
}

impl Change {
    /// From the contract's code.
    pub fn from_code(c: u8) -> Change {
        match c {
            0 => Change::Created,
            1 => Change::Granted,
            2 => Change::Revoked,
            3 => Change::Joined,
            4 => Change::Updated,
            o => Change::Other(o),
        }
    }

    /// A lower-case word for reports.
    pub fn word(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Granted => "grant",
            Change::Revoked => "revoke",
            Change::Joined => "join",
            Change::Updated => "updated",
            Change::Other(_) => "other",
        }
    }
}

/// An ACL change seen on the chain, for the proxy's permission cache.
///
/// `action == None` is topic-wide (creation or update: existence, countries or the sensitive
/// flag changed): every cached answer for the topic must be dropped. Otherwise only the entry
/// (`topic_id`, `address`, `action`) is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Invalidation {
    /// The topic.
    pub topic_id: B256,
    /// The address whose right changed (the owner for topic-wide changes).
    pub address: Address,
    /// The action whose right changed; `None` = every entry of the topic.
    pub action: Option<Action>,
    /// What happened.
    pub change: Change,
    /// The block the change was mined in.
    pub block: u64,
}

/// A `Banned` record seen on the chain, written by any operator (any proxy, any worker process,
/// or `flytrap ban lift`), for every proxy's ban list.
///
/// The contract's event is reused as it is, with one encoding for lifting a ban: **`failures ==
/// 0` and `until <= time`** ([`AuditRecord::lift`](crate::AuditRecord::lift) writes `until ==
/// time`). A ban the proxy decides always counts at least one failure and ends after it was
/// decided, so the two never mix. A lift at `time` T cancels every ban of that IP decided at
/// or before T, including one still waiting in some proxy's spool and mined later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainBan {
    /// The IP.
    pub ip: IpAddr,
    /// End of the ban, Unix seconds (for a lift: its time).
    pub until: u64,
    /// Failures that led to it (0 for a lift).
    pub failures: u32,
    /// When it was decided (or lifted), Unix seconds.
    pub time: u64,
    /// The block it was mined in.
    pub block: u64,
}

impl ChainBan {
    /// Whether this record lifts the IP's bans rather than banning it.
    pub fn is_lift(&self) -> bool {
        self.failures == 0 && self.until <= self.time
    }
}

/// An IP address as the contract's `bytes16` (IPv4 as IPv4-mapped IPv6, `::ffff:a.b.c.d`).
pub fn ip_to_bytes16(ip: IpAddr) -> FixedBytes<16> {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    FixedBytes(v6.octets())
}

/// The contract's `bytes16` back to an address (IPv4-mapped addresses become IPv4).
pub fn bytes16_to_ip(b: FixedBytes<16>) -> IpAddr {
    let v6 = Ipv6Addr::from(b.0);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Parses an address: `0x` + 40 hex digits, any case; mixed case must be a valid EIP-55
/// checksum.
pub fn parse_address(s: &str) -> Result<Address, Error> {
    let bad = || {
        Error::InvalidInput(format!(
            "malformed address '{s}' (expected 0x and 40 hex digits)"
        ))
    };
    let hex = s.strip_prefix("0x").ok_or_else(bad)?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mixed =
        hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
    if mixed {
        return Address::parse_checksummed(s, None).map_err(|_| {
            Error::InvalidInput(format!("address '{s}' has a wrong EIP-55 checksum"))
        });
    }
    s.parse::<Address>().map_err(|_| bad())
}

/// The lower-case `0x` hex form of an address (as signed in CONNECT messages).
pub fn lower_hex(a: &Address) -> String {
    format!("{a:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_round_trip() {
        for ip in ["192.0.2.7", "2001:db8::1", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(bytes16_to_ip(ip_to_bytes16(ip)), ip);
        }
        let b = ip_to_bytes16("10.1.2.3".parse().unwrap());
        assert_eq!(&b.0[10..], &[0xff, 0xff, 10, 1, 2, 3]);
    }

    #[test]
    fn addresses() {
        let a = "0x1a642f0E3c3aF545E7AcBD38b07251B3990914F1";
        assert!(parse_address(a).is_ok());
        assert!(parse_address(&a.to_lowercase()).is_ok());
        assert!(parse_address(&a.to_uppercase().replace("0X", "0x")).is_ok());
        assert!(parse_address("0x1a642f0E3c3aF545E7AcBD38b07251B3990914f1").is_err());
        assert!(parse_address("1a642f0e3c3af545e7acbd38b07251b3990914f1").is_err());
        assert!(parse_address("0x1234").is_err());
        assert_eq!(
            lower_hex(&parse_address(a).unwrap()),
            "0x1a642f0e3c3af545e7acbd38b07251b3990914f1"
        );
    }

    #[test]
    fn countries_and_fees() {
        assert_eq!("de".parse::<Country>().unwrap().to_string(), "DE");
        assert!("D1".parse::<Country>().is_err());
        assert!("DEU".parse::<Country>().is_err());
        assert_eq!(Fee::from_raw(JOIN_CLOSED), Fee::Closed);
        for ok in [
            0,
            1,
            (1 << 34) - 1,
            17_179_869_180,
            10u128.pow(15),
            123 * 10u128.pow(30),
        ] {
            assert!(Fee::Wei(ok).is_representable(), "{ok}");
            assert!(Fee::Wei(ok).check().is_ok());
        }
        for bad in [1 << 34, (1 << 34) + 1, 10u128.pow(15) + 1, JOIN_CLOSED - 1] {
            assert!(!Fee::Wei(bad).is_representable(), "{bad}");
            let e = Fee::Wei(bad).check().unwrap_err().to_string();
            assert!(
                e.contains("cannot be stored exactly") && !e.contains('\n'),
                "{e}"
            );
        }
        let e = Fee::Wei(10u128.pow(15) + 1)
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("1000000000000000 or 1000000000100000"), "{e}");
        assert!(Fee::Closed.is_representable() && Fee::Free.is_representable());
        let mut q = Vec::new();
        Query::new("a", Address::repeat_byte(9), Action::Subscribe).pack_into(&mut q);
        assert_eq!(q.len(), Query::PACKED_LEN);
        assert_eq!(&q[..32], topic_id("a").as_slice());
        assert_eq!(&q[32..52], Address::repeat_byte(9).as_slice());
        assert_eq!(q[52], 1);
        assert_eq!(Fee::from_raw(0), Fee::Free);
        assert_eq!(Fee::Wei(5).to_raw(), 5);
    }

    #[test]
    fn topic_ids_are_keccak_of_the_name() {
        assert_eq!(
            topic_id(""),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
                .parse::<B256>()
                .unwrap()
        );
    }
}
