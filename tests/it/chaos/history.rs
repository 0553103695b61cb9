//! What a chaos run records: every client request with its outcome, every fault, status
//! samples and notable events, all timed from the start of the run; and the short
//! timeline printed when a check fails.

use std::fmt;
use std::time::Duration;

/// What a request asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `/write/insert` of a fresh row `id` with the unique value `v`.
    Insert { id: i64, v: String },
    /// `/write/insert` reusing the `id` of an acknowledged row with a fresh value `v`:
    /// must fail with 409 and leave the row as it was.
    Conflict { id: i64, v: String },
    /// `/write/sql` appending `,token` to hot row `row`.
    Append { row: i64, token: String },
    /// `/query` of hot row `row`, waiting for `min_lsn`.
    Read { row: i64, min_lsn: u64 },
}

/// How a request ended, as the client can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: committed at this LSN.
    Ok { lsn: u64 },
    /// Definitely not applied (a 4xx, or a statement error in a 200 answer).
    Failed { status: u16, code: String },
    /// The client cannot tell (timeout, connection lost, 5xx other than a committed 504).
    Unknown { why: String },
    /// A read's answer: the hot row's value.
    Read { value: String },
    /// A read that got no value (errors are allowed during faults).
    ReadFailed { why: String },
}

/// One client request.
#[derive(Debug, Clone)]
pub struct Op {
    /// Client number (the recovery probe is client 999).
    pub client: usize,
    /// The client's request counter.
    pub seq: u64,
    /// Node index the request was sent to.
    pub node: usize,
    /// What it asked.
    pub kind: Kind,
    /// Sent with `"wait": "all"`.
    pub wait_all: bool,
    /// When it was sent.
    pub start: Duration,
    /// When the answer (or the error) came.
    pub end: Duration,
    /// What came back.
    pub outcome: Outcome,
}

impl Op {
    /// Whether the write was acknowledged, and at which LSN.
    pub fn acked_lsn(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Ok { lsn } => Some(lsn),
            _ => None,
        }
    }

    /// Whether it is a write that definitely did not apply.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

/// A fault as injected: which, on which node, and when it started and healed.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    /// Short name (`kill`, `pause`, …).
    pub kind: &'static str,
    /// Target node index.
    pub node: usize,
    /// Whether the target led when the fault was injected (as last sampled).
    pub was_leader: bool,
    /// Details (offset, hold time, …).
    pub detail: String,
    /// Injected at.
    pub start: Duration,
    /// Healed at (`None` if healing failed).
    pub healed: Option<Duration>,
    /// For a fault that cuts its node off: how long after the fault began the node first
    /// refused a (probing, linearizable) read as cut off from the majority, if it did
    /// before the heal.
    pub refused_after: Option<Duration>,
}

/// Something else worth showing on the timeline (a node exiting on its own, a restart).
#[derive(Debug, Clone)]
pub struct Event {
    /// When.
    pub at: Duration,
    /// What.
    pub what: String,
}

/// One `/status` answer of one node.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was asked.
    pub at: Duration,
    /// Node index.
    pub node: usize,
    /// Its term.
    pub term: u64,
    /// Whether it said it leads.
    pub leader: bool,
    /// The leader it named, if any.
    pub leader_id: Option<String>,
}

/// A broken property, with the requests that show it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which property (violations are grouped by it when printed).
    pub kind: &'static str,
    /// What is wrong, in one or two sentences.
    pub what: String,
    /// When it shows on the timeline, if it has a time.
    pub at: Option<Duration>,
}

impl Violation {
    pub fn new(kind: &'static str, what: impl Into<String>, at: Option<Duration>) -> Violation {
        Violation {
            kind,
            what: what.into(),
            at,
        }
    }
}

