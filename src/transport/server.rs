//! The listening side of the transport: accepts connections, authenticates each one, then
//! reads requests and runs them on the [`Handler`] concurrently, answering in whatever
//! order they finish. It owns the accept loop, per-connection tasks and their limits; it
//! does not know what requests mean.
//!
//! Shutdown (the token) stops accepting, closes the listener and every connection, and
//! aborts requests still running: consensus RPCs are retried by their callers.

use super::frame::{self, Frame, FrameReader, Kind, MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD};
use super::handshake::{self, AuthKey, HandshakeError, Identity};
use super::{Acceptor, Handler, PeerInfo, PlainTcp};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn, Instrument};

/// Limits and identity of a listening node.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How this node introduces itself; clients must name the same cluster.
    pub identity: Identity,
    /// The cluster secret.
    pub key: AuthKey,
    /// Connections served at once; further ones are closed at accept. Default: 256.
    pub max_connections: usize,
    /// Requests run at once per connection; the connection is not read while all are
    /// busy, which pushes back on the client. Default: 256.
    pub max_in_flight: usize,
    /// Time a new connection has to complete the handshake. Default: 5 s.
    pub handshake_timeout: Duration,
    /// An authenticated connection that sends nothing for this long is closed (clients
    /// ping idle connections far more often). Default: 60 s.
    pub idle_timeout: Duration,
    /// Largest request payload accepted after authentication. Default: [`MAX_PAYLOAD`].
    pub max_payload: usize,
}

impl ServerConfig {
    /// A configuration with the default limits.
    pub fn new(identity: Identity, key: AuthKey) -> Self {
        ServerConfig {
            identity,
            key,
            max_connections: 256,
            max_in_flight: 256,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_payload: MAX_PAYLOAD,
        }
    }
}

/// Serves plain-TCP connections on `listener` until `shutdown` fires, then closes the
/// listener and waits for every connection task to end.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    config: ServerConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    serve_with(listener, config, handler, PlainTcp, shutdown).await
}

