//! Segment roll-over, purge across many segments, retention, and reopening a big WAL.

use crate::support::{self, rec, segment_files};
use std::time::{Duration, Instant, SystemTime};
use wolfscale::wal::{inspect, retention, Record, Wal};

#[test]
fn roll_over_and_purge_across_many_segments() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = support::opts(4096, false, false);
    let wal = Wal::open(dir.path(), opts.clone()).expect("open");
    for chunk in (1..=3000u64).collect::<Vec<_>>().chunks(10) {
        wal.append_blocking(chunk.iter().map(|&l| rec(l, 1 + l / 1000, 200)).collect())
            .expect("append");
    }
    let before = segment_files(dir.path()).len();
    assert!(before > 100, "only {before} segments");
    assert_eq!(wal.metrics().segments_created as usize, before);
    let segs = wal.segments();
    assert_eq!(segs.len(), before);
    for w in segs.windows(2) {
        assert_eq!(w[0].first_lsn + w[0].records, w[1].first_lsn);
    }

    wal.purge_before_blocking(1000).expect("purge");
    let first = wal.first().expect("not empty").0;
    let holder = segs
        .iter()
        .rfind(|s| s.first_lsn <= 1000)
        .expect("a segment holds lsn 1000");
    assert_eq!(
        first, holder.first_lsn,
        "the segment holding lsn 1000 stays"
    );
    assert_eq!(wal.read(..).expect("read").len() as u64, 3000 - first + 1);
    let after = segment_files(dir.path()).len();
    assert_eq!(after, segs.iter().filter(|s| s.first_lsn >= first).count());

    // Retention: everything is "old" with a zero retention; the safe bound decides.
    let point = retention::purge_point(&wal.segments(), Duration::ZERO, 2000, SystemTime::now())
        .expect("something may go");
    assert!(point <= 2000 && point > first);
    wal.purge_before_blocking(point).expect("purge");
    assert_eq!(wal.first().map(|f| f.0), Some(point));
    let kept = retention::purge_point(
        &wal.segments(),
        Duration::from_secs(3600),
        3000,
        SystemTime::now(),
    );
    assert_eq!(kept, None, "nothing is an hour old");
    wal.close().expect("close");

    let wal = Wal::open(dir.path(), opts).expect("reopen");
    assert_eq!(wal.first().map(|f| f.0), Some(point));
    assert_eq!(wal.last(), Some((3000, 4)));
    assert_eq!(
        wal.read(2500..=2500).expect("read"),
        vec![rec(2500, 3, 200)]
    );
    let report = inspect::inspect(dir.path()).expect("inspect");
    assert_eq!(report.status, "ok");
    assert_eq!(
        report.segments.iter().map(|s| s.records).sum::<u64>(),
        3000 - point + 1
    );
    let text = report.to_string();
    assert!(text.contains("status: ok"), "{text}");
    let dump = inspect::dump(dir.path(), 2999, 3000, None).expect("dump");
    assert_eq!(dump.lines.len(), 2);
    assert!(dump.problems.is_empty());
    wal.close().expect("close");
}

#[test]
fn reopening_a_wal_with_100k_records() {
    support::init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = support::opts(4 << 20, true, false);
    let wal = Wal::open(dir.path(), opts.clone()).expect("open");
    let n = 100_000u64;
    let payload = bytes::Bytes::from(support::noise(1, 100));
    for start in (1..=n).step_by(1000) {
        let batch: Vec<Record> = (start..start + 1000)
            .map(|l| Record::new(l, 1 + l / 30_000, payload.clone()))
            .collect();
        wal.append_blocking(batch).expect("append");
    }
    wal.close().expect("close");
    let started = Instant::now();
    let wal = Wal::open(dir.path(), opts).expect("reopen");
    let took = started.elapsed();
    eprintln!(
        "reopened a wal of {n} records ({} segments) in {took:?} (debug build)",
        segment_files(dir.path()).len()
    );
    assert_eq!(wal.first(), Some((1, 1)));
    assert_eq!(wal.last(), Some((n, 1 + n / 30_000)));
    for lsn in [1, 29_999, 30_000, 77_777, n] {
        let r = wal.read(lsn..=lsn).expect("read");
        assert_eq!(r, vec![Record::new(lsn, 1 + lsn / 30_000, payload.clone())]);
    }
    assert_eq!(wal.iter(..).count() as u64, n);
    wal.append_blocking(vec![Record::new(n + 1, 9, b"more".to_vec())])
        .expect("append after reopen");
    wal.close().expect("close");
}
