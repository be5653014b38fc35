//! The replay cache shared by the worker processes: a [`SeenTable`] in
//! `<spool.dir>/replay-table`, made by the supervisor and mapped by every worker (a restarted
//! worker maps the same one), so a signed CONNECT accepted by one worker is refused as a
//! replay by all. The table is kept across restarts of the supervisor, so replays are refused
//! across those too.

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

/// Makes the table unless a valid one is there (the supervisor, before starting the workers).
pub fn ensure(spool_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(spool_dir)
        .with_context(|| format!("cannot create {}", spool_dir.display()))?;
    let p = path(spool_dir);
    if SeenTable::open(&p).is_ok_and(|t| t.slots() == SLOTS) {
        return Ok(());
    }
    SeenTable::create(&p, SLOTS).with_context(|| format!("cannot make {}", p.display()))
}

/// Maps the table (a worker).
pub fn open(spool_dir: &Path) -> anyhow::Result<SeenTable> {
    let p = path(spool_dir);
    SeenTable::open(&p)
        .with_context(|| format!("cannot map the shared replay table {}", p.display()))
}
