//! The on-disk byte layout of a WAL segment: the segment header and the record codec
//! (CRC32C, optional LZ4). Owns encoding and decoding of bytes only; it never touches a
//! file and never decides what a damaged byte means (see `recovery`).
//!
//! # Segment file
//!
//! A segment is named `<first lsn, 20 digits>.wal` and starts with a 32-byte header:
//!
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..8   | magic `WOLFSWAL`                         |
//! | 8..12  | format version, u32 LE (currently 1)     |
//! | 12..16 | reserved, zero                           |
//! | 16..24 | first LSN of the segment, u64 LE         |
//! | 24..28 | CRC32C of bytes 0..24, u32 LE            |
//! | 28..32 | reserved, zero                           |
//!
//! Records follow back to back from byte 32. Each has a 32-byte header, then the payload:
//!
//! | bytes  | field                                                          |
//! |--------|----------------------------------------------------------------|
//! | 0..4   | CRC32C of header bytes 4..32 followed by the stored payload     |
//! | 4..8   | stored payload length (after compression), u32 LE              |
//! | 8..16  | LSN, u64 LE (0 is the consensus bootstrap entry)               |
//! | 16..24 | term, u64 LE                                                   |
//! | 24..28 | raw payload length (before compression), u32 LE                |
//! | 28     | flags: bit 0 = payload is LZ4 block-compressed; others zero    |
//! | 29     | marker 0xA5                                                    |
//! | 30..32 | reserved, zero                                                 |
//!
//! # End of data
//!
//! Segments are preallocated, so the bytes after the last record are zeros. A real record
//! header is never all zero (its marker byte is 0xA5), so an
//! all-zero header followed only by zeros up to the end of the file is the end of data.
//! Anything else that does not decode is damage; `recovery` decides whether it is a torn
//! tail or corruption.

/// Format version written into every segment header; bump when the layout changes.
pub const FORMAT_VERSION: u32 = 1;
/// Magic bytes at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"WOLFSWAL";
/// Size of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 32;
/// Largest payload accepted, raw or stored (keeps segment offsets within u32).
pub const MAX_PAYLOAD: usize = 128 << 20;
/// Bit 0 of the flags byte: the stored payload is an LZ4 block.
pub const FLAG_LZ4: u8 = 1;
/// Byte 29 of every record header; guarantees a real header is never all zero.
pub const RECORD_MARKER: u8 = 0xA5;

