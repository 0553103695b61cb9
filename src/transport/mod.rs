//! The cluster transport: authenticated, multiplexed RPC over TCP between nodes. It owns
//! framing, the shared-secret handshake, persistent connections with reconnects and
//! timeouts, and the server's accept loop. It does not know what the messages mean: the
//! consensus layer defines the request and response types and the [`Handler`].
//!
//! A message is any serde type, encoded with postcard (compact, not self-describing, so
//! types that need `deserialize_any`, such as `#[serde(untagged)]` enums, are not allowed).
//!
//! ```text
//! server: serve(TcpListener, ServerConfig::new(identity, key), Arc<impl Handler>, token)
//! client: Client::new(ClientConfig::new(identity, key))
//!             .call::<Req, Resp>("host:port", &req, timeout) -> Result<Resp, Error>
//! ```

pub mod client;
mod conn;
pub mod frame;
pub mod handshake;
pub mod server;

pub use client::{Client, ClientConfig};
pub use handshake::{AuthKey, Identity, PROTOCOL_VERSION};
pub use server::{serve, serve_with, ServerConfig};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// What a transport call or a server start can fail with; each variant is a decision the
/// caller makes differently (retry later, give up, report a misconfiguration).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No working connection to the peer: refused, reset, closed or silent. Retry later.
    #[error("peer {peer} unreachable: {reason}")]
    Unreachable {
        /// Address called.
        peer: String,
        /// What went wrong.
        reason: String,
    },
    /// The connection ended after the request was queued and before the answer came: the
    /// peer may or may not have received and handled it. Retry later, if that is safe.
    #[error("connection to {peer} lost mid-call: {reason}")]
    Lost {
        /// Address called.
        peer: String,
        /// What ended the connection.
        reason: String,
    },
    /// The call got no answer in time; the connection stays up for later calls.
    #[error("call to {peer} timed out after {after:?}")]
    Timeout {
        /// Address called.
        peer: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The peer received the request and its handler (or decoder) failed.
    #[error("peer {peer} failed the request: {message}")]
    Remote {
        /// Address called.
        peer: String,
        /// The peer's reason.
        message: String,
    },
    /// The peer and we do not share the cluster secret (or it refused us); check
    /// `cluster.secret` on both nodes.
    #[error("authentication with {peer} failed: {reason}")]
    AuthFailed {
        /// Address called.
        peer: String,
        /// Which side refused and why.
        reason: String,
    },
    /// The peer runs an incompatible protocol version or belongs to another cluster.
    #[error("peer {peer} is incompatible: {reason}")]
    Incompatible {
        /// Address called.
        peer: String,
        /// The mismatch.
        reason: String,
    },
    /// Our request could not be encoded or exceeds the frame limit; nothing was sent.
    #[error("request not sent: {0}")]
    Encode(#[from] frame::EncodeError),
    /// The peer's answer is not a valid response of the expected type.
    #[error("bad response from {peer}: {reason}")]
    Decode {
        /// Address called.
        peer: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// The cluster secret is shorter than `config::MIN_CLUSTER_SECRET_LEN` characters.
    #[error("cluster secret must be at least {min} characters")]
    WeakSecret {
        /// Minimum length.
        min: usize,
    },
    /// The client was closed; no further calls are made.
    #[error("transport client is closed")]
    Closed,
    /// Binding or accepting on the listen socket failed.
    #[error("transport listener: {0}")]
    Io(#[from] io::Error),
}

/// Who is on the other end of an authenticated connection, as given to the [`Handler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Socket address of the peer.
    pub addr: SocketAddr,
    /// Node name the peer proved along with the secret.
    pub node: String,
}

/// Serves the requests of authenticated peers. The server decodes each request into
/// `Request`, runs `handle` concurrently with the connection's other requests, and sends
/// back the `Response` (or the error string, which the caller sees as [`Error::Remote`]).
/// A `handle` future is dropped unfinished when its connection ends or the server shuts
/// down, so it must not leave shared state half-changed at an `.await`.
pub trait Handler: Send + Sync + 'static {
    /// What peers send; decoded with postcard.
    type Request: serde::de::DeserializeOwned + Send + 'static;
    /// What the handler answers; encoded with postcard.
    type Response: serde::Serialize + Send + 'static;

    /// Handles one request from `peer`.
    fn handle(
        &self,
        peer: &PeerInfo,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, String>> + Send;
}

/// A byte stream the transport can run over: a TCP stream today, a TLS stream later.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Turns an accepted TCP connection into the stream the server speaks over (the TLS seam).
pub trait Acceptor: Send + Sync + 'static {
    /// The wrapped stream.
    type Stream: Stream;
    /// Wraps `tcp`; runs under the handshake timeout.
    fn accept(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Turns a connected TCP stream into the stream the client speaks over (the TLS seam).
pub trait Connector: Send + Sync + 'static {
    /// The wrapped stream.
    type Stream: Stream;
    /// Wraps `tcp` connected to `peer` (the address as the caller named it).
    fn connect(
        &self,
        tcp: TcpStream,
        peer: &str,
    ) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP: the stream is used as it is. Authentication still comes from the handshake;
/// confidentiality waits for TLS.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainTcp;

impl Acceptor for PlainTcp {
    type Stream = TcpStream;
    async fn accept(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

impl Connector for PlainTcp {
    type Stream = TcpStream;
    async fn connect(&self, tcp: TcpStream, _peer: &str) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}
