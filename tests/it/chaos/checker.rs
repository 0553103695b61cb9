//! The checker: after a run has healed and converged, compares what clients were told
//! with what every node's MariaDB holds, and what the status samples say about leaders.
//! Each check is linear (or n log n) in the history.

use super::history::{secs, FaultRecord, Kind, Op, Outcome, Sample, Violation};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// One node's replicated state, read in one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Node index.
    pub node: usize,
    /// `_wolfscale`: applied index, term, node, membership.
    pub position: (Option<u64>, Option<u64>, Option<u64>, Option<String>),
    /// `items` rows `(id, v, md5(pad))` by id.
    pub items: Vec<(i64, String, String)>,
    /// `hot` rows `(id, v)` by id.
    pub hot: Vec<(i64, String)>,
    /// `bank`: total balance, lowest balance, accounts.
    pub bank: (Option<i64>, Option<i64>, i64),
    /// `CHECKSUM TABLE items, hot, guarded, bank`.
    pub checksums: Vec<(String, Option<i64>)>,
}

impl Snapshot {
    fn applied(&self) -> u64 {
        self.position.0.unwrap_or(0)
    }
}

/// One node's WAL as the checker reads it: `(lsn, term, leader node id)` of every record
/// still retained, in LSN order.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Node index.
    pub node: usize,
    /// The records' log ids.
    pub entries: Vec<(u64, u64, u64)>,
}

/// For every fault during which its node refused a request as cut off from the majority
/// (503 `quorum_lost`), the time from the fault's start to the first such refusal: the
/// nemesis's probing read, or a workload write sent to that node, whichever came first.
/// How soon a partitioned node stops taking writes. Keyed by fault kind, with ` (leader)`
/// when the node led as the fault began.
pub fn cut_to_refusal(ops: &[Op], faults: &[FaultRecord]) -> BTreeMap<String, Vec<Duration>> {
    let mut m: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for f in faults {
        let until = f.healed.unwrap_or(Duration::MAX);
        let by_write = ops
            .iter()
            .filter(|o| o.node == f.node && o.start >= f.start && o.end <= until)
            .filter(|o| {
                matches!(&o.outcome, Outcome::Failed { status: 503, code } if code == "quorum_lost")
            })
            .map(|o| o.end)
            .min();
        let by_probe = f.refused_after.map(|d| f.start + d);
        let first = by_write.into_iter().chain(by_probe).min();
        if let Some(end) = first {
            let kind = format!("{}{}", f.kind, if f.was_leader { " (leader)" } else { "" });
            m.entry(kind).or_default().push(end - f.start);
        }
    }
    m
}

/// Runs every check; returns what is broken (empty: the run is clean).
///
/// A node that did not converge is reported once; the row checks then look only at the
/// nodes that reached the highest applied LSN.
pub fn check(ops: &[Op], samples: &[Sample], snaps: &[Snapshot], logs: &[Log]) -> Vec<Violation> {
    let mut v = Vec::new();
    identical(snaps, &mut v);
    let common = snaps.iter().map(Snapshot::applied).min().unwrap_or(0);
    log_leaders(logs, common, &mut v);
    let top = snaps.iter().map(Snapshot::applied).max().unwrap_or(0);
    let current: Vec<&Snapshot> = snaps.iter().filter(|s| s.applied() == top).collect();
    let Some(first) = current.first().copied() else {
        v.push(Violation::new(
            "unreadable",
            "no node could be read at the end",
            None,
        ));
        return v;
    };
    for s in current {
        rows(ops, s, &mut v);
    }
    lsns(ops, first, &mut v);
    let finals: BTreeMap<i64, &str> = first.hot.iter().map(|(id, s)| (*id, s.as_str())).collect();
    appends(ops, &finals, &mut v);
    // A node whose hot rows differ from the first one's gets its own append checks, so a
    // duplicate or a lost append there is named, not only "replicas differ".
    for s in snaps
        .iter()
        .filter(|s| s.node != first.node && s.hot != first.hot)
    {
        let mine: BTreeMap<i64, &str> = s.hot.iter().map(|(id, x)| (*id, x.as_str())).collect();
        let mut found = Vec::new();
        appends(ops, &mine, &mut found);
        v.extend(found.into_iter().map(|mut x| {
            x.what = format!("on node-{}: {}", s.node + 1, x.what);
            x
        }));
    }
    reads(ops, &finals, &mut v);
    leaders(samples, &mut v);
    v
}

