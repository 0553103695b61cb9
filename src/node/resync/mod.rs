//! Resync: a node whose copy of the replicated database differs from the cluster's
//! (DIVERGED by outcome agreement, or named by `wolfscale check`) replaces it with a fresh
//! snapshot of the leader's and goes on applying the log from the snapshot's position.
//!
//! It reuses state transfer as it is: the leader takes a snapshot through openraft
//! ([`Node::snapshot_now`]) and hands the file out in pieces
//! ([`PeerRequest::SnapshotFetch`]); the node receives it into its snapshot directory and
//! installs it with [`crate::snapshot::Snapshots::install`] (verify, `INSTALLING` marker,
//! load, position recorded last), exactly as a joining node does. What differs is who asks:
//! openraft only sends a snapshot to a follower whose log entries were purged, and a
//! diverged node's log is complete, so the node asks the leader itself.
//!
//! While it runs, the node's applier is held between two batches
//! ([`crate::apply::ApplyStatus::pause`]): the snapshot must reflect at least the last
//! entry it applied (the leader waits until it has applied that far), so once the copy is
//! loaded the applier continues with the next log entry, answering those the copy already
//! holds as applied. The node is SYNCING meanwhile; the rest of the cluster keeps writing,
//! and the node keeps receiving log entries. Once the load has begun the applier stays held
//! until a load succeeds (a later resync, or the restart's `INSTALLING` redo), so nothing is
//! ever applied over a half-loaded database.
//!
//! Divergence is found in memory (outcome digests), so a `RESYNC` marker in the snapshot
//! directory remembers it across a stop: written when the node diverges and when a resync
//! begins, removed when one succeeds. A node that starts with it applies nothing (DIVERGED)
//! until a resync succeeds: a stop can never turn a differing node back into an ACTIVE one.

mod serve;

pub(crate) use serve::serve_fetch;

use super::Node;
use crate::apply::check::CheckSnapshots;
use crate::apply::{ApplyStatus, Paused};
use crate::consensus::network::{PeerRequest, PeerResponse, SnapshotFetch};
use crate::consensus::NodeInfo;
use crate::service::ResyncDone;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// How long one piece of the file may take (the first one waits for the leader's build,
/// bounded by [`crate::consensus::INSTALL_TIMEOUT`] instead).
const CHUNK_TIMEOUT: Duration = Duration::from_secs(60);
/// The marker file, in the snapshot directory, of a node that must be resynced.
const MARKER: &str = "RESYNC";
/// First and longest wait between automatic attempts that failed.
const AUTO_RETRY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(300));

/// Why a resync did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    /// The node's applier has no database to copy into.
    #[error("this node cannot take part in state transfer (no snapshots)")]
    Unsupported,
    /// The leader's data is the agreed state by definition: there is nothing to copy from.
    #[error(
        "this node leads: its data is the cluster's agreed state; to resync it, make another \
         node the leader first (`wolfscale cluster transfer-leader`)"
    )]
    Leading,
    /// A resync of this node is already running.
    #[error("a resync of this node is already running")]
    Busy,
    /// No leader is known.
    #[error("no leader is known; retry shortly")]
    NoLeader,
    /// The leader could not be asked, or refused.
    #[error("fetching the snapshot from the leader {leader}: {reason}")]
    Fetch {
        /// The leader's name.
        leader: String,
        /// What failed.
        reason: String,
    },
    /// Receiving, verifying or loading the snapshot failed.
    #[error("installing the snapshot: {0}")]
    Install(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    Stopping,
}

