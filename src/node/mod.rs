//! The composition root of one WolfScale node: opens the WAL and state db, settles the
//! node's identity (bootstrap, restart or join), starts openraft over the transport, and
//! owns every background task until shutdown. It adds no consensus rules of its own:
//! elections, commits and membership changes all go through openraft.

mod backend;
mod batch;
mod handler;
mod membership;
mod run;
mod status;

pub use backend::NodeBackend;
pub use run::run;

pub use status::{LocalStatus, Role};

use crate::config::{Config, Secrets};
use crate::consensus::log_store::LogStore;
use crate::consensus::network::{
    ClusterError, JoinAccepted, JoinRequest, NetworkFactory, PeerRequest, PeerResponse,
};
use crate::consensus::state_machine::{Applier, StateMachine};
use crate::consensus::{raft_config, NodeId, NodeInfo, Raft, Request, Response};
use crate::state::StateDb;
use crate::transport::{self, AuthKey, Client, ClientConfig, Identity, ServerConfig};
use crate::wal::{Wal, WalOptions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The transport's cluster name; the shared secret is what really keeps clusters apart.
const CLUSTER_NAME: &str = "wolfscale";
/// State db key of this node's identity once it belongs to a cluster.
const KEY_IDENTITY: &str = "node.identity";
/// How long one RPC between nodes for cluster management may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
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
}

/// This node's place in the cluster, kept in the state db.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NodeIdentity {
    name: String,
    number: NodeId,
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
    log_store: LogStore,
    config: Config,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    services: std::sync::OnceLock<Arc<dyn Services>>,
    /// Serialises admissions on the leader, so two concurrent joins can never be given
    /// the same number (each sees the membership the previous one committed).
    admit_lock: tokio::sync::Mutex<()>,
    /// Puts concurrent client writes into shared log entries.
    batcher: batch::Batcher,
}