/// All nodes at the same applied LSN hold the same `_wolfscale` row and tables.
fn identical(snaps: &[Snapshot], v: &mut Vec<Violation>) {
    let Some(a) = snaps.first() else { return };
    for b in &snaps[1..] {
        let (na, nb) = (a.node + 1, b.node + 1);
        if a.applied() != b.applied() {
            v.push(Violation::new(
                "not converged",
                format!(
                    "node-{na} and node-{nb} did not converge after healing: applied LSN {} vs {} \
                     (see the nodes' logs)",
                    a.applied(),
                    b.applied()
                ),
                None,
            ));
            continue;
        }
        if a.position != b.position {
            v.push(Violation::new(
"replicas differ",
                format!(
                    "node-{na} and node-{nb} at applied LSN {} have different _wolfscale rows: {:?} vs {:?}",
                    a.applied(),
                    a.position,
                    b.position
                ),
                None,
            ));
        }
        if a.checksums != b.checksums || a.items != b.items || a.hot != b.hot {
            let ia: BTreeSet<_> = a.items.iter().collect();
            let ib: BTreeSet<_> = b.items.iter().collect();
            let only_a: Vec<_> = ia.difference(&ib).take(5).collect();
            let only_b: Vec<_> = ib.difference(&ia).take(5).collect();
            let hot: Vec<String> = a
                .hot
                .iter()
                .zip(&b.hot)
                .filter(|(x, y)| x != y)
                .map(|(x, y)| first_difference(x.0, &x.1, &y.1))
                .collect();
            v.push(Violation::new(
                "replicas differ",
                format!(
                    "node-{na} and node-{nb} are both at applied LSN {} but their tables differ \
                     (checksums {:?} vs {:?}); items only on node-{na}: {only_a:?}; only on \
                     node-{nb}: {only_b:?}; {}",
                    a.applied(),
                    a.checksums,
                    b.checksums,
                    hot.join("; ")
                ),
                None,
            ));
        }
    }
}

/// Where two values of hot row `row` part, in tokens.
fn first_difference(row: i64, a: &str, b: &str) -> String {
    let (ta, tb) = (tokens(a), tokens(b));
    let at = ta.iter().zip(&tb).take_while(|(x, y)| x == y).count();
    format!(
        "hot {row}: {} vs {} appends, first difference at append #{at}: {:?} vs {:?}",
        ta.len(),
        tb.len(),
        ta.get(at),
        tb.get(at)
    )
}

/// Acknowledged inserts present with their value, every row written by a request that
/// did not fail, conflicting inserts and failed inserts absent.
fn rows(ops: &[Op], s: &Snapshot, v: &mut Vec<Violation>) {
    let node = s.node + 1;
    let present: HashMap<i64, &str> = s
        .items
        .iter()
        .map(|(id, val, _)| (*id, val.as_str()))
        .collect();
    let mut inserts: HashMap<i64, &Op> = HashMap::new();
    for op in ops {
        match &op.kind {
            Kind::Insert { id, v: val } => {
                inserts.insert(*id, op);
                let got = present.get(id).copied();
                if op.acked_lsn().is_some() && got != Some(val.as_str()) {
                    v.push(Violation::new(
                        "acknowledged write lost",
                        format!(
                            "acknowledged write lost on node-{node}: row {id} is {got:?}; {op}"
                        ),
                        Some(op.end),
                    ));
                }
                if op.failed() && got.is_some() {
                    v.push(Violation::new(
                        "failed write present",
                        format!("write that failed definitely is present on node-{node}: {op}"),
                        Some(op.end),
                    ));
                }
            }
            Kind::Conflict { id, v: val } if present.get(id).copied() == Some(val.as_str()) => {
                v.push(Violation::new(
                    "failed write present",
                    format!("a conflicting insert overwrote row {id} on node-{node}: {op}"),
                    Some(op.end),
                ));
            }
            _ => {}
        }
    }
    for (id, val, _) in &s.items {
        match inserts.get(id) {
            None => v.push(Violation::new(
                "invented value",
                format!("row {id} = {val:?} on node-{node} was written by no client"),
                None,
            )),
            Some(op) if op.failed() => {} // reported above
            Some(op) => {
                if let Kind::Insert { v: want, .. } = &op.kind {
                    if want != val {
                        v.push(Violation::new(
"invented value",
                            format!("row {id} on node-{node} is {val:?}, but no client wrote that: {op}"),
                            Some(op.end),
                        ));
                    }
                }
            }
        }
    }
}

