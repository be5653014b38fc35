//! Rust bindings of the FlyTrap contract, generated at compile time by alloy's `sol!` from the
//! committed artifact `contracts/artifacts/FlyTrap.json` (ABI + bytecode). A contract change
//! that reaches the artifact (`npm run compile` in `contracts/`) changes these bindings; the
//! macro tracks the file, so cargo rebuilds when it changes.

#![allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all
)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    FlyTrap,
    "../contracts/artifacts/FlyTrap.json"
);
