//! Audit records (SPEC §3–4): what the proxy writes to the chain, and their encoding in the
//! spool.

use std::net::IpAddr;

use alloy::primitives::{Address, B256};
use alloy::sol_types::SolValue;

use crate::Error;
use crate::bindings::FlyTrap;
use crate::types::{Country, bytes16_to_ip, ip_to_bytes16};

/// One audit record. Its `seq` is assigned by the spool when it is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditRecord {
    /// `ip` is banned until `until` (Unix seconds) after `failures` failures.
    Ban {
        /// The banned source IP.
        ip: IpAddr,
        /// End of the ban, Unix seconds.
        until: u64,
        /// Failures that led to it.
        failures: u32,
        /// When it was decided, Unix seconds.
        time: u64,
    },
    /// `client` was refused on `topic_id` because `ip` maps to `country`.
    WrongCountry {
        /// The client's address.
        client: Address,
        /// The topic.
        topic_id: B256,
        /// The source IP.
        ip: IpAddr,
        /// Where the IP maps to.
        country: Country,
        /// When, Unix seconds.
        time: u64,
    },
    /// A CONNECT from `ip` failed with CONNACK `reason`.
    ConnectFailed {
        /// The source IP.
        ip: IpAddr,
        /// The claimed address, if any.
        client: Option<Address>,
        /// The CONNACK reason code (0x86, 0x87, 0x8A …).
        reason: u8,
        /// When, Unix seconds.
        time: u64,
    },
    /// Who published to / received from a sensitive topic in `[from, to]`.
    SensitiveReport {
        /// The topic.
        topic_id: B256,
        /// Start of the interval, Unix seconds.
        from: u64,
        /// End of the interval, Unix seconds.
        to: u64,
        /// Addresses that published.
        publishers: Vec<Address>,
        /// Addresses that received.
        receivers: Vec<Address>,
    },
}

/// A record with its spool sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    /// Assigned at append, strictly increasing, never reused.
    pub seq: u64,
    /// The record.
    pub record: AuditRecord,
}

/// A record as `recordAudit` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolRecord {
    /// `FlyTrap.Ban`.
    Ban(FlyTrap::Ban),
    /// `FlyTrap.WrongCountryRecord`.
    WrongCountry(FlyTrap::WrongCountryRecord),
    /// `FlyTrap.ConnectFailedRecord`.
    ConnectFailed(FlyTrap::ConnectFailedRecord),
    /// Entries of `recordAudit`'s packed `reports`: topic id (32 bytes) ‖ [`pack_report`]; one
    /// entry, or several with the same seq when a list has more than [`REPORT_MAX_LIST`]
    /// addresses (all of them in the same call, so all are written).
    Report(Vec<u8>),
}

alloy::sol! {
    /// The spool's encoding of a sensitive report: the contract's `Report` struct before
    /// reports were packed, kept so that spools written before stay readable.
    #[derive(Debug, PartialEq, Eq)]
    struct SpoolReport {
        bytes32 topicId;
        uint64 seq;
        uint64 from;
        uint64 to;
        address[] publishers;
        address[] receivers;
    }
}

/// A sensitive report as the `SensitiveReport` event carries it (its topic id apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The spool sequence number.
    pub seq: u64,
    /// Start of the interval, Unix seconds.
    pub from: u64,
    /// End of the interval, Unix seconds.
    pub to: u64,
    /// Addresses that published.
    pub publishers: Vec<Address>,
    /// Addresses that received.
    pub receivers: Vec<Address>,
}

/// Addresses per list in one packed report (a 2-byte count).
pub const REPORT_MAX_LIST: usize = u16::MAX as usize;

/// Bytes of a packed report before its addresses.
const REPORT_HEAD: usize = 28;

