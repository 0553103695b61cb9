//! Opening a WAL directory: list and validate every segment, check that LSNs continue
//! across segments, and cut a torn tail of the last segment. Owns the recovery rules; it
//! does not write records (that is `writer`).
//!
//! # Rules
//!
//! - Every record of every segment is CRC-checked; LSNs must be contiguous inside a segment
//!   and from one segment to the next (a missing segment is a gap).
//! - In every segment but the last, valid records must be followed only by zeros.
//! - In the last segment, damage after the valid records is a torn tail, cut back to the
//!   last good record and logged, only when (a) the bytes show an interrupted write (the
//!   record runs past the end of the file, or a zero-filled piece starting at a 512-byte
//!   sector boundary: preallocated space a write never reached) and (b) no valid record
//!   follows anywhere after it. A writer appends whole batches sequentially and syncs a
//!   batch before writing the next, so a real torn tail has nothing valid after it.
//! - Anything else (bad CRC with the record fully present and no zero sector, a valid
//!   record after the damage, an invalid segment header) is `Error::Corruption` naming
//!   the file and offset, and the open fails. A bit flip in the very last record whose
//!   payload holds a zero sector is indistinguishable from a torn write and is cut.

use super::segment::{self, Damage, Preallocate, Scan};
use super::Error;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A segment as recovery found it, ready for the in-memory index.
#[derive(Debug)]
pub struct RecoveredSegment {
    /// First LSN (also in the name).
    pub first_lsn: u64,
    /// Path of the file.
    pub path: PathBuf,
    /// The open file.
    pub file: Arc<File>,
    /// Byte offset of each record, index = lsn - first_lsn.
    pub offsets: Vec<u32>,
    /// Offset just past the last record.
    pub end: u64,
}

/// What the tail cut removed, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailCut {
    /// The segment that was cut.
    pub file: PathBuf,
    /// Offset the file was cut back to.
    pub offset: u64,
    /// What was found there.
    pub reason: String,
}

/// The whole log as found on disk.
#[derive(Debug)]
pub struct Recovered {
    /// Segments in LSN order.
    pub segments: Vec<RecoveredSegment>,
    /// Term runs: `(first lsn of the run, term)`.
    pub terms: Vec<(u64, u64)>,
    /// LSN the next append must carry.
    pub next_lsn: u64,
    /// First LSN held (equal to `next_lsn` when empty).
    pub base: u64,
    /// The torn tail that was cut, if any.
    pub cut: Option<TailCut>,
}

/// Segment files of `dir` in LSN order, as `(first lsn, path)`.
///
/// # Errors
/// The directory cannot be listed.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut out = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| segment::io_err("list directory", dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| segment::io_err("list directory", dir, e))?;
        let name = entry.file_name();
        if let Some(lsn) = name.to_str().and_then(segment::parse_file_name) {
            out.push((lsn, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn remove_leftover_tmp(dir: &Path) -> Result<(), Error> {
    let rd = std::fs::read_dir(dir).map_err(|e| segment::io_err("list directory", dir, e))?;
    let mut removed = false;
    for entry in rd {
        let entry = entry.map_err(|e| segment::io_err("list directory", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".wal.tmp") {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| segment::io_err("remove temp segment", &p, e))?;
            tracing::info!(file = %p.display(), "removed unfinished segment");
            removed = true;
        }
    }
    if removed {
        segment::fsync_dir(dir)?;
    }
    Ok(())
}

fn corruption(path: &Path, d: &Damage) -> Error {
    let mut reason = d.reason.clone();
    if let Some(at) = d.valid_after {
        reason.push_str(&format!(" (a valid record follows at byte {at})"));
    }
    Error::Corruption {
        file: path.to_path_buf(),
        offset: d.offset,
        reason,
    }
}

/// Decides, for every scanned segment, whether the log is usable; returns the offset to
/// cut the last segment at, if its tail is torn. Shared by `open` and `wal inspect`.
///
/// # Errors
/// `Error::Corruption` per the module rules.
pub fn check(scans: &[(PathBuf, Scan)]) -> Result<Option<TailCut>, Error> {
    let mut cut = None;
    for (i, (path, s)) in scans.iter().enumerate() {
        if i > 0 {
            let (_, prev) = &scans[i - 1];
            let prev_next = prev.first_lsn + prev.records.len() as u64;
            if s.first_lsn != prev_next {
                return Err(Error::Corruption {
                    file: path.clone(),
                    offset: 0,
                    reason: format!(
                        "segment starts at lsn {} but the previous segment ends before lsn \
                         {prev_next} (missing or extra segment)",
                        s.first_lsn
                    ),
                });
            }
        }
        let last = i + 1 == scans.len();
        if let Some(d) = &s.damage {
            if !last || !d.torn_evidence || d.valid_after.is_some() {
                return Err(corruption(path, d));
            }
            cut = Some(TailCut {
                file: path.clone(),
                offset: d.offset,
                reason: d.reason.clone(),
            });
        }
    }
    Ok(cut)
}

/// Scans every segment of `dir` without changing anything.
///
/// # Errors
/// I/O errors, or `Error::Corruption` for an invalid segment header.
pub fn scan_dir(dir: &Path) -> Result<Vec<(PathBuf, Scan)>, Error> {
    let mut scans = Vec::new();
    for (lsn, path) in list_segments(dir)? {
        let buf = segment::read_all(&path)?;
        let s = segment::scan(&path, lsn, &buf)?;
        scans.push((path, s));
    }
    Ok(scans)
}

/// Opens and validates the log in `dir`, cutting a torn tail durably.
///
/// # Errors
/// I/O errors, or `Error::Corruption` per the module rules.
pub fn recover(dir: &Path, seg_size: u64, mode: Preallocate) -> Result<Recovered, Error> {
    remove_leftover_tmp(dir)?;
    let scans = scan_dir(dir)?;
    let cut = check(&scans)?;
    let mut segments = Vec::with_capacity(scans.len());
    let mut terms: Vec<(u64, u64)> = Vec::new();
    for (path, s) in scans {
        let file = segment::open(&path)?;
        if let Some(c) = cut.as_ref().filter(|c| c.file == path) {
            segment::cut(&file, &path, c.offset, seg_size.max(c.offset), mode)?;
            tracing::warn!(
                file = %path.display(),
                offset = c.offset,
                reason = %c.reason,
                "cut torn wal tail"
            );
        }
        for (i, r) in s.records.iter().enumerate() {
            if terms.last().map(|t| t.1) != Some(r.term) {
                terms.push((s.first_lsn + i as u64, r.term));
            }
        }
        segments.push(RecoveredSegment {
            first_lsn: s.first_lsn,
            path,
            file: Arc::new(file),
            offsets: s.records.iter().map(|r| r.offset).collect(),
            end: s.data_end,
        });
    }
    let (base, next_lsn) = match (segments.first(), segments.last()) {
        (Some(f), Some(l)) => (f.first_lsn, l.first_lsn + l.offsets.len() as u64),
        _ => (1, 1),
    };
    Ok(Recovered {
        segments,
        terms,
        next_lsn,
        base,
        cut,
    })
}
