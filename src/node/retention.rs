//! WAL retention: which whole segments go, and when a snapshot is needed for that.
//!
//! Every [`RetentionPolicy::interval`] the node deletes the oldest segments that are
//!
//! 1. older than `wal.retention_hours` (or, while the WAL is over `wal.max_size_mb`, the
//!    oldest ones regardless of age),
//! 2. covered by the node's current snapshot (openraft clamps every purge to it, and a
//!    member that needs a purged entry is sent that snapshot instead), and
//! 3. on the leader, not needed by a live member: one that answered within
//!    [`RetentionPolicy::member_grace`] keeps every entry after the one it has (the size
//!    cap alone may override this; such a member then receives a snapshot).
//!
//! When a segment is old enough (or the WAL too large) but no snapshot covers it yet, the
//! pass asks openraft for a snapshot, at most once per
//! [`RetentionPolicy::min_snapshot_interval`]. Each pass's findings are written to
//! `<data_dir>/retention.json` for `wolfscale wal inspect`.

use super::Node;
use crate::config::{Config, WalConfig};
use crate::wal::retention::{cap_point, purge_point, wants_snapshot, SegmentInfo};
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// File (in the data dir) holding the last pass's report.
pub const REPORT_FILE: &str = "retention.json";

/// When segments may go and snapshots are taken for that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Segments older than this may go once a snapshot covers them (`wal.retention_hours`).
    pub max_age: Duration,
    /// Covered segments go sooner while the WAL is larger than this (`wal.max_size_mb`).
    pub max_bytes: Option<u64>,
    /// A member that answered the leader within this is live: what it needs is kept.
    pub member_grace: Duration,
    /// How often retention runs.
    pub interval: Duration,
    /// Least time between two snapshots retention asks for.
    pub min_snapshot_interval: Duration,
}

impl RetentionPolicy {
    /// The policy `[wal]` configures: a pass every minute, a live member is one heard from
    /// in the last 10 minutes, and at most one automatic snapshot per quarter of the
    /// retention (at least 5 minutes apart).
    pub fn from_config(wal: &WalConfig) -> RetentionPolicy {
        let max_age = wal.retention();
        RetentionPolicy {
            max_age,
            max_bytes: wal.max_size_bytes(),
            member_grace: Duration::from_secs(600),
            interval: Duration::from_secs(60),
            min_snapshot_interval: (max_age / 4).max(Duration::from_secs(300)),
        }
    }
}

/// A live member and the first entry it still needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNeed {
    /// Its name.
    pub node: String,
    /// Its number.
    pub number: u64,
    /// The first log index it does not have yet.
    pub next_lsn: u64,
}

/// What one retention pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// Whether this node led (only a leader knows what members need).
    pub leader: bool,
    /// Last log index the current snapshot covers.
    pub snapshot_lsn: Option<u64>,
    /// Last purged log index before the pass.
    pub purged_lsn: Option<u64>,
    /// Segments and bytes of the WAL.
    pub segments: usize,
    /// Bytes of all segments.
    pub wal_bytes: u64,
    /// Live members and what they still need (leader only).
    pub needed_by: Vec<MemberNeed>,
    /// The last index this pass asked to purge, if any.
    pub purge_upto: Option<u64>,
    /// Whether it asked for a snapshot.
    pub snapshot_requested: bool,
    /// Why, in words.
    pub notes: Vec<String>,
}