/// A node's resync machinery and its record; shared by the API and the automatic task.
pub struct Resyncer {
    node: Node,
    apply: ApplyStatus,
    checks: CheckSnapshots,
    running: AtomicBool,
    /// The applier, held while a resync runs, and after a load that did not finish.
    held: tokio::sync::Mutex<Option<Paused>>,
    /// A load began and has not succeeded since: the database may be half-loaded.
    unfinished: AtomicBool,
    done: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Clears the running flag however a resync ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Resyncer {
    /// The resync machinery of `node`, over its applier's status and check snapshots.
    pub fn new(node: Node, apply: ApplyStatus, checks: CheckSnapshots) -> Resyncer {
        Resyncer {
            node,
            apply,
            checks,
            running: AtomicBool::new(false),
            held: tokio::sync::Mutex::new(None),
            unfinished: AtomicBool::new(false),
            done: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Whether a resync is running now (the node is SYNCING).
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Whether a load began and failed: the node applies nothing until a resync succeeds.
    pub fn is_unfinished(&self) -> bool {
        self.unfinished.load(Ordering::SeqCst)
    }

    /// Resyncs completed since start.
    pub fn completed(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Why the last resync failed, until one succeeds.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    fn marker(&self) -> Option<std::path::PathBuf> {
        self.node.snapshots().map(|s| s.dir().join(MARKER))
    }

    /// Records durably that this node must be resynced (`why` is for whoever reads the
    /// file). A failure is logged: the node then only forgets it over a stop.
    async fn mark(&self, why: &str) {
        let Some(path) = self.marker() else { return };
        let why = why.to_string();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&path)?;
            f.write_all(why.as_bytes())?;
            f.sync_all()?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!(result = ?written, "cannot record that this node must be resynced");
        }
    }

    async fn unmark(&self) {
        let Some(path) = self.marker() else { return };
        let removed = tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await;
        if !matches!(removed, Ok(Ok(()))) {
            tracing::warn!(result = ?removed, "cannot remove the resync marker");
        }
    }

    async fn marked(&self) -> bool {
        let Some(path) = self.marker() else {
            return false;
        };
        tokio::task::spawn_blocking(move || path.exists())
            .await
            .unwrap_or(false)
    }

    /// At start, with the marker present: hold the applier until a resync succeeds.
    async fn hold_from_start(&self) {
        tracing::error!(
            node_id = %self.node.info().name,
            "this node stopped while DIVERGED or in the middle of a resync: its database may \
             differ from the leader's, so it applies nothing until a resync succeeds"
        );
        self.unfinished.store(true, Ordering::SeqCst);
        self.set_error(Some(
            "the node stopped while DIVERGED or resyncing; it must be resynced".into(),
        ));
        let mut held = self.held.lock().await;
        if held.is_none() {
            *held = Some(self.apply.pause().await);
        }
    }

    /// Runs a resync as a task the node owns, so that it completes even when the caller
    /// goes away; `reason` is for the log.
    ///
    /// # Errors
    /// [`ResyncError`]: this node leads or has no snapshots, another resync runs, no leader,
    /// or the transfer or load failed (the node is left as it was, or — after a failed
    /// load — held until a resync succeeds).
    pub async fn start(self: &Arc<Self>, reason: &'static str) -> Result<ResyncDone, ResyncError> {
        let me = self.clone();
        let token = self.node.shutdown_token();
        let task = self.node.inner.tasks.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => Err(ResyncError::Stopping),
                r = me.run(reason) => r,
            }
        });
        task.await
            .map_err(|e| ResyncError::Install(format!("resync task failed: {e}")))?
    }

    async fn run(&self, reason: &'static str) -> Result<ResyncDone, ResyncError> {
        let Some(snapshots) = self.node.snapshots() else {
            return Err(ResyncError::Unsupported);
        };
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(ResyncError::Busy);
        }
        let _running = Running(&self.running);
        let leader = self.leader()?;
        let divergence = self.apply.divergence();
        // Whether the node had to be resynced before this attempt (the marker stays then).
        let required = divergence.is_some() || self.is_unfinished();
        let started = Instant::now();
        // Dropped with this future only when the load never began (see `unfinished`).
        let mut held = self.held.lock().await;
        if held.is_none() {
            *held = Some(self.apply.pause().await);
        }
        let applied = held.as_ref().and_then(Paused::applied_lsn).unwrap_or(0);
        self.mark(reason).await;
        tracing::warn!(
            node_id = %self.node.info().name,
            leader = %leader.name,
            log_index = applied,
            reason,
            "resync started: replacing this node's database with a snapshot of the leader's"
        );
        self.checks.end_all(applied).await;
        let fetched = self.fetch(snapshots, &leader, applied).await;
        let result = match fetched {
            Ok((file, meta)) => {
                self.unfinished.store(true, Ordering::SeqCst);
                snapshots
                    .install(file, &meta)
                    .await
                    .map_err(|e| ResyncError::Install(e.to_string()))
            }
            Err(e) => {
                snapshots.progress().end(None);
                Err(e)
            }
        };
        match result {
            Ok(m) => {
                self.unmark().await;
                self.unfinished.store(false, Ordering::SeqCst);
                if let Some(paused) = held.take() {
                    paused.resynced(m.index());
                }
                self.done.fetch_add(1, Ordering::SeqCst);
                self.set_error(None);
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(
                    node_id = %self.node.info().name,
                    leader = %leader.name,
                    snapshot = %m.id,
                    log_index = m.index(),
                    rows = m.rows,
                    secs,
                    "resync finished: this node holds the leader's data and applies the log again"
                );
                Ok(ResyncDone {
                    node_id: self.node.info().name.clone(),
                    leader_id: leader.name,
                    snapshot_id: m.id.clone(),
                    lsn: m.index(),
                    rows: m.rows,
                    tables: m.tables.len() as u64,
                    bytes: m.bytes,
                    divergence,
                    secs,
                })
            }
            Err(e) => {
                if !self.unfinished.load(Ordering::SeqCst) {
                    // Nothing was changed: the applier goes on (or waits, if diverged).
                    *held = None;
                    if !required {
                        self.unmark().await;
                    }
                }
                tracing::error!(
                    node_id = %self.node.info().name,
                    error = %e,
                    held = self.unfinished.load(Ordering::SeqCst),
                    "resync failed"
                );
                self.set_error(Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// Who leads, if it is another node.
    fn leader(&self) -> Result<NodeInfo, ResyncError> {
        let m = self.node.raft().metrics().borrow().clone();
        let Some(id) = m.current_leader else {
            return Err(ResyncError::NoLeader);
        };
        if id == m.id {
            return Err(ResyncError::Leading);
        }
        m.membership_config
            .membership()
            .get_node(&id)
            .cloned()
            .ok_or(ResyncError::NoLeader)
    }

    /// Receives the leader's fresh snapshot (reflecting at least `applied`) into the
    /// snapshot directory.
    async fn fetch(
        &self,
        snapshots: &crate::snapshot::Snapshots,
        leader: &NodeInfo,
        applied: u64,
    ) -> Result<(crate::snapshot::SnapshotFile, SnapshotMetaT), ResyncError> {
        let failed = |reason: String| ResyncError::Fetch {
            leader: leader.name.clone(),
            reason,
        };
        let mut file = snapshots
            .receive()
            .await
            .map_err(|e| ResyncError::Install(e.to_string()))?;
        let mut ask = SnapshotFetch {
            min_lsn: applied,
            snapshot: None,
            offset: 0,
        };
        loop {
            let timeout = if ask.snapshot.is_none() {
                crate::consensus::INSTALL_TIMEOUT
            } else {
                CHUNK_TIMEOUT
            };
            let answer = self
                .node
                .client()
                .call::<_, PeerResponse>(
                    &leader.cluster_addr,
                    &PeerRequest::SnapshotFetch(ask.clone()),
                    timeout,
                )
                .await
                .map_err(|e| failed(e.to_string()))?;
            let chunk = match answer {
                PeerResponse::SnapshotFetch(r) => r.map_err(|e| failed(e.to_string()))?,
                _ => return Err(failed("answered with the wrong message".into())),
            };
            if chunk.offset != ask.offset
                || ask
                    .snapshot
                    .as_ref()
                    .is_some_and(|id| *id != chunk.meta.snapshot_id)
            {
                return Err(failed("answered another piece than the one asked".into()));
            }
            if ask.snapshot.is_none() {
                snapshots.receiving(&chunk.meta.snapshot_id);
                ask.snapshot = Some(chunk.meta.snapshot_id.clone());
            }
            file.write_all(&chunk.data)
                .await
                .map_err(|e| ResyncError::Install(format!("writing the snapshot: {e}")))?;
            ask.offset += chunk.data.len() as u64;
            if ask.offset >= chunk.total {
                return Ok((file, chunk.meta));
            }
            if chunk.data.is_empty() {
                return Err(failed("sent an empty piece before the end".into()));
            }
        }
    }
}

type SnapshotMetaT = openraft::storage::SnapshotMeta<crate::consensus::NodeId, NodeInfo>;

/// Watches for divergence until the node stops: records it durably (the `RESYNC` marker),
/// holds a node that started with the marker, and — while `cluster.auto_resync` is on —
/// resyncs the node, retrying with a growing wait.
pub(crate) async fn auto(resyncer: Arc<Resyncer>) {
    let node = resyncer.node.clone();
    let token = node.shutdown_token();
    if resyncer.marked().await {
        tokio::select! {
            _ = token.cancelled() => return,
            () = resyncer.hold_from_start() => {}
        }
    }
    let automatic = node.config().cluster.auto_resync;
    let mut recorded = false;
    let mut wait = AUTO_RETRY.0;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let diverged = resyncer.apply.divergence().is_some();
        if diverged && !recorded && !resyncer.is_running() {
            resyncer.mark("diverged").await;
        }
        recorded = diverged;
        let needed = diverged || resyncer.is_unfinished();
        if !automatic || !needed || resyncer.is_running() {
            continue;
        }
        match resyncer.start("diverged").await {
            Ok(_) => wait = AUTO_RETRY.0,
            Err(ResyncError::Stopping) => return,
            Err(ResyncError::Leading) => {
                // Elected before it applied the entry that showed the difference: a leader
                // that applies nothing stalls every write, so it hands leadership over and
                // resyncs as a follower.
                hand_over(&node).await;
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(AUTO_RETRY.1);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "automatic resync failed; retrying");
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(AUTO_RETRY.1);
            }
        }
    }
}

/// Transfers leadership from this diverged leader to another voter.
async fn hand_over(node: &Node) {
    let target = {
        let m = node.raft().metrics().borrow().clone();
        let membership = m.membership_config.membership();
        membership
            .voter_ids()
            .find(|v| *v != m.id)
            .and_then(|v| membership.get_node(&v).map(|n| n.name.clone()))
    };
    let Some(target) = target else {
        tracing::error!("this diverged node is the only voter: nothing to resync from");
        return;
    };
    tracing::warn!(target = %target, "this leader diverged: handing leadership over to resync");
    if let Err(e) = node.transfer_leader(&target).await {
        tracing::warn!(target = %target, error = %e, "handing leadership over failed");
    }
}
