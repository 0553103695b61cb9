//! Whether this node is in touch with a working majority, and so may take writes and
//! linearizable reads: a leader must have had a successful round trip with a majority of
//! voters, any other node must have heard from a leader, within `election_timeout_ms`.
//! A node that has not says so at once (`NO_QUORUM`, `/health` 503, writes refused with
//! 503 before anything is appended) instead of letting clients wait for a commit that
//! cannot come.
//!
//! The mechanism, and why it is safe:
//! - openraft 0.9 has no step-down for a leader that lost its majority (no check-quorum);
//!   it stays `Leader` until it hears of a higher term. Forcing one with
//!   `trigger().elect()` would raise the cut-off node's term, and on healing that higher
//!   term would depose the majority's leader: exactly the disruption the pre-vote
//!   (`consensus::election`) exists to prevent. So the node stops *acting* as leader above
//!   consensus: it refuses writes and linearizable reads and reports itself a follower.
//! - The round trips are openraft's own: `RaftMetrics::millis_since_quorum_ack` is the age
//!   of the newest send time a majority of voters (joint configs included) acknowledged
//!   with an accepted append or heartbeat of this leader's term. [`run`] turns each report
//!   into an instant when it arrives, so the age stays exact however rarely openraft
//!   reports (it does at least every tick and every heartbeat the election task asks for).
//! - No split brain: the safety of commits stays with openraft (an entry commits only once
//!   a majority stores it, so a stale leader never acknowledges a write); this layer only
//!   refuses early. A refusal happens before the request reaches consensus, so a refused
//!   write was never appended and a retry cannot apply it twice. A write appended just
//!   before contact was lost keeps its honest "unknown" (504) answer.
//! - When contact returns, openraft does the rest: the majority's leader's first append
//!   carries a higher term and turns the old leader into its follower; if no one else
//!   was elected, fresh acknowledgements make the old leader serve again.

use super::Node;
use openraft::ServerState;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How this node stands with the cluster's majority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contact {
    /// openraft counts this node as the leader.
    pub leading: bool,
    /// Since the last successful round trip with a majority of voters (leading), or the
    /// last word from a leader (otherwise).
    pub since: Duration,
    /// `since` is over `election_timeout_ms`: no writes or linearizable reads here.
    pub lost: bool,
}

impl Contact {
    /// `since` in whole milliseconds.
    pub fn since_ms(&self) -> u64 {
        u64::try_from(self.since.as_millis()).unwrap_or(u64::MAX)
    }

    /// Why this node refuses writes, for the client and the operator; `None` if it serves.
    pub fn refusal(&self) -> Option<String> {
        if !self.lost {
            None
        } else if self.leading {
            Some(format!(
                "this node has had no round trip with a majority of voters for {} ms; it has \
                 stopped acting as leader (nothing was appended; retry, or send to the \
                 majority's leader)",
                self.since_ms()
            ))
        } else {
            Some(format!(
                "this node has heard from no leader for {} ms (cut off from the majority?); \
                 nothing was appended",
                self.since_ms()
            ))
        }
    }
}

/// When the current leadership last had a majority's acknowledgement.
#[derive(Debug, Default)]
pub(super) struct QuorumClock {
    leading: Mutex<Option<Leading>>,
}

#[derive(Debug, Clone, Copy)]
struct Leading {
    term: u64,
    last_ack: Instant,
}

