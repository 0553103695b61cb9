//! The composition root of one WolfScale node: opens the WAL and state db, settles the
//! node's identity (bootstrap, restart or join), starts openraft over the transport, and
//! owns every background task until shutdown. It adds no consensus rules of its own:
//! elections, commits and membership changes all go through openraft; only *when* a
//! follower stands for election is decided here (`election`), and when a node cut off
//! from its majority stops taking writes and says so (`quorum`).

mod admin;
mod backend;
mod batch;
pub mod check;
mod election;
mod handler;
mod membership;
mod outcomes;
pub use outcomes::REPORT_INTERVAL as OUTCOME_REPORT_INTERVAL;
mod quorum;
mod registry;
mod remove;
pub mod resync;
pub mod retention;
mod run;
mod seed;
mod status;
mod transfer;
mod voting;
mod watch;

pub use backend::NodeBackend;
pub(crate) use outcomes::report_outcomes;
pub use retention::{RetentionPolicy, RetentionReport};
pub use run::run;
pub use seed::seed;
pub(crate) use watch::{observation, watch};

pub use quorum::Contact;
pub use status::{LocalStatus, Role};

use crate::config::{Config, Secrets};
use crate::consensus::election::ElectionClock;
use crate::consensus::log_store::LogStore;
use crate::consensus::network::{
    AdminDone, AdminError, AdminOp, ClusterError, Contacts, JoinAccepted, JoinRequest,
    NetworkFactory, PeerRequest, PeerResponse,
};
use crate::consensus::state_machine::{Applier, StateMachine};
use crate::consensus::{raft_config, NodeId, NodeInfo, Raft, Request, Requests, Response};
use crate::snapshot::{Manifest, Snapshots};
use crate::state::StateDb;
use crate::tls::{ClusterAcceptor, ClusterClient as Client, ClusterConnector, Tls};
use crate::transport::{self, AuthKey, ClientConfig, Identity, ServerConfig};
use crate::wal::{Wal, WalOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The transport's cluster name; the shared secret is what really keeps clusters apart.
const CLUSTER_NAME: &str = "wolfscale";
/// State db key of this node's identity once it belongs to a cluster.
const KEY_IDENTITY: &str = "node.identity";
/// State db key set once this node learns it was removed from the cluster.
const KEY_REMOVED: &str = "node.removed";
/// This data dir's identity before the node has a place in a cluster (see [`identity_token`]).
const KEY_TOKEN: &str = "node.identity_token";
/// How long one RPC between nodes for cluster management may take.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a joining node keeps asking while the cluster is busy (election, another
/// membership change).
const JOIN_PATIENCE: Duration = Duration::from_secs(30);
/// How long shutdown waits for consensus and tasks to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How a node starts.
#[derive(Debug, Clone)]
pub enum StartMode {
    /// Create a new one-node cluster; refused if the data dir already belongs to one.
    Bootstrap,
    /// Restart from the data dir, or join through `cluster.peers` if it has never joined.
    Start,
    /// Join through these members (any member; followers pass the request on).
    Join(Vec<String>),
}

/// Why a node could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// `--bootstrap` on a data dir that already belongs to a cluster.
    #[error("data dir {0} already belongs to a cluster (node {1}); start it without --bootstrap")]
    AlreadyBootstrapped(String, String),
    /// Plain `start` of a node that never joined and has no peers to join through.
    #[error(
        "this node has not joined a cluster: run `wolfscale start --bootstrap` on the first node, \
         or `wolfscale join HOST:PORT` (or set cluster.peers) on the others"
    )]
    NotJoined,
    /// The data dir was made by a node with another name.
    #[error("data dir belongs to node {found}, but node.id is {configured}")]
    WrongNode {
        /// Name stored in the data dir.
        found: String,
        /// Name in the config.
        configured: String,
    },
    /// The cluster refused or could not be reached to join.
    #[error("join failed: {0}")]
    Join(String),
    /// Plain `start` of a node that was removed from its cluster.
    #[error(
        "node {0} was removed from its cluster; to add it back, run `wolfscale join HOST:PORT` \
         through any member"
    )]
    Removed(String),
    /// Opening the WAL failed.
    #[error(transparent)]
    Wal(#[from] crate::wal::Error),
    /// Opening or writing the state db failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The transport could not start.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// openraft refused to start or failed.
    #[error("consensus: {0}")]
    Raft(String),
    /// The address to advertise cannot be worked out.
    #[error("{0}")]
    Config(String),
    /// The snapshot directory or a snapshot operation failed.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::Error),
}

