//! Typed errors of the chain layer: what failed, in words an operator can act on.

use std::time::Duration;

use alloy::primitives::{Address, Bytes};
use alloy::sol_types::SolInterface;
use alloy::transports::{RpcError, TransportErrorKind};

use crate::bindings::FlyTrap::FlyTrapErrors;

/// Everything the chain layer can fail with. `Clone`, so one failure can answer every caller
/// waiting on a coalesced query.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// No answer from the node (connection refused, timeout, HTTP failure).
    #[error("chain node unreachable at {url}: {detail}")]
    Unreachable {
        /// The RPC URL.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// The contract reverted; the custom error is decoded by name.
    #[error("the contract reverted with {0}")]
    Reverted(Revert),
    /// The account cannot pay value + gas.
    #[error("insufficient funds: {0}")]
    InsufficientFunds(String),
    /// The audit writer would exceed `chain.max_gas_per_hour`; it waits.
    #[error(
        "gas budget exhausted: {used} of {budget} gas used in the last hour, the next batch needs {needed}; retrying in {}s",
        retry_in.as_secs()
    )]
    OutOfGasBudget {
        /// Gas spent in the sliding hour.
        used: u64,
        /// `chain.max_gas_per_hour`.
        budget: u64,
        /// Gas the pending batch is estimated to take.
        needed: u64,
        /// When enough of the hour's spending expires.
        retry_in: Duration,
    },
    /// A bad argument (address, key, country, name…), caught before anything is sent.
    #[error("{0}")]
    InvalidInput(String),
    /// No contract code at the configured address.
    #[error("no FlyTrap contract at {0} (wrong --contract, or the chain was reset)")]
    NoContract(Address),
    /// The node answered with an error that is not a revert.
    #[error("chain node error: {0}")]
    Rpc(String),
    /// The local audit spool failed (disk).
    #[error("audit spool: {0}")]
    Spool(String),
    /// The chain executor's thread has stopped.
    #[error("the chain executor has stopped")]
    Stopped,
}

impl Error {
    /// The decoded revert's error name (`"NotOwner"`, `"WrongFee"` …), if this is a revert.
    pub fn revert_name(&self) -> Option<&str> {
        match self {
            Error::Reverted(r) => Some(&r.name),
            _ => None,
        }
    }

    /// True when the node could not be reached (as opposed to a refusal).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// Classifies an alloy contract-call error coming from the node at `url`.
    pub fn from_contract(e: alloy::contract::Error, url: &str) -> Error {
        if let Some(data) = e.as_revert_data() {
            return Error::Reverted(Revert::decode(&data));
        }
        match e {
            alloy::contract::Error::TransportError(t) => Error::from_rpc(t, url),
            alloy::contract::Error::PendingTransactionError(p) => Error::Rpc(p.to_string()),
            // A call answered by empty data: no code at the address.
            alloy::contract::Error::ZeroData(..) => {
                Error::Rpc("empty answer from the contract (is there code at the address?)".into())
            }
            other => Error::Rpc(other.to_string()),
        }
    }

    /// Classifies a transport-level error coming from the node at `url`.
    pub fn from_rpc(e: RpcError<TransportErrorKind>, url: &str) -> Error {
        match e {
            RpcError::ErrorResp(payload) => {
                if let Some(data) = payload.as_revert_data() {
                    return Error::Reverted(Revert::decode(&data));
                }
                let msg = payload.message.to_string();
                if msg.to_ascii_lowercase().contains("insufficient funds") {
                    Error::InsufficientFunds(msg)
                } else if msg.contains("execution reverted") || msg.contains("revert") {
                    Error::Reverted(Revert {
                        name: "revert".into(),
                        detail: msg,
                    })
                } else {
                    Error::Rpc(msg)
                }
            }
            RpcError::Transport(kind) => Error::Unreachable {
                url: url.to_string(),
                detail: transport_detail(&kind),
            },
            other => Error::Rpc(other.to_string()),
        }
    }
}

/// The most useful line of a transport error: the innermost cause ("Connection refused").
fn transport_detail(kind: &TransportErrorKind) -> String {
    let mut detail = kind.to_string();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(kind);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    detail
}

/// A decoded revert: the contract's custom error by name, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revert {
    /// The error's name (`NotOwner`), or `unknown error 0x…`.
    pub name: String,
    /// A human explanation, with arguments decoded.
    pub detail: String,
}

impl std::fmt::Display for Revert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

