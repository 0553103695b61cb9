//! The commented `wolfscale.toml` that `wolfscale init` writes. Every value is taken from
//! the real defaults, and tests check that every schema key appears, so it cannot drift.

use super::{ApiConfig, ClusterConfig, DatabaseConfig, ProxyConfig, WalConfig};

/// A complete, commented config for node `node_id` sharing the cluster secret `secret`.
pub fn template(node_id: &str, secret: &str) -> String {
    let db = DatabaseConfig::default();
    let wal = WalConfig::default();
    let cl = ClusterConfig::default();
    let api = ApiConfig::default();
    let proxy = ProxyConfig::default();
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        r#"# WolfScale node configuration. Every key is shown with its default value;
# optional keys are commented out. Check with `wolfscale validate`.

[node]
# Unique name of this node in the cluster.
id = {id}
# Address the cluster transport listens on (other nodes connect here). When it names
# an IP (not 0.0.0.0), connections to other nodes also leave from that IP.
bind_address = {node_bind}
# Address other nodes dial, when bind_address is a wildcard. Default: bind_address.
# advertise_address = "10.0.0.1:7654"
# Numeric id 0-1023, also the Snowflake node number. Default: assigned at join.
# node_number = 1
# Holds wal/, state/ and data/. Default: /var/lib/wolfscale/<id>.
# data_dir = "/var/lib/wolfscale/{raw_id}"

[database]
# The local MariaDB server this node applies the log to.
host = {host}
port = {port}
user = {user}
# Password: inline, in a file (first line), or WOLFSCALE_DB_PASSWORD (which wins).
# password = "your-password"
# password_file = "/etc/wolfscale/db-password"
# The replicated database.
database = {database}
# Maximum connections to MariaDB.
pool_size = {pool_size}
# Timeout for opening one connection (ms).
connect_timeout_ms = {connect_timeout_ms}
# Whether this MariaDB is a Galera cluster node: "on" also refuses at admission what
# Galera cannot replicate (tables without a primary key, dropping one); "auto" asks
# the server (@@wsrep_on) at start. Set "on" on every node when any node applies
# into Galera: only the leader admits writes.
galera = {galera}

[wal]
# Most records in one write to the log (with fsync on, one sync covers every write
# made while the previous sync ran).
batch_size = {batch_size}
# With fsync off: longest written records stay unsynced (ms). With fsync on, a
# record never waits: its sync starts as soon as the previous one ends.
flush_interval_ms = {flush_interval_ms}
# LZ4-compress record payloads where that makes them smaller.
compression = {compression}
# Segment file size before a new one is started (MiB, 1-4096).
segment_size_mb = {segment_size_mb}
# Age after which whole segments may be purged, once a snapshot covers them and no
# live member still needs them (hours).
retention_hours = {retention_hours}
# Purge covered segments sooner when the WAL grows past this size (MiB; 0 turns this off).
max_size_mb = {max_size_mb}
# fdatasync every group commit before acknowledging it.
fsync = {fsync}

[cluster]
# Cluster addresses of existing members ("host:port"); empty on the first node.
peers = []
# Leader heartbeat period (ms); at most a quarter of election_timeout_ms.
heartbeat_interval_ms = {heartbeat}
# A follower that hears nothing from the leader for a random time between half of
# this and all of it stands for election, if most voters have lost the leader too (ms).
# A dead leader is replaced within about this plus one more draw if the vote splits.
election_timeout_ms = {election}
# Size of one snapshot chunk sent to a member that needs the whole database (KiB,
# 64-32768); each chunk is one RPC, so a slow link wants smaller ones.
snapshot_chunk_kb = {snapshot_chunk_kb}
# Divergence checks (`wolfscale check`): rows per checksum chunk; the most rows read per
# second on each node (0: no limit); a periodic check every N minutes (0: off).
check_chunk_rows = {check_chunk_rows}
check_rows_per_sec = {check_rows_per_sec}
check_interval_minutes = {check_interval_minutes}
# Shared secret (at least 16 characters), the same on every node. It may instead come
# from secret_file (first line) or WOLFSCALE_CLUSTER_SECRET (which wins).
secret = {secret}
# secret_file = "/etc/wolfscale/cluster-secret"
# Whether this node votes once it has joined. false keeps it a learner (a read replica
# or a remote site): it applies the log and serves reads, and the voters never wait for
# it, until `wolfscale cluster promote` makes it a voter. Read when the node joins.
voter = true
# A node whose result for an entry differs from the leader's (DIVERGED: its MariaDB was
# changed behind WolfScale's back) reloads the database from the leader by itself and
# goes on. false leaves it DIVERGED until `wolfscale resync`.
auto_resync = {auto_resync}
# Most connections the cluster port serves at once, and most requests each runs at
# once; together they bound the cluster requests this node handles concurrently.
max_connections = {cluster_max_connections}
max_requests_per_connection = {cluster_max_requests}

[api]
# Serve the HTTP API.
enabled = {api_enabled}
# Address the HTTP API listens on. Any address but a loopback one needs a token.
bind_address = {api_bind}
# Bearer token required on every route but /health (the admin role): inline, in a
# file, or WOLFSCALE_API_TOKEN (which wins). Default: no authentication.
# token = "a-long-random-token"
# token_file = "/etc/wolfscale/api-token"
# Or the token's SHA-256 instead of the token (printf %s TOKEN | sha256sum).
# token_sha256 = "64 hex digits"
# A read-only token: /query, /id and the status routes; writes and cluster changes
# answer 403. Inline, in a file, or hashed like token_sha256.
# read_token = "another-long-random-token"
# read_token_file = "/etc/wolfscale/api-read-token"
# read_token_sha256 = "64 hex digits"
# Serve a non-loopback bind_address without any token (anyone reaching it may write).
allow_unauthenticated = {allow_unauthenticated}
# Largest request body accepted (bytes).
max_body_bytes = {max_body_bytes}
# Most rows, and most bytes of values, one /query answers; a larger result is
# refused (413) and its statement killed.
max_result_rows = {max_result_rows}
max_result_bytes = {max_result_bytes}
# Most connections the API serves at once (more wait in the kernel's backlog), and
# most requests it handles at once over all of them (more wait for a slot).
max_connections = {api_max_connections}
max_concurrent_requests = {api_max_concurrent_requests}

[proxy]
# The MySQL-protocol front end: MySQL/MariaDB clients and drivers connect here; reads
# run on this node's MariaDB, writes go through the replicated log. It listens only
# once a user is configured.
enabled = {proxy_enabled}
# Address it listens on.
bind_address = {proxy_bind}
# Most client connections at once; more are refused with MySQL error 1040.
max_connections = {proxy_max_connections}
# Longest an interactive transaction (BEGIN … COMMIT) may stay open, in ms; past it the
# transaction is rolled back and its client gets error 1213.
max_transaction_ms = {proxy_max_transaction_ms}
# Accounts (mysql_native_password), one table each: name, and either password or
# password_sha1 (SHA1(SHA1(password)) in hex, as MariaDB's PASSWORD() shows it).
# users = [{{ name = "app", password = "change-me" }}]

[log]
# Log filter in RUST_LOG syntax, e.g. "info" or "info,openraft=warn"; the
# WOLFSCALE_LOG environment variable wins.
level = {log_level}
# "text" (colour only on a terminal) or "json" (one object per line, for log shippers).
format = "text"

# TLS, off by default. When set, the API serves HTTPS only and the cluster port uses
# mutual TLS (a peer must present a certificate signed by ca_file) besides the secret.
# Files are re-read on SIGHUP or when they change. Test certificates: `wolfscale tls init`.
# [tls]
# cert_file = "/etc/wolfscale/node-1.pem"
# key_file = "/etc/wolfscale/node-1-key.pem"
# ca_file = "/etc/wolfscale/ca.pem"
"#,
        id = q(node_id),
        raw_id = node_id,
        node_bind = q(&super::defaults::node_bind_address()),
        host = q(&db.host),
        port = db.port,
        user = q(&db.user),
        database = q(&db.database),
        pool_size = db.pool_size,
        connect_timeout_ms = db.connect_timeout_ms,
        galera = q(db.galera.as_str()),
        batch_size = wal.batch_size,
        flush_interval_ms = wal.flush_interval_ms,
        compression = wal.compression,
        segment_size_mb = wal.segment_size_mb,
        retention_hours = wal.retention_hours,
        max_size_mb = wal.max_size_mb,
        fsync = wal.fsync,
        heartbeat = cl.heartbeat_interval_ms,
        snapshot_chunk_kb = cl.snapshot_chunk_kb,
        check_chunk_rows = cl.check_chunk_rows,
        check_rows_per_sec = cl.check_rows_per_sec,
        check_interval_minutes = cl.check_interval_minutes,
        auto_resync = cl.auto_resync,
        election = cl.election_timeout_ms,
        secret = q(secret),
        api_enabled = api.enabled,
        api_bind = q(&api.bind_address),
        allow_unauthenticated = api.allow_unauthenticated,
        max_body_bytes = api.max_body_bytes,
        max_result_rows = api.max_result_rows,
        max_result_bytes = api.max_result_bytes,
        api_max_connections = api.max_connections,
        api_max_concurrent_requests = api.max_concurrent_requests,
        cluster_max_connections = cl.max_connections,
        cluster_max_requests = cl.max_requests_per_connection,
        proxy_enabled = proxy.enabled,
        proxy_bind = q(&proxy.bind_address),
        proxy_max_connections = proxy.max_connections,
        proxy_max_transaction_ms = proxy.max_transaction_ms,
        log_level = q(&super::defaults::log_level()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Config, EnvOverrides};

    const SECRET: &str = "0123456789abcdef0123";

    #[test]
    fn template_parses_to_the_defaults() {
        let loaded = parse(&template("node-7", SECRET), &EnvOverrides::default())
            .expect("template is valid");
        let c = loaded.config;
        assert_eq!(c.node.id, "node-7");
        assert_eq!(c.database, DatabaseConfig::default());
        assert_eq!(c.wal, WalConfig::default());
        assert_eq!(c.api, ApiConfig::default());
        assert_eq!(c.proxy, ProxyConfig::default());
        assert_eq!(c.cluster.secret.as_deref(), Some(SECRET));
        assert_eq!(loaded.secrets.cluster_secret.expose(), SECRET);
    }

    /// Every key of the schema appears in the template, set or commented out.
    #[test]
    fn template_names_every_key() {
        let text = template("node-1", SECRET);
        let schema = toml::Value::try_from(Config::schema_sample()).expect("sample serialises");
        let sections = schema.as_table().expect("table");
        for (section, keys) in sections {
            assert!(text.contains(&format!("[{section}]")), "section {section}");
            for key in keys.as_table().expect("section table").keys() {
                let set = format!("\n{key} = ");
                let commented = format!("\n# {key} = ");
                assert!(
                    text.contains(&set) || text.contains(&commented),
                    "template lacks {section}.{key}"
                );
            }
        }
    }

    /// Commented-out examples are themselves valid when uncommented.
    #[test]
    fn commented_examples_are_valid() {
        let text = template("node-1", SECRET)
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.contains(" = ")
                        && !rest.contains("_file")
                        && !rest.contains("_sha256")
                        && !rest.starts_with("secret") =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let loaded = parse(&text, &EnvOverrides::default()).expect("uncommented template is valid");
        assert_eq!(loaded.config.node.node_number, Some(1));
        assert!(loaded.config.api.token.is_some());
        assert_eq!(loaded.config.proxy.users.len(), 1);
    }
}
