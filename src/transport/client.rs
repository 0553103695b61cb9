//! The calling side of the transport: one persistent, authenticated connection per peer
//! address, opened on first use and shared by every concurrent call to that peer
//! (responses are matched to calls by request id). It owns dialing, reconnect backoff,
//! per-call timeouts, idle pings and failing in-flight calls when a connection breaks;
//! it does not retry calls (consensus decides what to resend).

use super::frame::{self, FrameReader, Kind, MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD};
use super::handshake::{self, AuthKey, Identity};
use super::{Connector, Error, PlainTcp};
use bytes::Bytes;
use rand::Rng;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

/// Identity, secret and timing of the calling side.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// How this node introduces itself; servers must name the same cluster.
    pub identity: Identity,
    /// The cluster secret.
    pub key: AuthKey,
    /// Bound on TCP connect plus handshake. Default: 3 s.
    pub connect_timeout: Duration,
    /// First reconnect delay after a failed dial; doubles per failure. Default: 50 ms.
    pub backoff_min: Duration,
    /// Cap of the reconnect delay (before jitter). Default: 2 s.
    pub backoff_max: Duration,
    /// A connection that received nothing for this long is pinged. Default: 1 s.
    pub ping_interval: Duration,
    /// A connection that received nothing (not even a pong) for this long is declared
    /// dead and its calls fail. Default: 10 s.
    pub dead_after: Duration,
    /// Largest request or response payload. Default: [`MAX_PAYLOAD`].
    pub max_payload: usize,
}

impl ClientConfig {
    /// A configuration with the default timings.
    pub fn new(identity: Identity, key: AuthKey) -> Self {
        ClientConfig {
            identity,
            key,
            connect_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            ping_interval: Duration::from_secs(1),
            dead_after: Duration::from_secs(10),
            max_payload: MAX_PAYLOAD,
        }
    }
}

/// Calls peers over the transport. Cheap to clone; clones share connections. Dropping
/// the last clone closes every connection.
pub struct Client<C: Connector = PlainTcp> {
    inner: Arc<Inner<C>>,
}

impl<C: Connector> Clone for Client<C> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<C> {
    config: ClientConfig,
    connector: C,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl<C> Drop for Inner<C> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// One peer address: its live connection (read on every call without waiting), and the
/// dial state behind an async lock so concurrent callers share a single dial.
#[derive(Default)]
struct Peer {
    live: Mutex<Option<Arc<Conn>>>,
    dial: tokio::sync::Mutex<DialState>,
}

impl Peer {
    fn live(&self) -> Option<Arc<Conn>> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match &*live {
            Some(conn) if !conn.is_closed() => Some(conn.clone()),
            Some(_) => {
                *live = None;
                None
            }
            None => None,
        }
    }
}

#[derive(Default)]
struct DialState {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<LastError>,
}

/// Enough of a dial failure to repeat it to callers arriving during the backoff.
enum LastError {
    AuthFailed(String),
    Incompatible(String),
    Unreachable(String),
}

impl LastError {
    fn from_error(e: &Error) -> Self {
        match e {
            Error::AuthFailed { reason, .. } => LastError::AuthFailed(reason.clone()),
            Error::Incompatible { reason, .. } => LastError::Incompatible(reason.clone()),
            Error::Unreachable { reason, .. } => LastError::Unreachable(reason.clone()),
            other => LastError::Unreachable(other.to_string()),
        }
    }

    fn to_error(&self, peer: &str, wait: Duration) -> Error {
        let peer = peer.to_string();
        let retry = |r: &str| format!("{r} (next attempt in {} ms)", wait.as_millis());
        match self {
            LastError::AuthFailed(r) => Error::AuthFailed {
                peer,
                reason: retry(r),
            },
            LastError::Incompatible(r) => Error::Incompatible {
                peer,
                reason: retry(r),
            },
            LastError::Unreachable(r) => Error::Unreachable {
                peer,
                reason: retry(r),
            },
        }
    }
}

