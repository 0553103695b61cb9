//! The snapshot file format (version 1): a stream of typed items in LZ4 frames, each
//! CRC-checked, closed by a SHA-256 of the whole file. Owns the byte layout, the item
//! types and the conversion between a cell and a MariaDB value; knows nothing of
//! MariaDB connections or openraft.
//!
//! ```text
//! file   := MAGIC (8 bytes: "WSSNAP", 0x00, 0x01) frame* tail
//! frame  := kind u8 (0 stored as is, 1 LZ4 block) | raw_len u32 LE | stored_len u32 LE
//!           | crc32c(stored bytes) u32 LE | stored bytes
//! raw    := item*            (the bytes of one frame once decompressed)
//! item   := len u32 LE | postcard(Item)
//! tail   := footer_offset u64 LE | sha256 (32 bytes) | END (8 bytes: "WSSNAPND")
//! ```
//!
//! The first item is [`Item::Header`]. The last frame starts at `footer_offset` and holds
//! exactly one item, [`Item::Footer`], so a reader learns the totals (rows, tables) without
//! reading the rest. The SHA-256 covers every byte before it (magic through
//! `footer_offset`). Rows are typed cells, not SQL text, so binary strings, NULL, unsigned
//! 64-bit integers, decimals (as their exact text), dates and floats round-trip exactly.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Seek, SeekFrom, Write};

/// First bytes of every snapshot file: name and format version.
pub const MAGIC: [u8; 8] = *b"WSSNAP\x00\x01";
/// Last bytes of every complete snapshot file.
pub const END: [u8; 8] = *b"WSSNAPND";
/// The format version written in [`Header::version`].
pub const VERSION: u32 = 2;
/// Bytes of a frame header.
const FRAME_HEADER: usize = 13;
/// Bytes of the tail.
pub const TAIL: usize = 8 + 32 + 8;
/// A frame is closed once it holds this many raw bytes.
pub const FRAME_TARGET: usize = 1 << 20;
/// Largest frame a reader accepts (one row may be large, but not larger than this).
pub const MAX_FRAME: usize = 1 << 30;

/// What went wrong reading or writing a snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file system failed.
    #[error("snapshot file i/o: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a valid snapshot (damaged, truncated or another format).
    #[error("snapshot file is damaged: {0}")]
    Corrupt(String),
    /// An item could not be encoded (a bug: every item type is encodable).
    #[error("snapshot item cannot be encoded: {0}")]
    Encode(String),
}

fn corrupt(what: impl Into<String>) -> FormatError {
    FormatError::Corrupt(what.into())
}

/// One value of a row, as MariaDB's binary protocol returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Strings, binary strings, decimals (exact text), JSON, BIT, ENUM, SET, geometry.
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Signed integers.
    Int(i64),
    /// Unsigned integers that do not fit `i64`.
    UInt(u64),
    /// FLOAT, bit for bit.
    Float(f32),
    /// DOUBLE, bit for bit.
    Double(f64),
    /// DATE, DATETIME, TIMESTAMP: year, month, day, hour, minute, second, microsecond.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// TIME: negative, days, hours, minutes, seconds, microseconds.
    Time(bool, u32, u8, u8, u8, u32),
}

impl Cell {
    /// Approximate bytes this cell takes in a statement (for batching).
    pub fn weight(&self) -> usize {
        match self {
            Cell::Bytes(b) => b.len() + 4,
            _ => 9,
        }
    }
}

impl From<mysql_async::Value> for Cell {
    fn from(v: mysql_async::Value) -> Cell {
        use mysql_async::Value as V;
        match v {
            V::NULL => Cell::Null,
            V::Bytes(b) => Cell::Bytes(b),
            V::Int(i) => Cell::Int(i),
            V::UInt(u) => Cell::UInt(u),
            V::Float(f) => Cell::Float(f),
            V::Double(d) => Cell::Double(d),
            V::Date(y, mo, d, h, mi, s, us) => Cell::Date(y, mo, d, h, mi, s, us),
            V::Time(neg, d, h, mi, s, us) => Cell::Time(neg, d, h, mi, s, us),
        }
    }
}

