//! FlyTrap's authorisation plane (SPEC §1–4): it joins the engine's [`Authorizer`] hook to the
//! chain executor.
//!
//! - [`identity`]: the signed CONNECT — EIP-191 signatures recovered with libsecp256k1,
//!   keccak-256 from `keccak-asm`, run on the shard that owns the connection;
//! - [`replay`]: each timestamped signature is accepted once inside its window;
//! - [`challenge`]: the challenge scheme (MQTT 5 AUTH, a Sign-In with Ethereum message over a
//!   per-connection nonce), sans-IO;
//! - [`cache`]: each shard's permission cache (bounded, TTL, short-lived denials, stale grants
//!   allowed while the node is down), invalidated by the chain's ACL events;
//! - [`bans`]: failures per IP, bans checked at accept, written to the chain in batches;
//! - [`geo`]: countries from a MaxMind `.mmdb`;
//! - [`sensitive`]: who published to or received from each sensitive topic, one report per
//!   topic per interval;
//! - [`policy`]: [`ChainAuthorizer`], the engine hook itself.
//!
//! [`Authorizer`]: flytrap_engine::Authorizer

// Input paths return typed errors; an unwrap there would be a crash on bad input.
#![warn(clippy::unwrap_used)]

pub mod bans;
pub mod cache;
pub mod challenge;
pub mod generations;
pub mod geo;
pub mod identity;
pub mod policy;
pub mod replay;
pub mod sensitive;

pub use policy::{AuthzConfig, AuthzShared, ChainAuthorizer, Session, Unregistered};
