//! The replay cache shared by the worker processes: a [`SeenTable`] in
//! `<spool.dir>/replay-table`, made afresh by the supervisor at start and mapped by every
//! worker (a restarted worker maps the same one), so a signed CONNECT accepted by one worker
//! is refused as a replay by all.

use std::path::{Path, PathBuf};

use anyhow::Context;
use flytrap_engine::seen::SeenTable;

/// Slots in the table: 8 MiB, about 500,000 live signatures at half load (a CONNECT is
/// remembered for its timestamp's window, `auth.max_clock_skew_s`).
pub const SLOTS: usize = 1 << 20;

/// Where the table lives.
pub fn path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("replay-table")
}

/// Makes a new, empty table (the supervisor, before starting the workers).
pub fn create(spool_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(spool_dir)
        .with_context(|| format!("cannot create {}", spool_dir.display()))?;
    let p = path(spool_dir);
    SeenTable::create(&p, SLOTS).with_context(|| format!("cannot make {}", p.display()))
}

/// Maps the table (a worker).
pub fn open(spool_dir: &Path) -> anyhow::Result<SeenTable> {
    let p = path(spool_dir);
    SeenTable::open(&p)
        .with_context(|| format!("cannot map the shared replay table {}", p.display()))
}
