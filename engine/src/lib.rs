//! The FlyTrap data plane (issue: thread-per-core engine).
//!
//! Will hold: one glommio executor per core, TCP and TLS listeners on `SO_REUSEPORT` sockets,
//! one broker connection per client from a pool of source addresses, zero-copy forwarding framed
//! by `flytrap-proto`, connection limits, and the authorisation hook. It never depends on
//! `flytrap-chain`: the authorisation plane is plugged in through a trait.