impl Revert {
    /// Decodes revert data against the contract's errors (from the bindings, so a new error in
    /// the artifact is a compile error here until it is described).
    pub fn decode(data: &Bytes) -> Revert {
        let Ok(e) = FlyTrapErrors::abi_decode(data) else {
            if let Ok(msg) =
                <alloy::sol_types::Revert as alloy::sol_types::SolError>::abi_decode(data)
            {
                return Revert {
                    name: "Error".into(),
                    detail: msg.reason,
                };
            }
            return Revert {
                name: format!("unknown error {data}"),
                detail: "not one of the FlyTrap contract's errors".into(),
            };
        };
        let (name, detail): (&str, String) = match e {
            FlyTrapErrors::TopicExists(_) => {
                ("TopicExists", "the topic is already registered".into())
            }
            FlyTrapErrors::UnknownTopic(_) => ("UnknownTopic", "no such topic".into()),
            FlyTrapErrors::NotOwner(_) => ("NotOwner", "only the topic's owner may do this".into()),
            FlyTrapErrors::BadAction(_) => {
                ("BadAction", "the action must be 0 (pub) or 1 (sub)".into())
            }
            FlyTrapErrors::BadCountry(c) => (
                "BadCountry",
                format!(
                    "bad country code {} (ISO 3166 alpha-2, upper case)",
                    c.country
                ),
            ),
            FlyTrapErrors::TooManyCountries(_) => {
                ("TooManyCountries", "at most 255 countries".into())
            }
            FlyTrapErrors::EmptyName(_) => ("EmptyName", "the topic name is empty".into()),
            FlyTrapErrors::ZeroAddress(_) => {
                ("ZeroAddress", "the zero address is not allowed".into())
            }
            FlyTrapErrors::AlreadyMember(_) => (
                "AlreadyMember",
                "the address already holds this action".into(),
            ),
            FlyTrapErrors::NotMember(_) => {
                ("NotMember", "the address does not hold this action".into())
            }
            FlyTrapErrors::JoinClosed(_) => (
                "JoinClosed",
                "the topic is closed to self-service join (only the owner's grants)".into(),
            ),
            FlyTrapErrors::WrongFee(f) => (
                "WrongFee",
                format!(
                    "insufficient or wrong fee: joining costs exactly {} wei",
                    f.expected
                ),
            ),
            FlyTrapErrors::NothingToWithdraw(_) => {
                ("NothingToWithdraw", "no fees to withdraw".into())
            }
            FlyTrapErrors::WithdrawFailed(_) => (
                "WithdrawFailed",
                "the payout was refused by the receiver".into(),
            ),
            FlyTrapErrors::NotAdmin(_) => {
                ("NotAdmin", "only the contract's admin may do this".into())
            }
            FlyTrapErrors::NotOperator(_) => (
                "NotOperator",
                "only an operator may write audit records".into(),
            ),
            FlyTrapErrors::BadFee(_) => (
                "BadFee",
                "the contract cannot store this fee exactly: a fee must be m × 10^e with \
                 m < 2^34 (17,179,869,184), e.g. 1000000000000000 or 25 × 10^16 wei"
                    .into(),
            ),
            FlyTrapErrors::BadQuery(_) => (
                "BadQuery",
                "malformed checkBatch queries (53 bytes each: topic id, address, action)".into(),
            ),
            FlyTrapErrors::BadCall(_) => (
                "BadCall",
                "malformed packed grant (topic id, address and action take 53 bytes)".into(),
            ),
            FlyTrapErrors::BadReport(_) => (
                "BadReport",
                "malformed sensitive report (cut short, or counts past its end)".into(),
            ),
        };
        Revert {
            name: name.into(),
            detail,
        }
    }
}

/// Decodes revert data by name, for callers that hold raw bytes.
pub fn decode_revert(data: &[u8]) -> Revert {
    Revert::decode(&Bytes::copy_from_slice(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::FlyTrap;
    use alloy::sol_types::SolError;

    #[test]
    fn custom_errors_decode_by_name() {
        let data = FlyTrap::WrongFee {
            expected: alloy::primitives::U256::from(7),
        }
        .abi_encode();
        let r = decode_revert(&data);
        assert_eq!(r.name, "WrongFee");
        assert!(r.detail.contains("7 wei"), "{r}");
        let r = decode_revert(&FlyTrap::NotOwner {}.abi_encode());
        assert_eq!(r.name, "NotOwner");
        for (data, name) in [
            (FlyTrap::BadFee {}.abi_encode(), "BadFee"),
            (FlyTrap::BadQuery {}.abi_encode(), "BadQuery"),
            (FlyTrap::BadReport {}.abi_encode(), "BadReport"),
            (FlyTrap::BadCall {}.abi_encode(), "BadCall"),
        ] {
            let r = decode_revert(&data);
            assert_eq!(r.name, name);
            assert!(!r.detail.is_empty());
        }
        let r = decode_revert(&[1, 2, 3, 4]);
        assert!(r.name.starts_with("unknown error"));
    }
}
