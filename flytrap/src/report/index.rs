//! The block-by-time index: for every block of the chain that holds a log of the contract, its
//! timestamp, the earliest and latest record time among its logs, and which kinds of event it
//! holds. Persisted in one file per (chain id, contract), updated incrementally from the last
//! indexed block, so a time-window query reads only the blocks that can hold matching records
//! instead of the whole log since genesis.
//!
//! File layout (little-endian): a 128-byte header — magic, chain id, contract, genesis hash,
//! tip block and hash, entry count, CRC32 of the header — then fixed 48-byte entries in block
//! order. An update appends entries, syncs, then rewrites the header: a crash in between
//! leaves entries past the header's count, which the next load ignores. A header that does
//! not verify, or names another chain, contract or genesis block, starts a new index.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flytrap_chain::{Address, B256};

use super::Error;

const MAGIC: &[u8; 8] = b"FTIDX001";
const HEADER_LEN: usize = 128;
const ENTRY_LEN: usize = 48;

/// How far back an update re-reads when the last indexed block was replaced (a reorg).
pub const REORG_DEPTH: u64 = 64;

/// One block that holds logs of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Block number.
    pub block: u64,
    /// Block timestamp.
    pub block_time: u64,
    /// Earliest record time of its logs (records can be older than their block: spooled).
    pub min_time: u64,
    /// Latest record time of its logs.
    pub max_time: u64,
    /// Number of contract logs in it.
    pub logs: u32,
    /// Bit set of the [`super::Kind`]s of its logs (`1 << kind as u32`).
    pub kinds: u32,
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.block, self.block_time, self.min_time, self.max_time] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.logs.to_le_bytes());
        out.extend_from_slice(&self.kinds.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
    }

    fn decode(b: &[u8]) -> Entry {
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let w = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        Entry {
            block: u(0),
            block_time: u(8),
            min_time: u(16),
            max_time: u(24),
            logs: w(32),
            kinds: w(36),
        }
    }

    /// Can this block hold a record of one of `kinds` with a time in `[since, until]`?
    pub fn may_hold(&self, kinds: u32, since: u64, until: u64) -> bool {
        self.kinds & kinds != 0 && self.max_time >= since && self.min_time <= until
    }
}

/// Identity of the chain and contract an index belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// `eth_chainId`.
    pub chain_id: u64,
    /// The contract.
    pub contract: Address,
    /// Hash of block 0 (a fresh dev chain with the same id and contract address differs here).
    pub genesis: B256,
}

/// The index in memory, and where it is kept.
#[derive(Debug)]
pub struct Index {
    key: Key,
    path: Option<PathBuf>,
    /// Last block indexed and its hash (`None`: nothing indexed yet).
    tip: Option<(u64, B256)>,
    entries: Vec<Entry>,
    /// Entries already in the file.
    persisted: usize,
}

impl Index {
    /// The file name of the index of `key` inside a directory.
    pub fn file_name(key: &Key) -> String {
        format!("{}-{:#x}.idx", key.chain_id, key.contract)
    }

    /// An empty index kept only in memory.
    pub fn in_memory(key: Key) -> Index {
        Index {
            key,
            path: None,
            tip: None,
            entries: Vec::new(),
            persisted: 0,
        }
    }

    /// Loads the index of `key` from `dir` (created if needed), or starts an empty one there
    /// when there is none or it is unusable.
    pub fn open(dir: &Path, key: Key) -> Result<Index, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Index(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(Index::file_name(&key));
        let mut index = Index {
            path: Some(path.clone()),
            ..Index::in_memory(key)
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                if let Some((tip, entries)) = parse(&bytes, &key) {
                    index.tip = tip;
                    index.persisted = entries.len();
                    index.entries = entries;
                } else {
                    tracing::info!(path = %path.display(), "index unusable or stale; rebuilding");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Index(format!("cannot read {}: {e}", path.display()))),
        }
        // Rewrites the header and drops trailing bytes of an interrupted update.
        index.save(true)?;
        Ok(index)
    }

