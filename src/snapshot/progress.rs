//! Progress of a state transfer on the receiving node: which phase (receiving the file,
//! verifying it, loading it into MariaDB), bytes and rows done and expected, and an ETA.
//! Shared and cheap to clone; written by the snapshot code, read by `/status` and by the
//! `join` and `snapshot restore` commands' progress bars (`observe::terminal`).

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What a syncing node is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Receiving the snapshot file from the leader.
    Receiving,
    /// Checking the file's checksum.
    Verifying,
    /// Loading tables and rows into the local MariaDB.
    Loading,
}

/// A moment's view of a transfer, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncProgress {
    /// Current phase.
    pub phase: Phase,
    /// The snapshot being installed.
    pub snapshot_id: String,
    /// Bytes of the file received (receiving) or read (verifying, loading).
    pub bytes_done: u64,
    /// Size of the file, when known.
    pub bytes_total: Option<u64>,
    /// Rows loaded so far.
    pub rows_done: u64,
    /// Rows the snapshot holds, once the file is verified.
    pub rows_total: Option<u64>,
    /// Percentage of the current phase done (0–100), when the total is known.
    pub percent: Option<f64>,
    /// Seconds the current phase still needs at its rate so far, when known.
    pub eta_secs: Option<u64>,
    /// Seconds since the transfer started.
    pub elapsed_secs: u64,
}

// `percent` is a finite ratio rounded to a tenth (never NaN), so equality is total.
impl Eq for SyncProgress {}

impl SyncProgress {
    /// One plain line (for logs, files and `snapshot list`): percentage, phase, sizes,
    /// rows and the ETA. A terminal gets an `indicatif` bar instead (`observe::terminal`).
    pub fn line(&self) -> String {
        let pct = self.percent.unwrap_or(0.0).clamp(0.0, 100.0);
        let mb = |b: u64| b as f64 / 1_048_576.0;
        let total = self
            .bytes_total
            .map_or_else(|| "?".to_string(), |t| format!("{:.1}", mb(t)));
        let rows = match self.rows_total {
            Some(t) => format!("{}/{t} rows", self.rows_done),
            None => format!("{} rows", self.rows_done),
        };
        let eta = self
            .eta_secs
            .map_or_else(|| "ETA ?".to_string(), |s| format!("ETA {s}s"));
        let phase = match self.phase {
            Phase::Receiving => "receiving",
            Phase::Verifying => "verifying",
            Phase::Loading => "loading",
        };
        format!(
            "{pct:5.1}% {phase} snapshot {}: {:.1}/{total} MB, {rows}, {eta}",
            self.snapshot_id,
            mb(self.bytes_done)
        )
    }
}

/// A reception with no progress for this long is no longer shown.
const ABANDONED: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug)]
struct Active {
    phase: Phase,
    snapshot_id: String,
    started: Instant,
    phase_started: Instant,
    /// Last time anything moved (a stream the leader gave up on stops moving).
    touched: Instant,
    bytes_done: u64,
    bytes_total: Option<u64>,
    rows_done: u64,
    rows_total: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    active: Option<Active>,
    installs: u64,
    last_installed: Option<String>,
}

/// The shared progress handle.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    inner: Arc<Mutex<State>>,
}

impl Progress {
    fn state(&self) -> MutexGuard<'_, State> {
        // A few plain counters: a panic while holding the lock cannot break them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A transfer of `snapshot_id` starts (or moves to) `phase`.
    pub fn begin(&self, phase: Phase, snapshot_id: &str, bytes_total: Option<u64>) {
        let now = Instant::now();
        let mut st = self.state();
        match &mut st.active {
            Some(a) if a.snapshot_id == snapshot_id || a.snapshot_id.is_empty() => {
                a.phase = phase;
                a.snapshot_id = snapshot_id.to_string();
                a.phase_started = now;
                a.touched = now;
                a.bytes_done = 0;
                a.bytes_total = bytes_total.or(a.bytes_total);
            }
            _ => {
                st.active = Some(Active {
                    phase,
                    snapshot_id: snapshot_id.to_string(),
                    started: now,
                    phase_started: now,
                    touched: now,
                    bytes_done: 0,
                    bytes_total,
                    rows_done: 0,
                    rows_total: None,
                })
            }
        }
    }

