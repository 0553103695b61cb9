//! The cluster port's TLS seam: an [`Acceptor`] and a [`Connector`] for the transport that
//! speak mutual TLS when `[tls]` is set and plain TCP otherwise. The shared-secret
//! handshake then runs inside the TLS stream.

use super::{server_name, Tls};
use crate::transport::{Acceptor, Connector, Stream};
use std::io;
use std::sync::Arc;
use tokio::net::TcpStream;

/// Server side of the cluster port: with TLS, a peer must present a certificate signed by
/// `ca_file` before a single frame is read.
#[derive(Debug, Clone, Default)]
pub struct ClusterAcceptor(pub Option<Arc<Tls>>);

impl Acceptor for ClusterAcceptor {
    type Stream = Box<dyn Stream>;
    async fn accept(&self, tcp: TcpStream) -> io::Result<Box<dyn Stream>> {
        match &self.0 {
            None => Ok(Box::new(tcp)),
            Some(tls) => {
                let cfg = tls.current().cluster_server.clone();
                let stream = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await?;
                Ok(Box::new(stream))
            }
        }
    }
}

/// Client side of the cluster port: with TLS, the peer's certificate must be signed by
/// `ca_file` and name the host we dialled; ours is presented in turn.
#[derive(Debug, Clone, Default)]
pub struct ClusterConnector(pub Option<Arc<Tls>>);

impl Connector for ClusterConnector {
    type Stream = Box<dyn Stream>;
    async fn connect(&self, tcp: TcpStream, peer: &str) -> io::Result<Box<dyn Stream>> {
        match &self.0 {
            None => Ok(Box::new(tcp)),
            Some(tls) => {
                let cfg = tls.current().cluster_client.clone();
                let name = server_name(peer)?;
                let stream = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await?;
                Ok(Box::new(stream))
            }
        }
    }
}

/// The transport client every node uses: mutual TLS when `[tls]` is set.
pub type ClusterClient = crate::transport::Client<ClusterConnector>;
