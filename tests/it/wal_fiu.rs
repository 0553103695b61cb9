//! fdatasync failure injected with libfiu (`fiu-run`, Debian package `fiu-utils`): the
//! append fails and the WAL refuses the next one; it is never "retry and carry on".

use std::process::Command;
use wolfscale::wal::{Wal, WalOptions};

fn probe(dir: &std::path::Path, fiu: bool) -> String {
    let bench = env!("CARGO_BIN_EXE_wolfscale-bench");
    let mut cmd = if fiu {
        let mut c = Command::new("fiu-run");
        c.args(["-x", "-c", "enable name=posix/io/sync/fdatasync", bench]);
        c
    } else {
        Command::new(bench)
    };
    let out = cmd
        .args(["wal-probe", "--dir"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run fiu-run ({e}): install libfiu's tools with `apt-get install fiu-utils`"
            )
        });
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn fdatasync_failure_under_fiu_poisons_the_wal() {
    crate::support::init_tracing();
    let clean = tempfile::tempdir().expect("tempdir");
    let out = probe(clean.path(), false);
    assert_eq!(out, "append 1: ok\nappend 2: ok\nclose: ok\n");

    let dir = tempfile::tempdir().expect("tempdir");
    let out = probe(dir.path(), true);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("append 1: error: wal i/o error during fdatasync segment"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("append 2: error: wal refuses writes"),
        "{out}"
    );

    // Reopened without the fault, the WAL works; record 1 was never acknowledged, so it
    // may or may not have survived, but nothing else is there.
    let wal = Wal::open(dir.path(), WalOptions::default()).expect("reopen");
    let next = wal.next_lsn();
    assert!(next == 1 || next == 2, "next lsn {next}");
    wal.append_blocking(vec![wolfscale::wal::Record::new(next, 1, b"x".to_vec())])
        .expect("append after reopen");
    wal.close().expect("close");
}
