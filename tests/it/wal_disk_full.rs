//! Disk full on a small tmpfs: append fails with a clear error, and after space returns
//! and the WAL is reopened every acknowledged record is intact. Needs root (mount).

use crate::support::{self, rec};
use std::path::{Path, PathBuf};
use std::process::Command;
use wolfscale::wal::{Error, Preallocate, Record, Wal, WalOptions};

/// Unmounts the tmpfs when dropped, also when the test panics.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed ({}): this test needs root (run the tests as root or \
             in a container with CAP_SYS_ADMIN)",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// With preallocation the failure comes from reserving a new segment (nothing of the
/// batch is written); without it, from a record write that may stop half-way (a big
/// segment size keeps the whole test inside one segment), which reopen must cut.
fn fill_until_full(prealloc: Preallocate, segment_size: u64) {
    support::init_tracing();
    let base = tempfile::tempdir().expect("tempdir");
    let fs = Tmpfs::mount(base.path(), "4m");
    let dir = base.path().join("wal");
    let opts = WalOptions {
        preallocate: prealloc,
        ..support::opts(segment_size, false, true)
    };
    let wal = Wal::open(&dir, opts.clone()).expect("open");
    let mut acked: Vec<Record> = Vec::new();
    let err = loop {
        let next = wal.next_lsn();
        let batch: Vec<Record> = (next..next + 8).map(|l| rec(l, 1, 3000)).collect();
        match wal.append_blocking(batch.clone()) {
            Ok(()) => acked.extend(batch),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "a 4 MiB tmpfs never filled up");
    };
    assert!(
        matches!(err, Error::Full { .. }),
        "{prealloc:?}: expected Full, got {err}"
    );
    assert!(err.to_string().contains("free space"), "{err}");
    let next = wal.next_lsn();
    let again = wal
        .append_blocking(vec![rec(next, 1, 10)])
        .expect_err("refused");
    assert!(matches!(again, Error::Poisoned { .. }), "{again}");
    let _ = wal.close();
    drop(wal);

    fs.resize("64m");
    let wal = Wal::open(&dir, opts).expect("reopen after space returned");
    let got = wal.read(..).expect("read");
    assert!(
        got.len() >= acked.len(),
        "{prealloc:?}: lost acknowledged records"
    );
    assert_eq!(got[..acked.len()], acked[..], "{prealloc:?}");
    let next = wal.next_lsn();
    wal.append_blocking(vec![rec(next, 2, 3000)])
        .expect("append after space returned");
    wal.close().expect("close");
}

#[test]
fn disk_full_with_preallocated_segments() {
    fill_until_full(Preallocate::Fallocate, 1 << 20);
}

#[test]
fn disk_full_without_preallocation() {
    fill_until_full(Preallocate::None, 16 << 20);
}