/// Why some bytes are not a valid segment header or record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a header or payload needs.
    #[error("short {what}: {have} of {need} bytes")]
    Short {
        /// What was being decoded.
        what: &'static str,
        /// Bytes present.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A field holds a value no encoder writes.
    #[error("invalid {field}: {value}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The checksum does not match the bytes.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// The payload claims to be LZ4 but does not decompress to its raw length.
    #[error("lz4 payload does not decompress to {raw_len} bytes")]
    Decompress {
        /// Expected raw length.
        raw_len: usize,
    },
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Encodes a segment header for a segment whose first record has `first_lsn`.
pub fn encode_segment_header(first_lsn: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a segment header, returning the segment's first LSN.
///
/// # Errors
/// Any deviation from the layout above, including an unknown format version.
pub fn decode_segment_header(b: &[u8]) -> Result<u64, DecodeError> {
    if b.len() < SEGMENT_HEADER_LEN {
        return Err(DecodeError::Short {
            what: "segment header",
            have: b.len(),
            need: SEGMENT_HEADER_LEN,
        });
    }
    if b[0..8] != SEGMENT_MAGIC {
        return Err(DecodeError::Invalid {
            field: "segment magic",
            value: u64_at(b, 0),
        });
    }
    let stored = u32_at(b, 24);
    let computed = crc32c::crc32c(&b[0..24]);
    if stored != computed {
        return Err(DecodeError::Crc { stored, computed });
    }
    let version = u32_at(b, 8);
    if version != FORMAT_VERSION {
        return Err(DecodeError::Invalid {
            field: "segment format version",
            value: u64::from(version),
        });
    }
    if u32_at(b, 12) != 0 || u32_at(b, 28) != 0 {
        return Err(DecodeError::Invalid {
            field: "segment header reserved bytes",
            value: u64::from(u32_at(b, 12) | u32_at(b, 28)),
        });
    }
    Ok(u64_at(b, 16))
}

/// A decoded record header; the payload is validated separately by [`check_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// CRC32C stored in the header.
    pub crc: u32,
    /// Bytes of payload stored after the header.
    pub stored_len: u32,
    /// The record's LSN.
    pub lsn: u64,
    /// The term the record was written in.
    pub term: u64,
    /// Payload length once decompressed.
    pub raw_len: u32,
    /// Flag bits ([`FLAG_LZ4`]).
    pub flags: u8,
}

impl RecordHeader {
    /// Total bytes the record occupies in the file.
    pub fn total_len(&self) -> usize {
        RECORD_HEADER_LEN + self.stored_len as usize
    }
    /// Whether the stored payload is LZ4-compressed.
    pub fn compressed(&self) -> bool {
        self.flags & FLAG_LZ4 != 0
    }
}

/// Whether `b` is an all-zero record header slot, i.e. the end-of-data filler.
pub fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Decodes and sanity-checks a record header (not the CRC, which needs the payload).
///
/// # Errors
/// A short slice or any field no encoder writes.
pub fn decode_record_header(b: &[u8]) -> Result<RecordHeader, DecodeError> {
    if b.len() < RECORD_HEADER_LEN {
        return Err(DecodeError::Short {
            what: "record header",
            have: b.len(),
            need: RECORD_HEADER_LEN,
        });
    }
    let h = RecordHeader {
        crc: u32_at(b, 0),
        stored_len: u32_at(b, 4),
        lsn: u64_at(b, 8),
        term: u64_at(b, 16),
        raw_len: u32_at(b, 24),
        flags: b[28],
    };
    let invalid = |field, value| Err(DecodeError::Invalid { field, value });
    if b[29] != RECORD_MARKER {
        return invalid("record marker", u64::from(b[29]));
    }
    if b[30] != 0 || b[31] != 0 {
        return invalid(
            "record reserved bytes",
            u64::from(b[30]) << 8 | u64::from(b[31]),
        );
    }
    if h.flags & !FLAG_LZ4 != 0 {
        return invalid("record flags", u64::from(h.flags));
    }
    if h.stored_len as usize > MAX_PAYLOAD {
        return invalid("record stored length", u64::from(h.stored_len));
    }
    if h.raw_len as usize > MAX_PAYLOAD {
        return invalid("record raw length", u64::from(h.raw_len));
    }
    if !h.compressed() && h.raw_len != h.stored_len {
        return invalid("record raw length", u64::from(h.raw_len));
    }
    Ok(h)
}

/// Checks the CRC of a record whose header was decoded from `header_bytes`.
///
/// # Errors
/// [`DecodeError::Short`] when `payload` is shorter than the header says, or
/// [`DecodeError::Crc`].
pub fn check_record(
    h: &RecordHeader,
    header_bytes: &[u8],
    payload: &[u8],
) -> Result<(), DecodeError> {
    let need = h.stored_len as usize;
    if payload.len() < need {
        return Err(DecodeError::Short {
            what: "record payload",
            have: payload.len(),
            need,
        });
    }
    let crc = crc32c::crc32c(&header_bytes[4..RECORD_HEADER_LEN]);
    let computed = crc32c::crc32c_append(crc, &payload[..need]);
    if computed != h.crc {
        return Err(DecodeError::Crc {
            stored: h.crc,
            computed,
        });
    }
    Ok(())
}

/// Turns a CRC-checked stored payload back into the payload that was appended.
///
/// # Errors
/// [`DecodeError::Decompress`] when an LZ4 payload is malformed.
pub fn decode_payload(h: &RecordHeader, stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let stored = &stored[..h.stored_len as usize];
    if !h.compressed() {
        return Ok(stored.to_vec());
    }
    let raw_len = h.raw_len as usize;
    let mut out = vec![0u8; raw_len];
    match lz4_flex::block::decompress_into(stored, &mut out) {
        Ok(n) if n == raw_len => Ok(out),
        _ => Err(DecodeError::Decompress { raw_len }),
    }
}

/// What [`encode_record`] produced, for metrics and the in-memory index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// Bytes appended to the output (header + stored payload).
    pub total_len: usize,
    /// Whether the payload was stored compressed.
    pub compressed: bool,
}

