//! The `wolfscale.toml` schema: one struct per section, the SPEC's defaults, and
//! validation that reports every problem by key path. Nothing here opens files other
//! than the config itself (and the secret files it names), and nothing reads the
//! environment: the binary passes environment overrides in explicitly.

pub(crate) mod check;
mod secret;
mod template;

pub use check::Problem;
pub use secret::{Secret, SecretSource, Secrets, TokenHash, MIN_CLUSTER_SECRET_LEN};
pub use template::template;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not valid TOML; the message carries the line and column.
    #[error("config file {} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file being parsed.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parsed but breaks one or more rules; every problem is listed.
    #[error("config file {} has {} problem(s):\n{}", path.display(), problems.len(), Problem::list(problems))]
    Invalid {
        /// The file being checked.
        path: PathBuf,
        /// Every problem found, each named by key path.
        problems: Vec<Problem>,
    },
}

/// Values taken from the environment by the binary and passed in explicitly, so that
/// nothing below `main` reads the environment.
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides {
    /// `WOLFSCALE_DB_PASSWORD`: overrides `database.password` / `password_file`.
    pub db_password: Option<String>,
    /// `WOLFSCALE_CLUSTER_SECRET`: overrides `cluster.secret` / `secret_file`.
    pub cluster_secret: Option<String>,
    /// `WOLFSCALE_API_TOKEN`: overrides `api.token` / `token_file`.
    pub api_token: Option<String>,
    /// `WOLFSCALE_LOG` (else `RUST_LOG`): overrides `log.level`.
    pub log_filter: Option<String>,
    /// `NO_COLOR` set and not empty: no ANSI colours even on a terminal.
    pub no_color: bool,
}

/// A configuration that passed every check, with its secrets resolved.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration (defaults filled in).
    pub config: Config,
    /// Secrets from the config, the files it names, or the environment.
    pub secrets: Secrets,
}

/// Reads, parses and validates a config file, resolving secrets.
///
/// # Errors
/// [`ConfigError::Read`] if the file cannot be read, [`ConfigError::Syntax`] for bad TOML
/// and [`ConfigError::Invalid`] listing every rule the file breaks.
pub fn load(path: &Path, env: &EnvOverrides) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, env).map_err(|e| match e {
        ParseError::Syntax(message) => ConfigError::Syntax {
            path: path.to_path_buf(),
            message,
        },
        ParseError::Invalid(problems) => ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        },
    })
}

/// Why a config text was refused (see [`ConfigError`] for the file-level error).
#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// Not valid TOML; the message carries line and column.
    Syntax(String),
    /// Valid TOML that breaks the listed rules.
    Invalid(Vec<Problem>),
}

/// Parses and validates config text, collecting every problem rather than the first.
///
/// # Errors
/// [`ParseError::Syntax`] for bad TOML, [`ParseError::Invalid`] with every problem found.
pub fn parse(text: &str, env: &EnvOverrides) -> Result<Loaded, ParseError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    let (config, mut problems) = check::structure(table);
    let Some(config) = config else {
        return Err(ParseError::Invalid(problems));
    };
    problems.extend(check::semantics(&config));
    problems.extend(check_tls(&config));
    let secrets = match secret::resolve(&config, env) {
        Ok(s) => Some(s),
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    match secrets {
        Some(secrets) if problems.is_empty() => Ok(Loaded { config, secrets }),
        _ => Err(ParseError::Invalid(problems)),
    }
}

/// `[tls]`: every file readable and valid PEM, and the key matching the certificate.
fn check_tls(c: &Config) -> Vec<Problem> {
    let Some(t) = &c.tls else {
        return Vec::new();
    };
    let key = |e: &crate::tls::TlsError| match e {
        crate::tls::TlsError::Read { path, .. } | crate::tls::TlsError::Pem { path, .. } => {
            if *path == t.key_file {
                "tls.key_file"
            } else if *path == t.ca_file {
                "tls.ca_file"
            } else {
                "tls.cert_file"
            }
        }
        _ => "tls",
    };
    match crate::tls::Material::load(t).and_then(|m| crate::tls::Configs::build(&m)) {
        Ok(_) => Vec::new(),
        Err(e) => vec![Problem::new(key(&e), e.to_string())],
    }
}

/// Settings that are allowed but unsafe, each named by key: a non-loopback address
/// carries traffic unencrypted (no `[tls]`), and an API opened with
/// `api.allow_unauthenticated`. `validate` prints them and `start` logs them.
pub fn warnings(loaded: &Loaded) -> Vec<Problem> {
    let public = |a: &str| {
        a.parse::<std::net::SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback())
    };
    let c = &loaded.config;
    let mut w = Vec::new();
    if c.tls.is_none() && public(&c.node.bind_address) {
        w.push(Problem::new(
            "node.bind_address",
            format!(
                "{} is not a loopback address and cluster traffic (every replicated row) is not \
                 encrypted: keep the cluster port on a trusted network or a VPN",
                c.node.bind_address
            ),
        ));
    }
    if c.api.enabled && public(&c.api.bind_address) {
        if c.tls.is_none() {
            w.push(Problem::new(
                "api.bind_address",
                format!(
                    "{} is not a loopback address and the API speaks plain HTTP (tokens and rows \
                 unencrypted): set [tls] or keep it on a trusted network",
                    c.api.bind_address
                ),
            ));
        }
        if loaded.secrets.api_admin_hash.is_none() {
            w.push(Problem::new(
                "api.allow_unauthenticated",
                "the API is OPEN: anyone who reaches it can write, read and change the cluster",
            ));
        }
    }
    w
}

