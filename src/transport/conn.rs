//! One authenticated client connection: the queue to its writer task, the calls waiting
//! for answers (matched by request id), and the reader task that routes answers and pings
//! the peer when the line goes quiet. When either task ends, every waiting call fails at
//! once with the reason. Dialing and the handshake belong to the client module.

use super::frame::{self, FrameReader, Kind};
use super::Stream;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, Instrument, Span};

/// How a call ended, as seen by the connection.
pub(crate) enum Reply {
    /// The handler's answer (postcard bytes).
    Ok(Bytes),
    /// The peer's failure reason.
    Failed(String),
    /// The connection was already gone: the request was never queued for sending.
    NotSent(Arc<str>),
    /// The connection ended after the request was queued and before its answer came:
    /// the peer may or may not have received and handled it.
    Lost(Arc<str>),
}

/// A live connection shared by every call to one peer.
pub(crate) struct Conn {
    /// Node name the server proved at the handshake.
    pub(crate) node: String,
    tx: mpsc::Sender<Bytes>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once the connection is gone; later registrations fail at once.
    closed: Option<Arc<str>>,
}

/// Timing of the liveness probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    pub(crate) ping_interval: Duration,
    pub(crate) dead_after: Duration,
}

impl Conn {
    fn new(node: String, tx: mpsc::Sender<Bytes>, cancel: CancellationToken) -> Self {
        Conn {
            node,
            tx,
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(1),
            cancel,
        }
    }

    /// Starts the reader and writer tasks of an authenticated stream on `tracker`.
    pub(crate) fn start<S: Stream>(
        rd: FrameReader<ReadHalf<S>>,
        wr: WriteHalf<S>,
        node: String,
        cancel: CancellationToken,
        tracker: &TaskTracker,
        liveness: Liveness,
        span: Span,
    ) -> Arc<Conn> {
        let (tx, rx) = mpsc::channel(1024);
        let conn = Arc::new(Conn::new(node, tx, cancel));
        let writer = conn.clone();
        tracker.spawn(
            async move {
                let cancel = writer.cancel.clone();
                let reason = match frame::write_loop(wr, rx, cancel).await {
                    Ok(()) => "connection closed".to_string(),
                    Err(e) => format!("write failed: {e}"),
                };
                writer.fail(reason);
            }
            .instrument(span.clone()),
        );
        let reader = conn.clone();
        tracker.spawn(
            async move {
                let reason = read_loop(rd, &reader, liveness).await;
                info!(reason = %reason, "connection to peer lost");
                reader.fail(reason);
            }
            .instrument(span),
        );
        conn
    }

    /// Cheap check for the call fast path; `register` is the authoritative one.
    pub(crate) fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent: every
        // critical section is a single insert, remove or drain.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends an encoded request frame (its id is stamped here) and waits for its reply.
    /// Dropping the future forgets the call; a late answer is discarded.
    pub(crate) async fn exchange(&self, mut request: Vec<u8>) -> Reply {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        frame::set_id(&mut request, id);
        let rx = match self.register(id) {
            Ok(rx) => rx,
            Err(reason) => return Reply::NotSent(reason),
        };
        let _unregister = Unregister { conn: self, id };
        if self.tx.send(Bytes::from(request)).await.is_err() {
            return Reply::NotSent("writer stopped".into());
        }
        rx.await
            .unwrap_or_else(|_| Reply::Lost("connection dropped".into()))
    }

    fn register(&self, id: u64) -> Result<oneshot::Receiver<Reply>, Arc<str>> {
        let mut p = self.lock();
        if let Some(reason) = &p.closed {
            return Err(reason.clone());
        }
        let (tx, rx) = oneshot::channel();
        p.waiters.insert(id, tx);
        Ok(rx)
    }

    fn complete(&self, id: u64, reply: Reply) {
        match self.lock().waiters.remove(&id) {
            Some(w) => {
                let _ = w.send(reply);
            }
            None => debug!(request_id = id, "answer for a call that gave up, dropped"),
        }
    }

    /// Ends the connection and fails every waiting call with `reason`.
    fn fail(&self, reason: String) {
        let reason: Arc<str> = reason.into();
        let waiters = {
            let mut p = self.lock();
            if p.closed.is_none() {
                p.closed = Some(reason.clone());
            }
            std::mem::take(&mut p.waiters)
        };
        self.cancel.cancel();
        for (_, w) in waiters {
            let _ = w.send(Reply::Lost(reason.clone()));
        }
    }
}

/// Removes a call's waiter when the call ends early (timeout, caller dropped).
struct Unregister<'a> {
    conn: &'a Conn,
    id: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.conn.lock().waiters.remove(&self.id);
    }
}

/// Routes answers to their calls and pings an idle connection; returns why it ended.
async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    mut rd: FrameReader<R>,
    conn: &Conn,
    liveness: Liveness,
) -> String {
    let mut last_rx = Instant::now();
    let mut tick = tokio::time::interval(liveness.ping_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = conn.cancel.cancelled() => return "connection closed by this node".into(),
            _ = tick.tick() => {
                let quiet = last_rx.elapsed();
                if quiet >= liveness.dead_after {
                    return format!("peer silent for {quiet:?}");
                }
                if quiet >= liveness.ping_interval {
                    let ping = frame::encode(Kind::Ping, 0, &[], 0)
                        .expect("an empty payload fits any limit");
                    // A full queue means traffic is flowing; the ping can be skipped.
                    let _ = conn.tx.try_send(ping);
                }
            }
            r = rd.next() => {
                let frame = match r {
                    Ok(Some(f)) => f,
                    Ok(None) => return "peer closed the connection".into(),
                    Err(e) => return e.to_string(),
                };
                last_rx = Instant::now();
                match frame.kind {
                    Kind::Response => conn.complete(frame.id, Reply::Ok(frame.payload)),
                    Kind::Failure => {
                        let msg = String::from_utf8_lossy(&frame.payload).into_owned();
                        conn.complete(frame.id, Reply::Failed(msg));
                    }
                    Kind::Pong => {}
                    other => return format!("unexpected {other:?} frame from peer"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_wakes_every_waiter_and_refuses_new_ones() {
        let (tx, _rx) = mpsc::channel(1);
        let conn = Conn::new("n".into(), tx, CancellationToken::new());
        let mut a = conn.register(1).unwrap();
        let mut b = conn.register(2).unwrap();
        conn.fail("gone".into());
        assert!(matches!(a.try_recv(), Ok(Reply::Lost(r)) if &*r == "gone"));
        assert!(matches!(b.try_recv(), Ok(Reply::Lost(_))));
        assert!(conn.register(3).is_err());
        assert!(conn.is_closed());
    }

    #[tokio::test]
    async fn abandoned_call_leaves_no_waiter() {
        let (tx, mut rx) = mpsc::channel(4);
        let conn = Conn::new("n".into(), tx, CancellationToken::new());
        let request = frame::encode_value(Kind::Request, 0, &1u8, 64).unwrap();
        let r = tokio::time::timeout(Duration::from_millis(20), conn.exchange(request)).await;
        assert!(r.is_err(), "nobody answers");
        assert!(conn.lock().waiters.is_empty());
        let sent = rx.recv().await.unwrap();
        let (f, _) = frame::decode(&sent, 64).unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Request, 1));
        conn.complete(1, Reply::Failed("late".into())); // discarded, no panic
    }
}