/// This node's place in the cluster, kept in the state db.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NodeIdentity {
    name: String,
    number: NodeId,
    /// The random identity drawn at this data dir's first start (32 hex digits); absent
    /// in state dbs written before identities existed, and drawn at the next start.
    #[serde(default)]
    token: String,
}

/// This data dir's identity: the one recorded with its membership, or the one drawn at
/// an earlier start that has not joined yet, or a new one, written before any join asks
/// with it (a crash between an accepted join and the first record keeps it).
fn identity_token(state: &StateDb) -> Result<String, crate::state::StateError> {
    let known: Option<NodeIdentity> = state.get(KEY_IDENTITY)?;
    if let Some(t) = known.map(|k| k.token).filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    if let Some(t) = state.get::<String>(KEY_TOKEN)?.filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    let t = new_identity();
    state.put(KEY_TOKEN, &t)?;
    Ok(t)
}

/// A configured count as `usize` (validated to fit; at least 1).
fn limit(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// A fresh random node identity: 128 bits from the OS, as 32 hex digits.
fn new_identity() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running node; clones share it.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft,
    number: NodeId,
    info: NodeInfo,
    client: Client,
    /// The live `[tls]` configurations, when set (the API serves HTTPS with them).
    tls: Option<Arc<Tls>>,
    log_store: LogStore,
    /// Last contact with a leader or voter, for the election task.
    clock: Arc<ElectionClock>,
    config: Config,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    services: std::sync::OnceLock<Arc<dyn Services>>,
    /// Serialises membership changes and leadership transfers on the leader, so two
    /// concurrent joins can never be given the same number (each sees the membership the
    /// previous one committed) and a transfer never races a change.
    admit_lock: tokio::sync::Mutex<()>,
    /// Held shared by every proposal while it is in flight (by the batcher for each batch
    /// entry); a leadership transfer holds it exclusively, so no entry is appended while
    /// the target catches up and campaigns.
    write_gate: Arc<tokio::sync::RwLock<()>>,
    /// The state db (node registry, removal mark).
    state: StateDb,
    /// Set once this node knows it is no longer a member: it then never starts elections.
    removed: AtomicBool,
    /// Set while a leadership transfer holds this leader quiet: the election task sends
    /// no heartbeats and does not stand.
    quiet: AtomicBool,
    /// When a leader last asked this node to campaign (leadership transfer).
    campaign_asked: std::sync::Mutex<Option<Instant>>,
    /// State transfer, when the applier has a database to copy.
    snapshots: Option<Snapshots>,
    /// When each peer last answered (retention's "live member").
    contacts: Contacts,
    /// What retention keeps.
    retention: std::sync::Mutex<RetentionPolicy>,
    /// Wakes the retention task when the policy changes.
    retention_changed: tokio::sync::Notify,
    /// Puts concurrent client writes into shared log entries.
    batcher: batch::Batcher,
    /// When this node's leadership last had a majority's acknowledgement.
    quorum: quorum::QuorumClock,
}

/// What [`Node::snapshot_now`] did.
#[derive(Debug, Clone)]
pub struct SnapshotDone {
    /// The snapshot now current.
    pub manifest: Manifest,
    /// The retention pass run after it, when a purge was asked for.
    pub retention: Option<RetentionReport>,
    /// The first log entry still held after that.
    pub first_lsn: Option<u64>,
}

