//! Read-only reports for operators (`wolfscale wal inspect` / `wal dump`): segments, LSN
//! ranges, sizes, compression, damage, and one line per record. Never changes a file and
//! never prints a payload that failed its CRC. Owns no CLI parsing.

use super::format;
use super::recovery;
use super::Error;
use std::fmt;
use std::path::{Path, PathBuf};

/// One segment in an [`InspectReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// File name.
    pub file: String,
    /// First LSN.
    pub first_lsn: u64,
    /// Valid records.
    pub records: u64,
    /// File size on disk (including preallocated space).
    pub file_bytes: u64,
    /// Bytes used by the segment header and valid records.
    pub data_bytes: u64,
    /// Payload bytes before compression.
    pub raw_payload_bytes: u64,
    /// Payload bytes as stored.
    pub stored_payload_bytes: u64,
    /// Records stored compressed.
    pub compressed_records: u64,
    /// Damage after the valid records, if any.
    pub damage: Option<String>,
}

/// What `wal inspect` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectReport {
    /// The WAL directory.
    pub dir: PathBuf,
    /// Segments in LSN order.
    pub segments: Vec<SegmentReport>,
    /// Verdict: what opening this WAL would do.
    pub status: String,
}

/// Scans `dir` without changing it.
///
/// # Errors
/// I/O errors only; damage is reported in the report.
pub fn inspect(dir: &Path) -> Result<InspectReport, Error> {
    let scans = match recovery::scan_dir(dir) {
        Ok(s) => s,
        Err(e @ Error::Corruption { .. }) => {
            return Ok(InspectReport {
                dir: dir.to_path_buf(),
                segments: Vec::new(),
                status: format!("corrupt: {e}"),
            })
        }
        Err(e) => return Err(e),
    };
    let status = match recovery::check(&scans) {
        Ok(None) => "ok".to_string(),
        Ok(Some(c)) => format!(
            "torn tail in {} at byte {} ({}); the next open cuts it",
            c.file.display(),
            c.offset,
            c.reason
        ),
        Err(e) => format!("corrupt: {e}; the wal will not open"),
    };
    let segments = scans
        .iter()
        .map(|(path, s)| SegmentReport {
            file: path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            first_lsn: s.first_lsn,
            records: s.records.len() as u64,
            file_bytes: s.file_len,
            data_bytes: s.data_end,
            raw_payload_bytes: s.records.iter().map(|r| u64::from(r.raw_len)).sum(),
            stored_payload_bytes: s.records.iter().map(|r| u64::from(r.stored_len)).sum(),
            compressed_records: s.records.iter().filter(|r| r.compressed).count() as u64,
            damage: s
                .damage
                .as_ref()
                .map(|d| format!("byte {}: {}", d.offset, d.reason)),
        })
        .collect();
    Ok(InspectReport {
        dir: dir.to_path_buf(),
        segments,
        status,
    })
}

fn ratio(raw: u64, stored: u64) -> f64 {
    if raw == 0 {
        1.0
    } else {
        stored as f64 / raw as f64
    }
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "wal {}", self.dir.display())?;
        writeln!(
            f,
            "{:<26} {:>12} {:>12} {:>9} {:>12} {:>12} {:>7}",
            "segment", "first lsn", "last lsn", "records", "data bytes", "file bytes", "ratio"
        )?;
        let (mut raw, mut stored, mut records) = (0, 0, 0);
        for s in &self.segments {
            let last = if s.records == 0 {
                "-".to_string()
            } else {
                (s.first_lsn + s.records - 1).to_string()
            };
            writeln!(
                f,
                "{:<26} {:>12} {:>12} {:>9} {:>12} {:>12} {:>7.3}",
                s.file,
                s.first_lsn,
                last,
                s.records,
                s.data_bytes,
                s.file_bytes,
                ratio(s.raw_payload_bytes, s.stored_payload_bytes)
            )?;
            if let Some(d) = &s.damage {
                writeln!(f, "  damage at {d}")?;
            }
            raw += s.raw_payload_bytes;
            stored += s.stored_payload_bytes;
            records += s.records;
        }
        writeln!(
            f,
            "total: {} segments, {records} records, payload {raw} bytes stored as {stored} (ratio {:.3})",
            self.segments.len(),
            ratio(raw, stored)
        )?;
        write!(f, "status: {}", self.status)
    }
}

