//! Progress of long CLI operations on a terminal, drawn by `indicatif` with an ETA: a
//! joining node's state transfer and log catch-up, `snapshot restore`, and a spinner for
//! `snapshot create`. When the output is not a terminal (a file, a pipe) the same
//! progress is printed as one plain line per update instead.

use crate::api::{NodeState, NodeStatus};
use crate::snapshot::{Phase, SyncProgress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

const BYTES: &str =
    "{prefix} {spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}";
const ENTRIES: &str =
    "{prefix} {spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} entries (ETA {eta}) {msg}";

fn style(template: &str) -> ProgressStyle {
    // The templates are constants: a bad one is a bug caught by the tests below.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// What the progress printer is showing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Showing {
    Nothing,
    Transfer(Phase, String),
    CatchUp,
}

/// Shows a node's way to ACTIVE: state-transfer phases by bytes, then log catch-up by
/// entries, each with its own ETA.
pub struct JoinProgress {
    bar: Option<ProgressBar>,
    showing: Showing,
}

impl JoinProgress {
    /// A bar on stdout when it is a terminal, else plain lines.
    pub fn new() -> JoinProgress {
        let bar = std::io::stdout().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        JoinProgress {
            bar,
            showing: Showing::Nothing,
        }
    }

    /// Shows `s`; returns whether the node is ACTIVE (and says so).
    pub fn update(&mut self, s: &NodeStatus) -> bool {
        let active = s.status == NodeState::Active;
        match (&self.bar, &s.sync) {
            (None, Some(p)) => println!("{}: SYNCING {}", s.node_id, p.line()),
            (None, None) if !active => println!(
                "{}: {:?} role={:?} applied={} last_log={} lag={}",
                s.node_id, s.status, s.role, s.applied_lsn, s.last_log_lsn, s.lag
            ),
            (None, None) => {}
            (Some(bar), Some(p)) => {
                let now = Showing::Transfer(p.phase, p.snapshot_id.clone());
                if self.showing != now {
                    bar.reset();
                    bar.set_style(style(BYTES));
                    bar.set_prefix(format!("{} {}", s.node_id, phase_name(p.phase)));
                    self.showing = now;
                }
                bar.set_length(p.bytes_total.unwrap_or(0));
                bar.set_position(p.bytes_done);
                bar.set_message(match p.rows_total {
                    Some(t) => format!("{}/{t} rows", p.rows_done),
                    None => format!("{} rows", p.rows_done),
                });
            }
            (Some(bar), None) => {
                if self.showing != Showing::CatchUp {
                    bar.reset();
                    bar.set_style(style(ENTRIES));
                    bar.set_prefix(format!("{} catching up", s.node_id));
                    self.showing = Showing::CatchUp;
                }
                bar.set_length(s.last_log_lsn.max(s.commit_lsn));
                bar.set_position(s.applied_lsn);
                bar.set_message(format!("{:?}", s.status));
            }
        }
        if active {
            if let Some(bar) = &self.bar {
                bar.finish_and_clear();
            }
            println!(
                "{} is ACTIVE; it keeps running (restart it later with `wolfscale start`)",
                s.node_id
            );
        }
        active
    }

    /// Stops drawing (the node stops before it is ACTIVE).
    pub fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}

impl Default for JoinProgress {
    fn default() -> Self {
        JoinProgress::new()
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Receiving => "receiving snapshot",
        Phase::Verifying => "verifying snapshot",
        Phase::Loading => "loading snapshot",
    }
}

/// Shows a snapshot restore (verify, then load) on stderr; nothing when it is not a
/// terminal.
pub struct RestoreProgress {
    bar: ProgressBar,
    phase: Option<Phase>,
}

impl RestoreProgress {
    /// A hidden bar unless stderr is a terminal.
    pub fn new() -> RestoreProgress {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.enable_steady_tick(Duration::from_millis(200));
        RestoreProgress { bar, phase: None }
    }

    /// Shows `p`.
    pub fn update(&mut self, p: &SyncProgress) {
        if self.phase != Some(p.phase) {
            self.bar.reset();
            self.bar.set_style(style(BYTES));
            self.bar.set_prefix(phase_name(p.phase));
            self.phase = Some(p.phase);
        }
        self.bar.set_length(p.bytes_total.unwrap_or(0));
        self.bar.set_position(p.bytes_done);
        self.bar.set_message(match p.rows_total {
            Some(t) => format!("{}/{t} rows", p.rows_done),
            None => format!("{} rows", p.rows_done),
        });
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for RestoreProgress {
    fn default() -> Self {
        RestoreProgress::new()
    }
}

/// A spinner with the elapsed time on stderr, for a wait of unknown length; hidden when
/// stderr is not a terminal. Call `finish_and_clear` on it when done.
pub fn spinner(message: String) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(style("{spinner} {msg} [{elapsed_precise}]"));
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for t in [BYTES, ENTRIES, "{spinner} {msg} [{elapsed_precise}]"] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