/// The packed form of the `SensitiveReport` event's `report` (and of `recordAudit`'s entries
/// after their topic id), big-endian: seq (8 bytes) ‖ from (8) ‖ to (8) ‖ number of
/// publishers (2) ‖ number of receivers (2) ‖ 20 bytes per publisher, then per receiver.
/// Lists longer than [`REPORT_MAX_LIST`] are cut there (see [`SolRecord::Report`] for how
/// longer reports are sent).
pub fn pack_report(r: &Report) -> Vec<u8> {
    let pubs = &r.publishers[..r.publishers.len().min(REPORT_MAX_LIST)];
    let recvs = &r.receivers[..r.receivers.len().min(REPORT_MAX_LIST)];
    let mut out = Vec::with_capacity(REPORT_HEAD + 20 * (pubs.len() + recvs.len()));
    out.extend_from_slice(&r.seq.to_be_bytes());
    out.extend_from_slice(&r.from.to_be_bytes());
    out.extend_from_slice(&r.to.to_be_bytes());
    out.extend_from_slice(&(pubs.len() as u16).to_be_bytes());
    out.extend_from_slice(&(recvs.len() as u16).to_be_bytes());
    for a in pubs.iter().chain(recvs) {
        out.extend_from_slice(a.as_slice());
    }
    out
}

/// Reads [`pack_report`]'s bytes (the `SensitiveReport` event's `report`); anything but
/// exactly one well-formed report is an [`Error::Rpc`].
pub fn unpack_report(bytes: &[u8]) -> Result<Report, Error> {
    let bad = || {
        Error::Rpc(format!(
            "malformed sensitive report ({} bytes)",
            bytes.len()
        ))
    };
    if bytes.len() < REPORT_HEAD {
        return Err(bad());
    }
    let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]) as usize;
    let (np, nr) = (u16_at(24), u16_at(26));
    if bytes.len() != REPORT_HEAD + 20 * (np + nr) {
        return Err(bad());
    }
    let addr =
        |k: usize| Address::from_slice(&bytes[REPORT_HEAD + 20 * k..REPORT_HEAD + 20 * (k + 1)]);
    Ok(Report {
        seq: u64_at(0),
        from: u64_at(8),
        to: u64_at(16),
        publishers: (0..np).map(addr).collect(),
        receivers: (np..np + nr).map(addr).collect(),
    })
}

/// `recordAudit`'s report entries of one report: topic id ‖ packed report, split into several
/// entries (same seq) while a list is longer than [`REPORT_MAX_LIST`].
fn report_entries(topic_id: B256, r: Report) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut pubs, mut recvs) = (r.publishers.as_slice(), r.receivers.as_slice());
    loop {
        let (p, q) = (
            pubs.len().min(REPORT_MAX_LIST),
            recvs.len().min(REPORT_MAX_LIST),
        );
        out.extend_from_slice(topic_id.as_slice());
        out.extend_from_slice(&pack_report(&Report {
            publishers: pubs[..p].to_vec(),
            receivers: recvs[..q].to_vec(),
            ..r
        }));
        (pubs, recvs) = (&pubs[p..], &recvs[q..]);
        if pubs.is_empty() && recvs.is_empty() {
            return out;
        }
    }
}

const KIND_BAN: u8 = 1;
const KIND_WRONG_COUNTRY: u8 = 2;
const KIND_CONNECT_FAILED: u8 = 3;
const KIND_REPORT: u8 = 4;

impl AuditRecord {
    /// The record that lifts every ban of `ip` decided at or before `time` (see
    /// [`ChainBan`](crate::types::ChainBan) for the encoding: no failures, `until == time`).
    pub fn lift(ip: IpAddr, time: u64) -> AuditRecord {
        AuditRecord::Ban {
            ip,
            until: time,
            failures: 0,
            time,
        }
    }