/// No LSN beyond the applied position, no insert of an existing key acknowledged, and an
/// LSN shared only by requests that were in flight together (the leader puts concurrent
/// writes into one entry; a write sent after another was answered is in a later entry).
fn lsns(ops: &[Op], s: &Snapshot, v: &mut Vec<Violation>) {
    let mut seen: HashMap<u64, Vec<&Op>> = HashMap::new();
    for op in ops {
        if matches!(op.kind, Kind::Conflict { .. }) && op.acked_lsn().is_some() {
            v.push(Violation::new(
                "conflict acknowledged",
                format!("an insert of an existing key was acknowledged: {op}"),
                Some(op.end),
            ));
        }
        let Some(lsn) = op.acked_lsn() else { continue };
        if lsn > s.applied() {
            v.push(Violation::new(
                "acknowledged beyond applied",
                format!(
                    "acknowledged LSN {lsn} is beyond the final applied LSN {}: {op}",
                    s.applied()
                ),
                Some(op.end),
            ));
        }
        let sharing = seen.entry(lsn).or_default();
        for other in sharing.iter() {
            if other.end < op.start || op.end < other.start {
                v.push(Violation::new(
                    "LSN acknowledged twice",
                    format!(
                        "two requests that were not in flight together were acknowledged at \
                         the same LSN {lsn}: {other} / {op}"
                    ),
                    Some(op.end),
                ));
            }
        }
        sharing.push(op);
    }
}

/// Splits a hot row's value into its tokens (it starts empty and every append adds
/// `,token`).
pub fn tokens(value: &str) -> Vec<&str> {
    value.split(',').skip(1).collect()
}

/// Hot rows: every token once, from an append that did not fail; acknowledged appends
/// present, in LSN order (appends sharing an entry's LSN in any order) and in real-time
/// order.
fn appends(ops: &[Op], finals: &BTreeMap<i64, &str>, v: &mut Vec<Violation>) {
    let mut by_token: HashMap<&str, &Op> = HashMap::new();
    for op in ops {
        if let Kind::Append { token, .. } = &op.kind {
            by_token.insert(token.as_str(), op);
        }
    }
    for (&row, value) in finals {
        if !value.is_empty() && !value.starts_with(',') {
            v.push(Violation::new(
                "damaged value",
                format!("hot {row} has a damaged value {value:?}"),
                None,
            ));
            continue;
        }
        let mut position: HashMap<&str, usize> = HashMap::new();
        let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, t) in tokens(value).into_iter().enumerate() {
            *copies.entry(t).or_insert(0) += 1;
            if position.contains_key(t) {
                continue;
            }
            position.insert(t, i);
            match by_token.get(t) {
                None => v.push(Violation::new(
                    "invented value",
                    format!("hot {row} holds {t}, which no client appended"),
                    None,
                )),
                Some(op) if !matches!(op.kind, Kind::Append { row: r, .. } if r == row) => {
                    v.push(Violation::new(
                        "invented value",
                        format!("hot {row} holds {t}, appended to another row: {op}"),
                        Some(op.end),
                    ))
                }
                Some(op) if op.failed() => v.push(Violation::new(
                    "failed write present",
                    format!("append that failed definitely is in hot {row}: {op}"),
                    Some(op.end),
                )),
                Some(_) => {}
            }
        }
        for (t, n) in copies.into_iter().filter(|(_, n)| *n > 1) {
            let op = by_token.get(t);
            v.push(Violation::new(
                "applied twice",
                match op {
                    Some(op) => format!("hot {row} holds {t} {n} times: {op}"),
                    None => format!("hot {row} holds {t} {n} times"),
                },
                op.map(|o| o.end),
            ));
        }
        // Acknowledged appends of this row, in the order the row holds them.
        let mut acked: Vec<(usize, &Op)> = Vec::new();
        for op in ops {
            let Kind::Append { row: r, token } = &op.kind else {
                continue;
            };
            if *r != row || op.acked_lsn().is_none() {
                continue;
            }
            match position.get(token.as_str()) {
                Some(&p) => acked.push((p, op)),
                None => v.push(Violation::new(
                    "acknowledged write lost",
                    format!("acknowledged append lost from hot {row}: {op}"),
                    Some(op.end),
                )),
            }
        }
        acked.sort_by_key(|(p, _)| *p);
        for w in acked.windows(2) {
            let (a, b) = (w[0].1, w[1].1);
            // Equal LSNs: both in one entry, applied in the order the row shows.
            if a.acked_lsn() > b.acked_lsn() {
                v.push(Violation::new(
                    "out of order",
                    format!("hot {row} holds appends out of LSN order: {a} before {b}"),
                    Some(b.end),
                ));
            }
        }
        // Real time: an append that finished before another started comes first.
        let mut latest_start: Option<&Op> = None;
        for (_, op) in &acked {
            if let Some(prev) = latest_start {
                if op.end < prev.start {
                    v.push(Violation::new(
"out of order",
                        format!(
                            "hot {row} holds {prev} before {op}, which had finished before it started"
                        ),
                        Some(prev.start),
                    ));
                }
            }
            if latest_start.is_none_or(|p| op.start > p.start) {
                latest_start = Some(op);
            }
        }
    }
}

