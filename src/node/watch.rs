//! What the node reports to operators: the [`Observation`] behind `/metrics`, and the
//! watcher that turns changes in consensus state and node status into events (elections,
//! leader changes, membership changes, snapshots, status transitions), each one log line
//! with the node and term.

use super::Node;
use crate::observe::events::{EventKind, Events};
use crate::observe::metrics::{self, Observation};
use crate::service::{NodeState, NodeStatus};
use std::time::Duration;

/// How often the status is compared even when consensus reports nothing new (a DEGRADED
/// apply is not a consensus change).
const STATUS_POLL: Duration = Duration::from_millis(500);
/// How often the metrics recorder drops idle gauges and drains histogram samples.
const UPKEEP: Duration = Duration::from_secs(5);
/// Statuses whose arrival is logged as a warning.
const WARN_STATUSES: &[&str] = &["DEGRADED", "DIVERGED", "NO_QUORUM"];

/// The numbers `/metrics` shows for `node`, whose status is `status`.
pub(crate) fn observation(node: &Node, status: NodeStatus) -> Observation {
    let m = node.raft().metrics().borrow().clone();
    let last = m.last_log_index.unwrap_or(0);
    let membership = m.membership_config.membership();
    let peer_lag = m
        .replication
        .as_ref()
        .map(|peers| {
            peers
                .iter()
                .filter(|(id, _)| **id != m.id)
                .map(|(id, matched)| {
                    let name = membership
                        .get_node(id)
                        .map_or_else(|| id.to_string(), |n| n.name.clone());
                    (name, last.saturating_sub(matched.map_or(0, |l| l.index)))
                })
                .collect()
        })
        .unwrap_or_default();
    let wal = node.log_store().wal();
    Observation {
        status,
        wal: Some(wal.metrics()),
        wal_segments: Some(wal.segments().len() as u64),
        peer_lag,
        snapshot_installs: node.snapshots().map_or(0, |s| s.progress().installs()),
    }
}

/// What the watcher compares from one look to the next.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    term: u64,
    leader: Option<u64>,
    membership: Option<u64>,
    snapshot: Option<u64>,
    status: String,
}

fn look(node: &Node, status: NodeState) -> Seen {
    let m = node.raft().metrics().borrow().clone();
    Seen {
        term: m.current_term,
        leader: m.current_leader,
        membership: m.membership_config.log_id().map(|l| l.index),
        snapshot: m.snapshot.map(|l| l.index),
        status: metrics::status_name(status),
    }
}

/// Records an event for every change between looks until the node shuts down. `status`
/// gives the node's current status.
pub(crate) async fn watch(node: Node, events: Events, status: impl Fn() -> NodeState + Send) {
    let name = node.info().name.clone();
    let shutdown = node.shutdown_token();
    let mut raft_metrics = node.raft().metrics();
    let mut before = look(&node, status());
    // What was already so when the node came up, as if it had just changed.
    let unknown = Seen {
        term: before.term,
        leader: None,
        membership: None,
        snapshot: before.snapshot,
        status: before.status.clone(),
    };
    compare(&node, &name, &events, &unknown, &before);
    let mut last_upkeep = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = raft_metrics.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(STATUS_POLL) => {}
        }
        let now = look(&node, status());
        compare(&node, &name, &events, &before, &now);
        before = now;
        if last_upkeep.elapsed() >= UPKEEP {
            metrics::upkeep();
            last_upkeep = tokio::time::Instant::now();
        }
    }
}

fn compare(node: &Node, name: &str, events: &Events, before: &Seen, now: &Seen) {
    let term = now.term;
    if now.term > before.term {
        metrics::election();
        events.record(
            EventKind::Election,
            name,
            term,
            format!("term {} began (was {})", now.term, before.term),
            false,
        );
    }
    if now.leader != before.leader {
        let m = node.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let who = |id: Option<u64>| match id {
            Some(id) => membership
                .get_node(&id)
                .map_or_else(|| format!("node {id}"), |n| n.name.clone()),
            None => "none".to_string(),
        };
        if now.leader.is_some() {
            metrics::leader_change();
        }
        events.record(
            EventKind::LeaderChange,
            name,
            term,
            format!("leader is {} (was {})", who(now.leader), who(before.leader)),
            false,
        );
    }
    if now.membership != before.membership {
        let m = node.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let names = |ids: Vec<u64>| -> Vec<String> {
            ids.iter()
                .map(|id| {
                    membership
                        .get_node(id)
                        .map_or_else(|| id.to_string(), |n| n.name.clone())
                })
                .collect()
        };
        let voters = names(membership.voter_ids().collect());
        let learners = names(membership.learner_ids().collect());
        events.record(
            EventKind::Membership,
            name,
            term,
            format!(
                "membership at lsn {}: voters [{}], learners [{}]",
                now.membership.unwrap_or(0),
                voters.join(", "),
                learners.join(", ")
            ),
            false,
        );
    }
    if now.snapshot != before.snapshot {
        events.record(
            EventKind::Snapshot,
            name,
            term,
            format!("snapshot in place up to lsn {}", now.snapshot.unwrap_or(0)),
            false,
        );
    }
    if now.status != before.status {
        events.record(
            EventKind::Status,
            name,
            term,
            format!("{} -> {}", before.status, now.status),
            WARN_STATUSES.contains(&now.status.as_str()),
        );
    }
}
