//! Write batching on the leader: client requests that arrive while earlier entries are
//! still being made durable go into one log entry together ([`Requests`]).
//!
//! openraft 0.9 appends one client write per log entry and waits for that entry's fsync
//! before it looks at the next write, so without batching the cluster commits at most one
//! write per fsync of the leader's disk. Here at most [`IN_FLIGHT`] entries are
//! outstanding; while they are, new requests queue, and the next entry takes everything
//! queued (up to [`MAX_REQUESTS`] requests or [`MAX_BYTES`]). A lone writer never waits:
//! with nothing outstanding its request goes out at once, alone. The applier applies an
//! entry's requests in order in one transaction and answers each; all share the entry's
//! LSN. DDL is never batched (it must apply alone) — callers send it with
//! `Node::propose_local_alone`.
//!
//! Each entry holds the node's write gate (shared) from before it is handed to openraft
//! until it is answered, as a lone proposal does: a leadership transfer, which takes the
//! gate exclusively, therefore waits for batches in flight, and while it holds the gate
//! batches are refused with "no leader" before anything is appended.

use crate::consensus::network::ClusterError;
use crate::consensus::{Raft, Request, Requests, Response};
use crate::observe::stages;
use openraft::error::ClientWriteError;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, RwLock, Semaphore};
use tokio_util::sync::CancellationToken;

/// Entries proposed and not yet answered, at most: one being appended, one replicating.
pub const IN_FLIGHT: usize = 2;
/// Most requests in one entry.
pub const MAX_REQUESTS: usize = 256;
/// Most request bytes in one entry (a single larger request still goes, alone).
pub const MAX_BYTES: usize = 1 << 20;
/// Requests that may wait for a batch before senders wait too.
const QUEUE: usize = 16 * 1024;

/// What a proposer is told: the entry's LSN and its response, or why not.
type Answered = Result<(u64, Response), ClusterError>;
type Reply = oneshot::Sender<Answered>;

/// The sending side: one per node.
#[derive(Clone)]
pub(super) struct Batcher {
    tx: mpsc::Sender<Queued>,
}

/// A request waiting for its entry: the request, where its answer goes, and since when
/// it waits (the `batch_wait` stage).
type Queued = (Request, Reply, Instant);

impl Batcher {
    /// Starts the batching task on `raft`; it stops with `shutdown`.
    /// Starts the batching task on `raft`, proposing only while `gate` can be held
    /// shared; it stops with `shutdown`.
    pub(super) fn start(
        raft: Raft,
        gate: Arc<RwLock<()>>,
        shutdown: CancellationToken,
    ) -> (Batcher, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Batcher { tx }, run(raft, gate, rx, shutdown))
    }

    /// Proposes `request` in the next entry; its LSN and the applier's response.
    pub(super) async fn propose(&self, request: Request) -> Result<(u64, Response), ClusterError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((request, reply, Instant::now()))
            .await
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }
}

fn stopping() -> ClusterError {
    ClusterError::Failed("the node is shutting down".into())
}

async fn run(
    raft: Raft,
    gate: Arc<RwLock<()>>,
    mut rx: mpsc::Receiver<Queued>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = rx.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let mut bytes = first.0.payload.len();
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS && bytes < MAX_BYTES {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.0.payload.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let proposed = Instant::now();
        let (requests, replies): (Vec<Request>, Vec<Reply>) = batch
            .into_iter()
            .map(|(request, reply, queued)| {
                crate::observe::metrics::write_stage(
                    "batch_wait",
                    proposed.saturating_duration_since(queued),
                );
                (request, reply)
            })
            .unzip();
        // A leadership transfer holds the log still: refuse before appending anything.
        let Ok(in_flight) = gate.clone().try_read_owned() else {
            for r in replies {
                let _ = r.send(Err(ClusterError::NoLeader));
            }
            continue;
        };
        // Not leading: refuse before anything is appended, so the answer is a definite
        // "not applied" and the caller may send it to the leader.
        if let Some(refusal) = not_leading(&raft) {
            for r in replies {
                let _ = r.send(Err(refusal.clone()));
            }
            continue;
        }
        crate::observe::metrics::batch(requests.len());
        // Handing the entry to openraft here, in order, keeps entries in the order their
        // batches were formed; the answer is awaited on its own task.
        match raft.client_write_ff(Requests(requests)).await {
            Ok(answer) => {
                tokio::spawn(async move {
                    let result = answer.await;
                    drop(in_flight);
                    drop(slot);
                    if let Ok(Ok(r)) = &result {
                        stages::finish(r.log_id.index, proposed);
                    }
                    deliver(result, replies);
                });
            }
            Err(_) => {
                for r in replies {
                    let _ = r.send(Err(stopping()));
                }
                return;
            }
        }
    }
}

