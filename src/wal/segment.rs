//! One segment file: naming, creation (header, preallocation, fsync, atomic rename),
//! positional I/O and a validating scan of its bytes. Owns nothing above one file: which
//! segment is active, and what damage means for the whole log, live in `writer` and
//! `recovery`.

use super::format::{self, DecodeError, RECORD_HEADER_LEN, RECORD_MARKER, SEGMENT_HEADER_LEN};
use super::Error;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Segment file extension; a crashed creation leaves `<name>.wal.tmp`, removed on open.
pub const EXTENSION: &str = "wal";

/// How a new segment file gets its space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preallocate {
    /// Grow the file with every write: each fdatasync must also commit the new size.
    None,
    /// `fallocate` the whole segment at creation: the size is fixed up front.
    Fallocate,
    /// Write zeros over the whole segment at creation: neither size nor extent state
    /// changes on later writes (costs one full write per segment).
    ZeroFill,
}

/// Maps an I/O error to `Error::Full` (no space) or `Error::Io`.
pub fn io_err(op: &'static str, path: &Path, e: std::io::Error) -> Error {
    let path = path.to_path_buf();
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::Full {
            op,
            path,
            source: Arc::new(e),
        },
        _ => Error::Io {
            op,
            path,
            source: Arc::new(e),
        },
    }
}

/// The file name of the segment whose first record is `first_lsn` (names sort by LSN).
pub fn file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.{EXTENSION}")
}

/// The first LSN encoded in a segment file name, if the name is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// fsyncs a directory so that created, renamed or deleted entries are durable.
///
/// # Errors
/// Opening or syncing the directory fails.
pub fn fsync_dir(dir: &Path) -> Result<(), Error> {
    let d = File::open(dir).map_err(|e| io_err("open directory", dir, e))?;
    d.sync_all().map_err(|e| io_err("fsync directory", dir, e))
}

/// Reserves `[from, size)` of `file` according to `mode`.
///
/// # Errors
/// The reservation fails (`Error::Full` when out of space).
pub fn preallocate(
    file: &File,
    path: &Path,
    from: u64,
    size: u64,
    mode: Preallocate,
) -> Result<(), Error> {
    if size <= from {
        return Ok(());
    }
    match mode {
        Preallocate::None => Ok(()),
        Preallocate::Fallocate => {
            let len = i64::try_from(size - from).unwrap_or(i64::MAX);
            let off = i64::try_from(from).unwrap_or(i64::MAX);
            // SAFETY: fallocate only reads its integer arguments; the fd is open and owned.
            let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, off, len) };
            if rc != 0 {
                return Err(io_err("fallocate", path, std::io::Error::last_os_error()));
            }
            Ok(())
        }
        Preallocate::ZeroFill => {
            let chunk = vec![0u8; 1 << 20];
            let mut at = from;
            while at < size {
                let n = (size - at).min(chunk.len() as u64) as usize;
                file.write_all_at(&chunk[..n], at)
                    .map_err(|e| io_err("zero-fill", path, e))?;
                at += n as u64;
            }
            Ok(())
        }
    }
}

/// Creates a segment durably: header and preallocation go to `<name>.tmp`, which is
/// fsync'd and renamed into place before the directory is fsync'd, so a segment file
/// either exists with a valid header or not at all.
///
/// # Errors
/// Any file system failure; the temporary file is removed on a best-effort basis.
pub fn create(
    dir: &Path,
    first_lsn: u64,
    size: u64,
    mode: Preallocate,
) -> Result<(PathBuf, File), Error> {
    let path = dir.join(file_name(first_lsn));
    let tmp = dir.join(format!("{}.tmp", file_name(first_lsn)));
    let result = (|| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err("create segment", &tmp, e))?;
        file.write_all_at(&format::encode_segment_header(first_lsn), 0)
            .map_err(|e| io_err("write segment header", &tmp, e))?;
        preallocate(&file, &tmp, SEGMENT_HEADER_LEN as u64, size, mode)?;
        file.sync_all()
            .map_err(|e| io_err("fsync segment", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err("rename segment", &path, e))?;
        fsync_dir(dir)?;
        Ok(file)
    })();
    match result {
        Ok(file) => Ok((path, file)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Opens an existing segment for reading and writing.
///
/// # Errors
/// The file cannot be opened.
pub fn open(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_err("open segment", path, e))
}

/// Cuts a segment back to `len` bytes and re-reserves the rest up to `size`, then syncs
/// the file (size and data) so the cut is durable.
///
/// # Errors
/// Truncation, preallocation or the sync fails.
pub fn cut(file: &File, path: &Path, len: u64, size: u64, mode: Preallocate) -> Result<(), Error> {
    file.set_len(len)
        .map_err(|e| io_err("truncate segment", path, e))?;
    preallocate(file, path, len, size, mode)?;
    file.sync_all()
        .map_err(|e| io_err("fsync segment", path, e))
}

/// One record as found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedRecord {
    /// Byte offset of the record header in the file.
    pub offset: u32,
    /// The record's term.
    pub term: u64,
    /// Stored payload bytes.
    pub stored_len: u32,
    /// Raw payload bytes.
    pub raw_len: u32,
    /// Whether the payload is LZ4-compressed.
    pub compressed: bool,
}

