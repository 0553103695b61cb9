//! The leader's side of outcome agreement (see [`crate::apply`]'s `agreement`): while this
//! node leads, it proposes the digests of the outcomes it reached, in `Outcomes` entries
//! every node compares with its own. Followers only compare; a node that becomes leader
//! reports whatever it applied above the last reported entry.

use crate::apply::digest_limit;
use crate::command::{Command, Entry};
use crate::consensus::Request;
use openraft::ServerState;
use std::time::Duration;

/// How often the leader reports new outcomes (when there are any).
pub const REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// Proposes this node's unreported outcome digests while it leads, until shutdown.
pub(crate) async fn report_outcomes(service: crate::service::Service) {
    let node = service.node().clone();
    let token = node.shutdown_token();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(REPORT_INTERVAL) => {}
        }
        if node.raft().metrics().borrow().state != ServerState::Leader {
            continue;
        }
        let digests = service.apply_status().unreported_digests(digest_limit());
        if digests.is_empty() {
            continue;
        }
        let entry = Entry {
            timestamp_us: service.next_timestamp_us(),
            ids: Vec::new(),
            command: Command::Outcomes { digests },
        };
        let request = Request {
            payload: entry.encode(),
        };
        // The answer only says the entry applied here; a failure (leadership lost, node
        // stopping) is retried by the next leader, which reports from the applied state.
        tokio::select! {
            _ = token.cancelled() => return,
            r = node.propose_local_batched(request) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "outcome report not committed");
                }
            }
        }
    }
}
