//! Divergence checks (`wolfscale check`, `POST /check`, `cluster.check_interval_minutes`):
//! the coordinator that compares every member's tables at one LSN.
//!
//! 1. Append a `CheckBarrier { id }` entry through the leader (the service's write
//!    path). Each member's applier, on reaching it, opens a consistent snapshot at
//!    exactly that LSN and keeps applying (`apply::check`), so the check runs while
//!    writes continue.
//! 2. Ask every member (over the cluster transport; this node directly) for its schema
//!    at the barrier. Tables missing on a node, and columns or keys that differ, are
//!    reported as such.
//! 3. Per table, compare range checksums, starting with the whole table. Where they
//!    differ, bisect: split the range at the median key of the node holding the most
//!    rows in it, and compare the halves, until a differing range holds at most
//!    [`LEAF_ROWS`] rows on every node; then compare keys and row hashes to name each
//!    missing, extra or changed row. Only counts, hashes and keys cross the network.
//!
//! The majority's answer is the reference (on a tie, the leader's); the others "differ".

use super::Node;
use crate::apply::check::{
    CheckAnswer, CheckAsk, CheckSnapshots, Key, KeyRange, RangeSum, TableSchema,
};
use crate::consensus::network::{PeerRequest, PeerResponse};
use crate::service::{
    CheckReport, CheckSummary, NodeProblem, RangeDiff, RowDiff, RowDiffKind, ServiceError,
    TableCheck,
};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long members get to apply the barrier.
const SCHEMA_WAIT: Duration = Duration::from_secs(60);
/// How long one checksum question may take (a throttled walk over a large range).
const ASK_TIMEOUT: Duration = Duration::from_secs(3600);
/// A differing range is narrowed down to its rows once it holds at most this many.
pub const LEAF_ROWS: u64 = 32;
/// Most differing ranges listed per table; past it the table is marked truncated.
pub const MAX_RANGES: usize = 20;

/// One member taking part.
#[derive(Debug, Clone)]
struct Member {
    number: u64,
    name: String,
    cluster_addr: String,
}

/// Runs checks from this node and answers other coordinators' questions.
pub struct Checker {
    node: Node,
    snapshots: CheckSnapshots,
    last: Mutex<Option<CheckSummary>>,
    /// One check at a time from this node.
    running: tokio::sync::Mutex<()>,
}