/// `Some(refusal)` when this node does not lead (by its latest metrics), naming the
/// leader when it knows one.
pub(super) fn not_leading(raft: &Raft) -> Option<ClusterError> {
    let m = raft.metrics().borrow().clone();
    if m.state == openraft::ServerState::Leader {
        return None;
    }
    let leader = m.current_leader.and_then(|id| {
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| (id, n.clone()))
    });
    Some(match leader {
        Some((id, node)) if id != m.id => ClusterError::NotLeader(id, node),
        _ => ClusterError::NoLeader,
    })
}

type Answer = Result<
    Result<
        openraft::raft::ClientWriteResponse<crate::consensus::TypeConfig>,
        ClientWriteError<crate::consensus::NodeId, crate::consensus::NodeInfo>,
    >,
    oneshot::error::RecvError,
>;

fn deliver(answer: Answer, replies: Vec<Reply>) {
    match answer {
        Ok(Ok(resp)) => {
            let lsn = resp.log_id.index;
            let n = replies.len();
            let mut responses = resp.data.0.into_iter();
            for reply in replies {
                let r = match responses.next() {
                    Some(r) => Ok((lsn, r)),
                    None => Err(ClusterError::Failed(format!(
                        "the entry at lsn {lsn} was answered for fewer than its {n} requests"
                    ))),
                };
                let _ = reply.send(r);
            }
        }
        Ok(Err(e)) => {
            let err = match e {
                // Proposed while this node led (the loop checks first), so the entry was
                // appended; openraft answers this when a new leader cut it from this log,
                // but with five or more voters another member may still hold and commit it.
                ClientWriteError::ForwardToLeader(_) => ClusterError::Unknown,
                ClientWriteError::ChangeMembershipError(e) => ClusterError::Failed(e.to_string()),
            };
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
        Err(_) => {
            for reply in replies {
                let _ = reply.send(Err(stopping()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{deliver, Reply};
    use crate::consensus::network::ClusterError;
    use crate::consensus::NodeInfo;
    use openraft::error::{ClientWriteError, ForwardToLeader};
    use tokio::sync::oneshot;

    fn replies(n: usize) -> (Vec<Reply>, Vec<oneshot::Receiver<super::Answered>>) {
        (0..n).map(|_| oneshot::channel()).unzip()
    }

    #[test]
    fn a_batch_cut_by_a_new_leader_is_unknown_never_refused() {
        // openraft answers ForwardToLeader for an appended entry a new leader overwrote;
        // with five or more voters another member may still commit it, so a retry through
        // the new leader could apply it twice.
        for fwd in [
            ForwardToLeader::empty(),
            ForwardToLeader::new(
                3,
                NodeInfo {
                    name: "node-3".into(),
                    cluster_addr: "127.0.0.1:1".into(),
                    api_addr: String::new(),
                    ..NodeInfo::default()
                },
            ),
        ] {
            let (tx, mut rx) = replies(3);
            deliver(Ok(Err(ClientWriteError::ForwardToLeader(fwd))), tx);
            for r in &mut rx {
                let answer = r.try_recv().expect("answered");
                assert!(matches!(answer, Err(ClusterError::Unknown)), "{answer:?}");
            }
        }
    }
}
