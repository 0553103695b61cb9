//! openraft's network over the cluster transport, and the messages nodes exchange: the
//! three Raft RPCs plus the cluster-management requests (join, forwarded writes, status)
//! that ride the same authenticated connections.

use super::{NodeId, NodeInfo, Request, Response, TypeConfig};
use crate::transport::{self, Client};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::RPCTypes;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything one node asks another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Raft: replicate entries / heartbeat.
    Append(AppendEntriesRequest<TypeConfig>),
    /// Raft: request a vote.
    Vote(VoteRequest<NodeId>),
    /// Raft: one chunk of a snapshot.
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A node asks to join the cluster (sent to any member; followers forward it).
    Join(JoinRequest),
    /// A follower forwards a client write to the leader.
    Write(Request),
    /// Ask a member who leads, for redirects.
    Leader,
    /// A follower forwards a client's write request (JSON, as the HTTP API received it)
    /// to the leader, which prepares and replicates it.
    ClientWrite(Vec<u8>),
    /// Ask a member for its own status (JSON).
    Status,
}

/// Answers to [`PeerRequest`], variant for variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// Answer to [`PeerRequest::Append`].
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`PeerRequest::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`PeerRequest::Snapshot`].
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// Answer to [`PeerRequest::Join`].
    Join(Result<JoinAccepted, ClusterError>),
    /// Answer to [`PeerRequest::Write`]: the leader's apply result, with its LSN.
    Write(Result<(u64, Response), ClusterError>),
    /// Answer to [`PeerRequest::Leader`].
    Leader(Option<(NodeId, NodeInfo)>),
    /// Answer to [`PeerRequest::ClientWrite`]: the leader's answer, JSON.
    ClientWrite(Vec<u8>),
    /// Answer to [`PeerRequest::Status`]: the member's status, JSON.
    Status(Vec<u8>),
}

/// A node's request to become a member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Its human name (`node.id`).
    pub name: String,
    /// The number it was configured with, if any; otherwise the leader assigns one.
    pub number: Option<NodeId>,
    /// Where its cluster transport listens.
    pub cluster_addr: String,
    /// Where its HTTP API listens ("" when disabled).
    pub api_addr: String,
    /// Set when a member passed the request on to the leader; never passed on twice.
    pub forwarded: bool,
}

/// The leader's answer to a join: the node's number and who leads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinAccepted {
    /// The number the node must run as.
    pub number: NodeId,
    /// The leader that admitted it.
    pub leader: NodeId,
}

/// Cluster-level failures a peer reports back, worded for an operator.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum ClusterError {
    /// No leader right now (an election is running); retry shortly.
    #[error("no leader is elected right now; retry shortly")]
    NoLeader,
    /// This node is not the leader; the request should go to `leader`.
    #[error("not the leader; the leader is node {0}")]
    NotLeader(NodeId, NodeInfo),
    /// The name or number is taken by another member.
    #[error("{0}")]
    Conflict(String),
    /// Something else failed on the peer.
    #[error("{0}")]
    Failed(String),
}

/// When each peer last answered a Raft RPC: retention counts a member as live (its
/// needs protected) while it keeps answering.
#[derive(Debug, Clone, Default)]
pub struct Contacts {
    seen: Arc<Mutex<HashMap<NodeId, Instant>>>,
}

impl Contacts {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Instant>> {
        // Plain timestamps: a panic while holding the lock cannot break them.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an answer from `peer` now.
    pub fn seen(&self, peer: NodeId) {
        self.map().insert(peer, Instant::now());
    }

    /// How long ago `peer` last answered, if it ever did.
    pub fn since(&self, peer: NodeId) -> Option<Duration> {
        self.map().get(&peer).map(Instant::elapsed)
    }
}

/// Creates one [`Network`] per target; they share the transport client (one persistent
/// connection per peer).
#[derive(Clone)]
pub struct NetworkFactory {
    client: Arc<Client>,
    contacts: Contacts,
}

impl NetworkFactory {
    /// Builds the factory over a transport client.
    pub fn new(client: Arc<Client>) -> Self {
        NetworkFactory {
            client,
            contacts: Contacts::default(),
        }
    }

    /// When each peer last answered.
    pub fn contacts(&self) -> Contacts {
        self.contacts.clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> Network {
        Network {
            client: self.client.clone(),
            target,
            node: node.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

/// openraft's connection to one peer.
pub struct Network {
    client: Arc<Client>,
    target: NodeId,
    node: NodeInfo,
    contacts: Contacts,
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>;

impl Network {
    async fn call<E: std::error::Error>(
        &self,
        kind: RPCTypes,
        req: PeerRequest,
        option: &RPCOption,
    ) -> Result<PeerResponse, RpcErr<E>> {
        let ttl = option.hard_ttl();
        let answer = self
            .client
            .call::<PeerRequest, PeerResponse>(&self.node.cluster_addr, &req, ttl)
            .await;
        if answer.is_ok() {
            self.contacts.seen(self.target);
        }
        answer.map_err(|e| match e {
            transport::Error::Timeout { .. } => RPCError::Timeout(Timeout {
                action: kind,
                id: 0,
                target: self.target,
                timeout: ttl,
            }),
            transport::Error::Unreachable { .. }
            | transport::Error::AuthFailed { .. }
            | transport::Error::Incompatible { .. }
            | transport::Error::Closed => RPCError::Unreachable(Unreachable::new(&e)),
            _ => RPCError::Network(NetworkError::new(&e)),
        })
    }

    fn remote<E: std::error::Error>(&self, e: RaftError<NodeId, E>) -> RpcErr<E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.node.clone(),
            e,
        ))
    }
}

/// A peer answered with the wrong variant: a protocol bug, reported as a network error.
#[derive(Debug, thiserror::Error)]
#[error("peer answered a {0} request with another kind of response")]
struct Mismatch(&'static str);

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        match self
            .call(RPCTypes::AppendEntries, PeerRequest::Append(rpc), &option)
            .await?
        {
            PeerResponse::Append(r) => r.map_err(|e| self.remote(e)),
            _ => Err(RPCError::Network(NetworkError::new(&Mismatch("append")))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        match self
            .call(RPCTypes::Vote, PeerRequest::Vote(rpc), &option)
            .await?
        {
            PeerResponse::Vote(r) => r.map_err(|e| self.remote(e)),
            _ => Err(RPCError::Network(NetworkError::new(&Mismatch("vote")))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        match self
            .call(
                RPCTypes::InstallSnapshot,
                PeerRequest::Snapshot(rpc),
                &option,
            )
            .await?
        {
            PeerResponse::Snapshot(r) => r.map_err(|e| self.remote(e)),
            _ => Err(RPCError::Network(NetworkError::new(&Mismatch("snapshot")))),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Retry an unreachable peer quickly at first, then every 2 s: a restarted node
        // rejoins replication within about a heartbeat of coming back.
        let steps = [50u64, 100, 200, 400, 800, 1600]
            .into_iter()
            .chain(std::iter::repeat(2000));
        openraft::network::Backoff::new(steps.map(std::time::Duration::from_millis))
    }
}
