//! The `flytrap` command's building blocks: configuration (SPEC §6), the development
//! profile, and `serve`. `main.rs` is the command line over them.

pub mod config;
pub mod dev;
pub mod serve;
