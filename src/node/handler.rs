//! Serves what other nodes ask over the cluster transport: openraft's RPCs go straight to
//! the local Raft (and tell the election clock when they come from a leader we accept or
//! win our vote); pre-votes are answered from the election clock and the log; joins,
//! forwarded writes and cluster operations are handled by the leader (a follower passes a
//! join or an operation on once; a forwarded write is never forwarded again); campaign and
//! membership questions are answered locally.

use super::{admin, membership, remove, transfer, Node};
use crate::consensus::election::{pre_vote_answer, ElectionTiming};
use crate::consensus::network::{PeerRequest, PeerResponse};
use crate::transport::{Handler, PeerInfo};
use openraft::raft::AppendEntriesResponse;

/// The transport handler of one node.
pub(super) struct PeerHandler {
    node: Node,
}

impl PeerHandler {
    pub(super) fn new(node: Node) -> Self {
        PeerHandler { node }
    }
}

impl Handler for PeerHandler {
    type Request = PeerRequest;
    type Response = PeerResponse;

    async fn handle(&self, peer: &PeerInfo, request: PeerRequest) -> Result<PeerResponse, String> {
        let raft = self.node.raft();
        Ok(match request {
            PeerRequest::Append(rpc) => {
                let r = raft.append_entries(rpc).await;
                // Any answer but "higher vote" means we accept the sender as our leader.
                if matches!(&r, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
                    self.node.election_clock().heard_leader();
                }
                PeerResponse::Append(r)
            }
            PeerRequest::Vote(rpc) => {
                let r = raft.vote(rpc).await;
                if matches!(&r, Ok(v) if v.vote_granted) {
                    self.node.election_clock().touch();
                }
                PeerResponse::Vote(r)
            }
            PeerRequest::Snapshot(rpc) => {
                let vote = rpc.vote;
                let snapshots = self.node.snapshots();
                let (id, done) = (rpc.meta.snapshot_id.clone(), rpc.done);
                if let Some(s) = snapshots {
                    s.receiving(&id);
                }
                let r = raft.install_snapshot(rpc).await;
                if matches!(&r, Ok(s) if s.vote == vote) {
                    self.node.election_clock().heard_leader();
                }
                if let (Some(s), true) = (snapshots, done) {
                    // Installed (the load ended the transfer) or not needed: not syncing.
                    s.received(&id);
                }
                PeerResponse::Snapshot(r)
            }
            PeerRequest::Join(req) => {
                tracing::info!(peer = %peer.node, name = %req.name, "join request");
                PeerResponse::Join(membership::admit(&self.node, req).await)
            }
            PeerRequest::ClientWrite(body) => match self.node.services() {
                Some(svc) => PeerResponse::ClientWrite(svc.client_write(body).await),
                None => return Err("node is starting; no client service yet".into()),
            },
            PeerRequest::Status => match self.node.services() {
                Some(svc) => PeerResponse::Status(svc.status_json()),
                None => return Err("node is starting; no client service yet".into()),
            },
            PeerRequest::PreVote(req) => {
                let timing = ElectionTiming::new(&self.node.config().cluster);
                // A node asked to campaign by the leader (a transfer) answers as if a
                // leader were alive, so nobody else wins the election meant for it.
                let leading = raft.metrics().borrow().state == openraft::ServerState::Leader
                    || self.node.campaigned_within(2 * timing.min);
                let ours = self.node.log_store().pointers().0;
                PeerResponse::PreVote(pre_vote_answer(
                    &timing,
                    leading,
                    self.node.election_clock().since(),
                    ours,
                    req.last_log_id,
                ))
            }
            PeerRequest::Admin { op, forwarded } => {
                tracing::info!(peer = %peer.node, op = ?op, "cluster operation request");
                let node = self.node.clone();
                let answer = self
                    .node
                    .owned(async move { admin::serve(&node, op, forwarded).await })
                    .await;
                PeerResponse::Admin(answer)
            }
            PeerRequest::Campaign { from, term } => {
                PeerResponse::Campaign(transfer::campaign(&self.node, from, term).await)
            }
            PeerRequest::MemberCheck { number } => {
                PeerResponse::MemberCheck(remove::answer_member_check(&self.node, number).await)
            }
            PeerRequest::Removed => {
                tracing::info!(peer = %peer.node, "the leader says this node was removed; checking");
                let node = self.node.clone();
                self.node.spawn(async move {
                    remove::check_membership(&node).await;
                });
                PeerResponse::Removed
            }
            PeerRequest::ReadIndex => PeerResponse::ReadIndex(self.node.read_index().await),
            PeerRequest::Check(body) => match self.node.services() {
                Some(svc) => PeerResponse::Check(svc.check_answer(body).await),
                None => return Err("node is starting; no client service yet".into()),
            },
            PeerRequest::SnapshotFetch(ask) => {
                PeerResponse::SnapshotFetch(super::resync::serve_fetch(&self.node, ask).await)
            }
            PeerRequest::Leader => {
                let m = raft.metrics().borrow().clone();
                PeerResponse::Leader(m.current_leader.and_then(|id| {
                    m.membership_config
                        .membership()
                        .get_node(&id)
                        .map(|n| (id, n.clone()))
                }))
            }
        })
    }
}
