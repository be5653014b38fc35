//! End-to-end tests of FlyTrap against real components (Mosquitto, anvil, MQTT clients).
//!
//! The tests themselves live in `tests/tests/`; this library holds the helpers that start and
//! stop those components on loopback.