impl From<Cell> for mysql_async::Value {
    fn from(c: Cell) -> mysql_async::Value {
        use mysql_async::Value as V;
        match c {
            Cell::Null => V::NULL,
            Cell::Bytes(b) => V::Bytes(b),
            Cell::Int(i) => V::Int(i),
            Cell::UInt(u) => V::UInt(u),
            Cell::Float(f) => V::Float(f),
            Cell::Double(d) => V::Double(d),
            Cell::Date(y, mo, d, h, mi, s, us) => V::Date(y, mo, d, h, mi, s, us),
            Cell::Time(neg, d, h, mi, s, us) => V::Time(neg, d, h, mi, s, us),
        }
    }
}

/// The applied position a snapshot reflects, as `_wolfscale` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Log index.
    pub index: u64,
    /// Term of the leader that wrote it.
    pub term: u64,
    /// That leader's node number.
    pub node: u64,
}

/// First item: where the copy stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The replicated database it was taken from.
    pub database: String,
    /// The last log entry whose effects the copy holds; `None` before the first.
    pub applied: Option<Position>,
    /// The membership in force at `applied`, as JSON (the text `_wolfscale` holds).
    pub membership_json: String,
    /// A DDL entry that was marked in flight (started, not recorded) in the copy.
    pub ddl_in_flight: Option<u64>,
    /// The AUTO_INCREMENT counters recorded with `applied` (`_wolfscale.autoinc`: a JSON
    /// object, table name → next value). `SHOW CREATE TABLE` reads counters outside the
    /// read view, so the load sets them back to these.
    pub autoinc_json: Option<String>,
    /// When the copy was taken, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// `SELECT VERSION()` of the server it was taken from.
    pub server_version: String,
}

/// A base table: its definition, then its rows in the following [`Item::Rows`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    /// Table name.
    pub name: String,
    /// `SHOW CREATE TABLE` text.
    pub create: String,
    /// Stored (non-generated) columns, in the order of every row's cells.
    pub columns: Vec<String>,
}

/// A sequence: its definition and the next value it will hand out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceDef {
    /// Sequence name.
    pub name: String,
    /// `SHOW CREATE TABLE` text (`CREATE SEQUENCE …`).
    pub create: String,
    /// `next_not_cached_value` in the copy.
    pub next: i64,
}

/// A view, routine or trigger: its `SHOW CREATE` text without the `DEFINER` clause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDef {
    /// Object name.
    pub name: String,
    /// `PROCEDURE` or `FUNCTION` for routines; empty otherwise.
    pub kind: String,
    /// The `sql_mode` it was created under (empty for views).
    pub sql_mode: String,
    /// The `CREATE …` statement.
    pub create: String,
}

/// Row count of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    /// Table name.
    pub name: String,
    /// Rows copied.
    pub rows: u64,
}

/// Last item: totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footer {
    /// Rows per table, in file order.
    pub tables: Vec<TableCount>,
    /// Rows in all tables.
    pub rows: u64,
    /// Sequences copied.
    pub sequences: u64,
    /// Views copied.
    pub views: u64,
    /// Routines copied.
    pub routines: u64,
    /// Triggers copied.
    pub triggers: u64,
}

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// Always first.
    Header(Header),
    /// Starts a table; its rows follow.
    Table(TableDef),
    /// Rows of the last table started.
    Rows(Vec<Vec<Cell>>),
    /// A sequence.
    Sequence(SequenceDef),
    /// A view.
    View(ObjectDef),
    /// A stored procedure or function.
    Routine(ObjectDef),
    /// A trigger (created after every row is loaded, so it does not fire on them).
    Trigger(ObjectDef),
    /// Always last, alone in the last frame.
    Footer(Footer),
}

