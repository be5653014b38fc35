//! The `flytrap` command's building blocks: configuration (SPEC §6), the development
//! profile (and its chain, `devchain`), `serve`, and the chain commands (`cmd`). `main.rs` is
//! the command line over them.

// Input paths return typed errors; an unwrap there would be a crash on bad input.
#![warn(clippy::unwrap_used)]

pub mod cmd;
pub mod config;
pub mod dev;
pub mod devchain;
pub mod plane;
pub mod report;
pub mod serve;
pub mod ui;
pub mod workers;
