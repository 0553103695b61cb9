//! The recent lifecycle events of one node — elections, leader changes, membership
//! changes, snapshots, status transitions — kept in a bounded list for `/events` and the
//! dashboard, each also written as one log line with the node and term.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Events kept; older ones are dropped.
pub const CAPACITY: usize = 200;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A new term began (someone stood for election).
    Election,
    /// The leader this node follows changed (or is no longer known).
    LeaderChange,
    /// The voters or learners changed.
    Membership,
    /// A snapshot was built or installed.
    Snapshot,
    /// The node's status changed (e.g. to DEGRADED and back).
    Status,
}

impl EventKind {
    /// The fixed phrase its log line starts with.
    pub fn phrase(self) -> &'static str {
        match self {
            EventKind::Election => "new term",
            EventKind::LeaderChange => "leader changed",
            EventKind::Membership => "membership changed",
            EventKind::Snapshot => "snapshot in place",
            EventKind::Status => "status changed",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// What kind.
    pub kind: EventKind,
    /// The node that saw it.
    pub node_id: String,
    /// Its term then.
    pub term: u64,
    /// What happened, in words.
    pub detail: String,
}

/// `GET /events`: newest last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventList {
    /// At most [`CAPACITY`] events, oldest first.
    pub events: Vec<Event>,
}

/// The shared, bounded list. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Events {
    inner: Arc<Mutex<VecDeque<Event>>>,
}

impl Events {
    /// Records an event and writes its log line (`warn` for `warn`, else `info`).
    pub fn record(&self, kind: EventKind, node_id: &str, term: u64, detail: String, warn: bool) {
        let phrase = kind.phrase();
        if warn {
            tracing::warn!(node_id, term, event = ?kind, detail = %detail, "{phrase}");
        } else {
            tracing::info!(node_id, term, event = ?kind, detail = %detail, "{phrase}");
        }
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        // A plain list: a panic while holding the lock cannot leave it inconsistent.
        let mut list = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() == CAPACITY {
            list.pop_front();
        }
        list.push_back(Event {
            at_ms,
            kind,
            node_id: node_id.to_string(),
            term,
            detail,
        });
    }

    /// The events kept, oldest first.
    pub fn list(&self) -> EventList {
        let list = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        EventList {
            events: list.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_capacity_events_in_order() {
        let e = Events::default();
        for i in 0..(CAPACITY as u64 + 5) {
            e.record(EventKind::Election, "n1", i, format!("term {i}"), false);
        }
        let list = e.list().events;
        assert_eq!(list.len(), CAPACITY);
        assert_eq!(list[0].term, 5);
        assert_eq!(list[CAPACITY - 1].term, CAPACITY as u64 + 4);
        assert!(list.iter().all(|x| x.node_id == "n1"));
    }
}
