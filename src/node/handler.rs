//! Serves what other nodes ask over the cluster transport: openraft's RPCs go straight to
//! the local Raft; joins and forwarded writes are handled by the leader (a follower
//! passes a join on once; a forwarded write is never forwarded again).

use super::{membership, Node};
use crate::consensus::network::{PeerRequest, PeerResponse};
use crate::transport::{Handler, PeerInfo};

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
            PeerRequest::Append(rpc) => PeerResponse::Append(raft.append_entries(rpc).await),
            PeerRequest::Vote(rpc) => PeerResponse::Vote(raft.vote(rpc).await),
            PeerRequest::Snapshot(rpc) => {
                let snapshots = self.node.snapshots();
                let (id, done) = (rpc.meta.snapshot_id.clone(), rpc.done);
                if let Some(s) = snapshots {
                    s.receiving(&id);
                }
                let answer = raft.install_snapshot(rpc).await;
                if let (Some(s), true) = (snapshots, done) {
                    // Installed (the load ended the transfer) or not needed: not syncing.
                    s.received(&id);
                }
                PeerResponse::Snapshot(answer)
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
