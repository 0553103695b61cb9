//! TLS for the HTTP API and the cluster port, built from the `[tls]` section: reads the
//! PEM files, builds rustls configurations (mutual TLS on the cluster port, server-only
//! on the API), and swaps them in when the files change or on SIGHUP. It does not open
//! sockets: the transport and the API wrap their TCP streams with what this hands out.

mod generate;
mod stream;

pub use generate::{generate, GenerateError, Generated};
pub use stream::{ClusterAcceptor, ClusterClient, ClusterConnector};

use crate::config::TlsConfig;
use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the certificate files' modification times are checked.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Why the TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificates or key (for example a key that does not match).
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    /// The MySQL front end's TLS configuration could not be built.
    #[error("TLS setup (MySQL front end): {0}")]
    MysqlFrontEnd(String),
    /// The client-certificate verifier could not be built from the CA file.
    #[error("TLS client verifier: {0}")]
    Verifier(String),
}

/// The PEM files of `[tls]`, parsed.
#[derive(Debug, Clone)]
pub struct Material {
    /// This node's certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: Arc<PrivateKeyDer<'static>>,
    /// The CA certificates peers' certificates must chain to.
    pub roots: Arc<RootCertStore>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads every certificate in the PEM file at `path`; at least one is required.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(path, "contains no PEM certificate"));
    }
    Ok(certs)
}

/// A root store of every certificate in the PEM file at `path`.
pub fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| pem_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

impl Material {
    /// Reads and parses the three files.
    ///
    /// # Errors
    /// [`TlsError`] naming the file that cannot be read or parsed.
    pub fn load(cfg: &TlsConfig) -> Result<Material, TlsError> {
        let chain = read_certs(&cfg.cert_file)?;
        let bytes = read(&cfg.key_file)?;
        let key = rustls_pemfile::private_key(&mut bytes.as_slice())
            .map_err(|e| pem_error(&cfg.key_file, format!("not a PEM key file: {e}")))?
            .ok_or_else(|| pem_error(&cfg.key_file, "contains no PEM private key"))?;
        let roots = read_roots(&cfg.ca_file)?;
        Ok(Material {
            chain,
            key: Arc::new(key),
            roots: Arc::new(roots),
        })
    }
}

/// The ring provider: it builds much faster than aws-lc-rs. rustls marks it deprecated
/// because it lacks post-quantum key exchange; classical X25519/P-256 is what we need.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The cipher suites the nodes offer, most preferred first (what benchmarks compare).
pub fn cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    provider().cipher_suites.clone()
}

/// The rustls configurations built from one [`Material`].
#[derive(Debug)]
pub struct Configs {
    /// Cluster port, server side: a client certificate signed by the CA is required.
    pub cluster_server: Arc<rustls::ServerConfig>,
    /// Cluster port, client side: verifies the server against the CA, presents our cert.
    pub cluster_client: Arc<rustls::ClientConfig>,
    /// HTTP API, server side: no client certificate asked for (tokens authenticate).
    pub api_server: Arc<rustls::ServerConfig>,
    /// MySQL front end, server side: no client certificate asked for (passwords
    /// authenticate); rustls 0.22, the version the protocol crate's TLS switch takes.
    pub mysql_server: Arc<rustls022::ServerConfig>,
}

impl Configs {
    /// Builds every configuration; fails if the key does not match the certificate.
    pub fn build(m: &Material) -> Result<Configs, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(m.roots.clone(), provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let cluster_server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(m.chain.clone(), m.key.clone_key())?;
        let cluster_client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(m.roots.clone())
            .with_client_auth_cert(m.chain.clone(), m.key.clone_key())?;
        let mut api_server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(m.chain.clone(), m.key.clone_key())?;
        api_server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mysql_server = rustls022::ServerConfig::builder_with_provider(Arc::new(
            rustls022::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::MysqlFrontEnd(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| TlsError::MysqlFrontEnd(e.to_string()))?;
        Ok(Configs {
            cluster_server: Arc::new(cluster_server),
            cluster_client: Arc::new(cluster_client),
            api_server: Arc::new(api_server),
            mysql_server: Arc::new(mysql_server),
        })
    }
}

/// A client configuration that trusts the CA in `ca_file` and presents no certificate:
/// what the CLI and the benchmark use to talk HTTPS to the API.
pub fn https_client_config(ca_file: &Path) -> Result<rustls::ClientConfig, TlsError> {
    let roots = read_roots(ca_file)?;
    // No ALPN here: the HTTPS connector sets it from the protocols it enables.
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The name a peer's certificate must carry: the host part of `host:port` (an IP address
/// or a DNS name).
pub fn server_name(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    };
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host} is not a valid TLS server name: {e}"),
        )
    })
}