/// What the node serves to peers on behalf of its client-facing layer (the HTTP API's
/// backend): forwarded writes and status. Set once, after start.
pub trait Services: Send + Sync + 'static {
    /// Handles a write a follower forwarded (JSON in, JSON answer out).
    fn client_write(
        &self,
        body: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>>;
    /// This node's status as JSON.
    fn status_json(&self) -> Vec<u8>;
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
        };
        let state_dir = config.state_dir();
        let wal_dir = config.wal_dir();
        let wal_opts = WalOptions::from(&config.wal);
        let (state, wal) = tokio::task::spawn_blocking(move || -> Result<_, NodeError> {
            let state = StateDb::open(&state_dir)?;
            let wal = Wal::open(&wal_dir, wal_opts)?;
            Ok((state, wal))
        })
        .await
        .map_err(|e| NodeError::Raft(format!("startup task failed: {e}")))??;

        let key = AuthKey::new(secrets.cluster_secret.expose())?;
        let ident = Identity {
            cluster: CLUSTER_NAME.into(),
            node: info.name.clone(),
        };
        let client = Client::new(ClientConfig::new(ident.clone(), key.clone()));

        let known: Option<NodeIdentity> = state.get(KEY_IDENTITY)?;
        if let Some(k) = &known {
            if k.name != info.name {
                return Err(NodeError::WrongNode {
                    found: k.name.clone(),
                    configured: info.name.clone(),
                });
            }
        }
        let has_history = known.is_some() || wal.last().is_some();
        let (number, bootstrap) = match (&mode, &known) {
            (StartMode::Bootstrap, _) if has_history => {
                return Err(NodeError::AlreadyBootstrapped(
                    config.data_dir().display().to_string(),
                    known.map(|k| k.name).unwrap_or_else(|| info.name.clone()),
                ))
            }
            (StartMode::Bootstrap, _) => (config.node.node_number.map_or(1, NodeId::from), true),
            (StartMode::Join(peers), _) => (
                join(&client, peers, &info, &config, known.as_ref()).await?,
                false,
            ),
            (StartMode::Start, Some(k)) => (k.number, false),
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
        let raft_cfg =
            Arc::new(raft_config(&config.cluster).map_err(|e| NodeError::Raft(e.to_string()))?);
        let raft = Raft::new(
            number,
            raft_cfg,
            NetworkFactory::new(Arc::new(client.clone())),
            log_store.clone(),
            StateMachine::new(applier),
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
        let (batcher, batching) = batch::Batcher::start(raft.clone(), shutdown.clone());
        tasks.spawn(batching);
        let node = Node {
            inner: Arc::new(Inner {
                raft: raft.clone(),
                number,
                info: info.clone(),
                client,
                log_store,
                config,
                shutdown: shutdown.clone(),
                tasks: tasks.clone(),
                services: std::sync::OnceLock::new(),
                admit_lock: tokio::sync::Mutex::new(()),
                batcher,
            }),
        };
        let handler = Arc::new(handler::PeerHandler::new(node.clone()));
        tasks.spawn(transport::serve(
            listener,
            ServerConfig::new(ident, key),
            handler,
            shutdown.clone(),
        ));

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
        };
        let st = state.clone();
        tokio::task::spawn_blocking(move || st.put(KEY_IDENTITY, &me))
            .await
            .map_err(|e| NodeError::Raft(format!("startup task failed: {e}")))??;

        tasks.spawn(membership::promote_learners(node.clone()));
        tasks.spawn(membership::election_watchdog(node.clone()));
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

    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The log store (for status and inspection).
    pub fn log_store(&self) -> &LogStore {
        &self.inner.log_store
    }

    /// The transport client shared with consensus.
    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// A token cancelled when the node shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Replicates `request` through the leader and returns its LSN and apply result.
    /// On a follower the request is forwarded to the leader, retried once after a leader
    /// change.
    ///
    /// # Errors
    /// [`ClusterError::NoLeader`] during an election (retry shortly), or what the leader
    /// reported.
    pub async fn propose(&self, request: Request) -> Result<(u64, Response), ClusterError> {
        let mut last = ClusterError::NoLeader;
        for attempt in 0..2 {
            if attempt > 0 {
                // Give an election a moment to finish before the retry.
                tokio::time::sleep(Duration::from_millis(
                    self.inner.config.cluster.heartbeat_interval_ms,
                ))
                .await;
            }
            match self.propose_local(request.clone()).await {
                Err(ClusterError::NotLeader(_, leader)) => {
                    match self
                        .inner
                        .client
                        .call::<_, PeerResponse>(
                            &leader.cluster_addr,
                            &PeerRequest::Write(request.clone()),
                            ADMIN_TIMEOUT,
                        )
                        .await
                    {
                        Ok(PeerResponse::Write(r)) => match r {
                            Err(e @ (ClusterError::NotLeader(..) | ClusterError::NoLeader)) => {
                                last = e
                            }
                            other => return other,
                        },
                        Ok(_) => {
                            return Err(ClusterError::Failed(
                                "leader answered with the wrong message".into(),
                            ))
                        }
                        Err(e) => {
                            last = ClusterError::Failed(format!(
                                "forwarding to the leader failed: {e}"
                            ))
                        }
                    }
                }
                Err(ClusterError::NoLeader) => last = ClusterError::NoLeader,
                other => return other,
            }
        }
        Err(last)
    }

    /// Proposes on this node if it leads, in a log entry shared with other writes that
    /// arrive meanwhile (see `batch`).
    pub(crate) async fn propose_local(
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
        batch::propose_alone(self, request).await
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

    /// Removes node `number` from the cluster (run on the leader).
    ///
    /// # Errors
    /// [`ClusterError`] when this node does not lead or the change fails.
    pub async fn remove_node(&self, number: NodeId) -> Result<(), ClusterError> {
        membership::remove(self, number).await
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

/// The cluster address others dial: `advertise_address`, or a non-wildcard bind address.
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
        cluster_addr: info.cluster_addr.clone(),
        api_addr: info.api_addr.clone(),
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
