//! Connecting to the local MariaDB: connection options from `[database]`, and the
//! pre-flight check behind `wolfscale validate --check-db` (version, database, privileges).
//! It does not apply anything; the applier owns writes.

use crate::config::{DatabaseConfig, Secret};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// Privileges the applier needs on the replicated database.
pub const REQUIRED_PRIVILEGES: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX",
];

/// Why MariaDB could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection within `database.connect_timeout_ms`.
    #[error("timed out after {0:?} connecting to MariaDB at {1}")]
    Timeout(Duration, String),
    /// The server refused or the connection broke.
    #[error("MariaDB at {addr}: {source}")]
    Mysql {
        /// host:port tried.
        addr: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
}

/// Connection options for the configured server, without selecting a database (it may
/// not exist yet).
pub fn opts(cfg: &DatabaseConfig, password: Option<&Secret>) -> mysql_async::Opts {
    let constraints =
        mysql_async::PoolConstraints::new(0, cfg.pool_size.max(1) as usize).unwrap_or_default();
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(cfg.host.clone())
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(password.map(|p| p.expose().to_string()))
        .prefer_socket(false)
        .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints))
        .into()
}

/// What `--check-db` found.
#[derive(Debug, Clone)]
pub struct DbReport {
    /// `SELECT VERSION()`.
    pub version: String,
    /// `CURRENT_USER()`, the account the server matched.
    pub account: String,
    /// Whether the replicated database exists yet.
    pub database_exists: bool,
    /// `SHOW GRANTS` lines, with password hashes masked.
    pub grants: Vec<String>,
    /// Entries of [`REQUIRED_PRIVILEGES`] no grant covers on the replicated database.
    pub missing_privileges: Vec<&'static str>,
}

/// Connects once and reports the server version, database and privileges.
///
/// # Errors
/// [`DbError::Timeout`] or [`DbError::Mysql`] when MariaDB cannot be reached or queried.
pub async fn check(cfg: &DatabaseConfig, password: Option<&Secret>) -> Result<DbReport, DbError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let wrap = |source| DbError::Mysql {
        addr: addr.clone(),
        source,
    };
    let timeout = Duration::from_millis(cfg.connect_timeout_ms);
    let mut conn = tokio::time::timeout(timeout, mysql_async::Conn::new(opts(cfg, password)))
        .await
        .map_err(|_| DbError::Timeout(timeout, addr.clone()))?
        .map_err(wrap)?;
    let (version, account): (String, String) = conn
        .query_first("SELECT VERSION(), CURRENT_USER()")
        .await
        .map_err(wrap)?
        .unwrap_or_default();
    let exists: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (cfg.database.as_str(),),
        )
        .await
        .map_err(wrap)?;
    let raw: Vec<String> = conn.query("SHOW GRANTS").await.map_err(wrap)?;
    conn.disconnect().await.map_err(wrap)?;
    let missing = missing_privileges(&raw, &cfg.database);
    Ok(DbReport {
        version,
        account,
        database_exists: exists.is_some(),
        grants: raw.iter().map(|g| mask_password(g)).collect(),
        missing_privileges: missing,
    })
}

/// Hides `IDENTIFIED BY PASSWORD '…'` hashes that `SHOW GRANTS` prints.
fn mask_password(grant: &str) -> String {
    match grant.find(" IDENTIFIED BY") {
        Some(i) => format!("{} IDENTIFIED BY ********", &grant[..i]),
        None => grant.to_string(),
    }
}

/// Which required privileges no grant line covers on `database` (or `*.*`).
fn missing_privileges(grants: &[String], database: &str) -> Vec<&'static str> {
    let mut have: Vec<String> = Vec::new();
    for line in grants {
        let Some(rest) = line.strip_prefix("GRANT ") else {
            continue;
        };
        let Some((privs, rest)) = rest.split_once(" ON ") else {
            continue;
        };
        let target = rest.split(" TO ").next().unwrap_or("").trim();
        if !grant_covers(target, database) {
            continue;
        }
        have.extend(
            privs
                .split(',')
                .map(|p| p.trim().to_ascii_uppercase())
                .filter(|p| !p.contains('(')),
        );
    }
    if have.iter().any(|p| p == "ALL PRIVILEGES" || p == "ALL") {
        return Vec::new();
    }
    REQUIRED_PRIVILEGES
        .iter()
        .copied()
        .filter(|req| !have.iter().any(|p| p == req))
        .collect()
}

/// Whether a grant target such as `*.*` or `` `my\_app`.* `` covers the whole database.
fn grant_covers(target: &str, database: &str) -> bool {
    if target == "*.*" {
        return true;
    }
    let Some(db) = target.strip_suffix(".*") else {
        return false;
    };
    let db = db
        .trim_matches('`')
        .replace("``", "`")
        .replace("\\_", "_")
        .replace("\\%", "%");
    db == database
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn all_privileges_on_everything_covers() {
        let grants = g(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]);
        assert!(missing_privileges(&grants, "myapp").is_empty());
    }

    #[test]
    fn database_level_grants_with_escaped_names() {
        let grants = g(&[
            "GRANT USAGE ON *.* TO `ws`@`%` IDENTIFIED BY PASSWORD '*ABC'",
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `my\\_app`.* TO `ws`@`%`",
            "GRANT DROP ON `other`.* TO `ws`@`%`",
            "GRANT ALTER (c) ON `my_app`.`t` TO `ws`@`%`",
        ]);
        assert_eq!(
            missing_privileges(&grants, "my_app"),
            vec!["DROP", "ALTER", "INDEX"]
        );
    }

    #[test]
    fn password_hashes_are_masked() {
        let m = mask_password("GRANT USAGE ON *.* TO `ws`@`%` IDENTIFIED BY PASSWORD '*ABC'");
        assert!(!m.contains("ABC"), "{m}");
    }
}