/// [`serve`] over streams produced by `acceptor` (the TLS seam).
pub async fn serve_with<H: Handler, A: Acceptor>(
    listener: TcpListener,
    config: ServerConfig,
    handler: Arc<H>,
    acceptor: A,
    shutdown: CancellationToken,
) {
    let local = listener.local_addr().ok();
    info!(addr = ?local, node_id = %config.identity.node, "transport listening");
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let shared = Arc::new(Shared {
        config,
        handler,
        acceptor,
    });
    let tracker = TaskTracker::new();
    loop {
        let (tcp, addr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!(peer = %addr, "connection limit reached, closing new connection");
            continue;
        };
        let shared = shared.clone();
        let cancel = shutdown.child_token();
        tracker.spawn(async move {
            let _slot = slot;
            connection(shared, tcp, addr, cancel).await;
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    info!(addr = ?local, "transport stopped");
}

struct Shared<H, A> {
    config: ServerConfig,
    handler: Arc<H>,
    acceptor: A,
}

async fn connection<H: Handler, A: Acceptor>(
    shared: Arc<Shared<H, A>>,
    tcp: TcpStream,
    addr: SocketAddr,
    cancel: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let cfg = &shared.config;
    let handshake = async {
        let stream = shared.acceptor.accept(tcp).await?;
        let (rd, mut wr) = tokio::io::split(stream);
        let mut rd = FrameReader::new(rd, MAX_PREAUTH_PAYLOAD);
        let node = handshake::server(&mut rd, &mut wr, &cfg.identity, &cfg.key).await?;
        Ok::<_, HandshakeError>((rd, wr, node))
    };
    let outcome = tokio::select! {
        _ = cancel.cancelled() => return,
        r = tokio::time::timeout(cfg.handshake_timeout, handshake) => r,
    };
    let (rd, wr, node) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(HandshakeError::Closed)) => {
            debug!(peer = %addr, "peer closed before completing the handshake");
            return;
        }
        Ok(Err(e @ HandshakeError::AuthFailed(_))) => {
            warn!(peer = %addr, error = %e, "peer failed authentication, closing");
            return;
        }
        Ok(Err(e)) => {
            warn!(peer = %addr, error = %e, "peer failed the handshake, closing");
            return;
        }
        Err(_) => {
            warn!(peer = %addr, timeout = ?cfg.handshake_timeout, "handshake timed out, closing");
            return;
        }
    };
    let span = tracing::info_span!("transport_conn", peer = %addr, node_id = %node);
    let peer = Arc::new(PeerInfo { addr, node });
    authenticated(shared, peer, rd, wr, cancel)
        .instrument(span)
        .await;
}

async fn authenticated<H: Handler, A: Acceptor>(
    shared: Arc<Shared<H, A>>,
    peer: Arc<PeerInfo>,
    mut rd: FrameReader<tokio::io::ReadHalf<A::Stream>>,
    wr: tokio::io::WriteHalf<A::Stream>,
    cancel: CancellationToken,
) {
    info!("peer authenticated");
    let cfg = &shared.config;
    rd.set_limit(cfg.max_payload);
    let (tx, rx) = mpsc::channel::<Bytes>(cfg.max_in_flight + 16);
    let writer = frame::write_loop(wr, rx, cancel.clone());
    let reader = async {
        let slots = Arc::new(Semaphore::new(cfg.max_in_flight));
        let mut tasks = JoinSet::new();
        let mut ids: HashMap<tokio::task::Id, u64> = HashMap::new();
        let mut last_rx = Instant::now();
        loop {
            let frame = tokio::select! {
                _ = cancel.cancelled() => return,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    match done {
                        Ok((tid, ())) => { ids.remove(&tid); }
                        Err(e) => {
                            if let Some(id) = ids.remove(&e.id()) {
                                error!(error = %e, "request handler panicked");
                                let _ = tx.send(failure(id, "request handler panicked")).await;
                            }
                        }
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(last_rx + cfg.idle_timeout) => {
                    info!(timeout = ?cfg.idle_timeout, "peer idle, closing connection");
                    return;
                }
                r = rd.next() => match r {
                    Ok(Some(f)) => f,
                    Ok(None) => { debug!("peer closed the connection"); return; }
                    Err(e) => { warn!(error = %e, "bad frame from peer, closing"); return; }
                },
            };
            last_rx = Instant::now();
            let Frame { kind, id, payload } = frame;
            match kind {
                Kind::Request => {
                    let slot = tokio::select! {
                        _ = cancel.cancelled() => return,
                        s = slots.clone().acquire_owned() => s.expect("the slot semaphore is never closed"),
                    };
                    let handler = shared.handler.clone();
                    let peer = peer.clone();
                    let tx = tx.clone();
                    let max = cfg.max_payload;
                    let task = tasks.spawn(async move {
                        let reply = run_request(&*handler, &peer, id, &payload, max).await;
                        drop(slot);
                        let _ = tx.send(reply).await;
                    });
                    ids.insert(task.id(), id);
                }
                Kind::Ping => {
                    let pong = frame::encode(Kind::Pong, id, &[], 0)
                        .expect("an empty payload fits any limit");
                    if tx.send(pong).await.is_err() {
                        return;
                    }
                }
                other => {
                    warn!(kind = ?other, "unexpected frame kind from peer, closing");
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        r = writer => if let Err(e) = r {
            debug!(error = %e, "write to peer failed, closing");
        }
    }
}

async fn run_request<H: Handler>(
    handler: &H,
    peer: &PeerInfo,
    id: u64,
    payload: &[u8],
    max: usize,
) -> Bytes {
    let request = match postcard::from_bytes::<H::Request>(payload) {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "malformed request from peer");
            return failure(id, &format!("malformed request: {e}"));
        }
    };
    match handler.handle(peer, request).await {
        Ok(response) => frame::encode_value(Kind::Response, id, &response, max)
            .map(Bytes::from)
            .unwrap_or_else(|e| failure(id, &format!("response not sendable: {e}"))),
        Err(message) => failure(id, &message),
    }
}

/// A failure frame; long reasons are cut so the frame always fits.
fn failure(id: u64, message: &str) -> Bytes {
    let mut end = message.len().min(MAX_PREAUTH_PAYLOAD);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    frame::encode(
        Kind::Failure,
        id,
        &message.as_bytes()[..end],
        MAX_PREAUTH_PAYLOAD,
    )
    .expect("the message was cut to the limit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_frames_cut_long_reasons_on_char_boundaries() {
        let long = "é".repeat(MAX_PREAUTH_PAYLOAD);
        let bytes = failure(7, &long);
        let (f, _) = frame::decode(&bytes, MAX_PAYLOAD).unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Failure, 7));
        let text = std::str::from_utf8(&f.payload).unwrap();
        assert!(text.len() <= MAX_PREAUTH_PAYLOAD && text.len() >= MAX_PREAUTH_PAYLOAD - 1);
    }
}