/// A TOML syntax error as line, column and the parser's message, without the excerpt of
/// the file the parser's own `Display` quotes: that line may hold a secret.
fn syntax_error(text: &str, e: &toml::de::Error) -> ParseError {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            ParseError::Syntax(format!("line {line}, column {column}: {message}"))
        }
        None => ParseError::Syntax(message.to_string()),
    }
}

/// The whole configuration of one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's identity and where it listens for other nodes.
    pub node: NodeConfig,
    /// The local MariaDB this node applies the log to.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// The write-ahead log.
    #[serde(default)]
    pub wal: WalConfig,
    /// Membership and timing of the cluster.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The MySQL-protocol front end.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// Log output.
    #[serde(default)]
    pub log: LogConfig,
    /// TLS on the API and the cluster port. Default: none (plain TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `[tls]`: when present, the API serves HTTPS only and the cluster port uses mutual TLS
/// (a peer must present a certificate signed by `ca_file`) in addition to the secret.
/// Certificates are re-read on SIGHUP or when a file changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of this node, leaf first. Required.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`. Required.
    pub key_file: PathBuf,
    /// PEM CA certificate(s) peers' certificates must be signed by; also what HTTPS
    /// clients of this cluster trust. Required.
    pub ca_file: PathBuf,
}

/// `[node]`: who this node is and where it keeps its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Human name, unique in the cluster (e.g. "node-1"). Required.
    pub id: String,
    /// Address the cluster transport listens on; when it names an IP (not a wildcard),
    /// connections to other nodes also leave from that IP. Default: "0.0.0.0:7654".
    #[serde(default = "defaults::node_bind_address")]
    pub bind_address: String,
    /// Address other nodes use to reach this one, when `bind_address` is a wildcard or
    /// behind NAT. Default: none (use `bind_address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<String>,
    /// Numeric id 0–1023, also the Snowflake node number. Default: none (the leader
    /// assigns one at join).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_number: Option<u16>,
    /// Directory holding `wal/`, `state/` and `data/`. Default: "/var/lib/wolfscale/<id>".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// `[database]`: the local MariaDB server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Host name or IP of MariaDB. Default: "localhost".
    #[serde(default = "defaults::db_host")]
    pub host: String,
    /// TCP port of MariaDB. Default: 3306.
    #[serde(default = "defaults::db_port")]
    pub port: u16,
    /// User WolfScale connects as. Default: "wolfscale".
    #[serde(default = "defaults::db_user")]
    pub user: String,
    /// Password, if not given by `password_file` or the `WOLFSCALE_DB_PASSWORD`
    /// environment variable. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// File whose first line is the password. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The replicated database (schema). Default: "myapp".
    #[serde(default = "defaults::db_name")]
    pub database: String,
    /// Maximum connections in the pool. Default: 10.
    #[serde(default = "defaults::db_pool_size")]
    pub pool_size: u32,
    /// Timeout for opening one connection, in milliseconds. Default: 5000.
    #[serde(default = "defaults::db_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Whether this MariaDB is a node of a Galera cluster, so that admission also refuses
    /// what Galera cannot replicate (a table without a primary key, …). `auto` asks the
    /// server (`@@wsrep_on`) once at start. Default: "auto".
    #[serde(default)]
    pub galera: GaleraMode,
}

/// `database.galera`: whether Galera's rules apply at admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GaleraMode {
    /// On when the server reports `@@wsrep_on = ON` at start.
    #[default]
    Auto,
    /// Always on: set it on every node when any node of the cluster applies into Galera.
    On,
    /// Never.
    Off,
}

impl GaleraMode {
    /// The key's value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            GaleraMode::Auto => "auto",
            GaleraMode::On => "on",
            GaleraMode::Off => "off",
        }
    }

    /// Whether the rules apply, given what the server reported (`wsrep_on`) at start.
    pub fn applies(self, wsrep_on: bool) -> bool {
        match self {
            GaleraMode::Auto => wsrep_on,
            GaleraMode::On => true,
            GaleraMode::Off => false,
        }
    }
}

/// `[wal]`: the write-ahead log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    /// Most records written and synced together in one group commit. Default: 1000.
    #[serde(default = "defaults::wal_batch_size")]
    pub batch_size: u32,
    /// Longest a record waits for its group commit to fill, in milliseconds. Default: 100.
    #[serde(default = "defaults::wal_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Compress record payloads with LZ4 where that makes them smaller. Default: true.
    #[serde(default = "defaults::yes")]
    pub compression: bool,
    /// Size at which a segment file is closed and a new one started, in MiB. Default: 64.
    #[serde(default = "defaults::wal_segment_size_mb")]
    pub segment_size_mb: u64,
    /// Age after which whole segments may be purged, in hours, once a snapshot covers
    /// them and no live member still needs them. Default: 168 (7 days).
    #[serde(default = "defaults::wal_retention_hours")]
    pub retention_hours: u64,
    /// Size above which the oldest segments a snapshot covers are purged even before
    /// `retention_hours`, in MiB; 0 turns the cap off. Default: 0.
    #[serde(default)]
    pub max_size_mb: u64,
    /// fdatasync each group commit before acknowledging it. Default: true.
    #[serde(default = "defaults::yes")]
    pub fsync: bool,
}