/// What the node serves to peers on behalf of its service layer
/// ([`crate::service::Service`]): forwarded writes, status and check questions. Set once,
/// after start.
pub trait Services: Send + Sync + 'static {
    /// Handles a write a follower forwarded (JSON in, JSON answer out).
    fn client_write(
        &self,
        body: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>;
    /// This node's status as JSON.
    fn status_json(&self) -> Vec<u8>;
    /// Answers a divergence-check question from a coordinator (JSON in, JSON out).
    fn check_answer(
        &self,
        body: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>;
}

impl Node {
    /// Starts a node: settles its identity, starts consensus and the cluster transport,
    /// and spawns its background tasks. Returns once the node is serving.
    ///
    /// # Errors
    /// [`NodeError`] saying what prevents the start and what to do.
    pub async fn start<A: Applier>(
        config: Config,
        secrets: &Secrets,
        mode: StartMode,
        applier: A,
    ) -> Result<Node, NodeError> {
        let info = NodeInfo {
            name: config.node.id.clone(),
            cluster_addr: advertised(&config)?,
            api_addr: if config.api.enabled {
                config.api.bind_address.clone()
            } else {
                String::new()
            },
            learner: !config.cluster.voter,
            // Set below from the state db, or drawn for a new data dir.
            identity: String::new(),
            retired: Default::default(),
        };
        let mut info = info;
        let snapshot_db = applier.snapshot_db();
        let state_dir = config.state_dir();
        let wal_dir = config.wal_dir();
        let wal_opts = WalOptions::from(&config.wal);
        let (state, wal, token) = tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
            let state = StateDb::open(&state_dir)?;
            let token = identity_token(&state)?;
            let wal = Wal::open(&wal_dir, wal_opts)?;
            Ok((state, wal, token))
        })
        .await
        .map_err(|e| NodeError::Raft(format!("startup task failed: {e}")))??;

        let key = AuthKey::new(secrets.cluster_secret.expose())?;
        let ident = Identity {
            cluster: CLUSTER_NAME.into(),
            node: info.name.clone(),
        };
        let mut client_cfg = ClientConfig::new(ident.clone(), key.clone());
        client_cfg.local_ip = source_ip(&config);
        let mut server_cfg = ServerConfig::new(ident.clone(), key.clone());
        server_cfg.max_connections = limit(config.cluster.max_connections);
        server_cfg.max_in_flight = limit(config.cluster.max_requests_per_connection);
        let tls = match config.tls.clone() {
            // Reads the PEM files: off the runtime, like the state db above.
            Some(t) => Some(
                tokio::task::spawn_blocking(move || Tls::load(&t))
                    .await
                    .map_err(|e| NodeError::Raft(format!("tls load task failed: {e}")))?
                    .map_err(|e| NodeError::Config(format!("[tls]: {e}")))?,
            ),
            None => None,
        };
        let client = Client::with_connector(client_cfg, ClusterConnector(tls.clone()));

        let known: Option<NodeIdentity> = state.get(KEY_IDENTITY)?;
        if let Some(k) = &known {
            if k.name != info.name {
                return Err(NodeError::WrongNode {
                    found: k.name.clone(),
                    configured: info.name.clone(),
                });
            }
        }
        info.identity = token;
        let has_history = known.is_some() || wal.last().is_some();
        let (number, bootstrap) = match (&mode, &known) {
            (StartMode::Bootstrap, _) if has_history => {
                return Err(NodeError::AlreadyBootstrapped(
                    config.data_dir().display().to_string(),
                    known.map(|k| k.name).unwrap_or_else(|| info.name.clone()),
                ))
            }
            (StartMode::Bootstrap, _) if !config.cluster.voter => {
                return Err(NodeError::Config(
                    "cluster.voter = false: the first node of a new cluster must vote; \
                     bootstrap a voter, then join this node (`wolfscale join --learner`)"
                        .into(),
                ))
            }
            (StartMode::Bootstrap, _) => (config.node.node_number.map_or(1, NodeId::from), true),
            (StartMode::Join(peers), _) => {
                // A removed node's number is retired: it asks for a new one.
                let removed = state.get::<RemovedMark>(KEY_REMOVED)?.is_some();
                let known = known.as_ref().filter(|_| !removed);
                (join(&client, peers, &info, &config, known).await?, false)
            }
            (StartMode::Start, Some(k)) => {
                if state.get::<RemovedMark>(KEY_REMOVED)?.is_some() {
                    return Err(NodeError::Removed(k.name.clone()));
                }
                (k.number, false)
            }
            (StartMode::Start, None) if !config.cluster.peers.is_empty() => (
                join(&client, &config.cluster.peers, &info, &config, None).await?,
                false,
            ),
            (StartMode::Start, None) => return Err(NodeError::NotJoined),
        };

        // Opening reads the WAL's last record from disk: off the runtime.
        let st = state.clone();
        let log_store =
            tokio::task::spawn_blocking(move || LogStore::open(wal, st).map_err(|e| e.to_string()))
                .await
                .map_err(|e| NodeError::Raft(format!("startup task failed: {e}")))?
                .map_err(NodeError::Raft)?;
        let snapshots = match snapshot_db {
            Some(db) => {
                let dir = config.snapshot_dir();
                Some(
                    tokio::task::spawn_blocking(move || Snapshots::open(&dir, db))
                        .await
                        .map_err(|e| NodeError::Raft(format!("startup task failed: {e}")))??,
                )
            }
            None => None,
        };
        let raft_cfg =
            Arc::new(raft_config(&config.cluster).map_err(|e| NodeError::Raft(e.to_string()))?);
        let clock = Arc::new(ElectionClock::new());
        let network = NetworkFactory::new(Arc::new(client.clone()), clock.clone());
        let contacts = network.contacts();
        let raft = Raft::new(
            number,
            raft_cfg,
            network,
            log_store.clone(),
            StateMachine::with_snapshots(applier, snapshots.clone()),
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;

        let listener = tokio::net::TcpListener::bind(&config.node.bind_address)
            .await
            .map_err(|e| {
                NodeError::Config(format!(
                    "cannot listen on node.bind_address {}: {e}",
                    config.node.bind_address
                ))
            })?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let write_gate = Arc::new(tokio::sync::RwLock::new(()));
        let (batcher, batching) =
            batch::Batcher::start(raft.clone(), write_gate.clone(), shutdown.clone());
        tasks.spawn(batching);
        let node = Node {
            inner: Arc::new(Inner {
                raft: raft.clone(),
                number,
                info: info.clone(),
                client,
                tls: tls.clone(),
                log_store,
                clock,
                shutdown: shutdown.clone(),
                tasks: tasks.clone(),
                services: std::sync::OnceLock::new(),
                admit_lock: tokio::sync::Mutex::new(()),
                write_gate,
                state: state.clone(),
                removed: AtomicBool::new(false),
                quiet: AtomicBool::new(false),
                campaign_asked: std::sync::Mutex::new(None),
                snapshots,
                contacts,
                retention: std::sync::Mutex::new(RetentionPolicy::from_config(&config.wal)),
                retention_changed: tokio::sync::Notify::new(),
                batcher,
                quorum: quorum::QuorumClock::default(),
                config,
            }),
        };
        let handler = Arc::new(handler::PeerHandler::new(node.clone()));
        tasks.spawn(transport::serve_with(
            listener,
            server_cfg,
            handler,
            ClusterAcceptor(tls.clone()),
            shutdown.clone(),
        ));
        if let Some(tls) = tls {
            tasks.spawn(tls.watch(shutdown.clone()));
        }

        if bootstrap {
            let members = BTreeMap::from([(number, info.clone())]);
            raft.initialize(members)
                .await
                .map_err(|e| NodeError::Raft(format!("bootstrap failed: {e}")))?;
            tracing::info!(node_id = %info.name, number, "bootstrapped a new cluster");
        }
        let me = NodeIdentity {
            name: info.name.clone(),
            number,
            token: info.identity.clone(),
        };
        let st = state.clone();
        // A node that joins again after it was removed is a member once more.
        let rejoined = matches!(mode, StartMode::Join(_));
        tokio::task::spawn_blocking(move || {
            st.put(KEY_IDENTITY, &me)?;
            if rejoined {
                st.delete(KEY_REMOVED)?;
            }
            Ok::<_, crate::state::StateError>(())
        })
        .await
        .map_err(|e| NodeError::Raft(format!("startup task failed: {e}")))??;

        tasks.spawn(membership::promote_learners(node.clone()));
        tasks.spawn(election::run(node.clone()));
        tasks.spawn(quorum::run(node.clone()));
        tasks.spawn(registry::sync(node.clone()));
        tasks.spawn(retention::run(node.clone()));
        tracing::info!(node_id = %info.name, number, addr = %info.cluster_addr, "node started");
        Ok(node)
    }

    /// Installs the client-facing services peers may call (once).
    pub fn set_services(&self, services: Arc<dyn Services>) {
        if self.inner.services.set(services).is_err() {
            tracing::warn!("node services were already set; keeping the first");
        }
    }

    pub(crate) async fn admission(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.admit_lock.lock().await
    }

    pub(crate) fn services(&self) -> Option<Arc<dyn Services>> {
        self.inner.services.get().cloned()
    }

    /// Spawns a task the node owns and waits for at shutdown.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(task);
    }

    /// The consensus handle.
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// This node's number.
    pub fn number(&self) -> NodeId {
        self.inner.number
    }

    /// This node's name and addresses.
    pub fn info(&self) -> &NodeInfo {
        &self.inner.info
    }

    /// The live TLS configurations, when `[tls]` is set.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.inner.tls.clone()
    }

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The log store (for status and inspection).
    pub fn log_store(&self) -> &LogStore {
        &self.inner.log_store
    }

    /// Contact with leaders and voters, which the election task reads.
    pub(crate) fn election_clock(&self) -> &ElectionClock {
        &self.inner.clock
    }

    /// How this node stands with the cluster's majority now: whether it may take writes
    /// and linearizable reads (see `quorum`).
    pub fn contact(&self) -> Contact {
        quorum::contact(self)
    }

    /// State transfer, when the applier has a database to copy.
    pub fn snapshots(&self) -> Option<&Snapshots> {
        self.inner.snapshots.as_ref()
    }

    /// When each peer last answered this node's Raft RPCs.
    pub fn contacts(&self) -> &Contacts {
        &self.inner.contacts
    }

    /// The retention policy in force.
    pub fn retention_policy(&self) -> RetentionPolicy {
        self.inner
            .retention
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the retention policy; the retention task starts its next wait over.
    pub fn set_retention_policy(&self, policy: RetentionPolicy) {
        *self
            .inner
            .retention
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = policy;
        self.inner.retention_changed.notify_one();
    }

    pub(crate) async fn retention_changed(&self) {
        self.inner.retention_changed.notified().await
    }

    /// Runs a retention pass now; `force` ignores segment age (everything the snapshot
    /// covers and no live member needs goes).
    pub async fn retention_pass(&self, force: bool) -> RetentionReport {
        let policy = self.retention_policy();
        // On demand: a snapshot, if needed, may be asked for at once.
        let mut last = None;
        retention::pass(self, &policy, force, &mut last).await
    }

    /// Takes a snapshot now (through openraft, which then knows it) and waits for it;
    /// with `purge`, then purges every segment it covers that no live member needs.
    ///
    /// # Errors
    /// This node cannot take snapshots, consensus stopped, or the build failed.
    pub async fn snapshot_now(&self, purge: bool) -> Result<SnapshotDone, NodeError> {
        let Some(s) = self.snapshots() else {
            return Err(NodeError::Config(
                "this node cannot take snapshots (its applier has no database to copy)".into(),
            ));
        };
        let wanted = self.raft().metrics().borrow().last_applied.map(|l| l.index);
        let token = self.shutdown_token();
        let mut manifest = None;
        // A build already running when asked may predate the request: then ask again.
        for _ in 0..2 {
            let before = s.builds();
            self.raft()
                .trigger()
                .snapshot()
                .await
                .map_err(|e| NodeError::Raft(e.to_string()))?;
            while s.builds() == before {
                tokio::select! {
                    _ = token.cancelled() => return Err(NodeError::Raft("node is stopping".into())),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            if let Some(e) = s.last_build_error() {
                return Err(NodeError::Snapshot(crate::snapshot::Error::Invalid(e)));
            }
            let m = s.latest().await?;
            let done = m.as_ref().is_some_and(|m| Some(m.index()) >= wanted);
            manifest = m;
            if done {
                break;
            }
        }
        let manifest = manifest.ok_or_else(|| {
            NodeError::Snapshot(crate::snapshot::Error::Invalid(
                "the snapshot was built but is not in the snapshot directory".into(),
            ))
        })?;
        // openraft learns of the build asynchronously; purging is clamped to what it knows.
        let known = |n: &Node| n.raft().metrics().borrow().snapshot >= manifest.last_log_id;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !known(self) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let retention = if purge {
            let r = self.retention_pass(true).await;
            if let Some(upto) = r.purge_upto {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while self.raft().metrics().borrow().purged.map(|l| l.index) < Some(upto)
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Some(r)
        } else {
            None
        };
        Ok(SnapshotDone {
            manifest,
            retention,
            first_lsn: self.log_store().wal().first().map(|(lsn, _)| lsn),
        })
    }

    /// The transport client shared with consensus.
    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// A token cancelled when the node shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Proposes a prepared entry on this node if it leads: DDL and check barriers in a
    /// log entry of their own, anything else batched (see `batch`). This is the leader's
    /// half of the write path; clients write through [`crate::service::Service::write`],
    /// which prepares the entry and forwards to the leader from a follower.
    ///
    /// # Errors
    /// [`ClusterError::NotLeader`] (naming the leader) or [`ClusterError::NoLeader`]
    /// before anything was appended, so the request may go elsewhere;
    /// [`ClusterError::Unknown`] or [`ClusterError::Failed`] when it may have been
    /// appended (never retry those: the write could apply twice).
    pub async fn propose_local(&self, request: Request) -> Result<(u64, Response), ClusterError> {
        let ddl = crate::command::Entry::decode(&request.payload)
            .is_ok_and(|entry| entry.command.alone_in_entry());
        if !ddl {
            self.propose_local_batched(request).await
        } else {
            self.propose_local_alone(request).await
        }
    }

    /// Proposes a non-DDL command on this node if it leads, in a log entry shared with
    /// other writes that arrive meanwhile (see `batch`).
    pub(crate) async fn propose_local_batched(
        &self,
        request: Request,
    ) -> Result<(u64, Response), ClusterError> {
        self.inner.batcher.propose(request).await
    }

    /// Proposes on this node if it leads, in a log entry of its own (DDL must apply
    /// alone).
    pub(crate) async fn propose_local_alone(
        &self,
        request: Request,
    ) -> Result<(u64, Response), ClusterError> {
        if let Some(refusal) = batch::not_leading(&self.inner.raft) {
            return Err(refusal);
        }
        match self.client_write(Requests::one(request)).await {
            Ok(resp) => {
                let lsn = resp.log_id.index;
                resp.data
                    .0
                    .into_iter()
                    .next()
                    .map(|r| (lsn, r))
                    .ok_or_else(|| {
                        ClusterError::Failed(format!("the entry at lsn {lsn} has no answer"))
                    })
            }
            Err(Refusal::Paused) => Err(ClusterError::NoLeader),
            // Proposed while leading: appended, so the outcome is unknown (see batch.rs).
            Err(Refusal::Raft(e)) => match (*e).into_forward_to_leader::<NodeInfo>() {
                Some(_) => Err(ClusterError::Unknown),
                None => Err(ClusterError::Failed("consensus stopped".into())),
            },
        }
    }

    /// On the leader: confirms with a quorum that it still leads and returns the LSN a
    /// linearizable read must see applied (openraft's read index). A leader that cannot
    /// reach a majority answers [`ClusterError::NoLeader`]; another node, who leads.
    pub(crate) async fn read_index(&self) -> Result<u64, ClusterError> {
        if self.contact().lost {
            // It would wait for a quorum that cannot answer: refuse at once.
            return Err(ClusterError::NoLeader);
        }
        match self.inner.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map_or(0, |l| l.index)),
            Err(openraft::error::RaftError::APIError(
                openraft::error::CheckIsLeaderError::QuorumNotEnough(_),
            )) => Err(ClusterError::NoLeader),
            Err(e) => Err(self.not_leader(e.into_forward_to_leader())),
        }
    }

    /// Hands `request` to consensus, unless a leadership transfer holds proposals back
    /// (the transfer needs the log to stand still while the target catches up).
    pub(crate) async fn client_write(
        &self,
        requests: Requests,
    ) -> Result<openraft::raft::ClientWriteResponse<crate::consensus::TypeConfig>, Refusal> {
        let Ok(_in_flight) = self.inner.write_gate.try_read() else {
            return Err(Refusal::Paused);
        };
        self.inner
            .raft
            .client_write(requests)
            .await
            .map_err(|e| Refusal::Raft(Box::new(e)))
    }

    /// Turns openraft's forward-to-leader answer into ours.
    fn not_leader(
        &self,
        fwd: Option<openraft::error::ForwardToLeader<NodeId, NodeInfo>>,
    ) -> ClusterError {
        match fwd {
            Some(f) => match (f.leader_id, f.leader_node) {
                (Some(id), Some(node)) => ClusterError::NotLeader(id, node),
                _ => ClusterError::NoLeader,
            },
            None => ClusterError::Failed("consensus stopped".into()),
        }
    }

    /// Removes a member, named or numbered by `node` (a voter or a learner, running or
    /// down, the leader included), through the leader; answers once the membership without
    /// it is committed.
    ///
    /// # Errors
    /// [`AdminError`]: unknown node, a change that would leave no quorum (or no voter), no
    /// leader, another change in progress, or a timeout.
    pub async fn remove_member(&self, node: &str) -> Result<AdminDone, AdminError> {
        let op = AdminOp::Remove {
            node: node.to_string(),
        };
        let me = self.clone();
        self.owned(async move { admin::run(&me, op).await }).await
    }

    /// Makes the voter named or numbered by `node` the leader, through the current leader;
    /// answers once it leads.
    ///
    /// # Errors
    /// [`AdminError`]: unknown node, a learner, no leader, or the target did not win in time.
    pub async fn transfer_leader(&self, node: &str) -> Result<AdminDone, AdminError> {
        let op = AdminOp::TransferLeader {
            node: node.to_string(),
        };
        let me = self.clone();
        self.owned(async move { admin::run(&me, op).await }).await
    }

    /// Makes the learner named or numbered by `node` a voter, through the leader; answers
    /// once the membership with its vote is committed.
    ///
    /// # Errors
    /// [`AdminError`]: unknown node, a learner too far behind, no leader, or a timeout.
    pub async fn promote_member(&self, node: &str) -> Result<AdminDone, AdminError> {
        let op = AdminOp::Promote {
            node: node.to_string(),
        };
        let me = self.clone();
        self.owned(async move { admin::run(&me, op).await }).await
    }

    /// Makes the voter named or numbered by `node` a non-voting learner, through the
    /// leader; answers once the membership without its vote is committed.
    ///
    /// # Errors
    /// [`AdminError`]: unknown node, the leader itself, the last voter, a change that
    /// would leave no quorum, no leader, or a timeout.
    pub async fn demote_member(&self, node: &str) -> Result<AdminDone, AdminError> {
        let op = AdminOp::Demote {
            node: node.to_string(),
        };
        let me = self.clone();
        self.owned(async move { admin::run(&me, op).await }).await
    }

    /// Runs a cluster operation as a task the node owns, so it completes even when the
    /// caller goes away (a membership change must not stop between its two steps); it is
    /// given up only at shutdown.
    pub(crate) async fn owned(
        &self,
        op: impl std::future::Future<Output = Result<AdminDone, AdminError>> + Send + 'static,
    ) -> Result<AdminDone, AdminError> {
        let token = self.shutdown_token();
        let task = self.inner.tasks.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => Err(AdminError::Busy("the node is shutting down".into())),
                r = op => r,
            }
        });
        task.await
            .map_err(|e| AdminError::Failed(format!("cluster operation task failed: {e}")))?
    }

    /// Whether a leadership transfer holds this node quiet (no heartbeats, no standing).
    pub(crate) fn is_quiet(&self) -> bool {
        self.inner.quiet.load(Ordering::SeqCst)
    }

    /// Holds this node quiet, or lets it speak again.
    pub(crate) fn set_quiet(&self, quiet: bool) {
        self.inner.quiet.store(quiet, Ordering::SeqCst);
    }

    /// Records that the leader asked this node to campaign for a leadership transfer.
    pub(crate) fn note_campaign(&self) {
        if let Ok(mut at) = self.inner.campaign_asked.lock() {
            *at = Some(Instant::now());
        }
    }

    /// Whether the leader asked this node to campaign within `window`: while it does, it
    /// refuses pre-votes, so a third node timing out under the quiet leader cannot win
    /// the election meant for this one.
    pub(crate) fn campaigned_within(&self, window: Duration) -> bool {
        self.inner
            .campaign_asked
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < window)
    }

    /// Whether this node knows it was removed from the cluster.
    pub fn is_removed(&self) -> bool {
        self.inner.removed.load(Ordering::SeqCst)
    }

    /// Records that this node is no longer a member: it stops starting elections, reports
    /// itself removed, and refuses a later plain `start`.
    pub(crate) fn mark_removed(&self, reason: &str) {
        if self.inner.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.raft.runtime_config().elect(false);
        tracing::warn!(
            node_id = %self.inner.info.name,
            reason,
            "this node was removed from the cluster: it no longer votes or starts elections; \
             to add it back, run `wolfscale join HOST:PORT`"
        );
        let state = self.inner.state.clone();
        let mark = RemovedMark {
            reason: reason.to_string(),
        };
        self.spawn(async move {
            let put = tokio::task::spawn_blocking(move || state.put(KEY_REMOVED, &mark)).await;
            match put {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot record the removal"),
                Err(e) => tracing::error!(error = %e, "cannot record the removal"),
            }
        });
    }

    /// The state db.
    pub(crate) fn state(&self) -> &StateDb {
        &self.inner.state
    }

    /// This node's view of itself.
    pub fn status(&self) -> LocalStatus {
        status::local(self)
    }

    /// Stops accepting, stops consensus and every task, and flushes the WAL.
    ///
    /// # Errors
    /// When consensus or the WAL fail to stop cleanly.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        tracing::info!("stopping consensus and tasks");
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        let raft = self.inner.raft.clone();
        // Every acknowledged entry is already fsync'd, so a consensus engine that does not
        // stop in time (openraft 0.9 can wait on a peer that went away at the same moment)
        // must not keep the process alive: stop waiting and close the WAL.
        match tokio::time::timeout(SHUTDOWN_GRACE, raft.shutdown()).await {
            Ok(r) => r.map_err(|e| NodeError::Raft(format!("shutdown: {e}")))?,
            Err(_) => {
                tracing::warn!(after = ?SHUTDOWN_GRACE, "consensus did not stop in time; closing anyway")
            }
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(after = ?SHUTDOWN_GRACE, "background tasks did not stop in time; closing anyway");
        }
        tracing::info!("closing the wal");
        let wal = self.inner.log_store.wal().clone();
        tokio::task::spawn_blocking(move || wal.close())
            .await
            .map_err(|e| NodeError::Raft(format!("shutdown task failed: {e}")))??;
        tracing::info!(node_id = %self.inner.info.name, "node stopped");
        Ok(())
    }
}

