//! openraft's network over the cluster transport, and the messages nodes exchange: the
//! three Raft RPCs plus the pre-vote and the cluster-management requests (join, forwarded
//! writes, status) that ride the same authenticated connections.

use super::election::{ElectionClock, PreVoteAnswer, PreVoteRequest};
use super::{NodeId, NodeInfo, TypeConfig};
use crate::observe::stages::{self, Mark};
use crate::tls::ClusterClient as Client;
use crate::transport;
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
    /// Ask a member who leads, for redirects.
    Leader,
    /// A follower forwards a client's write request (JSON, as the HTTP API received it)
    /// to the leader, which prepares and replicates it.
    ClientWrite(Vec<u8>),
    /// Ask a member for its own status (JSON).
    Status,
    /// Ask a voter whether it would vote for the sender (before the sender stands).
    PreVote(PreVoteRequest),
    /// A cluster-management operation an operator asked a member for; followers pass it
    /// to the leader once.
    Admin {
        /// What to do.
        op: AdminOp,
        /// Set when a member passed the request on; never passed on twice.
        forwarded: bool,
    },
    /// The leader, transferring leadership, asks the target to start an election now.
    Campaign {
        /// The leader asking.
        from: NodeId,
        /// Its term; a target already past a later leader ignores the request.
        term: u64,
    },
    /// Ask a member whether node `number` still belongs to the cluster (answered with
    /// authority only by the leader).
    MemberCheck {
        /// The node asking about itself.
        number: NodeId,
    },
    /// The leader tells a node it removed that it is no longer a member; the node checks
    /// with the leader before acting on it.
    Removed,
    /// A follower serving a linearizable read asks the leader for the LSN it must have
    /// applied first; the leader confirms its leadership with a quorum before answering.
    ReadIndex,
    /// A divergence-check coordinator asks a member about its snapshot at a check barrier
    /// (JSON of `apply::check::CheckAsk`).
    Check(Vec<u8>),
    /// A node resyncing itself (DIVERGED, or changed behind WolfScale's back) asks the
    /// leader for a consistent copy of the database, one chunk at a time.
    SnapshotFetch(SnapshotFetch),
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
    /// Answer to [`PeerRequest::Leader`].
    Leader(Option<(NodeId, NodeInfo)>),
    /// Answer to [`PeerRequest::ClientWrite`]: the leader's answer, JSON.
    ClientWrite(Vec<u8>),
    /// Answer to [`PeerRequest::Status`]: the member's status, JSON.
    Status(Vec<u8>),
    /// Answer to [`PeerRequest::PreVote`].
    PreVote(PreVoteAnswer),
    /// Answer to [`PeerRequest::Admin`].
    Admin(Result<AdminDone, AdminError>),
    /// Answer to [`PeerRequest::Campaign`]: whether the target started an election.
    Campaign(Result<(), ClusterError>),
    /// Answer to [`PeerRequest::MemberCheck`].
    MemberCheck(MemberAnswer),
    /// Answer to [`PeerRequest::Removed`]: received.
    Removed,
    /// Answer to [`PeerRequest::ReadIndex`]: the LSN a linearizable read must wait for.
    ReadIndex(Result<u64, ClusterError>),
    /// Answer to [`PeerRequest::Check`] (JSON of `apply::check::CheckAnswer`).
    Check(Vec<u8>),
    /// Answer to [`PeerRequest::SnapshotFetch`].
    SnapshotFetch(Result<SnapshotChunk, ClusterError>),
}

/// One request of a resyncing node for a piece of the leader's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFetch {
    /// The resyncing node's applied LSN: the copy must reflect at least this entry, so
    /// the node can go on applying the log right after it.
    pub min_lsn: u64,
    /// `None` for the first piece (the leader then takes a fresh snapshot); afterwards
    /// the id the first answer named.
    pub snapshot: Option<String>,
    /// Byte offset of the piece wanted.
    pub offset: u64,
}

/// A piece of the leader's snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// Which snapshot, its position and membership (openraft's metadata).
    pub meta: openraft::storage::SnapshotMeta<NodeId, NodeInfo>,
    /// Where `data` starts in the file.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
    /// The file's size.
    pub total: u64,
}