/// `[cluster]`: membership, authentication and timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster addresses ("host:port") of existing members. Default: [].
    #[serde(default)]
    pub peers: Vec<String>,
    /// Leader heartbeat period, in milliseconds; at most a quarter of
    /// `election_timeout_ms`. Default: 500.
    #[serde(default = "defaults::cluster_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// A follower that hears nothing from the leader for a random time between half of
    /// this and all of it stands for election (if a majority of voters would vote for it),
    /// in milliseconds. Default: 2000.
    #[serde(default = "defaults::cluster_election_timeout_ms")]
    pub election_timeout_ms: u64,
    /// Size of one chunk of a snapshot sent to a member, in KiB (64–32768); each chunk is
    /// one RPC, so a slow link wants smaller ones. Default: 4096.
    #[serde(default = "defaults::cluster_snapshot_chunk_kb")]
    pub snapshot_chunk_kb: u64,
    /// Rows per chunk of a divergence check's range checksum (`wolfscale check`), 1–1000000;
    /// each chunk is two short queries on each node. Default: 1000.
    #[serde(default = "defaults::cluster_check_chunk_rows")]
    pub check_chunk_rows: u64,
    /// Most rows a divergence check reads per second on each node, per table range asked;
    /// 0 for no limit. Default: 50000.
    #[serde(default = "defaults::cluster_check_rows_per_sec")]
    pub check_rows_per_sec: u64,
    /// Run a divergence check every this many minutes (from the leader); 0 turns the
    /// periodic check off. Default: 0.
    #[serde(default)]
    pub check_interval_minutes: u64,
    /// Shared secret (≥ 16 characters) every node proves at connect. Default: none; one of
    /// `secret`, `secret_file` or `WOLFSCALE_CLUSTER_SECRET` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// File whose first line is the cluster secret. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Whether this node, once joined, votes and counts toward the quorum. `false` keeps
    /// it a learner (a read replica, a remote site): it applies the log and serves reads,
    /// but the voters never wait for it, until an operator promotes it. Read only when
    /// the node joins (`wolfscale join --learner` sets it too). Default: true.
    #[serde(default = "defaults::yes")]
    pub voter: bool,
    /// Whether a node whose outcome of an entry differs from the leader's (DIVERGED)
    /// reinstalls a snapshot from the leader by itself and continues; `false` leaves it
    /// DIVERGED until an operator runs `wolfscale resync`. Default: true.
    #[serde(default = "defaults::yes")]
    pub auto_resync: bool,
    /// Most connections the cluster port serves at once (each member needs one; further
    /// connections are closed at once). Default: 64.
    #[serde(default = "defaults::cluster_max_connections")]
    pub max_connections: u64,
    /// Most requests one cluster connection runs at once; the connection is not read
    /// while all are busy. With `max_connections` this bounds the node's concurrent
    /// cluster requests. Default: 256.
    #[serde(default = "defaults::cluster_max_requests_per_connection")]
    pub max_requests_per_connection: u64,
}

/// `[api]`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the HTTP API. Default: true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Address the HTTP API listens on; a non-loopback address needs a token (or
    /// `allow_unauthenticated`). Default: "127.0.0.1:8080".
    #[serde(default = "defaults::api_bind_address")]
    pub bind_address: String,
    /// Bearer token required on every route but `/health` (the admin role: every route).
    /// Default: none (no auth, allowed only on a loopback address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// File whose first line is the bearer token. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The admin token stored hashed: SHA-256 of the token, 64 hex digits, instead of
    /// `token`/`token_file`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// A read-only token: `/query`, `/id` and the status routes; writes and cluster
    /// changes answer 403. Needs an admin token too. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_token: Option<String>,
    /// File whose first line is the read-only token. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_token_file: Option<PathBuf>,
    /// The read-only token stored hashed (SHA-256, 64 hex digits). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_token_sha256: Option<String>,
    /// Serve a non-loopback `bind_address` with no token at all: anyone who reaches the
    /// port can write and change the cluster. Default: false.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Largest request body accepted, in bytes. Default: 1048576 (1 MiB).
    #[serde(default = "defaults::api_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Most rows one `/query` answers; a larger result is refused with 413 `too_large`
    /// and its statement killed. Default: 100000.
    #[serde(default = "defaults::api_max_result_rows")]
    pub max_result_rows: u64,
    /// Most bytes of values one `/query` answers (each value counts its length plus 8),
    /// beyond which it is refused like `max_result_rows`. Default: 33554432 (32 MiB).
    #[serde(default = "defaults::api_max_result_bytes")]
    pub max_result_bytes: u64,
    /// Most connections the API serves at once; past it new clients wait in the
    /// kernel's backlog until one closes. Default: 1024.
    #[serde(default = "defaults::api_max_connections")]
    pub max_connections: u64,
    /// Most requests the API handles at once, over all connections; further requests
    /// wait for a slot. Default: 256.
    #[serde(default = "defaults::api_max_concurrent_requests")]
    pub max_concurrent_requests: u64,
}

