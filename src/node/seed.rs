//! Seeding a new node from a snapshot file (`wolfscale snapshot restore FILE`), for
//! clusters whose link is too slow to stream the database: the file, copied from any
//! member's snapshot directory, is verified and loaded into the local MariaDB with its log
//! position, and `wolfscale join` then continues from that position (from the leader's log
//! when it still holds the entries after it, from a newer snapshot otherwise).

use super::{NodeError, NodeIdentity, KEY_IDENTITY};
use crate::apply::MariaDbApplier;
use crate::config::Loaded;
use crate::consensus::state_machine::Applier;
use crate::snapshot::{Manifest, Snapshots};
use crate::state::StateDb;
use crate::wal::{Wal, WalOptions};
use std::path::Path;

/// Loads `file` into this node's MariaDB, calling `on_progress` with the verify and load
/// progress a few times a second. The node must be stopped (its WAL lock is taken)
/// and must never have joined a cluster.
///
/// # Errors
/// The node runs or already belongs to a cluster, MariaDB is unusable, or the file is
/// damaged.
pub async fn seed(
    loaded: Loaded,
    file: &Path,
    mut on_progress: impl FnMut(&crate::snapshot::SyncProgress) + Send,
) -> Result<Manifest, NodeError> {
    let Loaded { config, secrets } = loaded;
    let (state_dir, wal_dir) = (config.state_dir(), config.wal_dir());
    let opts = WalOptions::from(&config.wal);
    let wal = tokio::task::spawn_blocking(move || -> Result<Wal, NodeError> {
        let state = StateDb::open(&state_dir)?;
        let wal = Wal::open(&wal_dir, opts)?;
        let known: Option<NodeIdentity> = state.get(KEY_IDENTITY)?;
        if known.is_some() || wal.last().is_some() {
            let _ = wal.close();
            return Err(NodeError::Config(
                "this node already belongs to a cluster: seeding is for a new node \
                 (a member that fell behind catches up by itself)"
                    .into(),
            ));
        }
        Ok(wal)
    })
    .await
    .map_err(|e| NodeError::Raft(format!("seed task failed: {e}")))??;
    let result = async {
        let applier = MariaDbApplier::connect(&config.database, secrets.db_password.as_ref())
            .await
            .map_err(|e| NodeError::Config(format!("cannot use MariaDB: {e}")))?;
        let db = applier
            .snapshot_db()
            .ok_or_else(|| NodeError::Config("this applier cannot load snapshots".into()))?;
        let dir = config.snapshot_dir();
        let snapshots = tokio::task::spawn_blocking(move || Snapshots::open(&dir, db))
            .await
            .map_err(|e| NodeError::Raft(format!("seed task failed: {e}")))??;
        let progress = snapshots.progress().clone();
        let restore = snapshots.restore(file);
        tokio::pin!(restore);
        let m = loop {
            tokio::select! {
                done = &mut restore => break done?,
                () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {
                    if let Some(p) = progress.report() {
                        on_progress(&p);
                    }
                }
            }
        };
        // A failed goodbye after the load changes nothing.
        let _ = applier.close().await;
        Ok(m)
    }
    .await;
    tokio::task::spawn_blocking(move || wal.close())
        .await
        .map_err(|e| NodeError::Raft(format!("seed task failed: {e}")))??;
    result
}