/// Why a proposal was not handed to consensus.
pub(crate) enum Refusal {
    /// A leadership transfer holds proposals back; the caller answers "no leader".
    Paused,
    /// openraft refused it (not the leader, or stopped); boxed, as openraft's error is
    /// large and this is the rare path.
    Raft(
        Box<
            openraft::error::RaftError<
                NodeId,
                openraft::error::ClientWriteError<NodeId, crate::consensus::NodeInfo>,
            >,
        >,
    ),
}

/// What the state db keeps about this node's removal.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RemovedMark {
    /// How the node learnt it (for the operator reading the db).
    reason: String,
}

/// The cluster address others dial: `advertise_address`, or a non-wildcard bind address.
/// The source address of this node's outgoing cluster connections: the IP of
/// `node.bind_address` when it names one (not a wildcard), so that peers and firewalls see
/// cluster traffic come from the address the node listens on.
fn source_ip(config: &Config) -> Option<std::net::IpAddr> {
    config
        .node
        .bind_address
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified())
}

fn advertised(config: &Config) -> Result<String, NodeError> {
    if let Some(a) = &config.node.advertise_address {
        return Ok(a.clone());
    }
    match config.node.bind_address.parse::<std::net::SocketAddr>() {
        Ok(a) if !a.ip().is_unspecified() => Ok(a.to_string()),
        _ => Err(NodeError::Config(format!(
            "node.bind_address {} is a wildcard: set node.advertise_address to the address other nodes dial",
            config.node.bind_address
        ))),
    }
}