impl Checker {
    /// A checker over `snapshots`, this node's applier's check snapshots.
    pub fn new(node: Node, snapshots: CheckSnapshots) -> Checker {
        Checker {
            node,
            snapshots,
            last: Mutex::new(None),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The last check this node ran, for `/status`.
    pub fn last(&self) -> Option<CheckSummary> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Answers a coordinator's question (JSON of [`CheckAsk`] in, of [`CheckAnswer`] out).
    pub async fn answer_peer(&self, body: &[u8]) -> Vec<u8> {
        let answer = match serde_json::from_slice::<CheckAsk>(body) {
            Ok(ask) => self.snapshots.answer(ask).await,
            Err(e) => CheckAnswer::Error(format!("unreadable check question: {e}")),
        };
        serde_json::to_vec(&answer).unwrap_or_default()
    }

    /// Runs check `id` (a fresh, unique number) across every member, at the LSN of its
    /// barrier (`barrier` appends it through the leader: [`crate::service::Service`]).
    ///
    /// # Errors
    /// [`ServiceError::NoLeader`] when the barrier cannot be appended now; other errors
    /// when the barrier's fate is unknown. Members that cannot answer are listed in the
    /// report, not errors.
    pub async fn run(
        &self,
        id: u64,
        barrier: impl std::future::Future<Output = Result<u64, ServiceError>>,
    ) -> Result<CheckReport, ServiceError> {
        let _one = self.running.lock().await;
        let started_ms = now_ms();
        let started = Instant::now();
        tracing::info!(check = id, "divergence check started");
        let result = self.run_once(id, barrier, started_ms, started).await;
        let summary = match &result {
            Ok(report) => {
                let s = report.summary();
                if s.identical {
                    tracing::info!(
                        check = id,
                        log_index = s.lsn,
                        tables = s.tables,
                        elapsed_ms = report.elapsed_ms,
                        "divergence check: replicas identical"
                    );
                } else {
                    tracing::error!(
                        check = id,
                        log_index = s.lsn,
                        differing = ?s.differing_tables,
                        unchecked = ?s.unchecked,
                        "divergence check: replicas differ or could not all be compared"
                    );
                }
                s
            }
            Err(e) => {
                tracing::warn!(check = id, error = %e, "divergence check failed");
                CheckSummary {
                    id,
                    lsn: 0,
                    finished_ms: now_ms(),
                    identical: false,
                    tables: 0,
                    differing_tables: Vec::new(),
                    unchecked: Vec::new(),
                    error: Some(e.to_string()),
                }
            }
        };
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(summary);
        result
    }

    async fn run_once(
        &self,
        id: u64,
        barrier: impl std::future::Future<Output = Result<u64, ServiceError>>,
        started_ms: u64,
        started: Instant,
    ) -> Result<CheckReport, ServiceError> {
        let lsn = barrier.await?;
        let metrics = self.node.raft().metrics().borrow().clone();
        let leader = metrics.current_leader;
        let mut members: Vec<Member> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(n, info)| Member {
                number: *n,
                name: info.name.clone(),
                cluster_addr: info.cluster_addr.clone(),
            })
            .collect();
        members.sort_by_key(|m| m.number);
        // The leader first: it breaks ties between equal-sized groups.
        if let Some(pos) = members.iter().position(|m| Some(m.number) == leader) {
            let l = members.remove(pos);
            members.insert(0, l);
        }
        let wait_ms = SCHEMA_WAIT.as_millis() as u64;
        let answers = futures::future::join_all(
            members
                .iter()
                .map(|m| self.ask(m, CheckAsk::Schema { id, wait_ms })),
        )
        .await;
        let mut checked = Vec::new();
        let mut unchecked = Vec::new();
        for (m, answer) in members.iter().zip(answers) {
            match answer {
                CheckAnswer::Schema { lsn: at, tables } if at == lsn => {
                    checked.push((m.clone(), tables))
                }
                CheckAnswer::Schema { lsn: at, .. } => unchecked.push(NodeProblem {
                    node: m.name.clone(),
                    error: format!("its snapshot is at lsn {at}, not the barrier's {lsn}"),
                }),
                CheckAnswer::Error(error) => unchecked.push(NodeProblem {
                    node: m.name.clone(),
                    error,
                }),
                other => unchecked.push(NodeProblem {
                    node: m.name.clone(),
                    error: format!("unexpected answer {other:?}"),
                }),
            }
        }
        let mut names: Vec<String> = checked
            .iter()
            .flat_map(|(_, ts)| ts.iter().map(|t| t.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            tables.push(self.table(id, &name, &checked).await);
        }
        let all: Vec<Member> = checked.iter().map(|(m, _)| m.clone()).collect();
        futures::future::join_all(all.iter().map(|m| self.ask(m, CheckAsk::Release { id }))).await;
        Ok(CheckReport {
            id,
            lsn,
            coordinator: self.node.info().name.clone(),
            started_ms,
            elapsed_ms: started.elapsed().as_millis() as u64,
            nodes: all.into_iter().map(|m| m.name).collect(),
            unchecked,
            tables,
        })
    }

    /// Asks one member; transport failures become [`CheckAnswer::Error`].
    async fn ask(&self, m: &Member, ask: CheckAsk) -> CheckAnswer {
        if m.number == self.node.number() {
            return self.snapshots.answer(ask).await;
        }
        let body = match serde_json::to_vec(&ask) {
            Ok(b) => b,
            Err(e) => return CheckAnswer::Error(format!("cannot encode the question: {e}")),
        };
        match self
            .node
            .client()
            .call::<_, PeerResponse>(&m.cluster_addr, &PeerRequest::Check(body), ASK_TIMEOUT)
            .await
        {
            Ok(PeerResponse::Check(json)) => serde_json::from_slice(&json)
                .unwrap_or_else(|e| CheckAnswer::Error(format!("unreadable answer: {e}"))),
            Ok(_) => CheckAnswer::Error("answered with the wrong message".into()),
            Err(e) => CheckAnswer::Error(e.to_string()),
        }
    }

    /// Compares one table across the members that were checked.
    async fn table(
        &self,
        id: u64,
        name: &str,
        checked: &[(Member, Vec<TableSchema>)],
    ) -> TableCheck {
        let mut out = TableCheck {
            table: name.to_string(),
            ..TableCheck::default()
        };
        let mut holders: Vec<(&Member, &TableSchema)> = Vec::new();
        for (m, tables) in checked {
            match tables.iter().find(|t| t.name == name) {
                Some(t) => holders.push((m, t)),
                None => out.missing_on.push(m.name.clone()),
            }
        }
        // Schema: the majority's columns and key are the reference.
        let shapes: Vec<(&[_], &[String])> = holders
            .iter()
            .map(|(_, t)| (t.columns.as_slice(), t.key.as_slice()))
            .collect();
        let reference = majority(&shapes);
        let mut same = Vec::new();
        for ((m, t), shape) in holders.iter().zip(&shapes) {
            if *shape == shapes[reference] {
                same.push((*m, *t));
            } else {
                out.schema_differs_on.push(m.name.clone());
            }
        }
        if let Err(note) = self.rows(id, name, &same, &mut out).await {
            out.note = Some(note);
        }
        out.identical = out.missing_on.is_empty()
            && out.schema_differs_on.is_empty()
            && out.differing_nodes.is_empty()
            && out
                .note
                .as_deref()
                .is_none_or(|n| n.starts_with("no primary key"));
        out
    }

    /// Compares the rows of `name` on `same` (members with the same schema) into `out`.
    async fn rows(
        &self,
        id: u64,
        name: &str,
        same: &[(&Member, &TableSchema)],
        out: &mut TableCheck,
    ) -> Result<(), String> {
        let Some((_, schema)) = same.first() else {
            return Ok(());
        };
        let key = schema.key.clone();
        let members: Vec<&Member> = same.iter().map(|(m, _)| *m).collect();
        let mut queue = VecDeque::from([KeyRange::default()]);
        let mut first = true;
        while let Some(range) = queue.pop_front() {
            let sums = self.sums(id, name, &members, &range).await?;
            if first {
                for (m, s) in members.iter().zip(&sums) {
                    out.rows.insert(m.name.clone(), s.rows);
                }
                first = false;
            }
            let reference = majority(&sums);
            let odd: Vec<String> = members
                .iter()
                .zip(&sums)
                .filter(|(_, s)| **s != sums[reference])
                .map(|(m, _)| m.name.clone())
                .collect();
            if odd.is_empty() {
                continue;
            }
            for n in &odd {
                if !out.differing_nodes.contains(n) {
                    out.differing_nodes.push(n.clone());
                }
            }
            if key.is_empty() {
                return Err(
                    "no primary key: compared as a whole, so no key ranges can be shown".into(),
                );
            }
            if out.ranges.len() >= MAX_RANGES {
                out.truncated = true;
                break;
            }
            let most = sums.iter().map(|s| s.rows).max().unwrap_or(0);
            if most <= LEAF_ROWS {
                let diff = self.leaf(id, name, &key, &members, &range, odd).await?;
                out.ranges.push(diff);
                continue;
            }
            // Split at the median key of the node holding the most rows.
            let (big, _) = members
                .iter()
                .zip(&sums)
                .max_by_key(|(_, s)| s.rows)
                .expect("a differing range was compared on at least two members");
            let ask = CheckAsk::KeyAt {
                id,
                table: name.to_string(),
                range: range.clone(),
                offset: (most - 1) / 2,
            };
            match self.ask(big, ask).await {
                CheckAnswer::Key(Some(mid)) if Some(&mid) != range.upto.as_ref() => {
                    queue.push_back(KeyRange {
                        after: range.after.clone(),
                        upto: Some(mid.clone()),
                    });
                    queue.push_back(KeyRange {
                        after: Some(mid),
                        upto: range.upto,
                    });
                }
                CheckAnswer::Error(e) => return Err(format!("{}: {e}", big.name)),
                _ => out.ranges.push(RangeDiff {
                    range: range_text(&key, &range),
                    nodes: odd,
                    rows: Vec::new(),
                }),
            }
        }
        Ok(())
    }

    async fn sums(
        &self,
        id: u64,
        name: &str,
        members: &[&Member],
        range: &KeyRange,
    ) -> Result<Vec<RangeSum>, String> {
        let answers = futures::future::join_all(members.iter().map(|m| {
            self.ask(
                m,
                CheckAsk::Sum {
                    id,
                    table: name.to_string(),
                    range: range.clone(),
                },
            )
        }))
        .await;
        members
            .iter()
            .zip(answers)
            .map(|(m, a)| match a {
                CheckAnswer::Sum(s) => Ok(s),
                CheckAnswer::Error(e) => Err(format!("{}: {e}", m.name)),
                other => Err(format!("{}: unexpected answer {other:?}", m.name)),
            })
            .collect()
    }

    /// Names the rows of a small differing range, by per-key majority.
    async fn leaf(
        &self,
        id: u64,
        name: &str,
        key: &[String],
        members: &[&Member],
        range: &KeyRange,
        odd: Vec<String>,
    ) -> Result<RangeDiff, String> {
        let answers = futures::future::join_all(members.iter().map(|m| {
            self.ask(
                m,
                CheckAsk::Rows {
                    id,
                    table: name.to_string(),
                    range: range.clone(),
                    limit: LEAF_ROWS + 1,
                },
            )
        }))
        .await;
        let mut per_node = Vec::with_capacity(members.len());
        for (m, a) in members.iter().zip(answers) {
            match a {
                CheckAnswer::Rows(rows) => per_node.push(rows),
                CheckAnswer::Error(e) => return Err(format!("{}: {e}", m.name)),
                other => return Err(format!("{}: unexpected answer {other:?}", m.name)),
            }
        }
        let mut keys: Vec<&Key> = Vec::new();
        for rows in &per_node {
            for (k, _) in rows {
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        let mut rows = Vec::new();
        let mut differing: Vec<&Key> = Vec::new();
        for k in keys {
            let votes: Vec<Option<u64>> = per_node
                .iter()
                .map(|rs| rs.iter().find(|(rk, _)| rk == k).map(|(_, h)| *h))
                .collect();
            let agreed = votes[majority(&votes)];
            for (m, v) in members.iter().zip(&votes) {
                if *v == agreed {
                    continue;
                }
                let kind = match (v, agreed) {
                    (None, _) => RowDiffKind::Missing,
                    (_, None) => RowDiffKind::Extra,
                    _ => RowDiffKind::Changed,
                };
                rows.push(RowDiff {
                    key: key_text(key, k),
                    node: m.name.clone(),
                    kind,
                });
                if !differing.contains(&k) {
                    differing.push(k);
                }
            }
        }
        let range = match (differing.first(), differing.last()) {
            (Some(a), Some(b)) if a == b => key_text(key, a),
            (Some(a), Some(b)) => format!(
                "{} BETWEEN {} AND {}",
                columns_text(key),
                values_text(a),
                values_text(b)
            ),
            // The sums differed but no row does: only possible if the data changed
            // under the snapshot, which a snapshot forbids; show the range.
            _ => range_text(key, range),
        };
        Ok(RangeDiff {
            range,
            nodes: odd,
            rows,
        })
    }
}

/// The index of the most common value; ties go to the earliest (the leader comes first).
fn majority<T: PartialEq>(values: &[T]) -> usize {
    let mut best = (0, 0);
    for (i, v) in values.iter().enumerate() {
        let n = values.iter().filter(|w| *w == v).count();
        if n > best.1 {
            best = (i, n);
        }
    }
    best.0
}

fn columns_text(key: &[String]) -> String {
    let names: Vec<String> = key.iter().map(|k| crate::sql::quote_ident(k)).collect();
    if names.len() == 1 {
        names[0].clone()
    } else {
        format!("({})", names.join(", "))
    }
}

fn values_text(k: &Key) -> String {
    let vals: Vec<String> = k.iter().map(ToString::to_string).collect();
    if vals.len() == 1 {
        vals[0].clone()
    } else {
        format!("({})", vals.join(", "))
    }
}

/// `id = 7` or `(a, b) = (1, 'x')`.
pub fn key_text(key: &[String], k: &Key) -> String {
    format!("{} = {}", columns_text(key), values_text(k))
}

/// `id > 5 AND id <= 9`, with open ends left out (`all rows` when both are).
pub fn range_text(key: &[String], range: &KeyRange) -> String {
    let cols = columns_text(key);
    let mut parts = Vec::new();
    if let Some(a) = &range.after {
        parts.push(format!("{cols} > {}", values_text(a)));
    }
    if let Some(b) = &range.upto {
        parts.push(format!("{cols} <= {}", values_text(b)));
    }
    if parts.is_empty() {
        "all rows".into()
    } else {
        parts.join(" AND ")
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs a check every `cluster.check_interval_minutes` while this node leads (off at 0).
pub(crate) async fn periodic(service: crate::service::Service) {
    let node = service.node().clone();
    let minutes = node.config().cluster.check_interval_minutes;
    if minutes == 0 {
        return;
    }
    let every = Duration::from_secs(minutes.saturating_mul(60));
    let token = node.shutdown_token();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let leads = node.raft().metrics().borrow().state == openraft::ServerState::Leader;
        if !leads {
            continue;
        }
        let id = match service.fresh_id().await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "periodic divergence check skipped: no id");
                continue;
            }
        };
        tokio::select! {
            _ = token.cancelled() => return,
            // The outcome is logged and kept for /status by `run`.
            _ = service.run_check(id) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::check::KeyValue;

    #[test]
    fn majority_prefers_the_most_common_then_the_first() {
        assert_eq!(majority(&[1, 2, 2]), 1);
        assert_eq!(majority(&[1, 2]), 0);
        assert_eq!(majority(&[Some(3), None, Some(3)]), 0);
        assert_eq!(majority::<u8>(&[]), 0);
    }

    #[test]
    fn keys_and_ranges_read_as_sql() {
        let one = vec!["id".to_string()];
        let two = vec!["a".to_string(), "b".to_string()];
        assert_eq!(key_text(&one, &vec![KeyValue::Int(7)]), "`id` = 7");
        assert_eq!(
            key_text(
                &two,
                &vec![KeyValue::Int(1), KeyValue::Bytes(b"x".to_vec())]
            ),
            "(`a`, `b`) = (1, 'x')"
        );
        let r = KeyRange {
            after: Some(vec![KeyValue::Int(5)]),
            upto: Some(vec![KeyValue::Int(9)]),
        };
        assert_eq!(range_text(&one, &r), "`id` > 5 AND `id` <= 9");
        assert_eq!(range_text(&one, &KeyRange::default()), "all rows");
    }
}