/// A cluster-management operation; `node` is a member's name or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminOp {
    /// Take the node out of the cluster (voter or learner, up or down, leader included).
    Remove {
        /// Name or number of the member.
        node: String,
    },
    /// Make the node the leader.
    TransferLeader {
        /// Name or number of the member.
        node: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Name or number of the member.
        node: String,
    },
    /// Make a voter (or a learner waiting for promotion) a non-voting learner.
    Demote {
        /// Name or number of the member.
        node: String,
    },
}

/// What an [`AdminOp`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminDone {
    /// The node is no longer a member.
    Removed {
        /// Its name.
        name: String,
        /// Its number.
        number: NodeId,
        /// Log index of the membership that no longer holds it.
        lsn: u64,
        /// Names of the voters left.
        voters: Vec<String>,
        /// Names of the learners left.
        learners: Vec<String>,
    },
    /// The node leads.
    Transferred {
        /// The new leader's name.
        name: String,
        /// Its number.
        number: NodeId,
        /// The term it leads in.
        term: u64,
        /// The leader before the transfer.
        previous: String,
        /// The term before the transfer.
        previous_term: u64,
    },
    /// The node was promoted or demoted (or already had the role asked for).
    RoleChanged {
        /// Its name.
        name: String,
        /// Its number.
        number: NodeId,
        /// Log index of the membership that gives it its role.
        lsn: u64,
        /// Whether it now votes.
        voter: bool,
        /// Names of the voters.
        voters: Vec<String>,
        /// Names of the learners.
        learners: Vec<String>,
    },
}

/// Why an [`AdminOp`] was refused or failed, worded for an operator. Each variant is one
/// HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AdminError {
    /// 404: no member has that name or number.
    #[error("{0}")]
    UnknownNode(String),
    /// 409: the change is not allowed (last voter, no quorum left, not a voter, ...).
    #[error("{message}")]
    Refused {
        /// Stable code, e.g. `last_voter`.
        code: String,
        /// What is refused and why.
        message: String,
    },
    /// 503: no leader is elected right now; retry shortly.
    #[error("no leader is elected right now; retry shortly")]
    NoLeader,
    /// 503: another membership change or transfer is in progress; retry shortly.
    #[error("{0}")]
    Busy(String),
    /// 504: the operation did not finish in time (it may still complete).
    #[error("{0}")]
    Timeout(String),
    /// 500: an unexpected failure (consensus stopped, a peer answered nonsense).
    #[error("{0}")]
    Failed(String),
}

/// A member's answer to [`PeerRequest::MemberCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberAnswer {
    /// The answering node leads: whether the asker is in its membership, and the log id
    /// of that membership (only a newer membership than the asker's own settles it).
    Leader {
        /// The asker is a member (voter or learner).
        member: bool,
        /// Log id of the leader's membership in force.
        membership: Option<super::LogId>,
        /// The leader's term.
        term: u64,
    },
    /// The answering node does not lead; ask this one instead, if known.
    Ask(Option<NodeInfo>),
}

/// A node's request to become a member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Its human name (`node.id`).
    pub name: String,
    /// The number it was configured with, if any; otherwise the leader assigns one.
    pub number: Option<NodeId>,
    /// Its random identity, kept in its data dir (see [`NodeInfo::identity`]).
    pub identity: String,
    /// Where its cluster transport listens.
    pub cluster_addr: String,
    /// Where its HTTP API listens ("" when disabled).
    pub api_addr: String,
    /// Join as a non-voting replica that stays a learner until promoted.
    pub learner: bool,
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
    /// The write was appended to the leader's log, then leadership changed before the
    /// leader saw it commit: another member holding the entry may still commit it, so it
    /// may or may not be applied. Never answered as "not applied" (a retry could apply it
    /// twice).
    #[error("leadership changed while the write was in flight; it may or may not be applied")]
    Unknown,
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
/// connection per peer) and the node's [`ElectionClock`].
#[derive(Clone)]
pub struct NetworkFactory {
    client: Arc<Client>,
    clock: Arc<ElectionClock>,
    contacts: Contacts,
}

