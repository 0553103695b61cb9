//! The calling side of the transport: one persistent, authenticated connection per peer
//! address, opened on first use and shared by every concurrent call to that peer
//! (responses are matched to calls by request id). It owns dialing, reconnect backoff
//! and per-call timeouts; the connection itself (answer routing, pings, failing calls
//! when it breaks) is `conn`'s. It does not retry calls: consensus decides what to resend.

use super::conn::{Conn, Liveness, Reply};
use super::frame::{self, FrameReader, Kind, MAX_PAYLOAD, MAX_PREAUTH_PAYLOAD};
use super::handshake::{self, AuthKey, Identity};
use super::{Connector, Error, PlainTcp};
use rand::Rng;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

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
    /// Cap of the reconnect delay (before jitter). Default: 500 ms, so a peer that comes
    /// back (a restarted follower that must catch up) is reached within half a second,
    /// at the price of a few refused dials per second while it is down.
    pub backoff_max: Duration,
    /// A connection that received nothing for this long is pinged. Default: 1 s.
    pub ping_interval: Duration,
    /// A connection that received nothing (not even a pong) for this long is declared
    /// dead and its calls fail. Default: 10 s.
    pub dead_after: Duration,
    /// Largest request or response payload. Default: [`MAX_PAYLOAD`].
    pub max_payload: usize,
    /// Source address of outgoing connections, so that peers (and firewalls between
    /// them) see this node's own address; `None` leaves the choice to the OS. A peer whose
    /// address is of the other family is dialed without it. Default: `None`.
    pub local_ip: Option<IpAddr>,
}