/// The first bytes after the valid records that are neither a record nor end-of-data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset where the damage starts (the end of the last good record).
    pub offset: u64,
    /// What is wrong there.
    pub reason: String,
    /// The bytes look like an interrupted write: the record runs past the end of the
    /// file, or part of it (from a 512-byte sector boundary) is still zero-filled.
    pub torn_evidence: bool,
    /// Offset of a valid record found after the damage, if any: proof that the damage is
    /// not at the tail.
    pub valid_after: Option<u64>,
}

/// What a segment's bytes contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// First LSN from the header (checked against the file name).
    pub first_lsn: u64,
    /// The valid records, in order, with contiguous LSNs from `first_lsn`.
    pub records: Vec<ScannedRecord>,
    /// Offset just past the last valid record.
    pub data_end: u64,
    /// The file's length.
    pub file_len: u64,
    /// Damage after the valid records, if the rest is not end-of-data.
    pub damage: Option<Damage>,
}

/// Smallest zero-filled piece, starting at a sector boundary inside a record, counted as
/// torn evidence; shorter zero runs occur in ordinary payloads.
const MIN_ZERO_PIECE: usize = 16;
/// A piece starting at the record itself needs only this many zero bytes: a real record
/// starts with its CRC, which is zero once in 2^32 records.
const MIN_ZERO_HEAD: usize = 4;
const SECTOR: usize = 512;

/// Whether `[start, end)` (one record) contains a zero-filled piece that starts at the
/// record or at a 512-byte sector boundary and runs to the next boundary or the end:
/// what a write that never reached some sector leaves in preallocated space.
fn zero_sector_piece(buf: &[u8], start: usize, end: usize) -> bool {
    let mut b = start;
    while b < end {
        let next = ((b / SECTOR) + 1) * SECTOR;
        let piece = &buf[b..next.min(end)];
        let min = if b == start {
            MIN_ZERO_HEAD
        } else {
            MIN_ZERO_PIECE
        };
        if piece.len() >= min.min(end - start) && format::is_zero(piece) {
            return true;
        }
        b = next;
    }
    false
}

fn find_valid_after(buf: &[u8], from: usize, expect: u64) -> Option<u64> {
    let mut p = from + 1;
    while p + RECORD_HEADER_LEN <= buf.len() {
        let h = &buf[p..p + RECORD_HEADER_LEN];
        if h[29] == RECORD_MARKER && h[30] == 0 && h[31] == 0 {
            if let Ok(hd) = format::decode_record_header(h) {
                if hd.lsn >= expect
                    && p + hd.total_len() <= buf.len()
                    && format::check_record(&hd, h, &buf[p + RECORD_HEADER_LEN..]).is_ok()
                {
                    return Some(p as u64);
                }
            }
        }
        p += 1;
    }
    None
}

/// Validates a whole segment held in `buf` (CRC of every record, contiguous LSNs) and
/// reports where valid data ends and what follows it.
///
/// # Errors
/// `Error::Corruption` when the segment header is invalid or disagrees with the name.
pub fn scan(path: &Path, name_lsn: u64, buf: &[u8]) -> Result<Scan, Error> {
    let corrupt = |offset: u64, reason: String| Error::Corruption {
        file: path.to_path_buf(),
        offset,
        reason,
    };
    let first_lsn = format::decode_segment_header(buf)
        .map_err(|e| corrupt(0, format!("segment header: {e}")))?;
    if first_lsn != name_lsn {
        return Err(corrupt(
            0,
            format!("segment header says first lsn {first_lsn}, file name says {name_lsn}"),
        ));
    }
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    let mut expect = first_lsn;
    let damage = loop {
        if pos == buf.len() {
            break None;
        }
        let rest = &buf[pos..];
        if format::is_zero(&rest[..rest.len().min(RECORD_HEADER_LEN)]) {
            if format::is_zero(rest) {
                break None;
            }
            break Some(("zero header followed by data".to_string(), true));
        }
        if rest.len() < RECORD_HEADER_LEN {
            break Some((format!("short record header ({} bytes)", rest.len()), true));
        }
        let h = match format::decode_record_header(rest) {
            Ok(h) => h,
            Err(e) => {
                let ev = zero_sector_piece(buf, pos, pos + RECORD_HEADER_LEN);
                break Some((e.to_string(), ev));
            }
        };
        if pos + h.total_len() > buf.len() {
            let e = DecodeError::Short {
                what: "record (runs past end of file)",
                have: buf.len() - pos,
                need: h.total_len(),
            };
            break Some((e.to_string(), true));
        }
        if let Err(e) = format::check_record(&h, rest, &rest[RECORD_HEADER_LEN..]) {
            let ev = zero_sector_piece(buf, pos, pos + h.total_len());
            break Some((e.to_string(), ev));
        }
        if h.lsn != expect {
            break Some((
                format!("record has lsn {}, expected {expect}", h.lsn),
                false,
            ));
        }
        records.push(ScannedRecord {
            offset: pos as u32,
            term: h.term,
            stored_len: h.stored_len,
            raw_len: h.raw_len,
            compressed: h.compressed(),
        });
        pos += h.total_len();
        expect += 1;
    };
    let damage = damage.map(|(reason, torn_evidence)| Damage {
        offset: pos as u64,
        reason,
        torn_evidence,
        valid_after: find_valid_after(buf, pos, expect),
    });
    Ok(Scan {
        first_lsn,
        records,
        data_end: pos as u64,
        file_len: buf.len() as u64,
        damage,
    })
}

