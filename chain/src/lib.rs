//! FlyTrap's blockchain layer (issue: smart contract and chain crate).
//!
//! Will hold: alloy bindings for the FlyTrap contract, the chain executor (its own thread and
//! runtime, batching and coalescing cold permission checks), the event follower that turns ACL
//! changes into cache invalidations, and the durable audit spool.