/// `[proxy]`: the MySQL-protocol front end, which MySQL/MariaDB clients and drivers
/// connect to; their writes go through the replicated log like the HTTP API's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Serve the MySQL protocol (it listens only once `[[proxy.users]]` names a user).
    /// Default: true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Address the front end listens on. Default: "127.0.0.1:3307".
    #[serde(default = "defaults::proxy_bind_address")]
    pub bind_address: String,
    /// Most client connections open at once; more are refused with error 1040.
    /// Default: 256.
    #[serde(default = "defaults::proxy_max_connections")]
    pub max_connections: u32,
    /// Longest an interactive transaction may stay open, in milliseconds; past it the
    /// transaction is rolled back (its locks freed) and the client gets error 1213.
    /// Default: 60000.
    #[serde(default = "defaults::proxy_max_transaction_ms")]
    pub max_transaction_ms: u64,
    /// The accounts clients log in with (`mysql_native_password`). Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<ProxyUser>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            enabled: true,
            bind_address: defaults::proxy_bind_address(),
            max_connections: defaults::proxy_max_connections(),
            max_transaction_ms: defaults::proxy_max_transaction_ms(),
            users: Vec::new(),
        }
    }
}

/// `[[proxy.users]]`: one account of the MySQL front end.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyUser {
    /// The user name clients log in with. Required.
    pub name: String,
    /// The password, in clear. Default: none (then `password_sha1` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The password as `mysql_native_password` stores it: SHA1(SHA1(password)) in 40 hex
    /// digits (MariaDB's `PASSWORD()` without the leading `*` also works). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_sha1: Option<String>,
}

impl std::fmt::Debug for ProxyUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords never reach a log line.
        f.debug_struct("ProxyUser")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "password_sha1",
                &self.password_sha1.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// `[log]`: what the node writes to stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Filter in `RUST_LOG` syntax (`info`, `debug`, `info,openraft=warn`); the
    /// `WOLFSCALE_LOG` or `RUST_LOG` environment variable wins. Default: "info".
    #[serde(default = "defaults::log_level")]
    pub level: String,
    /// `text` (one human line per event) or `json` (one JSON object per line, for log
    /// shippers). Default: "text".
    #[serde(default)]
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: defaults::log_level(),
            format: LogFormat::Text,
        }
    }
}

mod defaults {
    pub fn log_level() -> String {
        "info".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn node_bind_address() -> String {
        "0.0.0.0:7654".into()
    }
    pub fn db_host() -> String {
        "localhost".into()
    }
    pub fn db_port() -> u16 {
        3306
    }
    pub fn db_user() -> String {
        "wolfscale".into()
    }
    pub fn db_name() -> String {
        "myapp".into()
    }
    pub fn db_pool_size() -> u32 {
        10
    }
    pub fn db_connect_timeout_ms() -> u64 {
        5000
    }
    pub fn wal_batch_size() -> u32 {
        1000
    }
    pub fn wal_flush_interval_ms() -> u64 {
        100
    }
    pub fn wal_segment_size_mb() -> u64 {
        64
    }
    pub fn wal_retention_hours() -> u64 {
        168
    }
    pub fn cluster_heartbeat_interval_ms() -> u64 {
        500
    }
    pub fn cluster_election_timeout_ms() -> u64 {
        2000
    }
    pub fn cluster_snapshot_chunk_kb() -> u64 {
        4096
    }
    pub fn cluster_check_chunk_rows() -> u64 {
        1000
    }
    pub fn cluster_check_rows_per_sec() -> u64 {
        50_000
    }
    pub fn api_bind_address() -> String {
        "127.0.0.1:8080".into()
    }
    pub fn proxy_bind_address() -> String {
        "127.0.0.1:3307".into()
    }
    pub fn proxy_max_connections() -> u32 {
        256
    }
    pub fn proxy_max_transaction_ms() -> u64 {
        60_000
    }
    pub fn api_max_body_bytes() -> u64 {
        1 << 20
    }
    pub fn api_max_result_rows() -> u64 {
        100_000
    }
    pub fn api_max_result_bytes() -> u64 {
        32 << 20
    }
    pub fn api_max_connections() -> u64 {
        1024
    }
    pub fn api_max_concurrent_requests() -> u64 {
        256
    }
    pub fn cluster_max_connections() -> u64 {
        64
    }
    pub fn cluster_max_requests_per_connection() -> u64 {
        256
    }
}

impl Config {
    /// Node `id` listening for peers on `bind_address`, its files in `data_dir`, every
    /// other setting at its default: for programs that build a config in code (tests,
    /// benchmarks) and write it with [`Config::to_toml`], never by pasting TOML text.
    pub fn new(id: &str, bind_address: &str, data_dir: &Path) -> Config {
        Config {
            node: NodeConfig {
                id: id.to_string(),
                bind_address: bind_address.to_string(),
                advertise_address: None,
                node_number: None,
                data_dir: Some(data_dir.to_path_buf()),
            },
            database: DatabaseConfig::default(),
            wal: WalConfig::default(),
            cluster: ClusterConfig::default(),
            api: ApiConfig::default(),
            proxy: ProxyConfig::default(),
            log: LogConfig::default(),
            tls: None,
        }
    }

