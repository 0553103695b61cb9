//! Crash and corruption tests: torn tails at every byte of the last record, single bit
//! flips anywhere, damage before the tail, missing segments and LSN gaps.

use crate::support::{self, copy_segments, noise, rec, segment_files, text};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use wolfscale::wal::format::{self, RECORD_HEADER_LEN};
use wolfscale::wal::{segment, Error, Preallocate, Record, Wal, WalOptions};

/// Valid records of a segment file as (offset, total length).
fn record_spans(path: &Path) -> Vec<(u64, u64)> {
    let buf = std::fs::read(path).expect("read segment");
    let name = path.file_name().and_then(|n| n.to_str()).expect("name");
    let first = segment::parse_file_name(name).expect("segment name");
    let s = segment::scan(path, first, &buf).expect("scan");
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (i, r) in s.records.iter().enumerate() {
        let end = s
            .records
            .get(i + 1)
            .map_or(s.data_end, |n| u64::from(n.offset));
        spans.push((u64::from(r.offset), end - u64::from(r.offset)));
    }
    spans
}

fn build(dir: &Path, opts: &WalOptions, records: &[Record]) {
    let wal = Wal::open(dir, opts.clone()).expect("open");
    for r in records {
        wal.append_blocking(vec![r.clone()]).expect("append");
    }
    wal.close().expect("close");
}

fn reopen_expect(dir: &Path, opts: &WalOptions, expect: &[Record], what: &str) {
    let wal = Wal::open(dir, opts.clone()).unwrap_or_else(|e| panic!("{what}: open: {e}"));
    assert_eq!(wal.read(..).expect("read"), expect, "{what}");
    let next = expect.last().map_or(1, |r| r.lsn + 1);
    assert_eq!(wal.next_lsn(), next, "{what}");
    let new = Record::new(next, 9, b"after the crash".to_vec());
    wal.append_blocking(vec![new.clone()])
        .unwrap_or_else(|e| panic!("{what}: append after cut: {e}"));
    wal.close().expect("close");
    let wal = Wal::open(dir, opts.clone()).expect("reopen");
    let all = wal.read(..).expect("read");
    assert_eq!(all.last(), Some(&new), "{what}");
    assert_eq!(all.len(), expect.len() + 1, "{what}");
    wal.close().expect("close");
}

#[test]
fn cutting_the_last_record_at_any_byte_keeps_exactly_the_records_before_it() {
    support::init_tracing();
    for prealloc in [Preallocate::Fallocate, Preallocate::None] {
        let src = tempfile::tempdir().expect("tempdir");
        let opts = WalOptions {
            preallocate: prealloc,
            ..support::opts(64 << 10, false, false)
        };
        let records: Vec<Record> = (1..=5).map(|l| rec(l, 1, 40 + 60 * l as usize)).collect();
        build(src.path(), &opts, &records);
        let seg = segment_files(src.path()).pop().expect("a segment");
        let (off, len) = *record_spans(&seg).last().expect("records");
        for cut in off..off + len {
            let dst = tempfile::tempdir().expect("tempdir");
            copy_segments(src.path(), dst.path());
            let file = dst.path().join(seg.file_name().expect("name"));
            let f = OpenOptions::new().write(true).open(&file).expect("open");
            f.set_len(cut).expect("truncate");
            drop(f);
            let what = format!("{prealloc:?} cut at {cut}");
            // Appending after the cut and reopening again is slow (syncs): check it at
            // every header byte and every 16th payload byte; the rest only reopen.
            if cut < off + RECORD_HEADER_LEN as u64 || cut % 16 == 0 {
                reopen_expect(dst.path(), &opts, &records[..4], &what);
            } else {
                let wal = Wal::open(dst.path(), opts.clone())
                    .unwrap_or_else(|e| panic!("{what}: open: {e}"));
                assert_eq!(wal.read(..).expect("read"), records[..4], "{what}");
                assert_eq!(wal.next_lsn(), 5, "{what}");
                wal.close().expect("close");
            }
        }
    }
}