    /// Bytes done in the current phase (the furthest offset reached).
    pub fn bytes(&self, done: u64) {
        if let Some(a) = &mut self.state().active {
            a.bytes_done = a.bytes_done.max(done);
            a.touched = Instant::now();
        }
    }

    /// Rows expected and the size of the file, once known.
    pub fn totals(&self, rows: u64, bytes: u64) {
        if let Some(a) = &mut self.state().active {
            a.rows_total = Some(rows);
            a.bytes_total = Some(bytes);
        }
    }

    /// Rows loaded so far, and how far into the file the load has read.
    pub fn loaded(&self, rows: u64, bytes: u64) {
        if let Some(a) = &mut self.state().active {
            a.rows_done = rows;
            a.bytes_done = bytes;
            a.touched = Instant::now();
        }
    }

    /// The transfer ended; `installed` names the snapshot now in place, if it succeeded.
    pub fn end(&self, installed: Option<&str>) {
        let mut st = self.state();
        st.active = None;
        if let Some(id) = installed {
            st.installs += 1;
            st.last_installed = Some(id.to_string());
        }
    }

    /// Whether a transfer is under way.
    pub fn is_active(&self) -> bool {
        self.report().is_some()
    }

    /// Whether a snapshot is being loaded into MariaDB (its data is incomplete).
    pub fn is_loading(&self) -> bool {
        self.report().is_some_and(|r| r.phase == Phase::Loading)
    }

    /// Snapshots installed since the node started.
    pub fn installs(&self) -> u64 {
        self.state().installs
    }

    /// The last snapshot installed since the node started.
    pub fn last_installed(&self) -> Option<String> {
        self.state().last_installed.clone()
    }

    /// The current transfer, if any.
    pub fn report(&self) -> Option<SyncProgress> {
        let st = self.state();
        let a = st.active.as_ref()?;
        // A reception that stopped moving was abandoned by the sender.
        if a.phase == Phase::Receiving && a.touched.elapsed() > ABANDONED {
            return None;
        }
        let percent = a.bytes_total.filter(|t| *t > 0).map(|t| {
            let p = a.bytes_done as f64 * 100.0 / t as f64;
            (p * 10.0).round().clamp(0.0, 1000.0) / 10.0
        });
        let in_phase = a.phase_started.elapsed().as_secs_f64();
        let eta_secs = match a.bytes_total {
            Some(t) if a.bytes_done > 0 && in_phase > 0.0 => {
                let rate = a.bytes_done as f64 / in_phase;
                Some((t.saturating_sub(a.bytes_done) as f64 / rate).ceil() as u64)
            }
            _ => None,
        };
        Some(SyncProgress {
            phase: a.phase,
            snapshot_id: a.snapshot_id.clone(),
            bytes_done: a.bytes_done,
            bytes_total: a.bytes_total,
            rows_done: a.rows_done,
            rows_total: a.rows_total,
            percent,
            eta_secs,
            elapsed_secs: a.started.elapsed().as_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_percent_and_end() {
        let p = Progress::default();
        assert!(p.report().is_none());
        p.begin(Phase::Receiving, "9-1-5-1000", Some(1000));
        p.bytes(250);
        p.bytes(100); // a re-sent chunk never moves progress back
        let r = p.report().expect("active");
        assert_eq!(
            (r.phase, r.bytes_done, r.percent),
            (Phase::Receiving, 250, Some(25.0))
        );
        assert!(r.line().contains("25.0%"), "{}", r.line());
        p.begin(Phase::Loading, "9-1-5-1000", None);
        p.totals(20, 1000);
        p.loaded(10, 500);
        let r = p.report().expect("active");
        assert_eq!(
            (r.rows_done, r.rows_total, r.percent),
            (10, Some(20), Some(50.0))
        );
        assert!(r.line().contains("10/20 rows"), "{}", r.line());
        p.end(Some("9-1-5-1000"));
        assert!(p.report().is_none());
        assert_eq!(p.installs(), 1);
        assert_eq!(p.last_installed().as_deref(), Some("9-1-5-1000"));
    }
}