/// Asks the cluster, through each of `peers` in turn, to admit this node; returns the
/// number it must run as.
async fn join(
    client: &Client,
    peers: &[String],
    info: &NodeInfo,
    config: &Config,
    known: Option<&NodeIdentity>,
) -> Result<NodeId, NodeError> {
    let req = JoinRequest {
        name: info.name.clone(),
        number: known
            .map(|k| k.number)
            .or(config.node.node_number.map(NodeId::from)),
        identity: info.identity.clone(),
        cluster_addr: info.cluster_addr.clone(),
        api_addr: info.api_addr.clone(),
        learner: info.learner,
        forwarded: false,
    };
    // Another membership change (e.g. the previous joiner's promotion) or an election
    // may be in flight: keep asking for a while before giving up.
    let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
    let mut last = String::from("no peers given");
    loop {
        for peer in peers {
            match client
                .call::<_, PeerResponse>(peer, &PeerRequest::Join(req.clone()), ADMIN_TIMEOUT)
                .await
            {
                Ok(PeerResponse::Join(Ok(JoinAccepted { number, leader }))) => {
                    tracing::info!(peer = %peer, number, leader, "joined the cluster");
                    return Ok(number);
                }
                Ok(PeerResponse::Join(Err(e @ ClusterError::Conflict(_)))) => {
                    return Err(NodeError::Join(e.to_string()))
                }
                Ok(PeerResponse::Join(Err(e))) => last = format!("{peer}: {e}"),
                Ok(_) => last = format!("{peer}: answered with the wrong message"),
                Err(e) => last = e.to_string(),
            }
        }
        if tokio::time::Instant::now() >= deadline || peers.is_empty() {
            return Err(NodeError::Join(last));
        }
        tracing::info!(reason = %last, "join not accepted yet; retrying");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