#[test]
fn an_unwritten_sector_inside_the_last_record_is_a_torn_tail() {
    support::init_tracing();
    let src = tempfile::tempdir().expect("tempdir");
    let opts = support::opts(64 << 10, false, false);
    let records: Vec<Record> = (1..=3).map(|l| rec(l, 1, 1500 * l as usize)).collect();
    build(src.path(), &opts, &records);
    let seg = segment_files(src.path()).pop().expect("a segment");
    let (off, len) = *record_spans(&seg).last().expect("records");
    // Every 512-byte sector the last record touches, zeroed alone, as if never written
    // (the part before the record keeps its old, already synced content). Pieces too
    // short to tell from ordinary zero bytes may be reported as corruption instead.
    let mut starts: Vec<u64> = vec![off];
    starts.extend((off / 512 + 1..=(off + len - 1) / 512).map(|s| s * 512));
    for start in starts {
        let end = ((start / 512) + 1) * 512;
        let min = if start == off { 4 } else { 16 };
        let short = end.min(off + len) - start < min;
        let dst = tempfile::tempdir().expect("tempdir");
        copy_segments(src.path(), dst.path());
        let file = dst.path().join(seg.file_name().expect("name"));
        let f = OpenOptions::new().write(true).open(&file).expect("open");
        let n = (end.min(off + len) - start) as usize;
        f.write_all_at(&vec![0u8; n], start).expect("zero");
        drop(f);
        if short {
            match Wal::open(dst.path(), opts.clone()) {
                Err(Error::Corruption { .. }) => {}
                Err(e) => panic!("sector at {start}: {e}"),
                Ok(wal) => assert_eq!(wal.read(..).expect("read"), records[..2]),
            }
        } else {
            reopen_expect(
                dst.path(),
                &opts,
                &records[..2],
                &format!("sector at {start}"),
            );
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_is_reported_or_cut_and_never_returned() {
    support::init_tracing();
    let src = tempfile::tempdir().expect("tempdir");
    let opts = support::opts(4096, true, false);
    let records: Vec<Record> = (1..=100u64)
        .map(|l| {
            let len = 10 + (l as usize * 37) % 400;
            if l % 3 == 0 {
                Record::new(l, 1 + l / 10, text(l, len))
            } else {
                Record::new(l, 1 + l / 10, noise(l, len))
            }
        })
        .collect();
    build(src.path(), &opts, &records);
    let segs = segment_files(src.path());
    assert!(segs.len() >= 3, "want several segments, got {}", segs.len());
    let last_seg = segs.last().expect("segments").clone();
    let (last_off, _) = *record_spans(&last_seg).last().expect("records");
    // Only the written region: header and records of every segment.
    let regions: Vec<(PathBuf, u64)> = segs
        .iter()
        .map(|p| {
            let end = record_spans(p).last().map_or(32, |(o, l)| o + l);
            (p.clone(), end)
        })
        .collect();
    let total: u64 = regions.iter().map(|r| r.1).sum();
    let (mut reported, mut cut) = (0, 0);
    for seed in 0..400u64 {
        let mut x = seed.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(12345);
        x ^= x >> 29;
        let mut pick = x % total;
        let bit = (x >> 40) % 8;
        let (file, at) = regions
            .iter()
            .find_map(|(p, len)| {
                if pick < *len {
                    Some((p.clone(), pick))
                } else {
                    pick -= len;
                    None
                }
            })
            .expect("pick is inside the regions");
        let dst = tempfile::tempdir().expect("tempdir");
        copy_segments(src.path(), dst.path());
        let target = dst.path().join(file.file_name().expect("name"));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&target)
            .expect("open");
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).expect("read byte");
        b[0] ^= 1 << bit;
        f.write_all_at(&b, at).expect("flip");
        drop(f);
        let in_last_record = file == last_seg && at >= last_off;
        match Wal::open(dst.path(), opts.clone()) {
            Err(Error::Corruption { .. }) => reported += 1,
            Err(e) => panic!("seed {seed}: unexpected error {e}"),
            Ok(wal) => {
                let got = wal
                    .read(..)
                    .unwrap_or_else(|e| panic!("seed {seed}: read: {e}"));
                for r in &got {
                    assert_eq!(
                        r,
                        &records[(r.lsn - 1) as usize],
                        "seed {seed}: corrupt record"
                    );
                }
                assert!(
                    in_last_record,
                    "seed {seed}: flip at {}:{at} (not in the last record) went unreported",
                    file.display()
                );
                assert_eq!(got.len(), records.len() - 1, "seed {seed}");
                cut += 1;
                wal.close().expect("close");
            }
        }
    }
    assert!(reported > 300, "reported {reported}, cut {cut}");
}

#[test]
fn corruption_before_the_tail_stops_the_open_naming_file_and_offset() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = support::opts(1 << 20, false, false);
    let records: Vec<Record> = (1..=10).map(|l| rec(l, 1, 100)).collect();
    build(dir.path(), &opts, &records);
    let seg = segment_files(dir.path()).pop().expect("segment");
    let (off, _) = record_spans(&seg)[2];
    let f = OpenOptions::new().write(true).open(&seg).expect("open");
    f.write_all_at(b"X", off + RECORD_HEADER_LEN as u64 + 5)
        .expect("damage");
    drop(f);
    match Wal::open(dir.path(), opts) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!((file, offset), (seg, off), "{reason}");
            assert!(reason.contains("crc"), "{reason}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_missing_middle_segment_stops_the_open() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = support::opts(4096, false, false);
    let records: Vec<Record> = (1..=60).map(|l| rec(l, 1, 300)).collect();
    build(dir.path(), &opts, &records);
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 3);
    std::fs::remove_file(&segs[1]).expect("remove");
    match Wal::open(dir.path(), opts) {
        Err(Error::Corruption { file, offset, .. }) => {
            assert_eq!((file, offset), (segs[2].clone(), 0))
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

fn write_segment(dir: &Path, name_lsn: u64, header_lsn: u64, records: &[(u64, &[u8])]) -> PathBuf {
    let mut buf = format::encode_segment_header(header_lsn).to_vec();
    for (lsn, p) in records {
        format::encode_record(*lsn, 1, p, false, &mut buf);
    }
    buf.resize(buf.len() + 1024, 0);
    let path = dir.join(segment::file_name(name_lsn));
    std::fs::write(&path, buf).expect("write segment");
    path
}

#[test]
fn lsn_discontinuities_stop_the_open() {
    support::init_tracing();
    let opts = support::opts(1 << 20, false, false);
    // A segment that starts past the end of the previous one.
    let dir = tempfile::tempdir().expect("tempdir");
    write_segment(dir.path(), 1, 1, &[(1, b"a"), (2, b"b")]);
    let gap = write_segment(dir.path(), 5, 5, &[(5, b"e")]);
    match Wal::open(dir.path(), opts.clone()) {
        Err(Error::Corruption { file, offset, .. }) => assert_eq!((file, offset), (gap, 0)),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
    // A record whose LSN does not continue inside the (last) segment.
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_segment(dir.path(), 1, 1, &[(1, b"a"), (3, b"c")]);
    match Wal::open(dir.path(), opts.clone()) {
        Err(Error::Corruption {
            file,
            offset,
            reason,
        }) => {
            assert_eq!((file, offset), (seg, 32 + 33), "{reason}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
    // A header that disagrees with the file name.
    let dir = tempfile::tempdir().expect("tempdir");
    let seg = write_segment(dir.path(), 1, 2, &[(2, b"b")]);
    match Wal::open(dir.path(), opts) {
        Err(Error::Corruption { file, offset, .. }) => assert_eq!((file, offset), (seg, 0)),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn read_never_returns_a_record_damaged_after_open() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = support::opts(1 << 20, false, false);
    let wal = Wal::open(dir.path(), opts).expect("open");
    let records: Vec<Record> = (1..=5).map(|l| rec(l, 1, 200)).collect();
    wal.append_blocking(records.clone()).expect("append");
    let seg = segment_files(dir.path()).pop().expect("segment");
    let (off, _) = record_spans(&seg)[1];
    let f = OpenOptions::new().write(true).open(&seg).expect("open");
    f.write_all_at(b"\xff", off + 40).expect("damage");
    drop(f);
    match wal.read(2..=2) {
        Err(Error::Corruption { file, offset, .. }) => assert_eq!((file, offset), (seg, off)),
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(wal.read(1..=1).expect("read"), records[..1]);
    wal.close().expect("close");
}
