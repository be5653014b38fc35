//! [`SeenTable`]: a fixed-size set of recently seen 256-bit hashes, each with an expiry,
//! shared by every process that maps the same file (`MAP_SHARED`). FlyTrap's worker
//! processes use it as one replay cache: a signed CONNECT accepted by one worker is a replay
//! on every other.
//!
//! Layout: a 64-byte header (magic, slot count) and a power-of-two array of `u64` slots. A
//! slot is 0 (empty) or `fingerprint << 24 | expiry`: 40 bits of the hash (not those that
//! pick the slot) and the expiry's low 24 bits in Unix seconds, compared with wrapping
//! arithmetic, so entries must expire less than 2^23 s (97 days) ahead. A hash is looked for
//! in [`PROBE`] slots from the one its first bytes pick; a slot is claimed with one
//! compare-and-swap. Two processes claiming the same hash at once in two slots both look
//! again after their claim (sequentially consistent), so at least one sees the other and
//! answers [`Seen::Again`]: a hash is never accepted twice.
//!
//! The file is made by [`SeenTable::create`] under a temporary name and renamed into place,
//! and never shrunk, so a process that maps it cannot fault on a truncated page.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots looked at per hash.
pub const PROBE: usize = 32;
const MAGIC: u64 = u64::from_le_bytes(*b"FTSEEN01");
const HEADER_SLOTS: usize = 8;
const EXPIRY_BITS: u32 = 24;
const EXPIRY_MASK: u64 = (1 << EXPIRY_BITS) - 1;
/// The furthest ahead an expiry may be (half the wrapping range).
pub const MAX_AHEAD_S: u64 = 1 << (EXPIRY_BITS - 1);

/// What [`SeenTable::first_use`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before (now recorded).
    First,
    /// Seen before and not expired: a replay.
    Again,
    /// No room near the hash's slot: the caller must decide with something else.
    Full,
}

/// The mapped table (see the module docs).
#[derive(Debug)]
pub struct SeenTable {
    base: NonNull<AtomicU64>,
    len: usize,
    mask: usize,
    _file: File,
}

// SAFETY: the mapping is only ever accessed through `AtomicU64`s, which are safe to share
// between threads; the pointer stays valid until `Drop` unmaps it.
unsafe impl Send for SeenTable {}
// SAFETY: as above: every access is atomic.
unsafe impl Sync for SeenTable {}

