//! When a node stands for election. openraft 0.9's own election timer is switched off
//! (see [`super::raft_config`]): it draws a node's timeout once for the node's lifetime,
//! checks it only on its tick (every 1.5 heartbeat intervals) and adds the leader lease on
//! top, so a dead leader was replaced only after 1.5–2 × `election_timeout_ms`, and two
//! survivors whose draws were close could split the vote round after round.
//!
//! Instead, the node's election task (`node::election`) asks this module when to campaign:
//! - [`ElectionClock`] records the last time this node heard from a leader it accepts, or
//!   granted a vote, or stood itself (the transport handler and the task tick it), and
//!   whether a vote it asked for was refused because the voter holds a longer log;
//! - [`ElectionTiming`] draws a fresh timeout from [`ElectionTiming::min`] to
//!   [`ElectionTiming::max`] for every wait, so a split vote is not repeated;
//! - before it stands, a node asks the other voters whether they would vote for it
//!   ([`pre_vote_answer`]): it stands only when a majority would. A node that merely
//!   lost touch with a live leader (just restarted, or back from a partition, while the
//!   leader's reconnect backoff runs) therefore never raises the term and deposes that
//!   leader, and one whose log is behind leaves the election to a voter that is not.

use super::LogId;
use crate::config::ClusterConfig;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The election timing derived from `[cluster]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTiming {
    /// How often a leader sends heartbeats (`heartbeat_interval_ms`).
    pub heartbeat: Duration,
    /// Shortest silence after which a follower stands: half of `election_timeout_ms`.
    pub min: Duration,
    /// Longest such silence: `election_timeout_ms`.
    pub max: Duration,
    /// Extra wait after a voter refused us for holding a longer log: that voter should
    /// win, and our standing again would only raise the term under it.
    pub behind_backoff: Duration,
    /// How long a follower refuses to vote after hearing from its leader (openraft's
    /// leader lease): half a heartbeat below [`ElectionTiming::min`], so that a candidate
    /// whose own wait is over is not refused by a voter that heard the same last heartbeat.
    pub lease: Duration,
}

impl ElectionTiming {
    /// Timing for `cluster` (validated: `4 × heartbeat_interval_ms ≤ election_timeout_ms`).
    pub fn new(cluster: &ClusterConfig) -> Self {
        let hb = cluster.heartbeat_interval_ms;
        let e = cluster.election_timeout_ms;
        ElectionTiming {
            heartbeat: Duration::from_millis(hb),
            min: Duration::from_millis(e / 2),
            max: Duration::from_millis(e),
            behind_backoff: Duration::from_millis(e),
            lease: Duration::from_millis(e.saturating_sub(hb) / 2),
        }
    }

    /// A fresh election timeout, uniform in [`min`, `max`).
    ///
    /// [`min`]: ElectionTiming::min
    /// [`max`]: ElectionTiming::max
    pub fn draw(&self) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        rand::thread_rng().gen_range(self.min..self.max)
    }
}

/// What the election task needs to know of this node's recent contact with leaders and
/// voters. Shared by the transport handler, the consensus network and the task.
#[derive(Debug)]
pub struct ElectionClock {
    origin: Instant,
    /// Milliseconds from `origin` to the last contact.
    last_ms: AtomicU64,
    /// Milliseconds from `origin` to the last word from a leader this node accepts (not
    /// touched by votes or by standing): how long the node has been without a leader.
    leader_ms: AtomicU64,
    behind: AtomicBool,
}

impl Default for ElectionClock {
    fn default() -> Self {
        ElectionClock::new()
    }
}

impl ElectionClock {
    /// A clock whose last contact is now (a starting node waits a full timeout).
    pub fn new() -> Self {
        ElectionClock {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            leader_ms: AtomicU64::new(0),
            behind: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Records contact now: an accepted append or heartbeat from the leader, a vote this
    /// node granted, or an election it started.
    pub fn touch(&self) {
        self.last_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// Time since the last contact.
    pub fn since(&self) -> Duration {
        let last = self.last_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// Records word from a leader this node accepts now (an append, heartbeat or snapshot
    /// chunk it did not refuse); also counts as contact for [`ElectionClock::touch`].
    pub fn heard_leader(&self) {
        let now = self.now_ms();
        self.last_ms.fetch_max(now, Ordering::Relaxed);
        self.leader_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// Time since the last word from a leader (since the clock was made, if none yet).
    pub fn since_leader(&self) -> Duration {
        let last = self.leader_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// Records that a voter refused this node's vote request because its log is longer.
    pub fn saw_longer_log(&self) {
        self.behind.store(true, Ordering::Relaxed);
    }

    /// Whether a voter refused us for a longer log since the last call (and clears it).
    pub fn take_behind(&self) -> bool {
        self.behind.swap(false, Ordering::Relaxed)
    }
}

/// Asks a voter whether it would vote for the sender, without changing anything.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The candidate's last log id.
    pub last_log_id: Option<LogId>,
}

/// A voter's answer to a [`PreVoteRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreVoteAnswer {
    /// It would vote for the candidate.
    Granted,
    /// It leads, or heard from a leader within the lease: the candidate should keep
    /// waiting to hear from that leader.
    LeaderAlive,
    /// Its own log is longer than the candidate's.
    LongerLog,
}

