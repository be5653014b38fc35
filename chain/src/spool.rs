//! The durable audit spool: append-only segment files in `spool.dir`.
//!
//! Layout of the directory:
//! - `seg-<first seq, 20 digits>.log`: segments, each a run of records
//!   `[len: u32 LE][crc32(len bytes ‖ payload): u32 LE][payload]`, payload = one
//!   [`AuditRecord::encode`]d record (kind byte + ABI-encoded contract struct, seq inside);
//! - `acked`: the highest seq known to be on the chain (decimal, replaced atomically);
//! - `lock`: held (`flock`) by the process that owns the spool.
//!
//! [`Spool::append`] returns only after the record is written and `fdatasync`ed: a record is on
//! disk before it is acknowledged. Seqs are strictly increasing and never reused, across
//! restarts: the next seq is one more than the highest of the last record, the newest segment's
//! name and `acked`. A crash mid-write leaves a torn tail record; opening the spool detects it by
//! length and CRC and truncates it (that record was never acknowledged to anyone). Once the
//! chain has everything, [`Spool::ack`] deletes the acknowledged segments and starts a fresh one,
//! so the spool stays small.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::audit::{AuditRecord, Spooled};

/// A new segment is started once the current one is this large.
pub const DEFAULT_SEGMENT_BYTES: u64 = 4 << 20;
/// Upper bound on one record's payload (a sensitive report with many addresses); larger is
/// treated as corruption when reading.
pub const MAX_RECORD_BYTES: u32 = 16 << 20;

const HEADER: usize = 8;

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    path: PathBuf,
}

/// The spool of one operator (one writer process at a time, enforced by a lock file).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    _lock: File,
    segments: Vec<Segment>,
    active: File,
    active_len: u64,
    next_seq: u64,
    acked: u64,
    segment_bytes: u64,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Spool(format!("{what} {}: {e}", path.display()))
}

fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.log")
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot sync", dir, e))
}

