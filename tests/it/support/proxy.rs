//! A TCP relay between test nodes that can black-hole traffic, for partition tests.

/// A TCP relay between test nodes that can black-hole traffic (a partition in which
/// packets are lost but no connection is reset) and records what clients sent.
pub struct Proxy {
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    recorded: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Proxy {
    /// Relays every connection made to [`Proxy::addr`] to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the proxy");
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let blocked = Arc::new(AtomicBool::new(false));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let (b, r, s) = (blocked.clone(), recorded.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let down = tokio::select! {
                    _ = s.cancelled() => return,
                    a = listener.accept() => match a { Ok((d, _)) => d, Err(_) => continue },
                };
                let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let s1 = s.clone();
                let c2s = pipe(dr, uw, b.clone(), Some(r.clone()));
                let s2c = pipe(ur, dw, b.clone(), None);
                tokio::spawn(async move {
                    tokio::select! {
                        _ = s1.cancelled() => {}
                        _ = async { tokio::join!(c2s, s2c) } => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            blocked,
            recorded,
            stop,
        }
    }

    /// While blocked, bytes in both directions are read and dropped.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked
            .store(blocked, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every byte clients sent through the proxy so far.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    record: Option<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if blocked.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        if let Some(r) = &record {
            r.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