/// Reads a whole segment file into memory.
///
/// # Errors
/// The file cannot be read.
pub fn read_all(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| io_err("read segment", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[&[u8]], first: u64, pad: usize) -> Vec<u8> {
        let mut buf = format::encode_segment_header(first).to_vec();
        for (i, r) in records.iter().enumerate() {
            format::encode_record(first + i as u64, 1, r, false, &mut buf);
        }
        buf.resize(buf.len() + pad, 0);
        buf
    }

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(file_name(42), "00000000000000000042.wal");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("42.wal"), None);
        assert_eq!(parse_file_name("00000000000000000042.wal.tmp"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn scan_reads_records_and_zero_tail() {
        let buf = segment(&[b"a", b"bb", b""], 5, 4096);
        let s = scan(Path::new("x"), 5, &buf).expect("scan");
        assert_eq!(s.records.len(), 3);
        assert_eq!(s.damage, None);
    }

    #[test]
    fn scan_rejects_name_mismatch() {
        let buf = segment(&[b"a"], 5, 0);
        assert!(matches!(
            scan(Path::new("x"), 6, &buf),
            Err(Error::Corruption { offset: 0, .. })
        ));
    }

    #[test]
    fn truncated_record_is_torn_evidence() {
        let buf = segment(&[b"aaaa", b"bbbbbbbb"], 1, 0);
        let s = scan(Path::new("x"), 1, &buf[..buf.len() - 3]).expect("scan");
        assert_eq!(s.records.len(), 1);
        let d = s.damage.expect("damage");
        assert!(d.torn_evidence);
        assert_eq!(d.valid_after, None);
    }

    /// Found by the `wal_record` fuzz target (fuzz/): a record whose CRC is right but
    /// whose LZ4 block is broken, which only a crafted file holds, passes the scan (framing
    /// and CRC); decoding it is an error, not a panic, and `read` reports corruption.
    #[test]
    fn crc_valid_record_with_a_broken_lz4_block_decodes_to_an_error() {
        let stored = [0x00, 0x34, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00];
        let mut rec = vec![0u8; RECORD_HEADER_LEN];
        rec[4..8].copy_from_slice(&(stored.len() as u32).to_le_bytes());
        rec[8..16].copy_from_slice(&7u64.to_le_bytes());
        rec[24..28].copy_from_slice(&165u32.to_le_bytes());
        rec[28] = format::FLAG_LZ4;
        rec[29] = RECORD_MARKER;
        rec.extend_from_slice(&stored);
        let crc = crc32c::crc32c(&rec[4..]);
        rec[0..4].copy_from_slice(&crc.to_le_bytes());
        let mut buf = format::encode_segment_header(7).to_vec();
        buf.extend_from_slice(&rec);
        let s = scan(Path::new("x"), 7, &buf).expect("scan");
        assert_eq!((s.records.len(), s.damage), (1, None));
        assert_eq!(
            format::decode_record(&rec),
            Err(DecodeError::Decompress { raw_len: 165 })
        );
    }

    #[test]
    fn bit_flip_mid_file_finds_later_valid_record() {
        let mut buf = segment(&[b"aaaa", b"bbbbbbbb", b"cccc"], 1, 64);
        let second = SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 4;
        buf[second + RECORD_HEADER_LEN + 1] ^= 4;
        let s = scan(Path::new("x"), 1, &buf).expect("scan");
        let d = s.damage.expect("damage");
        assert_eq!(d.offset, second as u64);
        assert!(!d.torn_evidence);
        assert!(d.valid_after.is_some());
    }
}
