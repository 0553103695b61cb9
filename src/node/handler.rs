//! Serves what other nodes ask over the cluster transport: openraft's RPCs go straight to
//! the local Raft (and tell the election clock when they come from a leader we accept or
//! win our vote); pre-votes are answered from the election clock and the log; joins and forwarded writes are handled by the leader (a follower
//! passes a join on once; a forwarded write is never forwarded again).

use super::{membership, Node};
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
                    self.node.election_clock().touch();
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
                let r = raft.install_snapshot(rpc).await;
                if matches!(&r, Ok(s) if s.vote == vote) {
                    self.node.election_clock().touch();
                }
                PeerResponse::Snapshot(r)
            }
            PeerRequest::Join(req) => {
                tracing::info!(peer = %peer.node, name = %req.name, "join request");
                PeerResponse::Join(membership::admit(&self.node, req).await)
            }
            PeerRequest::Write(req) => PeerResponse::Write(self.node.propose_local(req).await),
            PeerRequest::ClientWrite(body) => match self.node.services() {
                Some(svc) => PeerResponse::ClientWrite(svc.client_write(body).await),
                None => return Err("node is starting; no client service yet".into()),
            },
            PeerRequest::Status => match self.node.services() {
                Some(svc) => PeerResponse::Status(svc.status_json()),
                None => return Err("node is starting; no client service yet".into()),
            },
            PeerRequest::PreVote(req) => {
                let leading = raft.metrics().borrow().state == openraft::ServerState::Leader;
                let ours = self.node.log_store().pointers().0;
                PeerResponse::PreVote(pre_vote_answer(
                    &ElectionTiming::new(&self.node.config().cluster),
                    leading,
                    self.node.election_clock().since(),
                    ours,
                    req.last_log_id,
                ))
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
