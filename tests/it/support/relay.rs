//! A TCP relay in front of one test node that can cut the links from chosen source
//! addresses, for partition tests: each node listens on its own loopback address and
//! dials peers from it, so the relay knows which node every connection comes from.
//!
//! A cut link is black-holed, not closed: the relay stops moving bytes in both directions
//! of that peer's connections (and holds new ones before they reach the node), as when
//! the network drops packets. Nothing is lost: when the link is restored, held bytes are
//! delivered in order, as TCP retransmission would once the network heals. Cutting the
//! relay of node B for node A's address cuts A→B (A's calls to B); B's calls to A pass
//! through A's relay and are cut separately, so a partition can be one-way.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A relay listening on [`Relay::addr`] and forwarding to one upstream address.
pub struct Relay {
    /// Where peers connect (the node's advertised address).
    pub addr: SocketAddr,
    cut: Arc<watch::Sender<BTreeSet<IpAddr>>>,
    stop: CancellationToken,
}

impl Relay {
    /// Listens on a free port of `ip` and relays every connection to `upstream`.
    pub async fn start(ip: IpAddr, upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind a relay port");
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let (cut, _) = watch::channel(BTreeSet::new());
        let cut = Arc::new(cut);
        let stop = CancellationToken::new();
        let (c, s) = (cut.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (down, peer) = tokio::select! {
                    _ = s.cancelled() => return,
                    a = listener.accept() => match a { Ok(x) => x, Err(_) => continue },
                };
                let (rx, s) = (c.subscribe(), s.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = s.cancelled() => {}
                        _ = relay(down, peer.ip(), upstream, rx) => {}
                    }
                });
            }
        });
        Relay { addr, cut, stop }
    }

    /// Black-holes connections from `from` (the link from that address to this node).
    pub fn cut(&self, from: IpAddr) {
        self.cut.send_modify(|s| {
            s.insert(from);
        });
    }

    /// Restores the link from `from`: held bytes flow again.
    pub fn restore(&self, from: IpAddr) {
        self.cut.send_modify(|s| {
            s.remove(&from);
        });
    }

    /// Restores every link.
    pub fn restore_all(&self) {
        self.cut.send_modify(|s| s.clear());
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Waits while the link from `src` is cut; false when the relay is gone.
async fn open(rx: &mut watch::Receiver<BTreeSet<IpAddr>>, src: IpAddr) -> bool {
    rx.wait_for(|cut| !cut.contains(&src)).await.is_ok()
}

async fn relay(
    down: TcpStream,
    src: IpAddr,
    upstream: SocketAddr,
    mut rx: watch::Receiver<BTreeSet<IpAddr>>,
) {
    // A connection made while the link is cut never reaches the node until it heals.
    if !open(&mut rx, src).await {
        return;
    }
    // A node that is down refuses: so does its relay (by closing).
    let Ok(up) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = up.set_nodelay(true);
    let _ = down.set_nodelay(true);
    let (dr, dw) = down.into_split();
    let (ur, uw) = up.into_split();
    tokio::join!(pipe(dr, uw, src, rx.clone()), pipe(ur, dw, src, rx));
}

/// Moves bytes from `from` to `to` while the link from `src` is open.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    src: IpAddr,
    mut rx: watch::Receiver<BTreeSet<IpAddr>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !open(&mut rx, src).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        // Whatever was read, and even the end of the stream, waits for the link.
        if !open(&mut rx, src).await {
            return;
        }
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            let _ = to.shutdown().await;
            return;
        }
    }
}