impl ClientConfig {
    /// A configuration with the default timings.
    pub fn new(identity: Identity, key: AuthKey) -> Self {
        ClientConfig {
            identity,
            key,
            connect_timeout: Duration::from_secs(3),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
            ping_interval: Duration::from_secs(1),
            dead_after: Duration::from_secs(10),
            max_payload: MAX_PAYLOAD,
            local_ip: None,
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

/// What the client knows of one peer address. A dial runs as its own task, so it
/// completes (within `connect_timeout`) even when every caller waiting for it gives up
/// sooner, and its outcome is kept here for the next caller.
#[derive(Default)]
struct Peer {
    state: Mutex<PeerState>,
}

#[derive(Default)]
struct PeerState {
    live: Option<Arc<Conn>>,
    /// Present while a dial runs; turns true when it has finished.
    dialing: Option<watch::Receiver<bool>>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<LastError>,
}

impl Peer {
    fn lock(&self) -> MutexGuard<'_, PeerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PeerState {
    fn live(&mut self) -> Option<Arc<Conn>> {
        match &self.live {
            Some(conn) if !conn.is_closed() => Some(conn.clone()),
            Some(_) => {
                self.live = None;
                None
            }
            None => None,
        }
    }

    /// The error to give a caller while no connection exists.
    fn error(&self, peer: &str) -> Error {
        match &self.last_error {
            Some(last) => {
                let wait = self.retry_at.map_or(Duration::ZERO, |at| {
                    at.saturating_duration_since(Instant::now())
                });
                last.to_error(peer, wait)
            }
            None => Error::Unreachable {
                peer: peer.to_string(),
                reason: "connection lost as soon as it was made".into(),
            },
        }
    }
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
    /// [`Error::Unreachable`] when there is no connection (nothing was sent);
    /// [`Error::Lost`] when it broke after the request was queued (the peer may have
    /// handled it);
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
        let request =
            frame::encode_value(Kind::Request, 0, request, self.inner.config.max_payload)?;
        let exchange = async {
            let conn = self.connection(peer).await?;
            match conn.exchange(request).await {
                Reply::Ok(payload) => postcard::from_bytes(&payload).map_err(|e| Error::Decode {
                    peer: peer.to_string(),
                    reason: e.to_string(),
                }),
                Reply::Failed(message) => Err(Error::Remote {
                    peer: peer.to_string(),
                    message,
                }),
                Reply::NotSent(reason) => Err(Error::Unreachable {
                    peer: peer.to_string(),
                    reason: format!("connection lost: {reason}"),
                }),
                Reply::Lost(reason) => Err(Error::Lost {
                    peer: peer.to_string(),
                    reason: reason.to_string(),
                }),
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
        let peer = self.lock_peers().get(addr)?.clone();
        let live = peer.lock().live();
        live.map(|c| c.node.clone())
    }

    fn lock_peers(&self) -> MutexGuard<'_, HashMap<String, Arc<Peer>>> {
        self.inner.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn peer(&self, addr: &str) -> Arc<Peer> {
        let mut peers = self.lock_peers();
        if let Some(p) = peers.get(addr) {
            return p.clone();
        }
        peers.entry(addr.to_string()).or_default().clone()
    }

    /// The live connection to `addr`; starts a dial if there is none, no dial is running
    /// and no backoff is in force, then waits for the running dial.
    async fn connection(&self, addr: &str) -> Result<Arc<Conn>, Error> {
        let peer = self.peer(addr);
        let mut done = {
            let mut st = peer.lock();
            if let Some(conn) = st.live() {
                return Ok(conn);
            }
            match &st.dialing {
                Some(rx) => rx.clone(),
                None => {
                    if st.retry_at.is_some_and(|at| Instant::now() < at) {
                        return Err(st.error(addr));
                    }
                    let (tx, rx) = watch::channel(false);
                    st.dialing = Some(rx.clone());
                    let (client, peer, addr) = (self.clone(), peer.clone(), addr.to_string());
                    self.inner.tracker.spawn(async move {
                        client.dial_and_record(&addr, &peer).await;
                        let _ = tx.send(true);
                    });
                    rx
                }
            }
        };
        if done.wait_for(|finished| *finished).await.is_err() {
            return Err(Error::Closed);
        }
        let mut st = peer.lock();
        st.live().ok_or_else(|| st.error(addr))
    }

    async fn dial_and_record(&self, addr: &str, peer: &Peer) {
        let result = tokio::select! {
            r = self.dial(addr) => r,
            _ = self.inner.cancel.cancelled() => Err(Error::Closed),
        };
        let mut st = peer.lock();
        st.dialing = None;
        match result {
            Ok(conn) => {
                st.failures = 0;
                st.retry_at = None;
                st.last_error = None;
                st.live = Some(conn);
            }
            Err(e) => {
                let cfg = &self.inner.config;
                st.failures = st.failures.saturating_add(1);
                let wait = backoff(cfg.backoff_min, cfg.backoff_max, st.failures);
                st.retry_at = Some(Instant::now() + wait);
                st.last_error = Some(LastError::from_error(&e));
                warn!(peer = addr, error = %e, retry_in = ?wait, "cannot connect to peer");
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
            let tcp = connect_from(cfg.local_ip, addr)
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
        let span = tracing::info_span!("transport_peer", peer = addr, node_id = %node);
        info!(parent: &span, "connected to peer");
        let liveness = Liveness {
            ping_interval: cfg.ping_interval,
            dead_after: cfg.dead_after,
        };
        let cancel = self.inner.cancel.child_token();
        Ok(Conn::start(
            rd,
            wr,
            node,
            cancel,
            &self.inner.tracker,
            liveness,
            span,
        ))
    }
}

/// Connects to `addr` (`host:port`, resolved), trying each of its addresses in turn; from
/// `local` when it is given and of the same family as the address tried.
async fn connect_from(local: Option<IpAddr>, addr: &str) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for target in tokio::net::lookup_host(addr).await? {
        let attempt = if target.is_ipv4() == local.is_ipv4() {
            connect_bound(local, target).await
        } else {
            TcpStream::connect(target).await
        };
        match attempt {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{addr} resolves to no address"),
        )
    }))
}

async fn connect_bound(local: IpAddr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if local.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket
        .bind(SocketAddr::new(local, 0))
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind source address {local}: {e}")))?;
    socket.connect(target).await
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

    #[tokio::test]
    async fn outgoing_connections_come_from_the_local_ip() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let from = IpAddr::from([127, 0, 0, 3]);
        let (dialed, accepted) = tokio::join!(connect_from(Some(from), &addr), listener.accept());
        dialed.expect("connect from 127.0.0.3");
        let (_, peer) = accepted.expect("accept");
        assert_eq!(peer.ip(), from);
        // Without a local address the OS picks one (on loopback, the destination's own).
        let (dialed, accepted) = tokio::join!(connect_from(None, &addr), listener.accept());
        dialed.expect("connect");
        assert_eq!(
            accepted.expect("accept").1.ip(),
            IpAddr::from([127, 0, 0, 1])
        );
    }

    #[tokio::test]
    async fn a_local_ip_of_the_other_family_is_not_used() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let from: IpAddr = "::1".parse().expect("ip");
        let (dialed, accepted) = tokio::join!(connect_from(Some(from), &addr), listener.accept());
        dialed.expect("connect without binding ::1");
        assert!(accepted.expect("accept").1.ip().is_ipv4());
    }
}