/// One live connection: the writer queue and the calls waiting for answers.
struct Conn {
    /// Node name the server proved at the handshake.
    node: String,
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

enum Reply {
    Ok(Bytes),
    Failed(String),
    Lost(Arc<str>),
}

impl Conn {
    /// Cheap check for the call fast path; `register` is the authoritative one.
    fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding this lock cannot leave the map inconsistent: every
        // critical section is a single insert, remove or drain.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
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

/// Reconnect delay after `failures` consecutive failed dials: exponential from `min`,
/// capped at `max`, then scaled by a random factor in [0.5, 1] so peers do not reconnect
/// in lockstep.
fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let exp = min.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    exp.min(max)
        .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

impl Client<PlainTcp> {
    /// A client over plain TCP.
    pub fn new(config: ClientConfig) -> Self {
        Client::with_connector(config, PlainTcp)
    }
}

impl<C: Connector> Client<C> {
    /// A client whose streams are wrapped by `connector` (the TLS seam).
    pub fn with_connector(config: ClientConfig, connector: C) -> Self {
        Client {
            inner: Arc::new(Inner {
                config,
                connector,
                peers: Mutex::new(HashMap::new()),
                cancel: CancellationToken::new(),
                tracker: TaskTracker::new(),
            }),
        }
    }

    /// Sends `request` to the node at `peer` (`host:port`) and waits for its answer,
    /// connecting first if needed. The whole call, dial included, is bounded by `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no answer came in time (the connection stays up);
    /// [`Error::Unreachable`] when there is no connection or it broke mid-call;
    /// [`Error::AuthFailed`] / [`Error::Incompatible`] when the peer refused us or failed
    /// to prove the secret; [`Error::Remote`] when its handler failed; [`Error::Encode`] /
    /// [`Error::Decode`] for messages that do not fit the frame or the expected type;
    /// [`Error::Closed`] after [`Client::close`].
    pub async fn call<Req, Resp>(
        &self,
        peer: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, Error>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        if self.inner.cancel.is_cancelled() {
            return Err(Error::Closed);
        }
        let mut bytes =
            frame::encode_value(Kind::Request, 0, request, self.inner.config.max_payload)?;
        let exchange = async {
            let conn = self.connection(peer).await?;
            let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
            frame::set_id(&mut bytes, id);
            let lost = |reason: &str| Error::Unreachable {
                peer: peer.to_string(),
                reason: format!("connection lost: {reason}"),
            };
            let rx = conn.register(id).map_err(|r| lost(&r))?;
            let _unregister = Unregister { conn: &conn, id };
            if conn.tx.send(Bytes::from(bytes)).await.is_err() {
                return Err(lost("writer stopped"));
            }
            match rx.await {
                Ok(Reply::Ok(payload)) => {
                    postcard::from_bytes(&payload).map_err(|e| Error::Decode {
                        peer: peer.to_string(),
                        reason: e.to_string(),
                    })
                }
                Ok(Reply::Failed(message)) => Err(Error::Remote {
                    peer: peer.to_string(),
                    message,
                }),
                Ok(Reply::Lost(reason)) => Err(lost(&reason)),
                Err(_) => Err(lost("connection dropped")),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                peer: peer.to_string(),
                after: timeout,
            }),
        }
    }

