//! The WAL decoders on arbitrary bytes: one record (`format::decode_record`), a segment
//! header, and a whole segment scan (`segment::scan`, what recovery runs on every file).
//!
//! The first input byte picks a mode; with bit 0 set, the CRC of every record the bytes
//! describe is fixed up first, so the fuzzer gets past the checksum into the length
//! checks and the LZ4 decoder instead of stopping at a CRC mismatch.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use wolfscale::wal::format::{self, DecodeError, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use wolfscale::wal::segment;

const FIRST_LSN: u64 = 7;

/// Rewrites the CRC of each record laid out back to back from `from`, as far as the
/// stored lengths stay inside `buf`.
fn fix_crcs(buf: &mut [u8], from: usize) {
    let mut pos = from;
    while pos + RECORD_HEADER_LEN <= buf.len() {
        let len = u32::from_le_bytes([buf[pos + 4], buf[pos + 5], buf[pos + 6], buf[pos + 7]]);
        let end = pos + RECORD_HEADER_LEN + len as usize;
        if end > buf.len() {
            return;
        }
        let crc = crc32c(&buf[pos + 4..end]);
        buf[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

/// CRC32C (Castagnoli), bit by bit: slow and obviously right, so the target does not
/// share the code it checks.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn check_record(bytes: &[u8]) {
    let Ok((h, payload)) = format::decode_record(bytes) else {
        return;
    };
    assert!(h.total_len() <= bytes.len());
    assert_eq!(payload.len(), h.raw_len as usize);
    let mut again = Vec::new();
    let e = format::encode_record(h.lsn, h.term, &payload, h.compressed(), &mut again);
    assert_eq!(e.total_len, again.len());
    let (h2, p2) = format::decode_record(&again).expect("a re-encoded record decodes");
    assert_eq!((h2.lsn, h2.term), (h.lsn, h.term));
    assert_eq!(p2, payload);
}

fn check_segment(buf: &[u8]) {
    let Ok(scan) = segment::scan(Path::new("fuzz.wal"), FIRST_LSN, buf) else {
        return;
    };
    assert_eq!(scan.first_lsn, FIRST_LSN);
    assert_eq!(scan.file_len, buf.len() as u64);
    assert!(scan.data_end <= scan.file_len);
    let mut expect = SEGMENT_HEADER_LEN as u64;
    for (i, r) in scan.records.iter().enumerate() {
        assert_eq!(u64::from(r.offset), expect, "records are back to back");
        let at = r.offset as usize;
        // The scan vouches for framing and CRC, not for the LZ4 block inside: a record our
        // encoder never wrote (only a crafted file has a right CRC over a broken block) is
        // found when it is read, as corruption (`wal::read`).
        let h = format::decode_record_header(&buf[at..]).expect("a scanned header decodes");
        assert_eq!(h.lsn, FIRST_LSN + i as u64, "lsns are contiguous");
        match format::decode_record(&buf[at..]) {
            Ok((_, payload)) => assert_eq!(payload.len(), r.raw_len as usize),
            Err(DecodeError::Decompress { .. }) if r.compressed => {}
            Err(e) => panic!("a scanned record does not decode: {e}"),
        }
        expect += h.total_len() as u64;
    }
    assert_eq!(expect, scan.data_end);
    if let Some(d) = &scan.damage {
        assert_eq!(d.offset, scan.data_end);
        if let Some(after) = d.valid_after {
            assert!(after > d.offset && after < scan.file_len);
        }
    } else {
        assert!(format::is_zero(&buf[scan.data_end as usize..]));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fix = mode & 1 != 0;

    let _ = format::decode_segment_header(rest);
    let _ = format::decode_record_header(rest);

    let mut record = rest.to_vec();
    if fix {
        fix_crcs(&mut record, 0);
    }
    check_record(&record);

    let mut seg = format::encode_segment_header(FIRST_LSN).to_vec();
    seg.extend_from_slice(rest);
    if fix {
        fix_crcs(&mut seg, SEGMENT_HEADER_LEN);
    }
    check_segment(&seg);
});