    /// Its identity.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Where it is kept (`None`: memory only).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The last indexed block and its hash.
    pub fn tip(&self) -> Option<(u64, B256)> {
        self.tip
    }

    /// The indexed blocks, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The timestamp of an indexed block (`None`: not indexed, or no log of the contract).
    pub fn block_time(&self, block: u64) -> Option<u64> {
        self.entries
            .binary_search_by_key(&block, |e| e.block)
            .ok()
            .map(|i| self.entries[i].block_time)
    }

    /// Forgets every block after `block` (`None`: everything), after a reorg.
    pub fn truncate_after(&mut self, block: Option<u64>, tip: Option<(u64, B256)>) {
        let keep = match block {
            Some(b) => self.entries.partition_point(|e| e.block <= b),
            None => 0,
        };
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
        self.tip = tip;
    }

    /// Adds the blocks after the tip up to `tip` (entries in block order, all after the old
    /// tip) and saves.
    pub fn extend(&mut self, entries: Vec<Entry>, tip: (u64, B256)) -> Result<(), Error> {
        debug_assert!(entries.windows(2).all(|w| w[0].block < w[1].block));
        self.entries.extend(entries);
        self.tip = Some(tip);
        self.save(false)
    }

    /// Appends unsaved entries, then rewrites the header (`rewrite`: the whole file).
    fn save(&mut self, rewrite: bool) -> Result<(), Error> {
        let Some(path) = &self.path else {
            self.persisted = self.entries.len();
            return Ok(());
        };
        let err = |e: std::io::Error| Error::Index(format!("cannot write {}: {e}", path.display()));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(err)?;
        let from = if rewrite { 0 } else { self.persisted };
        let mut buf = Vec::with_capacity((self.entries.len() - from) * ENTRY_LEN);
        for e in &self.entries[from..] {
            e.encode(&mut buf);
        }
        let end = (HEADER_LEN + self.entries.len() * ENTRY_LEN) as u64;
        f.seek(SeekFrom::Start((HEADER_LEN + from * ENTRY_LEN) as u64))
            .map_err(err)?;
        f.write_all(&buf).map_err(err)?;
        f.sync_data().map_err(err)?;
        // The header makes the new entries count; it is written after they are durable.
        f.seek(SeekFrom::Start(0)).map_err(err)?;
        f.write_all(&self.header()).map_err(err)?;
        f.set_len(end).map_err(err)?;
        f.sync_data().map_err(err)?;
        self.persisted = self.entries.len();
        Ok(())
    }

    fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&self.key.chain_id.to_le_bytes());
        h[16..36].copy_from_slice(self.key.contract.as_slice());
        h[36..68].copy_from_slice(self.key.genesis.as_slice());
        let (has_tip, tip, hash) = match self.tip {
            Some((n, h)) => (1u8, n, h),
            None => (0, 0, B256::ZERO),
        };
        h[68] = has_tip;
        h[69..77].copy_from_slice(&tip.to_le_bytes());
        h[77..109].copy_from_slice(hash.as_slice());
        h[109..117].copy_from_slice(&(self.entries.len() as u64).to_le_bytes());
        let crc = crc32(&h[..120]);
        h[120..124].copy_from_slice(&crc.to_le_bytes());
        h
    }
}

