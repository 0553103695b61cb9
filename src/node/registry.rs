//! Keeps the state db's node registry (names, numbers, addresses) equal to the membership
//! in force: a member added is registered, a member removed is forgotten. The membership
//! itself lives in the log; the registry is its queryable copy on every node.

use super::Node;
use crate::consensus::{LogId, NodeId, NodeInfo};
use crate::state::{NodeRecord, StateDb, StateError};
use openraft::Membership;

/// Runs until shutdown, reconciling the registry whenever the membership changes.
pub(super) async fn sync(node: Node) {
    let token = node.shutdown_token();
    let mut metrics = node.raft().metrics();
    let mut synced: Option<Option<LogId>> = None;
    loop {
        let (log_id, members) = {
            let m = metrics.borrow_and_update();
            (
                *m.membership_config.log_id(),
                records(m.membership_config.membership()),
            )
        };
        if synced != Some(log_id) {
            let state = node.state().clone();
            match tokio::task::spawn_blocking(move || reconcile(&state, &members)).await {
                Ok(Ok(())) => synced = Some(log_id),
                Ok(Err(e)) => tracing::warn!(error = %e, "node registry not updated"),
                Err(e) => tracing::warn!(error = %e, "node registry task failed"),
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() {
                // Consensus stopped: nothing will change any more.
                return;
            },
        }
    }
}

fn records(membership: &Membership<NodeId, NodeInfo>) -> Vec<NodeRecord> {
    membership
        .nodes()
        .filter_map(|(id, info)| {
            Some(NodeRecord {
                number: u16::try_from(*id).ok()?,
                name: info.name.clone(),
                cluster_addr: info.cluster_addr.clone(),
            })
        })
        .collect()
}

/// Makes the registry hold exactly `members`. Blocking.
fn reconcile(state: &StateDb, members: &[NodeRecord]) -> Result<(), StateError> {
    for known in state.nodes()? {
        let current = members
            .iter()
            .any(|m| m.number == known.number && m.name == known.name);
        if !current {
            state.unregister_node(known.number)?;
        }
    }
    for m in members {
        state.register_node(m)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(number: u16, name: &str) -> NodeRecord {
        NodeRecord {
            number,
            name: name.into(),
            cluster_addr: format!("{name}:7654"),
        }
    }

    #[test]
    fn registry_follows_the_membership() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(dir.path()).expect("open");
        reconcile(&db, &[rec(1, "a"), rec(2, "b"), rec(3, "c")]).expect("add");
        assert_eq!(db.nodes().expect("nodes").len(), 3);
        // c removed; its number reused later by another name; a moved address.
        let moved = NodeRecord {
            cluster_addr: "elsewhere:1".into(),
            ..rec(1, "a")
        };
        reconcile(&db, &[moved.clone(), rec(2, "b")]).expect("remove");
        assert_eq!(db.nodes().expect("nodes"), vec![moved.clone(), rec(2, "b")]);
        reconcile(&db, &[moved.clone(), rec(3, "d")]).expect("reuse");
        assert_eq!(db.nodes().expect("nodes"), vec![moved, rec(3, "d")]);
    }
}