/// Appends one length-prefixed item to `buf`.
///
/// # Errors
/// [`FormatError::Encode`] (not expected: every item type encodes).
pub fn encode_item(item: &Item, buf: &mut Vec<u8>) -> Result<(), FormatError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let mut out = postcard::to_extend(item, std::mem::take(buf))
        .map_err(|e| FormatError::Encode(e.to_string()))?;
    let len = u32::try_from(out.len() - start - 4)
        .map_err(|_| FormatError::Encode("item larger than 4 GiB".into()))?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    *buf = out;
    Ok(())
}

/// Sizes of a finished file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the file.
    pub bytes: u64,
    /// Item bytes before compression.
    pub raw_bytes: u64,
    /// SHA-256 of the file (before the checksum itself).
    pub sha256: [u8; 32],
}

/// Writes a snapshot file: items go in, frames come out. Blocking.
pub struct Writer<W: Write> {
    out: W,
    hasher: Sha256,
    written: u64,
    raw_bytes: u64,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Starts a file on `out` (writes the magic).
    ///
    /// # Errors
    /// The write fails.
    pub fn new(out: W) -> Result<Writer<W>, FormatError> {
        let mut w = Writer {
            out,
            hasher: Sha256::new(),
            written: 0,
            raw_bytes: 0,
            buf: Vec::with_capacity(FRAME_TARGET + FRAME_TARGET / 4),
            scratch: Vec::new(),
        };
        w.put(&MAGIC)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        emit(&mut self.out, &mut self.hasher, &mut self.written, bytes)
    }

    /// Adds one item.
    ///
    /// # Errors
    /// Encoding or writing fails.
    pub fn push(&mut self, item: &Item) -> Result<(), FormatError> {
        encode_item(item, &mut self.buf)?;
        self.after_push()
    }

    /// Adds items already encoded with [`encode_item`] (producers encode off this thread).
    ///
    /// # Errors
    /// Writing fails.
    pub fn push_encoded(&mut self, items: &[u8]) -> Result<(), FormatError> {
        self.buf.extend_from_slice(items);
        self.after_push()
    }

    fn after_push(&mut self) -> Result<(), FormatError> {
        if self.buf.len() >= FRAME_TARGET {
            self.flush_frame()?;
        }
        Ok(())
    }

    fn flush_frame(&mut self) -> Result<(), FormatError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let raw = std::mem::take(&mut self.buf);
        self.raw_bytes += raw.len() as u64;
        let raw_len = u32::try_from(raw.len())
            .map_err(|_| FormatError::Encode("frame larger than 4 GiB".into()))?;
        self.scratch.clear();
        self.scratch
            .resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
        let n = lz4_flex::block::compress_into(&raw, &mut self.scratch)
            .map_err(|e| FormatError::Encode(e.to_string()))?;
        let (kind, stored): (u8, &[u8]) = if n < raw.len() {
            (1, &self.scratch[..n])
        } else {
            (0, &raw)
        };
        let mut head = [0u8; FRAME_HEADER];
        head[0] = kind;
        head[1..5].copy_from_slice(&raw_len.to_le_bytes());
        head[5..9].copy_from_slice(&(stored.len() as u32).to_le_bytes());
        head[9..13].copy_from_slice(&crc32c::crc32c(stored).to_le_bytes());
        emit(&mut self.out, &mut self.hasher, &mut self.written, &head)?;
        emit(&mut self.out, &mut self.hasher, &mut self.written, stored)?;
        let mut raw = raw;
        raw.clear();
        self.buf = raw;
        Ok(())
    }

    /// Writes the footer frame and the tail; returns the sizes, checksum and the output.
    ///
    /// # Errors
    /// Writing fails.
    pub fn finish(mut self, footer: &Footer) -> Result<(W, Written), FormatError> {
        self.flush_frame()?;
        let footer_offset = self.written;
        encode_item(&Item::Footer(footer.clone()), &mut self.buf)?;
        self.flush_frame()?;
        self.put(&footer_offset.to_le_bytes())?;
        let sha: [u8; 32] = self.hasher.clone().finalize().into();
        self.out.write_all(&sha)?;
        self.out.write_all(&END)?;
        self.out.flush()?;
        Ok((
            self.out,
            Written {
                bytes: self.written + 40,
                raw_bytes: self.raw_bytes,
                sha256: sha,
            },
        ))
    }
}

