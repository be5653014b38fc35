//! `loadgen`: drives an MQTT server (FlyTrap, or a broker directly) with many signed clients
//! and writes HDR latency histograms.
//!
//! - [`cli`]: the command line; [`plan`]: the validated run and its schedule;
//! - [`identity`]: per-client keys from a seed, SPEC §1 credentials;
//! - [`shard`]: one runtime thread per CPU; [`client`]: one connection's driver and reader;
//! - [`stats`]: histograms and counters; [`output`] and [`plot`]: `.hgrm`, JSON, SVG;
//! - [`workers`]: several processes, one merged report.
//!
//! The schedule is fixed in advance from a shared time origin: client k connects at
//! origin + k / ramp, the work phase starts after the whole ramp plus `--settle`, and lasts
//! at most `--duration`. Worker processes get the parent's origin, so together they follow one
//! schedule without talking to each other. Publish latency is measured from the time a message
//! was due, not when it was sent, so a stalled server cannot hide its stall (coordinated
//! omission).

#![warn(clippy::unwrap_used)]

pub mod cli;
pub mod client;
pub mod identity;
pub mod output;
pub mod plan;
pub mod plot;
pub mod shard;
pub mod stats;
pub mod workers;

/// Exit status of a run that completed but counted errors.
pub const EXIT_ERRORS: i32 = 2;