/// Runs one pass. `force` ignores `max_age` (everything a snapshot covers and no live
/// member needs may go: the on-demand purge of `snapshot create --purge`).
pub(super) async fn pass(
    node: &Node,
    policy: &RetentionPolicy,
    force: bool,
    last_request: &mut Option<Instant>,
) -> RetentionReport {
    let m = node.raft().metrics().borrow().clone();
    let wal = node.log_store().wal().clone();
    let segments: Vec<SegmentInfo> = tokio::task::spawn_blocking(move || wal.segments())
        .await
        .unwrap_or_default();
    let now = SystemTime::now();
    // What openraft calls its snapshot may be a position-only one (see
    // `consensus::state_machine`) that no member could be sent: only a snapshot file here
    // covers anything.
    let stored = match node.snapshots() {
        Some(s) => s.latest().await.ok().flatten().map(|m| m.index()),
        None => None,
    };
    let snapshot = m.snapshot.map(|l| l.index).min(stored);
    let purged = m.purged.map(|l| l.index);
    let covered = snapshot.map_or(0, |s| s + 1);
    let mut report = RetentionReport {
        at_ms: crate::snapshot::now_ms(),
        leader: m.state == ServerState::Leader,
        snapshot_lsn: snapshot,
        purged_lsn: purged,
        segments: segments.len(),
        wal_bytes: segments.iter().map(|s| s.bytes).sum(),
        ..RetentionReport::default()
    };
    if node.snapshots().is_none() {
        report
            .notes
            .push("this node cannot take snapshots: every segment is kept".into());
        return report;
    }
    // Records below `protect` are not needed by any live member.
    let mut protect = u64::MAX;
    if report.leader {
        let membership = m.membership_config.membership().clone();
        if let Some(repl) = &m.replication {
            for (id, matched) in repl {
                if *id == m.id {
                    continue;
                }
                let live = node
                    .contacts()
                    .since(*id)
                    .is_some_and(|d| d < policy.member_grace);
                if !live {
                    continue;
                }
                let next = matched.map_or(0, |l| l.index + 1);
                protect = protect.min(next);
                report.needed_by.push(MemberNeed {
                    node: membership
                        .get_node(id)
                        .map_or_else(|| id.to_string(), |n| n.name.clone()),
                    number: *id,
                    next_lsn: next,
                });
            }
        }
    }
    let age = if force {
        Duration::ZERO
    } else {
        policy.max_age
    };
    let by_age = purge_point(&segments, age, covered.min(protect), now);
    let by_size = policy
        .max_bytes
        .and_then(|cap| cap_point(&segments, cap, covered));
    if by_size.is_some() && by_size > by_age {
        report.notes.push(format!(
            "the wal is over wal.max_size_mb ({} bytes): purging covered segments early",
            report.wal_bytes
        ));
    }
    let point = by_age.max(by_size);
    if let Some(p) = point.filter(|p| purged.is_none_or(|x| x + 1 < *p)) {
        let upto = p - 1;
        match node.raft().trigger().purge_log(upto).await {
            Ok(()) => {
                report.purge_upto = Some(upto);
                // On the leader a purge waits while replication still reads those entries;
                // the next pass asks again.
                tracing::debug!(log_index = upto, "retention asks to purge wal segments");
            }
            Err(e) => report.notes.push(format!("purge refused: {e}")),
        }
    }
    if protect < covered {
        report.notes.push(format!(
            "live members still need entries from {protect}: the segments holding them are kept"
        ));
    }
    let wanted = wants_snapshot(&segments, age, policy.max_bytes, covered, now);
    let due = last_request.is_none_or(|t| t.elapsed() >= policy.min_snapshot_interval);
    if wanted && (due || force) {
        match node.raft().trigger().snapshot().await {
            Ok(()) => {
                *last_request = Some(Instant::now());
                report.snapshot_requested = true;
                report.notes.push(
                    "segments outlived retention but no snapshot covers them: building one".into(),
                );
                tracing::info!("retention asks for a snapshot");
            }
            Err(e) => report.notes.push(format!("snapshot refused: {e}")),
        }
    } else if wanted {
        report.notes.push(
            "segments outlived retention but no snapshot covers them; the next snapshot is not due yet"
                .into(),
        );
    }
    report
}