impl NetworkFactory {
    /// Builds the factory over a transport client; vote answers are reported to `clock`.
    pub fn new(client: Arc<Client>, clock: Arc<ElectionClock>) -> Self {
        NetworkFactory {
            client,
            clock,
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
            clock: self.clock.clone(),
            target,
            node: node.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

/// openraft's connection to one peer.
pub struct Network {
    client: Arc<Client>,
    clock: Arc<ElectionClock>,
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
            | transport::Error::Lost { .. }
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

/// Most request bytes one append message may carry: half a transport frame, leaving room
/// for the encoding's own overhead. Batched entries can be large (many requests each), and
/// a message over the frame limit would fail on every retry.
const APPEND_BYTES: usize = transport::frame::MAX_PAYLOAD / 2;

/// `None` when `entries` fit in `limit` request bytes (or are a single entry, which is sent
/// whole); otherwise how many leading entries do (at least one), as openraft's hint for a
/// smaller message.
fn entries_that_fit(entries: &[super::Entry], limit: usize) -> Option<u64> {
    if entries.len() < 2 {
        return None;
    }
    let mut bytes = 0usize;
    for (i, e) in entries.iter().enumerate() {
        if let openraft::EntryPayload::Normal(rs) = &e.payload {
            bytes =
                rs.0.iter()
                    .fold(bytes, |b, r| b.saturating_add(r.payload.len()));
        }
        if bytes > limit {
            return Some(u64::try_from(i.max(1)).unwrap_or(1));
        }
    }
    None
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
        if let Some(fit) = entries_that_fit(&rpc.entries, APPEND_BYTES) {
            return Err(RPCError::PayloadTooLarge(
                openraft::error::PayloadTooLarge::new_entries_hint(fit),
            ));
        }
        let span = rpc.entries.first().zip(rpc.entries.last());
        let span = span.map(|(f, l)| (f.log_id.index, l.log_id.index));
        if let Some((first, last)) = span {
            stages::mark_range(first, last, Mark::Sent);
        }
        match self
            .call(RPCTypes::AppendEntries, PeerRequest::Append(rpc), &option)
            .await?
        {
            PeerResponse::Append(r) => {
                if let (Some((first, last)), Ok(AppendEntriesResponse::Success)) = (span, &r) {
                    stages::mark_range(first, last, Mark::Acked);
                }
                r.map_err(|e| self.remote(e))
            }
            _ => Err(RPCError::Network(NetworkError::new(&Mismatch("append")))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        let ours = rpc.last_log_id;
        match self
            .call(RPCTypes::Vote, PeerRequest::Vote(rpc), &option)
            .await?
        {
            PeerResponse::Vote(r) => {
                if let Ok(resp) = &r {
                    if !resp.vote_granted && resp.last_log_id > ours {
                        self.clock.saw_longer_log();
                    }
                }
                r.map_err(|e| self.remote(e))
            }
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

#[cfg(test)]
mod append_size_tests {
    use super::entries_that_fit;
    use crate::consensus::{Entry, Request, Requests};
    use openraft::{CommittedLeaderId, EntryPayload, LogId};

    fn entry(index: u64, sizes: &[usize]) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Requests(
                sizes
                    .iter()
                    .map(|&n| Request {
                        payload: vec![0; n],
                    })
                    .collect(),
            )),
        }
    }

    #[test]
    fn append_messages_are_cut_where_the_request_bytes_pass_the_limit() {
        let small = vec![entry(1, &[10, 10]), entry(2, &[10])];
        assert_eq!(entries_that_fit(&small, 100), None);
        let big = vec![
            entry(1, &[40, 40]),
            entry(2, &[10]),
            entry(3, &[30]),
            entry(4, &[1]),
        ];
        // 80, 90, 120 > 100: the first two fit.
        assert_eq!(entries_that_fit(&big, 100), Some(2));
        // A first entry over the limit alone still goes, one at a time.
        assert_eq!(
            entries_that_fit(&[entry(1, &[500]), entry(2, &[1])], 100),
            Some(1)
        );
        assert_eq!(entries_that_fit(&[entry(1, &[500])], 100), None);
        let blank = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 9),
            payload: EntryPayload::Blank,
        };
        assert_eq!(entries_that_fit(&[blank.clone(), blank], 0), None);
    }
}