/// Appends one encoded record to `out`. LZ4 is used only when `compress` is set and the
/// compressed block is strictly smaller than the payload.
///
/// The caller guarantees `payload.len() <= MAX_PAYLOAD` and `lsn >= 1`.
pub fn encode_record(
    lsn: u64,
    term: u64,
    payload: &[u8],
    compress: bool,
    out: &mut Vec<u8>,
) -> Encoded {
    let start = out.len();
    out.resize(start + RECORD_HEADER_LEN, 0);
    let mut compressed = false;
    // Tiny payloads never shrink under LZ4; skip the attempt.
    if compress && payload.len() >= 32 {
        let bound = lz4_flex::block::get_maximum_output_size(payload.len());
        out.resize(start + RECORD_HEADER_LEN + bound, 0);
        if let Ok(n) =
            lz4_flex::block::compress_into(payload, &mut out[start + RECORD_HEADER_LEN..])
        {
            if n < payload.len() {
                out.truncate(start + RECORD_HEADER_LEN + n);
                compressed = true;
            }
        }
        if !compressed {
            out.truncate(start + RECORD_HEADER_LEN);
        }
    }
    if !compressed {
        out.extend_from_slice(payload);
    }
    let stored_len = (out.len() - start - RECORD_HEADER_LEN) as u32;
    let h = &mut out[start..start + RECORD_HEADER_LEN];
    h[4..8].copy_from_slice(&stored_len.to_le_bytes());
    h[8..16].copy_from_slice(&lsn.to_le_bytes());
    h[16..24].copy_from_slice(&term.to_le_bytes());
    h[24..28].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[28] = if compressed { FLAG_LZ4 } else { 0 };
    h[29] = RECORD_MARKER;
    let crc = crc32c::crc32c(&out[start + 4..start + RECORD_HEADER_LEN]);
    let crc = crc32c::crc32c_append(crc, &out[start + RECORD_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    Encoded {
        total_len: out.len() - start,
        compressed,
    }
}

/// Decodes one whole record from the front of `b` (header, CRC, payload).
///
/// # Errors
/// Any [`DecodeError`].
pub fn decode_record(b: &[u8]) -> Result<(RecordHeader, Vec<u8>), DecodeError> {
    let h = decode_record_header(b)?;
    let payload = &b[RECORD_HEADER_LEN..];
    check_record(&h, b, payload)?;
    let data = decode_payload(&h, payload)?;
    Ok((h, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips() {
        let h = encode_segment_header(42);
        assert_eq!(decode_segment_header(&h), Ok(42));
    }

    #[test]
    fn segment_header_rejects_short_bad_magic_crc_version() {
        let h = encode_segment_header(7);
        assert!(matches!(
            decode_segment_header(&h[..31]),
            Err(DecodeError::Short { .. })
        ));
        let mut m = h;
        m[0] = b'X';
        assert!(matches!(
            decode_segment_header(&m),
            Err(DecodeError::Invalid { .. })
        ));
        let mut c = h;
        c[17] ^= 1;
        assert!(matches!(
            decode_segment_header(&c),
            Err(DecodeError::Crc { .. })
        ));
        let mut v = h;
        v[8] = 2;
        let crc = crc32c::crc32c(&v[0..24]);
        v[24..28].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode_segment_header(&v),
            Err(DecodeError::Invalid {
                field: "segment format version",
                ..
            })
        ));
    }

    #[test]
    fn record_round_trips_plain_and_compressed() {
        for (payload, compress, expect_lz4) in [
            (vec![], true, false),
            (b"short".to_vec(), true, false),
            (vec![7u8; 4096], true, true),
            (vec![7u8; 4096], false, false),
            ((0..=255u8).collect::<Vec<_>>(), true, false),
        ] {
            let mut out = Vec::new();
            let e = encode_record(9, 3, &payload, compress, &mut out);
            assert_eq!(e.total_len, out.len());
            assert_eq!(e.compressed, expect_lz4);
            let (h, data) = decode_record(&out).expect("round trip");
            assert_eq!((h.lsn, h.term, h.compressed()), (9, 3, expect_lz4));
            assert_eq!(data, payload);
        }
    }

    #[test]
    fn record_rejects_short_header_and_payload() {
        let mut out = Vec::new();
        encode_record(1, 1, b"hello world", false, &mut out);
        assert!(matches!(
            decode_record(&out[..RECORD_HEADER_LEN - 1]),
            Err(DecodeError::Short { .. })
        ));
        assert!(matches!(
            decode_record(&out[..out.len() - 1]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn record_rejects_bad_crc_and_fields() {
        let mut out = Vec::new();
        encode_record(5, 1, b"payload bytes", false, &mut out);
        let mut bad = out.clone();
        bad[RECORD_HEADER_LEN + 2] ^= 0x10;
        assert!(matches!(decode_record(&bad), Err(DecodeError::Crc { .. })));
        let mut bad = out.clone();
        bad[29] = 0;
        assert!(matches!(
            decode_record(&bad),
            Err(DecodeError::Invalid { .. })
        ));
        let mut bad = out.clone();
        bad[28] = 0x80;
        assert!(matches!(
            decode_record(&bad),
            Err(DecodeError::Invalid { .. })
        ));
        // The LSN is covered by the CRC: changing it is caught.
        let mut bad = out.clone();
        bad[8..16].copy_from_slice(&0u64.to_le_bytes());
        assert!(matches!(decode_record(&bad), Err(DecodeError::Crc { .. })));
        let mut bad = out;
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_record(&bad),
            Err(DecodeError::Invalid { .. })
        ));
    }

    /// LSN 0 holds the consensus bootstrap entry; its header is still never all zero.
    #[test]
    fn lsn_zero_round_trips() {
        let mut out = Vec::new();
        encode_record(0, 0, b"", false, &mut out);
        assert!(!is_zero(&out[..RECORD_HEADER_LEN]));
        assert!(decode_record(&out).is_ok());
    }

    #[test]
    fn zero_header_is_never_a_record() {
        assert!(is_zero(&[0u8; RECORD_HEADER_LEN]));
        assert!(decode_record_header(&[0u8; RECORD_HEADER_LEN]).is_err());
    }
}