    /// A short name of the kind.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditRecord::Ban { .. } => "ban",
            AuditRecord::WrongCountry { .. } => "wrong-country",
            AuditRecord::ConnectFailed { .. } => "connect-failed",
            AuditRecord::SensitiveReport { .. } => "sensitive-report",
        }
    }

    /// The contract struct carrying this record with `seq`.
    pub fn to_sol(&self, seq: u64) -> SolRecord {
        match self {
            AuditRecord::Ban {
                ip,
                until,
                failures,
                time,
            } => SolRecord::Ban(FlyTrap::Ban {
                ip: ip_to_bytes16(*ip),
                seq,
                until: *until,
                failures: *failures,
                time: *time,
            }),
            AuditRecord::WrongCountry {
                client,
                topic_id,
                ip,
                country,
                time,
            } => SolRecord::WrongCountry(FlyTrap::WrongCountryRecord {
                client: *client,
                topicId: *topic_id,
                ip: ip_to_bytes16(*ip),
                country: country.to_bytes2(),
                seq,
                time: *time,
            }),
            AuditRecord::ConnectFailed {
                ip,
                client,
                reason,
                time,
            } => SolRecord::ConnectFailed(FlyTrap::ConnectFailedRecord {
                ip: ip_to_bytes16(*ip),
                client: client.unwrap_or(Address::ZERO),
                reason: *reason,
                seq,
                time: *time,
            }),
            AuditRecord::SensitiveReport {
                topic_id,
                from,
                to,
                publishers,
                receivers,
            } => SolRecord::Report(report_entries(
                *topic_id,
                Report {
                    seq,
                    from: *from,
                    to: *to,
                    publishers: publishers.clone(),
                    receivers: receivers.clone(),
                },
            )),
        }
    }

    /// The spool encoding: one kind byte, then the ABI encoding of the contract struct (for a
    /// sensitive report, [`SpoolReport`]: the spool format predates packed reports).
    pub fn encode(&self, seq: u64) -> Vec<u8> {
        let (kind, body) = match self {
            AuditRecord::SensitiveReport {
                topic_id,
                from,
                to,
                publishers,
                receivers,
            } => (
                KIND_REPORT,
                SpoolReport {
                    topicId: *topic_id,
                    seq,
                    from: *from,
                    to: *to,
                    publishers: publishers.clone(),
                    receivers: receivers.clone(),
                }
                .abi_encode(),
            ),
            _ => match self.to_sol(seq) {
                SolRecord::Ban(b) => (KIND_BAN, b.abi_encode()),
                SolRecord::WrongCountry(w) => (KIND_WRONG_COUNTRY, w.abi_encode()),
                SolRecord::ConnectFailed(c) => (KIND_CONNECT_FAILED, c.abi_encode()),
                SolRecord::Report(_) => unreachable!("reports are encoded above"),
            },
        };
        let mut out = Vec::with_capacity(1 + body.len());
        out.push(kind);
        out.extend_from_slice(&body);
        out
    }

    /// Decodes [`encode`](Self::encode)'s bytes into the record and its seq.
    pub fn decode(bytes: &[u8]) -> Result<Spooled, Error> {
        let bad = |e: alloy::sol_types::Error| Error::Spool(format!("undecodable record: {e}"));
        let (&kind, body) = bytes
            .split_first()
            .ok_or_else(|| Error::Spool("empty record".into()))?;
        Ok(match kind {
            KIND_BAN => {
                let b = FlyTrap::Ban::abi_decode(body).map_err(bad)?;
                Spooled {
                    seq: b.seq,
                    record: AuditRecord::Ban {
                        ip: bytes16_to_ip(b.ip),
                        until: b.until,
                        failures: b.failures,
                        time: b.time,
                    },
                }
            }
            KIND_WRONG_COUNTRY => {
                let w = FlyTrap::WrongCountryRecord::abi_decode(body).map_err(bad)?;
                Spooled {
                    seq: w.seq,
                    record: AuditRecord::WrongCountry {
                        client: w.client,
                        topic_id: w.topicId,
                        ip: bytes16_to_ip(w.ip),
                        country: Country::from_bytes2(w.country),
                        time: w.time,
                    },
                }
            }
            KIND_CONNECT_FAILED => {
                let c = FlyTrap::ConnectFailedRecord::abi_decode(body).map_err(bad)?;
                Spooled {
                    seq: c.seq,
                    record: AuditRecord::ConnectFailed {
                        ip: bytes16_to_ip(c.ip),
                        client: (c.client != Address::ZERO).then_some(c.client),
                        reason: c.reason,
                        time: c.time,
                    },
                }
            }
            KIND_REPORT => {
                let r = SpoolReport::abi_decode(body).map_err(bad)?;
                Spooled {
                    seq: r.seq,
                    record: AuditRecord::SensitiveReport {
                        topic_id: r.topicId,
                        from: r.from,
                        to: r.to,
                        publishers: r.publishers,
                        receivers: r.receivers,
                    },
                }
            }
            k => return Err(Error::Spool(format!("unknown record kind {k}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<AuditRecord> {
        vec![
            AuditRecord::Ban {
                ip: "192.0.2.1".parse().unwrap(),
                until: 1_700_000_300,
                failures: 5,
                time: 1_700_000_000,
            },
            AuditRecord::WrongCountry {
                client: Address::repeat_byte(7),
                topic_id: crate::topic_id("a/b"),
                ip: "2001:db8::2".parse().unwrap(),
                country: "FR".parse().unwrap(),
                time: 9,
            },
            AuditRecord::ConnectFailed {
                ip: "10.0.0.1".parse().unwrap(),
                client: None,
                reason: 0x86,
                time: 10,
            },
            AuditRecord::SensitiveReport {
                topic_id: crate::topic_id("s"),
                from: 1,
                to: 2,
                publishers: vec![Address::repeat_byte(1)],
                receivers: vec![Address::repeat_byte(2), Address::repeat_byte(3)],
            },
        ]
    }

    #[test]
    fn reports_pack_and_unpack() {
        let r = Report {
            seq: 0x0102030405060708,
            from: 1,
            to: u64::MAX,
            publishers: vec![Address::repeat_byte(1)],
            receivers: vec![Address::repeat_byte(2), Address::repeat_byte(3)],
        };
        let p = pack_report(&r);
        assert_eq!(p.len(), 28 + 60);
        assert_eq!(&p[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&p[24..28], &[0, 1, 0, 2]);
        assert_eq!(&p[28..48], Address::repeat_byte(1).as_slice());
        assert_eq!(unpack_report(&p).unwrap(), r);
        assert!(unpack_report(&p[..p.len() - 1]).is_err());
        assert!(unpack_report(&p[..20]).is_err());
        let mut longer = p.clone();
        longer.push(0);
        assert!(unpack_report(&longer).is_err());
        let empty = Report {
            publishers: vec![],
            receivers: vec![],
            ..r.clone()
        };
        assert_eq!(unpack_report(&pack_report(&empty)).unwrap(), empty);
        // the recordAudit entry: topic id first
        let AuditRecord::SensitiveReport { topic_id, .. } = samples()[3].clone() else {
            unreachable!()
        };
        let SolRecord::Report(entry) = samples()[3].to_sol(7) else {
            unreachable!()
        };
        assert_eq!(&entry[..32], topic_id.as_slice());
        assert_eq!(unpack_report(&entry[32..]).unwrap().seq, 7);
        // a list longer than a 2-byte count goes out as several entries with the same seq
        let many: Vec<Address> = (0..REPORT_MAX_LIST + 2)
            .map(|i| Address::left_padding_from(&(i as u64).to_be_bytes()))
            .collect();
        let entries = report_entries(
            topic_id,
            Report {
                receivers: many.clone(),
                ..r.clone()
            },
        );
        let first = 32 + 28 + 20 * (1 + REPORT_MAX_LIST);
        assert_eq!(entries.len(), first + 32 + 28 + 20 * 2);
        let a = unpack_report(&entries[32..first]).unwrap();
        let b = unpack_report(&entries[first + 32..]).unwrap();
        assert_eq!((a.seq, b.seq), (r.seq, r.seq));
        assert_eq!(a.publishers.len() + b.publishers.len(), 1);
        assert_eq!([a.receivers, b.receivers].concat(), many);
    }

    #[test]
    fn spool_encoding_of_reports_is_the_old_struct() {
        // a report spooled by the previous version (ABI of the old `Report` struct) still reads
        let old = SpoolReport {
            topicId: crate::topic_id("s"),
            seq: 5,
            from: 1,
            to: 2,
            publishers: vec![Address::repeat_byte(1)],
            receivers: vec![],
        };
        let mut bytes = vec![KIND_REPORT];
        bytes.extend_from_slice(&old.abi_encode());
        assert_eq!(AuditRecord::decode(&bytes).unwrap().seq, 5);
        assert_eq!(AuditRecord::decode(&bytes).unwrap().record.encode(5), bytes);
    }

    #[test]
    fn encoding_round_trips() {
        for (i, r) in samples().into_iter().enumerate() {
            let seq = 40 + i as u64;
            let back = AuditRecord::decode(&r.encode(seq)).unwrap();
            assert_eq!(back, Spooled { seq, record: r });
        }
        assert!(AuditRecord::decode(&[9, 0]).is_err());
        assert!(AuditRecord::decode(&[]).is_err());
    }
}
