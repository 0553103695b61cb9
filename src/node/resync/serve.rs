//! The leader's side of a resync: hands a resyncing node a fresh snapshot, piece by piece.

use crate::consensus::network::{ClusterError, SnapshotChunk, SnapshotFetch};
use crate::node::Node;
use openraft::ServerState;
use std::time::Duration;

/// How long the leader waits to have applied the asker's position before it gives up.
const APPLIED_WAIT: Duration = Duration::from_secs(60);

/// The leader's side: answers one piece of a fresh snapshot for a resyncing node. The
/// first piece waits until this node has applied the asker's position, then takes a
/// snapshot through openraft (or reuses one taken since).
pub(crate) async fn serve_fetch(
    node: &Node,
    ask: SnapshotFetch,
) -> Result<SnapshotChunk, ClusterError> {
    let Some(s) = node.snapshots() else {
        return Err(ClusterError::Failed(
            "this node cannot take snapshots".into(),
        ));
    };
    let manifest = match &ask.snapshot {
        None => {
            let m = node.raft().metrics().borrow().clone();
            if m.state != ServerState::Leader {
                return Err(
                    match m.current_leader.and_then(|id| {
                        m.membership_config
                            .membership()
                            .get_node(&id)
                            .map(|n| (id, n.clone()))
                    }) {
                        Some((id, info)) => ClusterError::NotLeader(id, info),
                        None => ClusterError::NoLeader,
                    },
                );
            }
            let mut metrics = node.raft().metrics();
            let applied = tokio::time::timeout(APPLIED_WAIT, async {
                metrics
                    .wait_for(|m| m.last_applied.is_some_and(|l| l.index >= ask.min_lsn))
                    .await
                    .is_ok()
            })
            .await;
            if applied != Ok(true) {
                return Err(ClusterError::Failed(format!(
                    "the leader has not applied lsn {} within {APPLIED_WAIT:?}",
                    ask.min_lsn
                )));
            }
            let done = node
                .snapshot_now(false)
                .await
                .map_err(|e| ClusterError::Failed(format!("taking a snapshot: {e}")))?;
            if done.manifest.index() < ask.min_lsn {
                return Err(ClusterError::Failed(format!(
                    "the snapshot reflects lsn {}, not yet {}; retry",
                    done.manifest.index(),
                    ask.min_lsn
                )));
            }
            tracing::info!(
                snapshot = %done.manifest.id,
                log_index = done.manifest.index(),
                "sending a snapshot to a resyncing node"
            );
            done.manifest
        }
        // Looked up among this node's own snapshots: the id never becomes a path unchecked.
        Some(id) => s
            .list()
            .await
            .map_err(|e| ClusterError::Failed(e.to_string()))?
            .into_iter()
            .find(|m| m.id == *id)
            .ok_or_else(|| {
                ClusterError::Failed(format!(
                    "snapshot {id} was replaced by a newer one; start the resync again"
                ))
            })?,
    };
    let chunk = node
        .config()
        .cluster
        .snapshot_chunk_kb
        .saturating_mul(1024)
        .clamp(1, (crate::transport::frame::MAX_PAYLOAD / 2) as u64);
    let path = s.file_path(&manifest.id);
    let offset = ask.offset;
    let (data, total) = tokio::task::spawn_blocking(move || read_piece(&path, offset, chunk))
        .await
        .map_err(|e| ClusterError::Failed(format!("snapshot read task failed: {e}")))?
        .map_err(|e| ClusterError::Failed(format!("reading the snapshot: {e}")))?;
    Ok(SnapshotChunk {
        meta: manifest.meta(),
        offset,
        data,
        total,
    })
}

/// Up to `len` bytes of `path` from `offset`, and the file's size. Blocking.
fn read_piece(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<(Vec<u8>, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let total = f.metadata()?.len();
    f.seek(SeekFrom::Start(offset.min(total)))?;
    let mut data = Vec::new();
    f.take(len).read_to_end(&mut data)?;
    Ok((data, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_file_and_stop_at_its_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.snap");
        let content: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        std::fs::write(&path, &content).expect("write");
        let mut got = Vec::new();
        let mut offset = 0;
        loop {
            let (data, total) = read_piece(&path, offset, 300).expect("read");
            assert_eq!(total, 1000);
            offset += data.len() as u64;
            got.extend(data);
            if offset >= total {
                break;
            }
        }
        assert_eq!(got, content);
        let (data, _) = read_piece(&path, 5000, 300).expect("past the end");
        assert!(data.is_empty());
    }
}