/// The live TLS state of a node: the current configurations, replaced as a whole when the
/// files change. Connections already open keep the configuration they started with.
#[derive(Debug)]
pub struct Tls {
    files: TlsConfig,
    current: ArcSwap<Configs>,
    stamps: std::sync::Mutex<Vec<Option<SystemTime>>>,
}

impl Tls {
    /// Loads the files of `cfg` and builds the configurations.
    ///
    /// # Errors
    /// [`TlsError`] if a file is unreadable or invalid, or the key does not match.
    pub fn load(cfg: &TlsConfig) -> Result<Arc<Tls>, TlsError> {
        let stamps = stamps(cfg);
        let configs = Configs::build(&Material::load(cfg)?)?;
        Ok(Arc::new(Tls {
            files: cfg.clone(),
            current: ArcSwap::from_pointee(configs),
            stamps: std::sync::Mutex::new(stamps),
        }))
    }

    /// The configurations new connections use.
    pub fn current(&self) -> Arc<Configs> {
        self.current.load_full()
    }

    /// Re-reads the files and swaps the new configurations in. On error the old ones stay.
    ///
    /// # Errors
    /// [`TlsError`] if the new files are unreadable or invalid.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = stamps(&self.files);
        let configs = Configs::build(&Material::load(&self.files)?)?;
        self.current.store(Arc::new(configs));
        if let Ok(mut s) = self.stamps.lock() {
            *s = stamps;
        }
        Ok(())
    }

    /// True when a file's modification time differs from the last load.
    fn changed(&self) -> bool {
        let now = stamps(&self.files);
        self.stamps.lock().map(|s| *s != now).unwrap_or(true)
    }

    /// Reloads on SIGHUP and whenever a file's modification time changes (checked every
    /// [`RELOAD_CHECK_INTERVAL`]), until `shutdown`. Failed reloads are logged and retried
    /// at the next change. The file checks and reads run on a blocking thread, never on a
    /// runtime worker (a slow or hung filesystem must not delay heartbeats).
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(RELOAD_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let asked = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            let this = self.clone();
            let outcome = tokio::task::spawn_blocking(move || this.check(asked)).await;
            match outcome {
                Ok(Check::Unchanged) => {}
                Ok(Check::Reloaded) => tracing::info!(sighup = asked, "tls certificates reloaded"),
                Ok(Check::Failed(e)) => tracing::error!(
                    error = %e,
                    "tls reload failed; keeping the previous certificates"
                ),
                Err(e) => tracing::error!(error = %e, "tls reload task failed"),
            }
        }
    }

    /// One watcher step (blocking file I/O): reloads when `asked` or a file changed.
    fn check(&self, asked: bool) -> Check {
        if !asked && !self.changed() {
            return Check::Unchanged;
        }
        match self.reload() {
            Ok(()) => Check::Reloaded,
            Err(e) => {
                // Do not retry the same broken files every tick.
                if let Ok(mut s) = self.stamps.lock() {
                    *s = stamps(&self.files);
                }
                Check::Failed(e)
            }
        }
    }
}

/// What one watcher step did.
enum Check {
    Unchanged,
    Reloaded,
    Failed(TlsError),
}

fn stamps(cfg: &TlsConfig) -> Vec<Option<SystemTime>> {
    [&cfg.cert_file, &cfg.key_file, &cfg.ca_file]
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

#[cfg(test)]
mod tests;