    /// The config as `wolfscale.toml` text, every key spelled out (secrets included, as
    /// the value holds them); [`parse`] reads it back to the same value.
    ///
    /// # Errors
    /// A value TOML cannot hold (none of the config's types produce one).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// The data directory: `node.data_dir`, or `/var/lib/wolfscale/<node.id>`.
    pub fn data_dir(&self) -> PathBuf {
        self.node
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/wolfscale").join(&self.node.id))
    }

    /// Where the write-ahead log lives: `<data_dir>/wal`.
    pub fn wal_dir(&self) -> PathBuf {
        self.data_dir().join("wal")
    }

    /// Where snapshots of the replicated database live: `<data_dir>/snapshots`.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.data_dir().join("snapshots")
    }

    /// Where the SQLite state database lives: `<data_dir>/state`.
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir().join("state")
    }

    /// A configuration with every optional key set and every number at the largest value
    /// its type holds. It is the schema the structural check compares files against, so a
    /// key added to a struct is known to the checker without a second list to keep in step.
    fn schema_sample() -> Config {
        const U64: u64 = i64::MAX as u64; // TOML integers are i64
        Config {
            node: NodeConfig {
                id: String::new(),
                bind_address: String::new(),
                advertise_address: Some(String::new()),
                node_number: Some(u16::MAX),
                data_dir: Some(PathBuf::new()),
            },
            database: DatabaseConfig {
                host: String::new(),
                port: u16::MAX,
                user: String::new(),
                password: Some(String::new()),
                password_file: Some(PathBuf::new()),
                database: String::new(),
                pool_size: u32::MAX,
                connect_timeout_ms: U64,
                galera: GaleraMode::Auto,
            },
            wal: WalConfig {
                batch_size: u32::MAX,
                flush_interval_ms: U64,
                compression: true,
                segment_size_mb: U64,
                retention_hours: U64,
                max_size_mb: U64,
                fsync: true,
            },
            cluster: ClusterConfig {
                peers: vec![String::new()],
                heartbeat_interval_ms: U64,
                election_timeout_ms: U64,
                snapshot_chunk_kb: U64,
                check_chunk_rows: U64,
                check_rows_per_sec: U64,
                check_interval_minutes: U64,
                secret: Some(String::new()),
                secret_file: Some(PathBuf::new()),
                voter: true,
                auto_resync: true,
                max_connections: U64,
                max_requests_per_connection: U64,
            },
            api: ApiConfig {
                enabled: true,
                bind_address: String::new(),
                token: Some(String::new()),
                token_file: Some(PathBuf::new()),
                token_sha256: Some(String::new()),
                read_token: Some(String::new()),
                read_token_file: Some(PathBuf::new()),
                read_token_sha256: Some(String::new()),
                allow_unauthenticated: true,
                max_body_bytes: U64,
                max_result_rows: U64,
                max_result_bytes: U64,
                max_connections: U64,
                max_concurrent_requests: U64,
            },
            proxy: ProxyConfig {
                enabled: true,
                bind_address: String::new(),
                max_connections: u32::MAX,
                max_transaction_ms: U64,
                users: vec![ProxyUser {
                    name: String::new(),
                    password: Some(String::new()),
                    password_sha1: Some(String::new()),
                }],
            },
            log: LogConfig {
                level: String::new(),
                format: LogFormat::Json,
            },
            tls: Some(TlsConfig {
                cert_file: PathBuf::new(),
                key_file: PathBuf::new(),
                ca_file: PathBuf::new(),
            }),
        }
    }

    /// A copy fit to print: inline secrets replaced by a mask.
    pub fn masked(&self) -> Config {
        let mask = |s: &Option<String>| s.as_ref().map(|_| secret::MASK.to_string());
        let mut c = self.clone();
        c.database.password = mask(&c.database.password);
        c.cluster.secret = mask(&c.cluster.secret);
        c.api.token = mask(&c.api.token);
        c.api.read_token = mask(&c.api.read_token);
        // A weak token can be found from its hash by trying guesses: not shown either.
        c.api.token_sha256 = mask(&c.api.token_sha256);
        c.api.read_token_sha256 = mask(&c.api.read_token_sha256);
        for u in &mut c.proxy.users {
            u.password = mask(&u.password);
            u.password_sha1 = mask(&u.password_sha1);
        }
        c
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            host: defaults::db_host(),
            port: defaults::db_port(),
            user: defaults::db_user(),
            password: None,
            password_file: None,
            database: defaults::db_name(),
            pool_size: defaults::db_pool_size(),
            connect_timeout_ms: defaults::db_connect_timeout_ms(),
            galera: GaleraMode::Auto,
        }
    }
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            batch_size: defaults::wal_batch_size(),
            flush_interval_ms: defaults::wal_flush_interval_ms(),
            compression: true,
            segment_size_mb: defaults::wal_segment_size_mb(),
            retention_hours: defaults::wal_retention_hours(),
            max_size_mb: 0,
            fsync: true,
        }
    }
}

