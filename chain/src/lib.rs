//! FlyTrap's blockchain layer.
pub mod bindings;
