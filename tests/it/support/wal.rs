//! WAL test helpers: payload generators, WAL options and segment-file utilities.

use std::path::{Path, PathBuf};
use wolfscale::wal::{Preallocate, Record, WalOptions};

/// Incompressible bytes from a seed (xorshift), never containing long zero runs.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) | 1
        })
        .collect()
}

/// Compressible bytes: repeated text with the seed mixed in.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    format!("insert into t values ({seed}, 'some text') ")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(len)
        .collect()
}

/// WAL options with a byte-level segment size.
pub fn opts(segment_size: u64, compression: bool, fsync: bool) -> WalOptions {
    WalOptions {
        segment_size,
        compression,
        fsync,
        preallocate: Preallocate::Fallocate,
        ..WalOptions::default()
    }
}

/// A record with an incompressible payload of `len` bytes.
pub fn rec(lsn: u64, term: u64, len: usize) -> Record {
    Record::new(lsn, term, noise(lsn, len))
}

/// Segment files of a WAL directory in LSN order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    wolfscale::wal::recovery::list_segments(dir)
        .expect("list segments")
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// Copies the segment files of `from` into the empty directory `to`.
pub fn copy_segments(from: &Path, to: &Path) {
    for p in segment_files(from) {
        let name = p.file_name().expect("segment has a name");
        std::fs::copy(&p, to.join(name)).expect("copy segment");
    }
}