/// The answer of a voter that last heard from a leader `since_leader` ago (or leads
/// itself) and whose last log id is `ours`, to a candidate whose last log id is `theirs`.
pub fn pre_vote_answer(
    timing: &ElectionTiming,
    leading: bool,
    since_leader: Duration,
    ours: Option<LogId>,
    theirs: Option<LogId>,
) -> PreVoteAnswer {
    if leading || since_leader < timing.lease {
        PreVoteAnswer::LeaderAlive
    } else if theirs < ours {
        PreVoteAnswer::LongerLog
    } else {
        PreVoteAnswer::Granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(hb: u64, e: u64) -> ClusterConfig {
        ClusterConfig {
            heartbeat_interval_ms: hb,
            election_timeout_ms: e,
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn draws_cover_half_to_all_of_the_timeout() {
        let t = ElectionTiming::new(&cluster(100, 600));
        assert_eq!(t.min, Duration::from_millis(300));
        assert_eq!(t.max, Duration::from_millis(600));
        assert_eq!(t.lease, Duration::from_millis(250));
        let draws: Vec<Duration> = (0..2000).map(|_| t.draw()).collect();
        assert!(draws.iter().all(|d| *d >= t.min && *d < t.max));
        // Spread: both ends of the range are reached, so two nodes rarely tie.
        assert!(draws.iter().any(|d| *d < Duration::from_millis(330)));
        assert!(draws.iter().any(|d| *d >= Duration::from_millis(570)));
    }

    #[test]
    fn the_lease_ends_before_any_candidate_stands_and_outlasts_heartbeats() {
        // Every valid combination: 10 ≤ hb, 4 × hb ≤ e.
        for hb in [10u64, 11, 50, 100, 333, 500, 1000] {
            for e in [4 * hb, 4 * hb + 1, 6 * hb, 10 * hb + 7, 40 * hb] {
                let t = ElectionTiming::new(&cluster(hb, e));
                assert!(t.lease < t.min, "hb {hb} e {e}: {t:?}");
                assert!(t.lease > t.heartbeat, "hb {hb} e {e}: {t:?}");
                assert!(t.min >= 2 * t.heartbeat, "hb {hb} e {e}: {t:?}");
            }
        }
    }

    #[test]
    fn a_voter_grants_a_pre_vote_only_without_a_live_leader_and_with_no_longer_log() {
        use openraft::CommittedLeaderId;
        let t = ElectionTiming::new(&cluster(100, 600));
        let at = |term: u64, index: u64| Some(LogId::new(CommittedLeaderId::new(term, 1), index));
        let quiet = Duration::from_millis(300);
        let answer =
            |leading, since, ours, theirs| pre_vote_answer(&t, leading, since, ours, theirs);
        assert_eq!(
            answer(false, quiet, at(1, 5), at(1, 5)),
            PreVoteAnswer::Granted
        );
        assert_eq!(
            answer(false, quiet, at(1, 5), at(2, 3)),
            PreVoteAnswer::Granted
        );
        assert_eq!(answer(false, quiet, None, None), PreVoteAnswer::Granted);
        assert_eq!(
            answer(false, quiet, at(1, 5), at(1, 4)),
            PreVoteAnswer::LongerLog
        );
        assert_eq!(
            answer(false, quiet, at(2, 3), at(1, 9)),
            PreVoteAnswer::LongerLog
        );
        assert_eq!(
            answer(false, quiet, at(1, 1), None),
            PreVoteAnswer::LongerLog
        );
        // Heard from a leader within the lease, or leads: wait for that leader.
        let recent = t.lease - Duration::from_millis(1);
        assert_eq!(
            answer(false, recent, at(1, 5), at(1, 9)),
            PreVoteAnswer::LeaderAlive
        );
        assert_eq!(
            answer(true, quiet, at(1, 5), at(1, 9)),
            PreVoteAnswer::LeaderAlive
        );
    }

    #[test]
    fn the_clock_tracks_the_last_contact_and_the_longer_log_flag() {
        let c = ElectionClock::new();
        assert!(c.since() < Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.since() >= Duration::from_millis(29));
        c.touch();
        assert!(c.since() < Duration::from_millis(29));
        // A vote or a candidacy is not word from a leader.
        assert!(c.since_leader() >= Duration::from_millis(29));
        c.heard_leader();
        assert!(c.since_leader() < Duration::from_millis(29));
        assert!(!c.take_behind());
        c.saw_longer_log();
        assert!(c.take_behind());
        assert!(!c.take_behind());
    }
}