/// Every value a client read is a prefix of the final value and contains every append
/// acknowledged at or below the read's `min_lsn`.
fn reads(ops: &[Op], finals: &BTreeMap<i64, &str>, v: &mut Vec<Violation>) {
    let mut acked_by_row: HashMap<i64, Vec<(u64, &str, &Op)>> = HashMap::new();
    for op in ops {
        if let (Kind::Append { row, token }, Some(lsn)) = (&op.kind, op.acked_lsn()) {
            acked_by_row
                .entry(*row)
                .or_default()
                .push((lsn, token.as_str(), op));
        }
    }
    for op in ops {
        let (Kind::Read { row, min_lsn }, Outcome::Read { value }) = (&op.kind, &op.outcome) else {
            continue;
        };
        let Some(fin) = finals.get(row) else { continue };
        let prefix = fin == value || fin.starts_with(&format!("{value},"));
        if !prefix {
            v.push(Violation::new(
                "read not a prefix",
                format!(
                    "a read saw a hot {row} value that is not a prefix of the final one \
                     (lost or reordered appends): {op}; final ends {:?}",
                    fin.chars()
                        .rev()
                        .take(80)
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect::<String>()
                ),
                Some(op.end),
            ));
            continue;
        }
        let seen: BTreeSet<&str> = tokens(value).into_iter().collect();
        if let Some(acked) = acked_by_row.get(row) {
            for (lsn, token, w) in acked {
                if lsn <= min_lsn && !seen.contains(token) {
                    v.push(Violation::new(
                        "read missed a write",
                        format!(
                            "a read with min_lsn {min_lsn} missed append {token} acknowledged at \
                             LSN {lsn}: {op}; the append: {w}"
                        ),
                        Some(op.end),
                    ));
                    break;
                }
            }
        }
    }
}

/// At most one node claims leadership per term, and all nodes that name a leader for a
/// term name the same one.
fn leaders(samples: &[Sample], v: &mut Vec<Violation>) {
    let mut claims: BTreeMap<u64, BTreeMap<usize, &Sample>> = BTreeMap::new();
    let mut named: BTreeMap<u64, BTreeMap<&str, &Sample>> = BTreeMap::new();
    for s in samples {
        if s.leader {
            claims.entry(s.term).or_default().entry(s.node).or_insert(s);
        }
        if let Some(l) = &s.leader_id {
            named
                .entry(s.term)
                .or_default()
                .entry(l.as_str())
                .or_insert(s);
        }
    }
    for (term, c) in claims {
        if c.len() > 1 {
            let who: Vec<String> = c
                .values()
                .map(|s| format!("node-{} at {}", s.node + 1, secs(s.at)))
                .collect();
            v.push(Violation::new(
                "two leaders in a term",
                format!("two leaders in term {term}: {}", who.join(", ")),
                c.values().map(|s| s.at).min(),
            ));
        }
    }
    for (term, n) in named {
        if n.len() > 1 {
            let who: Vec<String> = n
                .iter()
                .map(|(l, s)| format!("node-{} named {l} at {}", s.node + 1, secs(s.at)))
                .collect();
            v.push(Violation::new(
                "two leaders in a term",
                format!(
                    "nodes named different leaders for term {term}: {}",
                    who.join(", ")
                ),
                n.values().map(|s| s.at).min(),
            ));
        }
    }
}