/// The violations grouped by property, at most `per_kind` shown of each, the earliest
/// first; returns the text and the violations shown.
pub fn summary(violations: &[Violation], per_kind: usize) -> (String, Vec<Violation>) {
    let mut kinds: Vec<&str> = Vec::new();
    for v in violations {
        if !kinds.contains(&v.kind) {
            kinds.push(v.kind);
        }
    }
    let mut out = String::new();
    let mut shown = Vec::new();
    for k in kinds {
        let mut of: Vec<&Violation> = violations.iter().filter(|v| v.kind == k).collect();
        of.sort_by_key(|v| v.at);
        out.push_str(&format!("  {k} ({}):\n", of.len()));
        for v in of.iter().take(per_kind) {
            let at = v.at.map_or(String::new(), |t| format!("[t={}] ", secs(t)));
            out.push_str(&format!("    - {at}{}\n", v.what));
            shown.push((*v).clone());
        }
        if of.len() > per_kind {
            out.push_str(&format!("    - … and {} more\n", of.len() - per_kind));
        }
    }
    (out, shown)
}

/// Everything a run recorded.
#[derive(Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
    pub faults: Vec<FaultRecord>,
    pub events: Vec<Event>,
    pub samples: Vec<Sample>,
}

pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.client == 999 {
            "probe".to_string()
        } else {
            format!("c{}#{}", self.client, self.seq)
        };
        let what = match &self.kind {
            Kind::Insert { id, v } => format!("insert id={id} v={v}"),
            Kind::Conflict { id, v } => format!("conflicting insert id={id} v={v}"),
            Kind::Append { row, token } => format!("append {token} to hot {row}"),
            Kind::Read { row, min_lsn } => format!("read hot {row} min_lsn={min_lsn}"),
        };
        let outcome = match &self.outcome {
            Outcome::Ok { lsn } => format!("ok lsn={lsn}"),
            Outcome::Failed { status, code } => format!("failed {status} {code}"),
            Outcome::Unknown { why } => format!("unknown ({why})"),
            Outcome::Read { value } => format!("read {:?}", tail(value, 60)),
            Outcome::ReadFailed { why } => format!("read failed ({why})"),
        };
        write!(
            f,
            "{}..{} {who} {what} via node-{}{} -> {outcome}",
            secs(self.start),
            secs(self.end),
            self.node + 1,
            if self.wait_all { " wait=all" } else { "" },
        )
    }
}

fn tail(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        s.to_string()
    } else {
        let rest: String = s.chars().skip(count - n).collect();
        format!("…{rest}")
    }
}

/// The timeline printed with a failure: every fault and event, and the requests within
/// `window` of each violation (at most `per_violation` of them, nearest first).
pub fn timeline(h: &History, violations: &[Violation], window: Duration) -> String {
    let mut out = String::new();
    out.push_str("faults:\n");
    for f in &h.faults {
        out.push_str(&format!(
            "  {}..{} {} node-{}{} {}\n",
            secs(f.start),
            f.healed.map_or("never".into(), secs),
            f.kind,
            f.node + 1,
            if f.was_leader { " (leader)" } else { "" },
            f.detail
        ));
    }
    if !h.events.is_empty() {
        out.push_str("events:\n");
        for e in &h.events {
            out.push_str(&format!("  {} {}\n", secs(e.at), e.what));
        }
    }
    // Violations close in time share one excerpt rather than repeating it.
    let mut shown: Vec<Duration> = Vec::new();
    for v in violations {
        let Some(at) = v.at else { continue };
        if shown.len() == 5 || shown.iter().any(|s| s.abs_diff(at) <= window) {
            continue;
        }
        shown.push(at);
        let mut near: Vec<&Op> = h
            .ops
            .iter()
            .filter(|o| o.end + window >= at && o.start <= at + window)
            .collect();
        near.sort_by_key(|o| o.start);
        let per_violation = 16;
        if near.len() > per_violation {
            near.sort_by_key(|o| o.start.abs_diff(at));
            near.truncate(per_violation);
            near.sort_by_key(|o| o.start);
        }
        out.push_str(&format!("requests around t={} ({}):\n", secs(at), v.kind));
        for o in near {
            out.push_str(&format!("  {o}\n"));
        }
    }
    out
}