impl WalConfig {
    /// Segment roll-over size in bytes.
    pub fn segment_size_bytes(&self) -> u64 {
        self.segment_size_mb * 1024 * 1024
    }
    /// Longest a record waits for its group commit.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
    /// Age after which segments may be purged.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_hours * 3600)
    }
    /// The size cap in bytes, if one is set.
    pub fn max_size_bytes(&self) -> Option<u64> {
        (self.max_size_mb > 0).then(|| self.max_size_mb.saturating_mul(1024 * 1024))
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            heartbeat_interval_ms: defaults::cluster_heartbeat_interval_ms(),
            election_timeout_ms: defaults::cluster_election_timeout_ms(),
            snapshot_chunk_kb: defaults::cluster_snapshot_chunk_kb(),
            check_chunk_rows: defaults::cluster_check_chunk_rows(),
            check_rows_per_sec: defaults::cluster_check_rows_per_sec(),
            check_interval_minutes: 0,
            secret: None,
            secret_file: None,
            voter: true,
            auto_resync: true,
            max_connections: defaults::cluster_max_connections(),
            max_requests_per_connection: defaults::cluster_max_requests_per_connection(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind_address: defaults::api_bind_address(),
            token: None,
            token_file: None,
            token_sha256: None,
            read_token: None,
            read_token_file: None,
            read_token_sha256: None,
            allow_unauthenticated: false,
            max_body_bytes: defaults::api_max_body_bytes(),
            max_result_rows: defaults::api_max_result_rows(),
            max_result_bytes: defaults::api_max_result_bytes(),
            max_connections: defaults::api_max_connections(),
            max_concurrent_requests: defaults::api_max_concurrent_requests(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123";

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, &EnvOverrides::default()) {
            Err(ParseError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    fn keys(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.key.as_str()).collect()
    }

    fn minimal() -> String {
        format!("[node]\nid = \"n1\"\n[cluster]\nsecret = \"{SECRET}\"\n")
    }

    #[test]
    fn proxy_users_need_a_unique_name_and_one_password_form() {
        let c = parse(&minimal(), &EnvOverrides::default())
            .expect("valid")
            .config;
        assert_eq!(c.proxy, ProxyConfig::default());
        assert_eq!(c.proxy.bind_address, "127.0.0.1:3307");
        let hash = "*".to_string() + &"A1".repeat(20);
        let ok = format!(
            "{}[proxy]\nmax_connections = 10\n[[proxy.users]]\nname = \"app\"\npassword = \"pw\"\n\
             [[proxy.users]]\nname = \"ro\"\npassword_sha1 = \"{hash}\"\n",
            minimal()
        );
        let c = parse(&ok, &EnvOverrides::default()).expect("valid").config;
        assert_eq!(c.proxy.users.len(), 2);
        // Neither form of the password reaches a Debug line.
        let shown = format!("{:?}", c.proxy.users);
        assert!(!shown.contains("pw\"") && !shown.contains(&hash), "{shown}");
        let bad = format!(
            "{}[proxy]\nbind_address = \"0.0.0.0:7654\"\nmax_connections = 0\n\
             [[proxy.users]]\nname = \"app\"\npassword = \"a\"\npassword_sha1 = \"{hash}\"\n\
             [[proxy.users]]\nname = \"app\"\n\
             [[proxy.users]]\nname = \"x\"\npassword_sha1 = \"abc\"\n",
            minimal()
        );
        let p = problems(&bad);
        assert_eq!(
            keys(&p),
            [
                "proxy.bind_address",
                "proxy.max_connections",
                "proxy.users[0]",
                "proxy.users[1].name",
                "proxy.users[1]",
                "proxy.users[2].password_sha1",
            ],
            "{p:?}"
        );
        assert!(!format!("{p:?}").contains(&hash));
    }

    #[test]
    fn minimal_config_gets_spec_defaults() {
        let c = parse(&minimal(), &EnvOverrides::default())
            .expect("valid")
            .config;
        assert_eq!(c.node.bind_address, "0.0.0.0:7654");
        assert_eq!(c.api.bind_address, "127.0.0.1:8080");
        assert_eq!(c.wal.segment_size_mb, 64);
        assert_eq!(c.wal.retention_hours, 168);
        assert_eq!(c.cluster.election_timeout_ms, 2000);
        assert_eq!(c.database.pool_size, 10);
        assert_eq!(c.data_dir(), PathBuf::from("/var/lib/wolfscale/n1"));
        assert_eq!(c.wal_dir(), PathBuf::from("/var/lib/wolfscale/n1/wal"));
    }

    #[test]
    fn three_planted_mistakes_are_all_reported() {
        let text = format!(
            "{}[wal]\nsegment_size_mb = 0\nfsync = \"yes\"\n[api]\nbind_adress = \"0.0.0.0:1\"\n",
            minimal()
        );
        let p = problems(&text);
        let k = keys(&p);
        assert!(k.contains(&"wal.segment_size_mb"), "{p:?}");
        assert!(k.contains(&"wal.fsync"), "{p:?}");
        assert!(k.contains(&"api.bind_adress"), "{p:?}");
        assert_eq!(p.len(), 3, "{p:?}");
        let text = Problem::list(&p);
        assert!(
            text.contains("wal.segment_size_mb: must be between 1 and 4096 MiB, got 0"),
            "{text}"
        );
        assert!(
            text.contains("wal.fsync: expected boolean, found string"),
            "{text}"
        );
        assert!(text.contains("did you mean `bind_address`"), "{text}");
    }

    #[test]
    fn galera_is_auto_on_or_off() {
        let with = |v: &str| format!("{}[database]\ngalera = {v}\n", minimal());
        for (v, mode, applies) in [
            ("\"auto\"", GaleraMode::Auto, [false, true]),
            ("\"on\"", GaleraMode::On, [true, true]),
            ("\"off\"", GaleraMode::Off, [false, false]),
        ] {
            let c = parse(&with(v), &EnvOverrides::default())
                .expect("valid")
                .config;
            assert_eq!(c.database.galera, mode);
            assert_eq!([mode.applies(false), mode.applies(true)], applies, "{v}");
        }
        assert_eq!(keys(&problems(&with("true"))), vec!["database.galera"]);
        assert!(parse(&with("\"yes\""), &EnvOverrides::default()).is_err());
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        match parse("[node]\nid = \"n1\nx", &EnvOverrides::default()) {
            Err(ParseError::Syntax(m)) => assert!(m.contains("line 2"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn syntax_errors_never_quote_the_line() {
        let text = "[node]\nid = \"n1\"\n[cluster]\nsecret = \"s3cr3t-s3cr3t-s3cr3t\n";
        match parse(text, &EnvOverrides::default()) {
            Err(ParseError::Syntax(m)) => {
                assert!(m.contains("line 4"), "{m}");
                assert!(!m.contains("s3cr3t"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_loopback_api_needs_a_token_or_an_explicit_opt_out() {
        let with = |api: &str| format!("{}[api]\n{api}\n", minimal());
        let p = problems(&with("bind_address = \"0.0.0.0:8080\""));
        assert_eq!(keys(&p), vec!["api.bind_address"], "{p:?}");
        assert!(p[0].reason.contains("allow_unauthenticated"), "{p:?}");
        parse(
            &with("bind_address = \"0.0.0.0:8080\"\nallow_unauthenticated = true"),
            &EnvOverrides::default(),
        )
        .expect("explicit opt-out");
        parse(
            &with("bind_address = \"10.1.2.3:8080\"\ntoken = \"tok\""),
            &EnvOverrides::default(),
        )
        .expect("token");
        parse(
            &with("bind_address = \"[::1]:8080\""),
            &EnvOverrides::default(),
        )
        .expect("loopback v6");
        let env = EnvOverrides {
            api_token: Some("from-env".into()),
            ..Default::default()
        };
        parse(&with("bind_address = \"0.0.0.0:8080\""), &env).expect("token from env");
        let hashed = "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7";
        let l = parse(
            &with(&format!(
                "bind_address = \"0.0.0.0:8080\"\ntoken_sha256 = \"{hashed}\"\nread_token = \"reader\""
            )),
            &EnvOverrides::default(),
        )
        .expect("hashed admin token and a read token");
        assert!(l.secrets.api_admin_hash.expect("admin").matches("hunter2"));
        assert!(l.secrets.api_read_hash.expect("read").matches("reader"));
        assert!(l.secrets.api_token.is_none());
        let shown = toml::to_string(&l.config.masked()).expect("serialise");
        assert!(!shown.contains(hashed), "{shown}");
        assert!(!shown.contains("reader"), "{shown}");
    }

    #[test]
    fn unsafe_addresses_are_warned_about() {
        let l = parse(&minimal(), &EnvOverrides::default()).expect("valid");
        // The default cluster address is a wildcard; the API's is loopback.
        let w = warnings(&l);
        assert_eq!(keys(&w), vec!["node.bind_address"], "{w:?}");
        let text = format!(
            "[node]\nid = \"n1\"\nbind_address = \"127.0.0.1:7654\"\n[cluster]\nsecret = \"{SECRET}\"\n\
             [api]\nbind_address = \"0.0.0.0:8080\"\nallow_unauthenticated = true\n"
        );
        let l = parse(&text, &EnvOverrides::default()).expect("valid");
        let w = warnings(&l);
        assert_eq!(
            keys(&w),
            vec!["api.bind_address", "api.allow_unauthenticated"],
            "{w:?}"
        );
    }

    #[test]
    fn token_rules() {
        let with = |api: &str| format!("{}[api]\n{api}\n", minimal());
        let p = problems(&with("read_token = \"r\""));
        assert_eq!(keys(&p), vec!["api.read_token"], "{p:?}");
        let p = problems(&with("token = \"same\"\nread_token = \"same\""));
        assert_eq!(keys(&p), vec!["api.read_token"], "{p:?}");
        let p = problems(&with("token = \"t\"\ntoken_sha256 = \"00\""));
        assert_eq!(
            keys(&p),
            vec!["api.token_sha256", "api.token_sha256"],
            "{p:?}"
        );
    }

    #[test]
    fn out_of_range_and_negative_integers() {
        let p = problems(&format!(
            "{}[database]\nport = 70000\npool_size = -1\n",
            minimal()
        ));
        assert_eq!(
            keys(&p),
            vec!["database.pool_size", "database.port"],
            "{p:?}"
        );
    }

    #[test]
    fn missing_node_and_secret() {
        let p = problems("[wal]\nfsync = true\n");
        assert!(keys(&p).contains(&"node"), "{p:?}");
        let p = problems("[node]\nid = \"n1\"\n");
        assert_eq!(keys(&p), vec!["cluster.secret"]);
        assert!(p[0].reason.contains("WOLFSCALE_CLUSTER_SECRET"));
        let p = problems("[node]\n[cluster]\nsecret = \"0123456789abcdef\"\n");
        assert_eq!(keys(&p), vec!["node.id"]);
    }

    #[test]
    fn contradictions_and_addresses() {
        let text =
            "[node]\nid = \"bad name\"\nbind_address = \"0.0.0.0:8080\"\n\
             [cluster]\nsecret = \"short\"\nheartbeat_interval_ms = 3000\npeers = [\"a:1\", \"nope\", \"a:1\", 5]\n\
             [database]\npassword = \"x\"\npassword_file = \"/nonexistent\"\ndatabase = \"a.b\"\n";
        let p = problems(text);
        let k = keys(&p);
        for want in [
            "node.id",
            "cluster.heartbeat_interval_ms",
            "api.bind_address",
            "database.database",
            "database.password",
            "database.password_file",
            "cluster.secret",
            "cluster.peers[3]",
        ] {
            assert!(k.contains(&want), "missing {want} in {p:?}");
        }
        // The peers list had a wrong-typed element, so the list was dropped before the
        // semantic pass: its other errors surface once the type is fixed.
        let p = problems(&format!(
            "{}peers = [\"a:1\", \"nope\", \"a:1\"]\n",
            minimal()
        ));
        assert_eq!(
            keys(&p),
            vec!["cluster.peers[1]", "cluster.peers[2]"],
            "{p:?}"
        );
    }

    #[test]
    fn heartbeat_is_at_most_a_quarter_of_the_election_timeout() {
        let with = |hb: u64, e: u64| {
            format!(
                "{}heartbeat_interval_ms = {hb}\nelection_timeout_ms = {e}\n",
                minimal()
            )
        };
        parse(&with(500, 2000), &EnvOverrides::default()).expect("a quarter is allowed");
        parse(&with(100, 600), &EnvOverrides::default()).expect("a sixth is allowed");
        let p = problems(&with(501, 2000));
        assert_eq!(keys(&p), vec!["cluster.heartbeat_interval_ms"], "{p:?}");
        assert!(p[0].reason.contains("quarter"), "{p:?}");
    }

    #[test]
    fn env_overrides_win_and_are_masked() {
        let env = EnvOverrides {
            db_password: Some("from-env".into()),
            cluster_secret: Some("env-secret-0123456789".into()),
            api_token: None,
            log_filter: None,
            no_color: false,
        };
        let text = "[node]\nid = \"n1\"\n[database]\npassword = \"inline\"\n";
        let l = parse(text, &env).expect("valid");
        assert_eq!(
            l.secrets.db_password.as_ref().map(|s| s.expose()),
            Some("from-env")
        );
        assert_eq!(l.secrets.db_password_source, SecretSource::Env);
        assert_eq!(l.secrets.cluster_secret_source, SecretSource::Env);
        let shown = toml::to_string(&l.config.masked()).expect("serialise");
        assert!(!shown.contains("inline"), "{shown}");
        assert!(shown.contains("********"));
    }

    #[test]
    fn secret_from_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("secret");
        std::fs::write(&f, "file-secret-0123456789\n").expect("write");
        let text = format!(
            "[node]\nid = \"n1\"\n[cluster]\nsecret_file = {:?}\n",
            f.display().to_string()
        );
        let l = parse(&text, &EnvOverrides::default()).expect("valid");
        assert_eq!(l.secrets.cluster_secret.expose(), "file-secret-0123456789");
        assert_eq!(l.secrets.cluster_secret_source, SecretSource::File);
    }

    #[test]
    fn a_config_built_in_code_round_trips_through_its_toml() {
        let mut c = Config::new("n1", "127.0.0.1:7001", Path::new("/tmp/n1"));
        c.cluster.secret = Some("round-trip-secret-0123456789".into());
        c.node.advertise_address = Some("127.0.0.9:7001".into());
        c.wal.segment_size_mb = 1;
        c.database.galera = GaleraMode::Off;
        c.api.token = Some("tok".into());
        c.proxy.users.push(ProxyUser {
            name: "app".into(),
            password: Some("pw".into()),
            password_sha1: None,
        });
        let text = c.to_toml().expect("serialise");
        let l = parse(&text, &EnvOverrides::default()).expect("valid");
        assert_eq!(l.config, c, "{text}");
    }

    #[test]
    fn unreadable_file_is_a_read_error() {
        let e = load(
            Path::new("/nonexistent/wolfscale.toml"),
            &EnvOverrides::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/wolfscale.toml"));
    }
}
