//! The load generator (issue: loadgen and the paper's experiments).
//!
//! Will hold: thread-per-core MQTT clients with seeded keys and signed CONNECTs, the scenarios
//! (connect storm, publish, subscribe, fan-out, deny), and HDR histogram reports.