fn crc32(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

type Parsed = (Option<(u64, B256)>, Vec<Entry>);

/// The tip and entries of a file, if it is a valid index of `key`.
fn parse(bytes: &[u8], key: &Key) -> Option<Parsed> {
    let h = bytes.get(..HEADER_LEN)?;
    if &h[0..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(h[120..124].try_into().ok()?);
    if crc != crc32(&h[..120]) {
        return None;
    }
    let chain_id = u64::from_le_bytes(h[8..16].try_into().ok()?);
    if chain_id != key.chain_id
        || h[16..36] != key.contract.as_slice()[..]
        || h[36..68] != key.genesis.as_slice()[..]
    {
        return None;
    }
    let tip = (h[68] == 1).then(|| {
        (
            u64::from_le_bytes(h[69..77].try_into().unwrap_or_default()),
            B256::from_slice(&h[77..109]),
        )
    });
    let n = u64::from_le_bytes(h[109..117].try_into().ok()?) as usize;
    let body = bytes.get(HEADER_LEN..HEADER_LEN.checked_add(n.checked_mul(ENTRY_LEN)?)?)?;
    let entries: Vec<Entry> = body.chunks_exact(ENTRY_LEN).map(Entry::decode).collect();
    // Entries must be in block order and not past the tip.
    let ordered = entries.windows(2).all(|w| w[0].block < w[1].block);
    let within = match (tip, entries.last()) {
        (Some((t, _)), Some(e)) => e.block <= t,
        (None, Some(_)) => false,
        _ => true,
    };
    (ordered && within).then_some((tip, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_raw(path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn key() -> Key {
        Key {
            chain_id: 31337,
            contract: Address::repeat_byte(7),
            genesis: B256::repeat_byte(1),
        }
    }

    fn entry(block: u64) -> Entry {
        Entry {
            block,
            block_time: 1000 + block,
            min_time: 900 + block,
            max_time: 1000 + block,
            logs: 2,
            kinds: 0b101,
        }
    }

    #[test]
    fn persists_appends_and_rejects_other_chains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ix = Index::open(dir.path(), key()).expect("open");
        assert!(ix.tip().is_none());
        ix.extend(vec![entry(3), entry(9)], (10, B256::repeat_byte(2)))
            .expect("extend");
        ix.extend(vec![entry(12)], (15, B256::repeat_byte(3)))
            .expect("extend");
        let back = Index::open(dir.path(), key()).expect("reopen");
        assert_eq!(back.entries(), &[entry(3), entry(9), entry(12)]);
        assert_eq!(back.tip(), Some((15, B256::repeat_byte(3))));

        // A crash after appending but before the header: the extra entry is ignored.
        let path = back.path().expect("path").to_path_buf();
        let mut bytes = read_raw(&path).expect("read");
        let mut extra = Vec::new();
        entry(20).encode(&mut extra);
        bytes.extend_from_slice(&extra);
        std::fs::write(&path, &bytes).expect("write");
        let back = Index::open(dir.path(), key()).expect("reopen");
        assert_eq!(back.entries().len(), 3);
        assert_eq!(
            read_raw(&path).expect("read").len(),
            HEADER_LEN + 3 * ENTRY_LEN
        );

        // Reorg: forget the tail.
        let mut ix = back;
        ix.truncate_after(Some(9), Some((9, B256::repeat_byte(9))));
        ix.extend(vec![], (9, B256::repeat_byte(9))).expect("save");
        let back = Index::open(dir.path(), key()).expect("reopen");
        assert_eq!(back.entries(), &[entry(3), entry(9)]);

        // A corrupt header: a new, empty index.
        let mut bytes = read_raw(&path).expect("read");
        bytes[70] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(
            Index::open(dir.path(), key())
                .expect("open")
                .entries()
                .is_empty()
        );
        // Another genesis (a fresh dev chain at the same address): a new, empty index.
        let other = Key {
            genesis: B256::repeat_byte(5),
            ..key()
        };
        let ix = Index::open(dir.path(), other).expect("open");
        assert!(ix.entries().is_empty() && ix.tip().is_none());
    }

    #[test]
    fn may_hold() {
        let e = entry(5); // times 905..=1005
        assert!(e.may_hold(0b1, 0, u64::MAX));
        assert!(!e.may_hold(0b10, 0, u64::MAX));
        assert!(e.may_hold(0b1, 1005, 2000));
        assert!(!e.may_hold(0b1, 1006, 2000));
        assert!(e.may_hold(0b1, 0, 905));
        assert!(!e.may_hold(0b1, 0, 904));
    }
}