impl QuorumClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Leading>> {
        // Plain values: a panic while holding the lock cannot break them.
        self.leading.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in one metrics report seen at `now`: the term this node leads in (`None` when
    /// it does not lead) and openraft's age of the last quorum acknowledgement. Winning an
    /// election is a round trip with a majority too, so a new term starts at `now`.
    pub(super) fn observe(&self, leading_term: Option<u64>, ack_age_ms: Option<u64>, now: Instant) {
        let mut s = self.lock();
        let Some(term) = leading_term else {
            *s = None;
            return;
        };
        let mut l = match *s {
            Some(l) if l.term == term => l,
            _ => Leading {
                term,
                last_ack: now,
            },
        };
        if let Some(t) = ack_age_ms.and_then(|ms| now.checked_sub(Duration::from_millis(ms))) {
            l.last_ack = l.last_ack.max(t);
        }
        *s = Some(l);
    }

    /// Time from the last quorum acknowledgement to `now`, while leading in `term`.
    pub(super) fn since_ack(&self, term: u64, now: Instant) -> Option<Duration> {
        self.lock()
            .filter(|l| l.term == term)
            .map(|l| now.saturating_duration_since(l.last_ack))
    }
}

/// How `node` stands now (see the module docs).
pub(super) fn contact(node: &Node) -> Contact {
    let timeout = Duration::from_millis(node.config().cluster.election_timeout_ms);
    let (leading, term) = {
        let m = node.raft().metrics();
        let m = m.borrow();
        (m.state == ServerState::Leader, m.current_term)
    };
    let (since, excused) = if leading {
        // Not observed yet (the report is on its way): it has just won its election.
        let since = node
            .inner
            .quorum
            .since_ack(term, Instant::now())
            .unwrap_or_default();
        (since, false)
    } else {
        // A node receiving a snapshot may hear nothing else from the leader while the
        // last chunk loads (its answer waits for the load): it is syncing, not cut off.
        let syncing = node
            .snapshots()
            .is_some_and(|s| s.progress().report().is_some());
        (node.election_clock().since_leader(), syncing)
    };
    Contact {
        leading,
        since,
        lost: since > timeout && !excused,
    }
}

/// Runs until shutdown: feeds every metrics report into the node's [`QuorumClock`].
pub(super) async fn run(node: Node) {
    let token = node.shutdown_token();
    let mut rx = node.raft().metrics();
    loop {
        {
            let m = rx.borrow_and_update();
            let leading = (m.state == ServerState::Leader).then_some(m.current_term);
            node.inner
                .quorum
                .observe(leading, m.millis_since_quorum_ack, Instant::now());
        }
        tokio::select! {
            _ = token.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_term_counts_from_its_election_and_acks_move_it_forward() {
        let c = QuorumClock::default();
        let t0 = Instant::now();
        assert_eq!(c.since_ack(1, t0), None);
        // Elected at t0; no acknowledgement reported yet.
        c.observe(Some(1), None, t0);
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(c.since_ack(1, t1), Some(Duration::from_millis(300)));
        // A report at t1 says a majority acknowledged 50 ms before it.
        c.observe(Some(1), Some(50), t1);
        let t2 = t1 + Duration::from_millis(1000);
        assert_eq!(c.since_ack(1, t2), Some(Duration::from_millis(1050)));
        // An older report (larger age seen earlier) never moves the instant back.
        c.observe(Some(1), Some(900), t1);
        assert_eq!(c.since_ack(1, t2), Some(Duration::from_millis(1050)));
        // Another term is not this leadership.
        assert_eq!(c.since_ack(2, t2), None);
    }

    #[test]
    fn losing_the_lead_forgets_it_and_a_new_term_starts_afresh() {
        let c = QuorumClock::default();
        let t0 = Instant::now();
        c.observe(Some(1), Some(0), t0);
        c.observe(None, None, t0 + Duration::from_millis(10));
        assert_eq!(c.since_ack(1, t0 + Duration::from_millis(20)), None);
        let t3 = t0 + Duration::from_secs(5);
        c.observe(Some(3), Some(4000), t3);
        // The election at t3 is newer than any acknowledgement openraft reports.
        assert_eq!(c.since_ack(3, t3), Some(Duration::ZERO));
    }

    #[test]
    fn only_a_lost_contact_refuses_and_says_why() {
        let ok = Contact {
            leading: true,
            since: Duration::from_millis(100),
            lost: false,
        };
        assert_eq!(ok.refusal(), None);
        let leader = Contact {
            lost: true,
            since: Duration::from_millis(2500),
            ..ok
        };
        let why = leader.refusal().expect("refuses");
        assert!(why.contains("majority") && why.contains("2500 ms"), "{why}");
        let follower = Contact {
            leading: false,
            ..leader
        };
        let why = follower.refusal().expect("refuses");
        assert!(
            why.contains("no leader") && why.contains("2500 ms"),
            "{why}"
        );
    }
}
