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

/// A record as one of the contract's structs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SolRecord {
    /// `FlyTrap.Ban`.
    Ban(FlyTrap::Ban),
    /// `FlyTrap.WrongCountryRecord`.
    WrongCountry(FlyTrap::WrongCountryRecord),
    /// `FlyTrap.ConnectFailedRecord`.
    ConnectFailed(FlyTrap::ConnectFailedRecord),
    /// `FlyTrap.Report`.
    Report(FlyTrap::Report),
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
            } => SolRecord::Report(FlyTrap::Report {
                topicId: *topic_id,
                seq,
                from: *from,
                to: *to,
                publishers: publishers.clone(),
                receivers: receivers.clone(),
            }),
        }
    }

    /// The spool encoding: one kind byte, then the ABI encoding of the contract struct.
    pub fn encode(&self, seq: u64) -> Vec<u8> {
        let (kind, body) = match self.to_sol(seq) {
            SolRecord::Ban(b) => (KIND_BAN, b.abi_encode()),
            SolRecord::WrongCountry(w) => (KIND_WRONG_COUNTRY, w.abi_encode()),
            SolRecord::ConnectFailed(c) => (KIND_CONNECT_FAILED, c.abi_encode()),
            SolRecord::Report(r) => (KIND_REPORT, r.abi_encode()),
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
                let r = FlyTrap::Report::abi_decode(body).map_err(bad)?;
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