/// Frames one payload.
fn frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads the records of one segment's bytes. Returns them and the length of the valid prefix
/// (shorter than `bytes` when the tail is torn or corrupt).
fn parse_segment(bytes: &[u8]) -> (Vec<Spooled>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len() - at >= HEADER {
        let len_bytes: [u8; 4] = bytes[at..at + 4].try_into().unwrap_or_default();
        let len = u32::from_le_bytes(len_bytes);
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap_or_default());
        if len == 0 || len > MAX_RECORD_BYTES || bytes.len() - at - HEADER < len as usize {
            break;
        }
        let payload = &bytes[at + HEADER..at + HEADER + len as usize];
        let mut h = crc32fast::Hasher::new();
        h.update(&len_bytes);
        h.update(payload);
        if h.finalize() != crc {
            break;
        }
        let Ok(rec) = AuditRecord::decode(payload) else {
            break;
        };
        out.push(rec);
        at += HEADER + len as usize;
    }
    (out, at)
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, recovering from a crash: a torn or
    /// corrupt tail of the newest segment is truncated. Fails if another process holds it.
    pub fn open(dir: &Path) -> Result<Spool, Error> {
        Spool::open_with(dir, DEFAULT_SEGMENT_BYTES)
    }

    /// [`open`](Self::open) with a segment size (tests).
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<Spool, Error> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create", dir, e))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Spool(format!(
                    "{} is in use by another process",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_err("cannot lock", &lock_path, e));
            }
        }

        let acked_path = dir.join("acked");
        let acked = match std::fs::read_to_string(&acked_path) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| {
                Error::Spool(format!(
                    "malformed {}: '{}'",
                    acked_path.display(),
                    s.trim()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_err("cannot read", &acked_path, e)),
        };

        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))? {
            let entry = entry.map_err(|e| io_err("cannot list", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(num) = name
                .strip_prefix("seg-")
                .and_then(|n| n.strip_suffix(".log"))
            else {
                continue;
            };
            let Ok(first_seq) = num.parse::<u64>() else {
                continue;
            };
            segments.push(Segment {
                first_seq,
                path: entry.path(),
            });
        }
        segments.sort_by_key(|s| s.first_seq);

        let mut next_seq = acked + 1;
        let n = segments.len();
        for (i, seg) in segments.iter().enumerate() {
            next_seq = next_seq.max(seg.first_seq);
            let bytes =
                std::fs::read(&seg.path).map_err(|e| io_err("cannot read", &seg.path, e))?;
            let (records, valid) = parse_segment(&bytes);
            if let Some(last) = records.last() {
                next_seq = next_seq.max(last.seq + 1);
            }
            if valid < bytes.len() {
                if i + 1 < n {
                    return Err(Error::Spool(format!(
                        "corrupt record in {} at offset {valid} (not the newest segment: move the file away to start)",
                        seg.path.display()
                    )));
                }
                tracing::warn!(
                    path = %seg.path.display(),
                    offset = valid,
                    dropped = bytes.len() - valid,
                    "truncating a torn record at the end of the audit spool (written before a crash, never acknowledged)"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&seg.path)
                    .map_err(|e| io_err("cannot open", &seg.path, e))?;
                f.set_len(valid as u64)
                    .and_then(|_| f.sync_all())
                    .map_err(|e| io_err("cannot truncate", &seg.path, e))?;
            }
        }

        let mut spool = match segments.last() {
            Some(last) => {
                let path = last.path.clone();
                let active = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| io_err("cannot open", &path, e))?;
                let active_len = active
                    .metadata()
                    .map_err(|e| io_err("cannot stat", &path, e))?
                    .len();
                Spool {
                    dir: dir.to_path_buf(),
                    _lock: lock,
                    segments,
                    active,
                    active_len,
                    next_seq,
                    acked,
                    segment_bytes,
                }
            }
            None => {
                let (seg, active) = create_segment(dir, next_seq)?;
                Spool {
                    dir: dir.to_path_buf(),
                    _lock: lock,
                    segments: vec![seg],
                    active,
                    active_len: 0,
                    next_seq,
                    acked,
                    segment_bytes,
                }
            }
        };
        spool.drop_acked_segments()?;
        Ok(spool)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The seq the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The highest seq known to be on the chain.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Records appended and not yet acknowledged.
    pub fn pending_count(&self) -> u64 {
        (self.next_seq - 1).saturating_sub(self.acked)
    }

    /// Appends one record, durably; returns its seq.
    pub fn append(&mut self, record: &AuditRecord) -> Result<u64, Error> {
        Ok(self.append_batch(std::slice::from_ref(record))?[0])
    }

    /// Appends records with one write and one `fdatasync`; returns their seqs. When it fails
    /// nothing of the batch stays in the spool.
    pub fn append_batch(&mut self, records: &[AuditRecord]) -> Result<Vec<u64>, Error> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if self.active_len >= self.segment_bytes {
            self.rotate()?;
        }
        let mut buf = Vec::new();
        let mut seqs = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let seq = self.next_seq + i as u64;
            let payload = r.encode(seq);
            if payload.len() > MAX_RECORD_BYTES as usize {
                return Err(Error::InvalidInput(format!(
                    "audit record of {} bytes is larger than the spool's limit",
                    payload.len()
                )));
            }
            frame(&payload, &mut buf);
            seqs.push(seq);
        }
        let path = self.active_path();
        let written = self
            .active
            .write_all(&buf)
            .and_then(|_| self.active.sync_data());
        if let Err(e) = written {
            // Cut whatever part of the batch reached the file, so no seq is half-assigned.
            let _ = self.active.set_len(self.active_len);
            let _ = self.active.sync_data();
            return Err(io_err("cannot append to", &path, e));
        }
        self.active_len += buf.len() as u64;
        self.next_seq += records.len() as u64;
        Ok(seqs)
    }

    fn active_path(&self) -> PathBuf {
        self.segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_else(|| self.dir.join(segment_name(self.next_seq)))
    }

    /// Starts a new segment named by the next seq.
    fn rotate(&mut self) -> Result<(), Error> {
        let (seg, file) = create_segment(&self.dir, self.next_seq)?;
        self.segments.push(seg);
        self.active = file;
        self.active_len = 0;
        Ok(())
    }

    /// Up to `max` unacknowledged records, oldest first.
    pub fn pending(&self, max: usize) -> Result<Vec<Spooled>, Error> {
        let mut out = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            if out.len() >= max {
                break;
            }
            // Every seq of this segment is below the next segment's first.
            if let Some(next) = self.segments.get(i + 1)
                && next.first_seq <= self.acked + 1
            {
                continue;
            }
            let mut bytes = Vec::new();
            File::open(&seg.path)
                .and_then(|mut f| {
                    f.seek(SeekFrom::Start(0))?;
                    f.read_to_end(&mut bytes)
                })
                .map_err(|e| io_err("cannot read", &seg.path, e))?;
            let (records, _) = parse_segment(&bytes);
            for r in records {
                if r.seq > self.acked && out.len() < max {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Records that every seq ≤ `upto` is on the chain; drops what is no longer needed.
    pub fn ack(&mut self, upto: u64) -> Result<(), Error> {
        if upto <= self.acked {
            return Ok(());
        }
        self.write_acked(upto)?;
        self.drop_acked_segments()
    }

    fn write_acked(&mut self, upto: u64) -> Result<(), Error> {
        let path = self.dir.join("acked");
        let tmp = self.dir.join("acked.tmp");
        (|| {
            let mut f = File::create(&tmp)?;
            writeln!(f, "{upto}")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })()
        .map_err(|e| io_err("cannot write", &path, e))?;
        sync_dir(&self.dir)?;
        self.acked = upto;
        Ok(())
    }

    /// Deletes segments whose records are all acknowledged; when everything is, the active
    /// segment is replaced by an empty one (named by the next seq, which keeps the count).
    fn drop_acked_segments(&mut self) -> Result<(), Error> {
        let all_acked = self.acked + 1 >= self.next_seq;
        if all_acked && self.active_len > 0 {
            self.rotate()?;
        }
        let keep_from = self
            .segments
            .iter()
            .enumerate()
            .position(|(i, _)| match self.segments.get(i + 1) {
                Some(next) => next.first_seq > self.acked + 1,
                None => true,
            })
            .unwrap_or(self.segments.len() - 1);
        if keep_from == 0 {
            return Ok(());
        }
        for seg in self.segments.drain(..keep_from) {
            std::fs::remove_file(&seg.path).map_err(|e| io_err("cannot remove", &seg.path, e))?;
        }
        sync_dir(&self.dir)
    }

    /// Aligns the spool with the contract's `lastSeq` for this operator, once known.
    ///
    /// Normally `last_seq` is a seq this spool assigned: everything up to it is acknowledged.
    /// If it is higher than any seq this spool ever assigned (the spool was replaced, or
    /// another writer used the same operator key), pending records would be skipped by the
    /// contract for ever: they are renumbered above `last_seq` (a new segment is written and
    /// synced before the old ones are dropped; the old seqs are ≤ `last_seq`, so the contract
    /// skips them should both survive a crash).
    pub fn rebase(&mut self, last_seq: u64) -> Result<(), Error> {
        if last_seq < self.next_seq {
            return self.ack(last_seq);
        }
        let pending = self.pending(usize::MAX)?;
        tracing::warn!(
            chain_last_seq = last_seq,
            spool_next_seq = self.next_seq,
            renumbered = pending.len(),
            "the contract has audit seqs this spool never assigned (spool replaced, or another writer with the same operator key); renumbering pending records"
        );
        self.next_seq = last_seq + 1;
        self.rotate()?;
        let records: Vec<AuditRecord> = pending.into_iter().map(|s| s.record).collect();
        self.append_batch(&records)?;
        sync_dir(&self.dir)?;
        self.write_acked(last_seq)?;
        self.drop_acked_segments()
    }
}

fn create_segment(dir: &Path, first_seq: u64) -> Result<(Segment, File), Error> {
    let path = dir.join(segment_name(first_seq));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io_err("cannot create", &path, e))?;
    sync_dir(dir)?;
    Ok((Segment { first_seq, path }, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(i: u32) -> AuditRecord {
        AuditRecord::Ban {
            ip: "192.0.2.9".parse().unwrap(),
            until: 100,
            failures: i,
            time: 1,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("seg-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn seqs_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path()).unwrap();
            assert_eq!(s.append(&ban(1)).unwrap(), 1);
            assert_eq!(s.append_batch(&[ban(2), ban(3)]).unwrap(), vec![2, 3]);
        }
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.next_seq(), 4);
        let p = s.pending(10).unwrap();
        assert_eq!(p.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p[1].record, ban(2));
        s.ack(2).unwrap();
        assert_eq!(s.pending(10).unwrap().len(), 1);
        s.ack(3).unwrap();
        assert!(s.pending(10).unwrap().is_empty());
        // Everything acknowledged: one empty segment named by the next seq.
        assert_eq!(files(dir.path()), vec![segment_name(4)]);
        drop(s);
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.append(&ban(4)).unwrap(), 4);
    }

    #[test]
    fn a_torn_tail_is_truncated_and_earlier_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = Spool::open(dir.path()).unwrap();
            s.append_batch(&[ban(1), ban(2)]).unwrap();
        }
        let seg = dir.path().join(segment_name(1));
        let good = std::fs::metadata(&seg).unwrap().len();
        // A crash in the middle of a third record: its header and part of its body.
        let mut third = Vec::new();
        frame(&ban(3).encode(3), &mut third);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&third[..third.len() / 2]).unwrap();
        drop(f);
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), good);
        assert_eq!(s.pending(10).unwrap().len(), 2);
        assert_eq!(s.append(&ban(3)).unwrap(), 3);
        drop(s);
        // A flipped bit in the last record: caught by the CRC.
        let mut bytes = std::fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x40;
        std::fs::write(&seg, &bytes).unwrap();
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.pending(10).unwrap().len(), 2);
        assert_eq!(s.next_seq(), 3);
    }

    #[test]
    fn segments_rotate_and_are_dropped_once_acked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open_with(dir.path(), 300).unwrap();
        for i in 1..=10 {
            s.append(&ban(i)).unwrap();
        }
        assert!(files(dir.path()).len() > 2);
        assert_eq!(s.pending(100).unwrap().len(), 10);
        assert_eq!(s.pending(3).unwrap().len(), 3);
        s.ack(6).unwrap();
        let p = s.pending(100).unwrap();
        assert_eq!(
            p.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![7, 8, 9, 10]
        );
        drop(s);
        let mut s = Spool::open_with(dir.path(), 300).unwrap();
        assert_eq!(s.pending(100).unwrap().len(), 4);
        s.ack(10).unwrap();
        assert_eq!(files(dir.path()), vec![segment_name(11)]);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Spool::open(dir.path()).unwrap();
        let e = Spool::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("in use"), "{e}");
    }

    #[test]
    fn rebase_renumbers_above_a_foreign_last_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        s.append_batch(&[ban(1), ban(2)]).unwrap();
        // The chain already has seq 2: ours are acknowledged.
        s.rebase(1).unwrap();
        assert_eq!(s.pending(10).unwrap().len(), 1);
        // The chain has seq 50, which we never assigned: renumber.
        s.rebase(50).unwrap();
        let p = s.pending(10).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].seq, 51);
        assert_eq!(p[0].record, ban(2));
        assert_eq!(s.append(&ban(3)).unwrap(), 52);
    }
}