/// From the logs themselves, which see every leader that appended anything (each new
/// leader appends a blank entry in its term), unlike the status samples: no two entries of
/// one term name different leaders, on any node; and every entry up to the LSN all nodes
/// applied (`common`) has the same log id on every node that still holds it.
fn log_leaders(logs: &[Log], common: u64, v: &mut Vec<Violation>) {
    let mut by_term: BTreeMap<u64, (u64, usize, u64)> = BTreeMap::new();
    let mut by_lsn: HashMap<u64, (u64, u64, usize)> = HashMap::new();
    let mut reported_terms = BTreeSet::new();
    let mut mismatches = 0usize;
    for log in logs {
        for &(lsn, term, leader) in &log.entries {
            let (first_leader, first_node, first_lsn) =
                *by_term.entry(term).or_insert((leader, log.node, lsn));
            if first_leader != leader && reported_terms.insert(term) {
                v.push(Violation::new(
                    "two leaders in a term",
                    format!(
                        "term {term} has entries from two leaders: node id {first_leader} \
                         (LSN {first_lsn} on node-{}) and node id {leader} (LSN {lsn} on node-{})",
                        first_node + 1,
                        log.node + 1
                    ),
                    None,
                ));
            }
            if lsn > common {
                continue;
            }
            let (t, l, n) = *by_lsn.entry(lsn).or_insert((term, leader, log.node));
            if (t, l) != (term, leader) {
                mismatches += 1;
                if mismatches <= 3 {
                    v.push(Violation::new(
                        "logs differ",
                        format!(
                            "applied LSN {lsn} is (term {t}, leader {l}) on node-{} but (term \
                             {term}, leader {leader}) on node-{}",
                            n + 1,
                            log.node + 1
                        ),
                        None,
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(node: usize, start_ms: u64, end_ms: u64, outcome: Outcome) -> Op {
        Op {
            client: 0,
            seq: 0,
            node,
            kind: Kind::Insert {
                id: 1,
                v: String::new(),
            },
            wait_all: false,
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
            outcome,
        }
    }

    #[test]
    fn the_first_quorum_refusal_by_the_cut_off_node_during_the_fault_is_timed() {
        let refused = || Outcome::Failed {
            status: 503,
            code: "quorum_lost".into(),
        };
        let fault = FaultRecord {
            kind: "partition",
            node: 1,
            was_leader: true,
            detail: String::new(),
            start: Duration::from_millis(1000),
            healed: Some(Duration::from_millis(5000)),
            refused_after: None,
        };
        let ops = [
            // Before the fault, another node, another answer, after the heal: ignored.
            op(1, 500, 900, refused()),
            op(0, 1500, 1600, refused()),
            op(
                1,
                1200,
                1300,
                Outcome::Failed {
                    status: 503,
                    code: "no_leader".into(),
                },
            ),
            op(1, 5100, 5200, refused()),
            op(1, 2500, 2510, refused()),
            op(1, 2100, 2200, refused()),
        ];
        let m = cut_to_refusal(&ops, std::slice::from_ref(&fault));
        assert_eq!(
            m.get("partition (leader)"),
            Some(&vec![Duration::from_millis(1200)])
        );
        assert_eq!(m.len(), 1);
        // The nemesis's probe counts too, when it was refused first.
        let probed = FaultRecord {
            refused_after: Some(Duration::from_millis(1050)),
            ..fault
        };
        let m = cut_to_refusal(&ops, &[probed]);
        assert_eq!(
            m.get("partition (leader)"),
            Some(&vec![Duration::from_millis(1050)])
        );
    }
}