fn emit(
    out: &mut impl Write,
    hasher: &mut Sha256,
    written: &mut u64,
    bytes: &[u8],
) -> Result<(), FormatError> {
    out.write_all(bytes)?;
    hasher.update(bytes);
    *written += bytes.len() as u64;
    Ok(())
}

/// What [`verify`] found in a complete, intact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The first item.
    pub header: Header,
    /// The last item.
    pub footer: Footer,
    /// File size.
    pub bytes: u64,
    /// SHA-256 over the file before the checksum.
    pub sha256: [u8; 32],
}

fn read_tail(file: &mut (impl Read + Seek)) -> Result<(u64, [u8; 32], u64), FormatError> {
    let len = file.seek(SeekFrom::End(0))?;
    if len < (MAGIC.len() + TAIL) as u64 {
        return Err(corrupt(format!("{len} bytes is too short for a snapshot")));
    }
    file.seek(SeekFrom::Start(len - TAIL as u64))?;
    let mut tail = [0u8; TAIL];
    file.read_exact(&mut tail)?;
    if tail[40..48] != END {
        return Err(corrupt("no end marker (the file is incomplete)"));
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&tail[..8]);
    let mut sha = [0u8; 32];
    sha.copy_from_slice(&tail[8..40]);
    let footer_offset = u64::from_le_bytes(off);
    if footer_offset < MAGIC.len() as u64 || footer_offset > len - TAIL as u64 {
        return Err(corrupt(format!(
            "footer offset {footer_offset} out of range"
        )));
    }
    Ok((footer_offset, sha, len))
}

/// Checks a whole file: magic, end marker, SHA-256, and that it starts with a header and
/// ends with a footer. Reads the file once. Blocking.
///
/// # Errors
/// [`FormatError::Corrupt`] saying what is wrong, or I/O errors.
pub fn verify(file: &mut (impl Read + Seek)) -> Result<Verified, FormatError> {
    let (_, sha, len) = read_tail(file)?;
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut left = len - 40;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = buf.len().min(left as usize);
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let got: [u8; 32] = hasher.finalize().into();
    if got != sha {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = Reader::open(&mut *file)?;
    let header = match r.next_item()? {
        Some(Item::Header(h)) => h,
        _ => return Err(corrupt("the first item is not a header")),
    };
    if header.version != VERSION {
        return Err(corrupt(format!(
            "format version {} (this build reads {VERSION})",
            header.version
        )));
    }
    let footer = r.footer()?;
    Ok(Verified {
        header,
        footer,
        bytes: len,
        sha256: sha,
    })
}

/// Reads the items of a file in order (the footer is read separately). Blocking. Checks
/// each frame's CRC; call [`verify`] first to check the whole file.
pub struct Reader<R: Read + Seek> {
    src: R,
    footer_offset: u64,
    offset: u64,
    frame: Vec<u8>,
    at: usize,
}

impl<R: Read + Seek> Reader<R> {
    /// Opens a file positioned at its first frame.
    ///
    /// # Errors
    /// Bad magic or tail, or I/O.
    pub fn open(mut src: R) -> Result<Reader<R>, FormatError> {
        let (footer_offset, _, _) = read_tail(&mut src)?;
        src.seek(SeekFrom::Start(0))?;
        let mut magic = [0u8; 8];
        src.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(corrupt("not a WolfScale snapshot (bad magic)"));
        }
        Ok(Reader {
            src,
            footer_offset,
            offset: MAGIC.len() as u64,
            frame: Vec::new(),
            at: 0,
        })
    }

    /// Bytes of the file consumed so far (for progress).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset of the footer frame (≈ the size of the items before it).
    pub fn footer_offset(&self) -> u64 {
        self.footer_offset
    }

    fn read_frame(&mut self) -> Result<Vec<u8>, FormatError> {
        let mut head = [0u8; FRAME_HEADER];
        self.src.read_exact(&mut head)?;
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let (kind, raw_len, stored_len, crc) =
            (head[0], word(1) as usize, word(5) as usize, word(9));
        if raw_len > MAX_FRAME || stored_len > MAX_FRAME {
            return Err(corrupt(format!(
                "frame at byte {} claims {raw_len} bytes",
                self.offset
            )));
        }
        let mut stored = vec![0u8; stored_len];
        self.src.read_exact(&mut stored)?;
        if crc32c::crc32c(&stored) != crc {
            return Err(corrupt(format!(
                "frame at byte {} fails its CRC",
                self.offset
            )));
        }
        self.offset += (FRAME_HEADER + stored_len) as u64;
        match kind {
            0 if stored_len == raw_len => Ok(stored),
            1 => lz4_flex::block::decompress(&stored, raw_len)
                .map_err(|e| corrupt(format!("frame does not decompress: {e}"))),
            _ => Err(corrupt(format!("frame kind {kind} is unknown"))),
        }
    }

    /// The next item before the footer; `None` at the footer.
    ///
    /// # Errors
    /// Damage or I/O.
    pub fn next_item(&mut self) -> Result<Option<Item>, FormatError> {
        while self.at >= self.frame.len() {
            if self.offset >= self.footer_offset {
                return Ok(None);
            }
            self.frame = self.read_frame()?;
            self.at = 0;
        }
        let rest = &self.frame[self.at..];
        if rest.len() < 4 {
            return Err(corrupt("item length cut short"));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("item cut short"))?;
        let item: Item = postcard::from_bytes(body)
            .map_err(|e| corrupt(format!("item does not decode: {e}")))?;
        self.at += 4 + len;
        Ok(Some(item))
    }

    /// Reads the footer (leaves the reader positioned after it).
    ///
    /// # Errors
    /// Damage or I/O.
    pub fn footer(&mut self) -> Result<Footer, FormatError> {
        self.src.seek(SeekFrom::Start(self.footer_offset))?;
        self.offset = self.footer_offset;
        let frame = self.read_frame()?;
        self.frame.clear();
        self.at = 0;
        let len = frame
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| corrupt("footer cut short"))?;
        match frame.get(4..4 + len).map(postcard::from_bytes::<Item>) {
            Some(Ok(Item::Footer(f))) => Ok(f),
            _ => Err(corrupt("the last frame is not a footer")),
        }
    }
}

