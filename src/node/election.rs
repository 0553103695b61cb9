//! The node's election task: the follower election timer openraft's own (switched off,
//! see `consensus::raft_config`) would have been, with a fresh random timeout for every
//! wait and a pre-vote before standing (see `consensus::election`); and, while the node
//! leads, a heartbeat every `heartbeat_interval_ms` (openraft's own come only every 1.5
//! intervals). What a node does once it stands is openraft's.

use super::Node;
use crate::consensus::election::{ElectionTiming, PreVoteAnswer, PreVoteRequest};
use crate::consensus::network::{PeerRequest, PeerResponse};
use crate::consensus::{NodeId, NodeInfo};
use futures::stream::{FuturesUnordered, StreamExt};
use openraft::ServerState;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What the task needs from openraft's metrics on each turn.
struct View {
    state: ServerState,
    term: u64,
    voter: bool,
    /// Every voter set of the membership (two while a change is in joint consensus).
    configs: Vec<BTreeSet<NodeId>>,
    /// The other voters and their addresses.
    others: Vec<(NodeId, NodeInfo)>,
}

impl View {
    fn only_voter(&self) -> bool {
        self.voter && self.others.is_empty()
    }

    /// Whether `granted` holds a majority of every voter set.
    fn is_quorum(&self, granted: &BTreeSet<NodeId>) -> bool {
        self.configs
            .iter()
            .all(|c| c.intersection(granted).count() * 2 > c.len())
    }
}

fn view(node: &Node) -> View {
    let m = node.raft().metrics();
    let m = m.borrow();
    let membership = m.membership_config.membership();
    let me = m.id;
    View {
        state: m.state,
        term: m.current_term,
        voter: membership.voter_ids().any(|v| v == me),
        configs: membership.get_joint_config().clone(),
        others: membership
            .voter_ids()
            .filter(|v| *v != me)
            .filter_map(|v| membership.get_node(&v).map(|n| (v, n.clone())))
            .collect(),
    }
}

/// How a pre-vote round ended.
enum PreVote {
    /// A majority would vote for us.
    Majority,
    /// Not enough voters would; `behind` when one of them holds a longer log.
    Refused { behind: bool },
}

/// Asks the other voters whether they would vote for this node; stops as soon as a
/// majority would. Voters that do not answer within `timeout` count as refusals.
async fn pre_vote(node: &Node, v: &View, timeout: Duration) -> PreVote {
    let me = node.number();
    let req = PeerRequest::PreVote(PreVoteRequest {
        last_log_id: node.log_store().pointers().0,
    });
    let mut granted = BTreeSet::from([me]);
    let mut behind = false;
    let client = node.client();
    let mut calls: FuturesUnordered<_> = v
        .others
        .iter()
        .map(|(id, info)| {
            let req = &req;
            async move {
                let r = client
                    .call::<_, PeerResponse>(&info.cluster_addr, req, timeout)
                    .await;
                (*id, r)
            }
        })
        .collect();
    while let Some((id, r)) = calls.next().await {
        match r {
            Ok(PeerResponse::PreVote(PreVoteAnswer::Granted)) => {
                granted.insert(id);
                if v.is_quorum(&granted) {
                    return PreVote::Majority;
                }
            }
            Ok(PeerResponse::PreVote(PreVoteAnswer::LongerLog)) => behind = true,
            Ok(PeerResponse::PreVote(PreVoteAnswer::LeaderAlive)) => {}
            Ok(_) => tracing::debug!(voter = id, "pre-vote answered with another message"),
            Err(e) => tracing::debug!(voter = id, error = %e, "no pre-vote answer"),
        }
    }
    PreVote::Refused { behind }
}

/// Runs until shutdown: stands for election after a random `election_timeout_ms / 2` to
/// `election_timeout_ms` without word from a leader, if a majority of voters would vote
/// for it (at once when this node is the only voter); sends heartbeats every
/// `heartbeat_interval_ms` while it leads.
pub(super) async fn run(node: Node) {
    let token = node.shutdown_token();
    let timing = ElectionTiming::new(&node.config().cluster);
    let clock = node.election_clock();
    let mut timeout = timing.draw();
    // The last pre-vote round that did not let us stand: the next waits a fresh timeout
    // from it. It does not touch the clock, which tells other candidates about leaders.
    let mut last_try: Option<Instant> = None;
    // A membership check in flight (see below).
    let mut asking: Option<tokio::task::JoinHandle<bool>> = None;
    loop {
        let v = view(&node);
        let wait = if node.is_removed() {
            // Removed from the cluster: never stand again (a plain `start` is refused too).
            timing.heartbeat
        } else if node.is_quiet() {
            // A leadership transfer holds this leader quiet: no heartbeats, no standing.
            clock.touch();
            timing.heartbeat
        } else if v.state == ServerState::Leader {
            // Leading: keep followers' timers quiet; our own restarts when we step down.
            clock.touch();
            if let Err(e) = node.raft().trigger().heartbeat().await {
                tracing::debug!(error = %e, "heartbeat not sent");
            }
            timing.heartbeat
        } else if !v.voter || (v.only_voter() && v.state == ServerState::Candidate) {
            // A learner never stands; a lone voter's election is already running.
            clock.touch();
            timing.heartbeat
        } else {
            if clock.take_behind() {
                // A voter refused us for holding a longer log: let it win rather than
                // stand again and raise the term under it.
                timeout += timing.behind_backoff;
            }
            let silent = last_try.map_or(clock.since(), |t| t.elapsed().min(clock.since()));
            if !v.only_voter() && silent < timeout {
                // Wake when the timeout runs out, and at least once per heartbeat to
                // notice a change of role.
                (timeout - silent).min(timing.heartbeat)
            } else {
                // No word from a leader: this node may have been removed while it was
                // away (it never received the membership without it). Ask the leader on
                // the side, so standing is never held up by peers slow to answer.
                if !v.only_voter() && asking.as_ref().is_none_or(|c| c.is_finished()) {
                    let n = node.clone();
                    asking = Some(
                        node.inner
                            .tasks
                            .spawn(async move { super::remove::check_membership(&n).await }),
                    );
                }
                let round = if v.only_voter() {
                    PreVote::Majority
                } else {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        r = pre_vote(&node, &v, timing.min) => r,
                    }
                };
                timeout = timing.draw();
                match round {
                    PreVote::Refused { behind } => {
                        tracing::debug!(
                            term = v.term,
                            behind,
                            "no word from a leader, but no majority would vote for us"
                        );
                        if behind {
                            timeout += timing.behind_backoff;
                        }
                        last_try = Some(Instant::now());
                    }
                    PreVote::Majority => {
                        tracing::info!(
                            term = v.term,
                            silent_ms = u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
                            "no word from a leader; standing for election"
                        );
                        // Shutdown may stop the engine while we wait on it: never outlive
                        // the token.
                        let trigger = node.raft().trigger();
                        tokio::select! {
                            _ = token.cancelled() => return,
                            r = trigger.elect() => if let Err(e) = r {
                                tracing::warn!(error = %e, "could not start an election");
                            },
                        }
                        clock.touch();
                        last_try = None;
                    }
                }
                timing.heartbeat.min(timeout)
            }
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
        }
    }
}
