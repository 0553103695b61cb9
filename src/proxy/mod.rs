//! The MySQL-protocol front end (`[proxy]`): MySQL and MariaDB clients, drivers and tools
//! connect to any node; reads run on that node's MariaDB and every write goes through the
//! replicated log, through the protocol-neutral [`crate::service`] layer only.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the listener: accept, connection limit, shutdown |
//! | `session.rs` | one connection: login, commands, session state |
//! | `sessions.rs` | the live connections: `KILL`, interrupting a statement |
//! | `statement.rs` | what a statement is (read, write, schema change, session) |
//! | `variables.rs` | which `SET`s are accepted and what they do |
//! | `txn.rs` | interactive transactions: run locally, recorded, certified at COMMIT |
//! | `params.rs` | prepared-statement values |
//! | `wire.rs` | columns, values and errors on the wire |
//! | `auth.rs` | `mysql_native_password` accounts |
//!
//! The protocol is spoken by opensrv-mysql (Databend's and GreptimeDB's MySQL server
//! crate, maintained, async on tokio): it does the handshake, packet framing and the
//! text and binary result encodings, and leaves every decision to [`session::Session`].

pub mod auth;
mod params;
mod session;
mod sessions;
mod statement;
mod txn;
mod variables;
mod wire;

use crate::config::ProxyConfig;
use crate::service::Service;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The version the front end announces: MariaDB-compatible, and saying what it is.
pub const SERVER_VERSION: &str = concat!("10.11.0-WolfScale-", env!("CARGO_PKG_VERSION"));

/// Why the front end could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `[[proxy.users]]` is unusable.
    #[error("proxy.users: {0}")]
    Users(String),
    /// The listen address cannot be bound.
    #[error("cannot listen on proxy.bind_address {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What every connection shares.
pub(crate) struct Shared {
    users: auth::Users,
    /// The live connections, for `KILL`.
    sessions: Arc<sessions::Sessions>,
    /// `proxy.max_transaction_ms`.
    max_transaction: std::time::Duration,
}

/// A bound front end, ready to [`Proxy::serve`].
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
}

impl Proxy {
    /// Binds the front end, or answers `None` when `[proxy]` is disabled or names no
    /// user (then nobody could log in, so nothing listens). `mariadb` reaches this node's
    /// MariaDB (`[database]`): a client's `KILL QUERY` of a statement in an interactive
    /// transaction is sent there.
    ///
    /// # Errors
    /// Unusable users or an address that cannot be bound.
    pub async fn bind(
        config: &ProxyConfig,
        mariadb: mysql_async::Opts,
    ) -> Result<Option<Proxy>, Error> {
        if !config.enabled {
            return Ok(None);
        }
        let users = auth::Users::from_config(&config.users).map_err(Error::Users)?;
        if users.is_empty() {
            tracing::info!("mysql front end not started: [[proxy.users]] names no user");
            return Ok(None);
        }
        let listener = TcpListener::bind(&config.bind_address)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind_address.clone(),
                source,
            })?;
        Ok(Some(Proxy {
            listener,
            shared: Arc::new(Shared {
                users,
                sessions: Arc::new(sessions::Sessions::new(Some(mariadb))),
                max_transaction: std::time::Duration::from_millis(config.max_transaction_ms),
            }),
            max_connections: config.max_connections.max(1) as usize,
        }))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `stop` is cancelled; each connection ends then too.
    pub async fn serve(self, service: Service, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let ids = AtomicU32::new(1);
        loop {
            let (stream, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = self.listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "mysql accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let id = ids.fetch_add(1, Ordering::Relaxed).max(1);
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                crate::observe::metrics::proxy_connection("refused");
                tokio::spawn(refuse(stream, self.max_connections));
                continue;
            };
            crate::observe::metrics::proxy_connection("accepted");
            let (stream, watch) = match watched(stream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "mysql connection setup failed");
                    continue;
                }
            };
            let session = session::Session::new(service.clone(), self.shared.clone(), id);
            let killed = session.closed();
            let stop = stop.clone();
            let tls = service.node().tls();
            service.node().spawn(async move {
                let _slot = slot;
                crate::observe::metrics::proxy_open(1.0);
                let (r, w) = stream.into_split();
                let run = run_connection(session, r, w, tls);
                // Dropping `run` drops a statement under way: a read is then killed on
                // MariaDB (a write already handed to the log still applies). Biased: a
                // `KILL CONNECTION` wins over the statement's own answer when both are
                // ready, so a killed connection is closed, not answered.
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => {}
                    _ = killed.cancelled() => {
                        tracing::debug!(connection = id, "mysql connection killed");
                    }
                    _ = client_gone(watch) => {
                        tracing::debug!(connection = id, "mysql client disconnected");
                    }
                    ended = run => if let Err(e) = ended {
                        tracing::debug!(connection = id, error = %e, "mysql connection ended");
                    },
                }
                crate::observe::metrics::proxy_open(-1.0);
            });
        }
    }
}

/// Speaks the protocol on one connection. With `[tls]`, the greeting offers TLS (the
/// certificates in force now, reloads included) and a client that does not switch to it
/// is refused at login: passwords and rows never cross the network in plain text.
async fn run_connection(
    mut session: session::Session,
    r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    tls: Option<Arc<crate::tls::Tls>>,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return opensrv_mysql::AsyncMysqlIntermediary::run_on(session, r, w).await;
    };
    let config = tls.current().mysql_server.clone();
    let (secure, init) = opensrv_mysql::AsyncMysqlIntermediary::init_before_ssl(
        &mut session,
        r,
        &mut w,
        &Some(config.clone()),
    )
    .await?;
    let options = opensrv_mysql::IntermediaryOptions::default();
    if secure {
        opensrv_mysql::secure_run_with_options(session, w, options, config, init).await
    } else {
        session.refuse_plaintext();
        opensrv_mysql::plain_run_with_options(session, w, options, init).await
    }
}

/// The connection, and a second handle on the same socket that only watches for the
/// client closing it (the protocol crate reads the socket only between statements).
fn watched(stream: TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    let std = stream.into_std()?;
    let dup = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, TcpStream::from_std(dup)?))
}

/// Ends when the client has closed the connection (or it failed). Bytes waiting to be
/// read are the client's next command, for the session to read: checked again shortly.
async fn client_gone(watch: TcpStream) {
    let mut byte = [0u8; 1];
    loop {
        match watch.peek(&mut byte).await {
            Ok(0) | Err(_) => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// Answers a connection over `max_connections` with error 1040 in place of the greeting.
async fn refuse(mut stream: TcpStream, max: usize) {
    let message = format!("Too many connections (proxy.max_connections is {max})");
    let mut payload = vec![0xff];
    payload.extend_from_slice(&1040u16.to_le_bytes());
    payload.extend_from_slice(message.as_bytes());
    let len = payload.len() as u32;
    let mut packet = len.to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&payload);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = stream.write_all(&packet).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_over_the_limit_gets_error_1040_from_a_real_client() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((stream, _)) = listener.accept().await {
                refuse(stream, 3).await;
            }
        });
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(addr.ip().to_string())
            .tcp_port(addr.port())
            .prefer_socket(false);
        match mysql_async::Conn::new(opts).await {
            Err(mysql_async::Error::Server(e)) => {
                assert_eq!(e.code, 1040, "{e:?}");
                assert!(e.message.contains("max_connections is 3"), "{e:?}");
            }
            other => panic!("expected error 1040, got {other:?}"),
        }
    }
}