/// Hex of a checksum, for manifests and logs.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header() -> Header {
        Header {
            version: VERSION,
            database: "app".into(),
            applied: Some(Position {
                index: 42,
                term: 3,
                node: 1,
            }),
            membership_json: "{}".into(),
            ddl_in_flight: None,
            autoinc_json: Some("{\"t\": 7}".into()),
            created_ms: 1,
            server_version: "10.11".into(),
        }
    }

    fn sample_rows(n: usize) -> Vec<Vec<Cell>> {
        (0..n)
            .map(|i| {
                vec![
                    Cell::Int(i as i64),
                    Cell::UInt(u64::MAX - i as u64),
                    Cell::Bytes(vec![0, 255, (i % 256) as u8]),
                    Cell::Null,
                    Cell::Float(f32::MIN_POSITIVE),
                    Cell::Double(-0.0),
                    Cell::Date(2024, 2, 29, 23, 59, 59, 999_999),
                    Cell::Time(true, 34, 22, 59, 58, 1),
                    Cell::Bytes(b"12345678901234567890.000000001".to_vec()),
                ]
            })
            .collect()
    }

    fn write_file(items: &[Item], footer: &Footer) -> (Vec<u8>, Written) {
        let mut w = Writer::new(Vec::new()).expect("writer");
        for i in items {
            w.push(i).expect("push");
        }
        let (bytes, written) = w.finish(footer).expect("finish");
        (bytes, written)
    }

    #[test]
    fn items_round_trip_through_frames() {
        let table = TableDef {
            name: "t".into(),
            create: "CREATE TABLE `t` (`id` int)".into(),
            columns: vec!["id".into()],
        };
        // Enough rows for several frames.
        let mut items = vec![Item::Header(header()), Item::Table(table)];
        for chunk in 0..40 {
            items.push(Item::Rows(sample_rows(chunk * 7 + 1000)));
        }
        items.push(Item::Trigger(ObjectDef {
            name: "tr".into(),
            kind: String::new(),
            sql_mode: "STRICT_TRANS_TABLES".into(),
            create: "CREATE TRIGGER tr …".into(),
        }));
        let footer = Footer {
            tables: vec![TableCount {
                name: "t".into(),
                rows: 99,
            }],
            rows: 99,
            triggers: 1,
            ..Footer::default()
        };
        let (bytes, written) = write_file(&items, &footer);
        assert_eq!(written.bytes, bytes.len() as u64);
        assert!(written.raw_bytes > FRAME_TARGET as u64 * 2);
        let v = verify(&mut Cursor::new(&bytes)).expect("verifies");
        assert_eq!(v.header, header());
        assert_eq!(v.footer, footer);
        assert_eq!(v.sha256, written.sha256);
        let mut r = Reader::open(Cursor::new(&bytes)).expect("open");
        let mut back = Vec::new();
        while let Some(i) = r.next_item().expect("next") {
            back.push(i);
        }
        assert_eq!(back, items);
        assert_eq!(r.offset(), r.footer_offset());
    }

    #[test]
    fn floats_keep_their_bits() {
        let cells = vec![
            Cell::Float(f32::from_bits(0x7fc0_0001)),
            Cell::Double(f64::from_bits(0x8000_0000_0000_0001)),
        ];
        let (bytes, _) = write_file(
            &[Item::Header(header()), Item::Rows(vec![cells.clone()])],
            &Footer::default(),
        );
        let mut r = Reader::open(Cursor::new(&bytes)).expect("open");
        r.next_item().expect("header");
        match r.next_item().expect("rows") {
            Some(Item::Rows(rows)) => match (&rows[0][0], &rows[0][1]) {
                (Cell::Float(f), Cell::Double(d)) => {
                    assert_eq!(f.to_bits(), 0x7fc0_0001);
                    assert_eq!(d.to_bits(), 0x8000_0000_0000_0001);
                }
                other => panic!("wrong cells {other:?}"),
            },
            other => panic!("wrong item {other:?}"),
        }
    }

    #[test]
    fn a_flipped_byte_is_caught() {
        let (bytes, _) = write_file(
            &[Item::Header(header()), Item::Rows(sample_rows(10))],
            &Footer::default(),
        );
        for at in [10, bytes.len() / 2, bytes.len() - 45] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let e = verify(&mut Cursor::new(&bad)).expect_err("damage is found");
            assert!(matches!(e, FormatError::Corrupt(_)), "{e}");
        }
    }

    #[test]
    fn a_truncated_file_is_incomplete() {
        let (bytes, _) = write_file(&[Item::Header(header())], &Footer::default());
        for cut in [0, 7, 30, bytes.len() - 1] {
            let e = verify(&mut Cursor::new(&bytes[..cut])).expect_err("cut");
            assert!(matches!(e, FormatError::Corrupt(_)), "{e}");
        }
    }

    #[test]
    fn another_version_is_refused() {
        let mut h = header();
        h.version = 99;
        let (bytes, _) = write_file(&[Item::Header(h)], &Footer::default());
        let e = verify(&mut Cursor::new(&bytes)).expect_err("version");
        assert!(e.to_string().contains("version 99"), "{e}");
    }

    #[test]
    fn an_oversized_frame_length_is_refused_before_allocating() {
        let (mut bytes, _) = write_file(&[Item::Header(header())], &Footer::default());
        // The first frame's raw length, right after the magic and the kind byte.
        bytes[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = Reader::open(Cursor::new(&bytes)).expect("tail is intact");
        let e = r.next_item().expect_err("refused");
        assert!(e.to_string().contains("claims"), "{e}");
    }

    #[test]
    fn cells_convert_to_and_from_mysql_values() {
        for c in sample_rows(1).remove(0) {
            let v: mysql_async::Value = c.clone().into();
            assert_eq!(Cell::from(v), c);
        }
    }
}
