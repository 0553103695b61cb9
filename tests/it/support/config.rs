//! Node configs for tests: a [`Config`] value with the settings every test node shares,
//! changed in code by each test and serialised with toml. No test writes config text by
//! hand, so a renamed or new key is one edit here and a typo does not compile.

use super::mariadb::MariaDb;
use std::path::Path;
use wolfscale::config::{self, Config, EnvOverrides, Loaded};

/// `cluster.heartbeat_interval_ms` of test nodes.
pub const HEARTBEAT_MS: u64 = 100;
/// `cluster.election_timeout_ms` of test nodes.
pub const ELECTION_TIMEOUT_MS: u64 = 600;

/// Node `name` on `bind` (its cluster transport), data in `data_dir`, sharing `secret`,
/// with short heartbeats and elections; everything else at its default.
pub fn node(name: &str, bind: &str, data_dir: &Path, secret: &str) -> Config {
    let mut c = Config::new(name, bind, data_dir);
    c.cluster.secret = Some(secret.to_string());
    c.cluster.heartbeat_interval_ms = HEARTBEAT_MS;
    c.cluster.election_timeout_ms = ELECTION_TIMEOUT_MS;
    c
}

/// Points `c` at `db` as root, replicating database `database`, with a small pool.
pub fn on_mariadb(c: &mut Config, db: &MariaDb, database: &str) {
    c.database.host = db.host().to_string();
    c.database.port = db.port();
    c.database.user = "root".into();
    c.database.database = database.to_string();
    c.database.pool_size = 4;
}

/// Writes `c` to `path` as TOML.
///
/// # Panics
/// When the file cannot be written.
pub fn write(c: &Config, path: &Path) {
    let text = c.to_toml().expect("a test config serialises");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `c` as a node loads it from a file: serialised, parsed and validated, secrets resolved.
///
/// # Panics
/// When the config is refused.
pub fn loaded(c: &Config) -> Loaded {
    let text = c.to_toml().expect("a test config serialises");
    config::parse(&text, &EnvOverrides::default())
        .unwrap_or_else(|e| panic!("test config refused: {e:?}\n{text}"))
}
