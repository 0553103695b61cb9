//! The `wolfscale.toml` schema: one struct per section, the SPEC's defaults, and
//! validation that reports every problem by key path. Nothing here opens files other
//! than the config itself (and the secret files it names), and nothing reads the
//! environment: the binary passes environment overrides in explicitly.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

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
}

/// `[node]`: who this node is and where it keeps its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Human name, unique in the cluster (e.g. "node-1"). Required.
    pub id: String,
    /// Address the cluster transport listens on. Default: "0.0.0.0:7654".
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
    /// Age after which whole segments may be purged, in hours. Default: 168 (7 days).
    #[serde(default = "defaults::wal_retention_hours")]
    pub retention_hours: u64,
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
    /// Leader heartbeat period, in milliseconds. Default: 500.
    #[serde(default = "defaults::cluster_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// Time without a leader before an election starts, in milliseconds. Default: 2000.
    #[serde(default = "defaults::cluster_election_timeout_ms")]
    pub election_timeout_ms: u64,
    /// Shared secret (≥ 16 characters) every node proves at connect. Default: none; one of
    /// `secret`, `secret_file` or `WOLFSCALE_CLUSTER_SECRET` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// File whose first line is the cluster secret. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
}

/// `[api]`: the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the HTTP API. Default: true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Address the HTTP API listens on. Default: "0.0.0.0:8080".
    #[serde(default = "defaults::api_bind_address")]
    pub bind_address: String,
    /// Bearer token required on every route but `/health`. Default: none (no auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// File whose first line is the bearer token. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes. Default: 1048576 (1 MiB).
    #[serde(default = "defaults::api_max_body_bytes")]
    pub max_body_bytes: u64,
}

mod defaults {
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
    pub fn api_bind_address() -> String {
        "0.0.0.0:8080".into()
    }
    pub fn api_max_body_bytes() -> u64 {
        1 << 20
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
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            heartbeat_interval_ms: defaults::cluster_heartbeat_interval_ms(),
            election_timeout_ms: defaults::cluster_election_timeout_ms(),
            secret: None,
            secret_file: None,
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
            max_body_bytes: defaults::api_max_body_bytes(),
        }
    }
}