/// One record in a [`DumpReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpLine {
    /// LSN.
    pub lsn: u64,
    /// Term.
    pub term: u64,
    /// Segment file name.
    pub segment: String,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Payload bytes before compression.
    pub raw_len: u32,
    /// Payload bytes as stored.
    pub stored_len: u32,
    /// The payload, decoded by the caller's decoder or as (truncated) hex.
    pub text: String,
}

/// What `wal dump` prints: one line per record, then any problem that stopped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpReport {
    /// Records in LSN order.
    pub lines: Vec<DumpLine>,
    /// Damage found (dumping stops at damage: nothing past it is printed).
    pub problems: Vec<String>,
}

/// Turns a payload into text when it recognises it (e.g. a known command type).
pub type PayloadDecoder = dyn Fn(&[u8]) -> Option<String>;

/// Hex bytes shown per payload before eliding the rest.
pub const HEX_LIMIT: usize = 64;

fn hex(b: &[u8]) -> String {
    let mut s: String = b
        .iter()
        .take(HEX_LIMIT)
        .map(|x| format!("{x:02x}"))
        .collect();
    if b.len() > HEX_LIMIT {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s
}

/// Dumps records `from..=to` of the WAL in `dir`, decoding each payload with `decoder`
/// when it recognises it and printing hex otherwise. Read-only.
///
/// # Errors
/// I/O errors; damage is reported in `problems`.
pub fn dump(
    dir: &Path,
    from: u64,
    to: u64,
    decoder: Option<&PayloadDecoder>,
) -> Result<DumpReport, Error> {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (lsn0, path) in recovery::list_segments(dir)? {
        let buf = super::segment::read_all(&path)?;
        let scan = match super::segment::scan(&path, lsn0, &buf) {
            Ok(s) => s,
            Err(e) => {
                problems.push(e.to_string());
                break;
            }
        };
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        for (i, r) in scan.records.iter().enumerate() {
            let lsn = scan.first_lsn + i as u64;
            if lsn < from || lsn > to {
                continue;
            }
            let at = r.offset as usize;
            let text = match format::decode_record(&buf[at..]) {
                Ok((_, payload)) => decoder
                    .and_then(|d| d(&payload))
                    .unwrap_or_else(|| hex(&payload)),
                Err(e) => {
                    problems.push(format!("{name} byte {at}: {e}"));
                    break;
                }
            };
            lines.push(DumpLine {
                lsn,
                term: r.term,
                segment: name.clone(),
                offset: r.offset as u64,
                raw_len: r.raw_len,
                stored_len: r.stored_len,
                text,
            });
        }
        if let Some(d) = scan.damage {
            problems.push(format!("{name} byte {}: {}", d.offset, d.reason));
            break;
        }
    }
    Ok(DumpReport { lines, problems })
}

impl fmt::Display for DumpLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lsn={} term={} seg={} off={} len={}/{} {}",
            self.lsn,
            self.term,
            self.segment,
            self.offset,
            self.stored_len,
            self.raw_len,
            self.text
        )
    }
}

impl fmt::Display for DumpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        for p in &self.problems {
            writeln!(f, "damage: {p}")?;
        }
        write!(f, "{} records", self.lines.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_elides_long_payloads() {
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
        let long = hex(&[0u8; 100]);
        assert!(long.ends_with("… (100 bytes)"));
        assert!(long.starts_with(&"00".repeat(HEX_LIMIT)));
    }
}