/// The retention task: a pass every interval until shutdown.
pub(super) async fn run(node: Node) {
    let token = node.shutdown_token();
    let mut last_request = None;
    loop {
        let policy = node.retention_policy();
        tokio::select! {
            _ = token.cancelled() => return,
            _ = node.retention_changed() => continue,
            _ = tokio::time::sleep(policy.interval) => {}
        }
        let report = pass(&node, &policy, false, &mut last_request).await;
        let path = node.config().data_dir().join(REPORT_FILE);
        let saved = tokio::task::spawn_blocking(move || save(&path, &report)).await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(error = %e, "cannot write the retention report");
        }
    }
}

fn save(path: &Path, report: &RetentionReport) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn latest_snapshot_lsn(dir: &Path) -> Option<u64> {
    let mut best: Option<u64> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        if !dir.join(format!("{id}.snap")).is_file() {
            continue;
        }
        let m: Option<crate::snapshot::Manifest> = std::fs::read(dir.join(&name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(i) = m.and_then(|m| m.last_log_id).map(|l| l.index) {
            best = best.max(Some(i));
        }
    }
    best
}

/// Explains, segment by segment, why each is kept or may go (for `wolfscale wal inspect`;
/// reads files only, safe while the node runs).
pub fn describe(config: &Config, segments: &[(String, u64, u64)]) -> String {
    use std::fmt::Write;
    let policy = RetentionPolicy::from_config(&config.wal);
    let snap_dir: PathBuf = config.snapshot_dir();
    let snapshot = latest_snapshot_lsn(&snap_dir);
    let report: Option<RetentionReport> = std::fs::read(config.data_dir().join(REPORT_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let needs = report
        .as_ref()
        .filter(|r| r.leader)
        .and_then(|r| r.needed_by.iter().min_by_key(|n| n.next_lsn).cloned());
    let now = SystemTime::now();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "retention: segments older than {} h go once a snapshot covers them{}",
        config.wal.retention_hours,
        match policy.max_bytes {
            Some(b) => format!("; covered segments go sooner while the wal is over {b} bytes"),
            None => String::new(),
        }
    );
    let _ = writeln!(
        out,
        "latest snapshot: {}",
        snapshot.map_or_else(
            || "none (nothing can be purged)".into(),
            |s| format!("lsn {s}")
        )
    );
    if let Some(r) = &report {
        let _ = writeln!(
            out,
            "last pass ({} ms since the epoch, {}): {}",
            r.at_ms,
            if r.leader { "leader" } else { "not leader" },
            if r.notes.is_empty() {
                "nothing to note".to_string()
            } else {
                r.notes.join("; ")
            }
        );
    }
    for (i, (file, first, records)) in segments.iter().enumerate() {
        let path = config.wal_dir().join(file);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let age_h = modified
            .and_then(|m| now.duration_since(m).ok())
            .map(|d| d.as_secs_f64() / 3600.0);
        let next = segments.get(i + 1).map(|(_, f, _)| *f);
        let last = (*records > 0).then(|| first + records - 1);
        let why = match (next, age_h) {
            (None, _) => "kept: the newest segment".to_string(),
            (_, None) => "kept: age unknown".to_string(),
            (Some(next), Some(age)) => {
                if age < config.wal.retention_hours as f64 && policy.max_bytes.is_none() {
                    format!("kept: {age:.1} h old, younger than retention")
                } else if snapshot.is_none_or(|s| s + 1 < next) {
                    format!(
                        "kept: not covered by a snapshot (entries up to {})",
                        last.map_or_else(|| "-".into(), |l| l.to_string())
                    )
                } else if let Some(n) = needs.as_ref().filter(|n| n.next_lsn < next) {
                    format!(
                        "kept: live member {} still needs entries from {}",
                        n.node, n.next_lsn
                    )
                } else if age < config.wal.retention_hours as f64 {
                    format!("kept unless the wal is over its size cap: {age:.1} h old")
                } else {
                    "may go: purged at the next retention pass".to_string()
                }
            }
        };
        let _ = writeln!(out, "  {file}: {why}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvOverrides;
    use crate::snapshot::Manifest;
    use crate::wal::{Record, Wal, WalOptions};

    fn config(dir: &Path) -> Config {
        let text = format!(
            "[node]\nid = \"n1\"\nbind_address = \"127.0.0.1:7001\"\ndata_dir = \"{}\"\n\
             [cluster]\nsecret = \"0123456789abcdef0123\"\n[wal]\nretention_hours = 1\n",
            dir.display()
        );
        crate::config::parse(&text, &EnvOverrides::default())
            .expect("valid")
            .config
    }

    fn age(path: &Path, secs: i64) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
        let t = libc::timeval {
            tv_sec: (crate::snapshot::now_ms() / 1000) as i64 - secs,
            tv_usec: 0,
        };
        // SAFETY: a valid NUL-terminated path and two timevals.
        let r = unsafe { libc::utimes(c.as_ptr(), [t, t].as_ptr()) };
        assert_eq!(r, 0, "utimes");
    }

    #[test]
    fn describe_says_why_each_segment_stays_or_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path());
        let opts = WalOptions {
            segment_size: 4096,
            compression: false,
            ..WalOptions::from(&cfg.wal)
        };
        let wal = Wal::open(cfg.wal_dir(), opts).expect("wal");
        let first = wal.next_lsn();
        let records: Vec<Record> = (0..20)
            .map(|i| Record::new(first + i, 1, vec![i as u8; 1500]))
            .collect();
        wal.append_blocking(records).expect("append");
        wal.close().expect("close");
        let report = crate::wal::inspect::inspect(&cfg.wal_dir()).expect("inspect");
        let segs: Vec<(String, u64, u64)> = report
            .segments
            .iter()
            .map(|s| (s.file.clone(), s.first_lsn, s.records))
            .collect();
        assert!(segs.len() >= 4, "{segs:?}");
        for (file, _, _) in &segs[..segs.len() - 1] {
            age(&cfg.wal_dir().join(file), 2 * 3600);
        }
        // A snapshot covering the first two segments; a live member needing the second.
        let covered = segs[2].1 - 1;
        let snaps = cfg.snapshot_dir();
        std::fs::create_dir_all(&snaps).expect("dir");
        let m = Manifest {
            id: "x".into(),
            format: 1,
            last_log_id: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(1, 1),
                covered,
            )),
            membership: Default::default(),
            ddl_in_flight: None,
            database: "app".into(),
            created_ms: 0,
            bytes: 0,
            sha256: String::new(),
            rows: 0,
            tables: Vec::new(),
            sequences: 0,
            views: 0,
            routines: 0,
            triggers: 0,
            source: "built".into(),
        };
        std::fs::write(snaps.join("x.json"), serde_json::to_vec(&m).expect("json")).expect("w");
        std::fs::write(snaps.join("x.snap"), b"").expect("w");
        let text = describe(&cfg, &segs);
        assert!(text.contains(&format!("lsn {covered}")), "{text}");
        let line = |i: usize| {
            text.lines()
                .find(|l| l.contains(&segs[i].0))
                .unwrap_or_default()
                .to_string()
        };
        assert!(line(0).contains("may go"), "{text}");
        assert!(line(1).contains("may go"), "{text}");
        assert!(line(2).contains("not covered"), "{text}");
        assert!(line(segs.len() - 1).contains("newest"), "{text}");

        let r = RetentionReport {
            leader: true,
            needed_by: vec![MemberNeed {
                node: "n2".into(),
                number: 2,
                next_lsn: segs[1].1 + 1,
            }],
            ..RetentionReport::default()
        };
        save(&cfg.data_dir().join(REPORT_FILE), &r).expect("save");
        let text = describe(&cfg, &segs);
        let line1 = text
            .lines()
            .find(|l| l.contains(&segs[1].0))
            .unwrap_or_default();
        assert!(line1.contains("live member n2"), "{text}");
        assert!(line(0).contains("may go"), "{text}");
    }
}