    /// Closes every connection, fails their in-flight calls and waits for the connection
    /// tasks to end. Later calls fail with [`Error::Closed`].
    pub async fn close(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// The node name the peer at `addr` proved, while a connection to it is up; lets the
    /// caller check that an address still belongs to the node it expects.
    pub fn peer_node(&self, addr: &str) -> Option<String> {
        let peers = self.inner.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.get(addr)?.live().map(|c| c.node.clone())
    }

    fn peer(&self, addr: &str) -> Arc<Peer> {
        let mut peers = self.inner.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get(addr) {
            return p.clone();
        }
        peers.entry(addr.to_string()).or_default().clone()
    }

    /// The live connection to `addr`, dialing if there is none and no backoff is running.
    async fn connection(&self, addr: &str) -> Result<Arc<Conn>, Error> {
        let peer = self.peer(addr);
        if let Some(conn) = peer.live() {
            return Ok(conn);
        }
        let mut st = peer.dial.lock().await;
        if let Some(conn) = peer.live() {
            return Ok(conn); // another caller dialed while we waited
        }
        let now = Instant::now();
        if let (Some(at), Some(last)) = (st.retry_at, &st.last_error) {
            if now < at {
                return Err(last.to_error(addr, at - now));
            }
        }
        match self.dial(addr).await {
            Ok(conn) => {
                *st = DialState::default();
                *peer.live.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let cfg = &self.inner.config;
                st.failures = st.failures.saturating_add(1);
                let wait = backoff(cfg.backoff_min, cfg.backoff_max, st.failures);
                st.retry_at = Some(Instant::now() + wait);
                st.last_error = Some(LastError::from_error(&e));
                warn!(peer = addr, error = %e, retry_in = ?wait, "cannot connect to peer");
                Err(e)
            }
        }
    }

    async fn dial(&self, addr: &str) -> Result<Arc<Conn>, Error> {
        let cfg = &self.inner.config;
        let unreachable = |reason: String| Error::Unreachable {
            peer: addr.to_string(),
            reason,
        };
        let connect = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| unreachable(format!("connect: {e}")))?;
            tcp.set_nodelay(true)
                .map_err(|e| unreachable(format!("set TCP_NODELAY: {e}")))?;
            let stream = self
                .inner
                .connector
                .connect(tcp, addr)
                .await
                .map_err(|e| unreachable(format!("stream setup: {e}")))?;
            let (rd, mut wr) = tokio::io::split(stream);
            let mut rd = FrameReader::new(rd, MAX_PREAUTH_PAYLOAD);
            let node = handshake::client(&mut rd, &mut wr, &cfg.identity, &cfg.key)
                .await
                .map_err(|e| e.into_error(addr))?;
            Ok::<_, Error>((rd, wr, node))
        };
        let (mut rd, wr, node) = tokio::time::timeout(cfg.connect_timeout, connect)
            .await
            .map_err(|_| {
                unreachable(format!("no connection within {:?}", cfg.connect_timeout))
            })??;
        rd.set_limit(cfg.max_payload);
        let (tx, rx) = mpsc::channel(1024);
        let conn = Arc::new(Conn {
            node: node.clone(),
            tx,
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(1),
            cancel: self.inner.cancel.child_token(),
        });
        let span = tracing::info_span!("transport_peer", peer = addr, node_id = %node);
        info!(parent: &span, "connected to peer");
        let writer_conn = conn.clone();
        self.inner.tracker.spawn(
            async move {
                let cancel = writer_conn.cancel.clone();
                let reason = match frame::write_loop(wr, rx, cancel).await {
                    Ok(()) => "connection closed".to_string(),
                    Err(e) => format!("write failed: {e}"),
                };
                writer_conn.fail(reason);
            }
            .instrument(span.clone()),
        );
        let reader_conn = conn.clone();
        let (ping, dead) = (cfg.ping_interval, cfg.dead_after);
        self.inner.tracker.spawn(
            async move {
                let reason = read_loop(rd, &reader_conn, ping, dead).await;
                info!(reason = %reason, "connection to peer lost");
                reader_conn.fail(reason);
            }
            .instrument(span),
        );
        Ok(conn)
    }
}

/// Routes answers to their calls and pings an idle connection; returns why it ended.
async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    mut rd: FrameReader<R>,
    conn: &Conn,
    ping_interval: Duration,
    dead_after: Duration,
) -> String {
    let mut last_rx = Instant::now();
    let mut tick = tokio::time::interval(ping_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = conn.cancel.cancelled() => return "connection closed by this node".into(),
            _ = tick.tick() => {
                let quiet = last_rx.elapsed();
                if quiet >= dead_after {
                    return format!("peer silent for {quiet:?}");
                }
                if quiet >= ping_interval {
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
    fn backoff_grows_caps_and_jitters() {
        let (min, max) = (Duration::from_millis(50), Duration::from_secs(2));
        for _ in 0..100 {
            let first = backoff(min, max, 1);
            assert!(first >= min / 2 && first <= min, "{first:?}");
            let fourth = backoff(min, max, 4);
            assert!(fourth >= min * 4 && fourth <= min * 8, "{fourth:?}");
            let late = backoff(min, max, 1000);
            assert!(late >= max / 2 && late <= max, "{late:?}");
        }
    }

    #[test]
    fn fail_wakes_every_waiter_and_refuses_new_ones() {
        let (tx, _rx) = mpsc::channel(1);
        let conn = Conn {
            node: "n".into(),
            tx,
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(1),
            cancel: CancellationToken::new(),
        };
        let mut a = conn.register(1).unwrap();
        let mut b = conn.register(2).unwrap();
        conn.fail("gone".into());
        assert!(matches!(a.try_recv(), Ok(Reply::Lost(r)) if &*r == "gone"));
        assert!(matches!(b.try_recv(), Ok(Reply::Lost(_))));
        assert!(conn.register(3).is_err());
        assert!(conn.is_closed());
    }
}