fn invalid(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

impl SeenTable {
    /// Makes a new, empty table of `slots` slots (rounded up to a power of two) at `path`,
    /// replacing any old one atomically (processes that still map the old file keep theirs).
    pub fn create(path: &Path, slots: usize) -> std::io::Result<()> {
        let slots = slots.max(PROBE).next_power_of_two();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            let mut header = [0u8; HEADER_SLOTS * 8];
            header[..8].copy_from_slice(&MAGIC.to_le_bytes());
            header[8..16].copy_from_slice(&(slots as u64).to_le_bytes());
            f.write_all(&header)?;
            // The slots are a hole: zero pages, allocated as they are written.
            f.set_len(((HEADER_SLOTS + slots) * 8) as u64)?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Maps the table at `path` (made by [`create`](Self::create)).
    pub fn open(path: &Path) -> std::io::Result<SeenTable> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let size = file.metadata()?.len();
        let mut header = [0u8; 16];
        std::io::Read::read_exact(&mut &file, &mut header)?;
        let magic = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
        let slots = u64::from_le_bytes(header[8..].try_into().unwrap_or_default()) as usize;
        if magic != MAGIC {
            return Err(invalid(path, "not a FlyTrap seen table"));
        }
        if !slots.is_power_of_two() || slots < PROBE || size != ((HEADER_SLOTS + slots) * 8) as u64
        {
            return Err(invalid(path, "wrong size for its slot count"));
        }
        let len = HEADER_SLOTS + slots;
        // SAFETY: a fresh shared read-write mapping of the whole file, which is open
        // read-write and exactly `len * 8` bytes long; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| invalid(path, "mapped at address 0"))?;
        Ok(SeenTable {
            base,
            len,
            mask: slots - 1,
            _file: file,
        })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.mask + 1
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        let all = self.all();
        &all[HEADER_SLOTS + (i & self.mask)]
    }

    fn all(&self) -> &[AtomicU64] {
        // SAFETY: `base` points to `len` page-aligned `u64`s mapped until `Drop`; `AtomicU64`
        // has the layout of `u64`, and every access (from any process) is atomic, so shared
        // references to them are sound. The borrow is tied to `&self`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }

    /// Records `hash`, to be remembered until `expires` (Unix seconds), at time `now`.
    pub fn first_use(&self, hash: &[u8; 32], expires: u64, now: u64) -> Seen {
        let start = u64::from_le_bytes(hash[..8].try_into().unwrap_or_default()) as usize;
        let mut fp = [0u8; 8];
        fp[..5].copy_from_slice(&hash[8..13]);
        let fp = u64::from_le_bytes(fp).max(1);
        let entry = fp << EXPIRY_BITS | (expires & EXPIRY_MASK);
        let live =
            |v: u64| v != 0 && ((v & EXPIRY_MASK).wrapping_sub(now) & EXPIRY_MASK) < MAX_AHEAD_S;
        let same = |v: u64| live(v) && v >> EXPIRY_BITS == fp;
        for _ in 0..PROBE {
            let mut free = None;
            for k in 0..PROBE {
                let v = self.slot(start + k).load(Ordering::SeqCst);
                if same(v) {
                    return Seen::Again;
                }
                if free.is_none() && !live(v) {
                    free = Some((k, v));
                }
            }
            let Some((mine, old)) = free else {
                return Seen::Full;
            };
            if self
                .slot(start + mine)
                .compare_exchange(old, entry, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue; // another claim changed the slot: look again
            }
            // Someone may have claimed the same hash in another slot meanwhile.
            let twin = (0..PROBE)
                .filter(|&k| k != mine)
                .any(|k| same(self.slot(start + k).load(Ordering::SeqCst)));
            return if twin { Seen::Again } else { Seen::First };
        }
        Seen::Full
    }
}

impl Drop for SeenTable {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `open`; no reference into it outlives
        // `&self`, and this is the last use.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len * 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A path in a fresh folder (removed when dropped).
    struct TempPath(std::path::PathBuf);

    impl TempPath {
        fn new(name: &str) -> TempPath {
            let dir =
                std::env::temp_dir().join(format!("flytrap-seen-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempPath(dir)
        }
        fn path(&self) -> std::path::PathBuf {
            self.0.join("seen")
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn hash(i: u64) -> [u8; 32] {
        let mut h = [0u8; 32];
        // Spread like a real hash: the slot index and the fingerprint both vary.
        let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h[..8].copy_from_slice(&x.to_le_bytes());
        h[8..16].copy_from_slice(&x.rotate_left(29).to_le_bytes());
        h
    }

    #[test]
    fn once_per_window_across_mappings() {
        let dir = TempPath::new("once");
        let path = dir.path();
        SeenTable::create(&path, 1024).unwrap();
        let a = SeenTable::open(&path).unwrap();
        let b = SeenTable::open(&path).unwrap(); // as another process would
        assert_eq!(a.first_use(&hash(1), 1300, 1000), Seen::First);
        assert_eq!(b.first_use(&hash(1), 1300, 1200), Seen::Again);
        assert_eq!(b.first_use(&hash(1), 1300, 1300), Seen::Again);
        // Expired: may be used again (the verifier refuses the old timestamp anyway).
        assert_eq!(b.first_use(&hash(1), 1601, 1301), Seen::First);
        assert_eq!(a.first_use(&hash(2), 1300, 1000), Seen::First);
    }

    #[test]
    fn full_neighbourhood_is_reported() {
        let dir = TempPath::new("full");
        let path = dir.path();
        SeenTable::create(&path, PROBE).unwrap();
        let t = SeenTable::open(&path).unwrap();
        let results: Vec<Seen> = (0..PROBE as u64 + 1)
            .map(|i| t.first_use(&hash(i), 2000, 1000))
            .collect();
        assert!(results[..PROBE].iter().all(|&r| r == Seen::First));
        assert_eq!(results[PROBE], Seen::Full);
        // Once those expire their slots are reused.
        assert_eq!(t.first_use(&hash(99), 4000, 2001), Seen::First);
    }

    #[test]
    fn rejects_other_files() {
        let dir = TempPath::new("other");
        let path = dir.path();
        std::fs::write(&path, [0u8; 4096]).unwrap();
        assert!(SeenTable::open(&path).is_err());
    }

    #[test]
    fn concurrent_claims_accept_each_hash_once() {
        let dir = TempPath::new("concurrent");
        let path = dir.path();
        SeenTable::create(&path, 1 << 12).unwrap();
        let accepted: Arc<Vec<AtomicU64>> =
            Arc::new((0..1000).map(|_| AtomicU64::new(0)).collect());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = SeenTable::open(&path).unwrap();
                let accepted = accepted.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        if t.first_use(&hash(i), 2000, 1000) == Seen::First {
                            accepted[i as usize].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let counts: Vec<u64> = accepted.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        assert!(counts.iter().all(|&c| c <= 1), "a hash accepted twice");
        // Both racers may refuse (each saw the other's claim); that is rare.
        assert!(counts.iter().sum::<u64>() > 900, "{counts:?}");
    }
}
