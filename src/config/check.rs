//! Config checks that collect every problem instead of stopping at the first: a
//! structural pass over the raw TOML (unknown keys, wrong types, out-of-range integers),
//! then a semantic pass over the typed config (addresses, sizes, contradictions).

use super::Config;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;

/// One thing wrong with a config, named by its key path (`wal.segment_size_mb`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `cluster.peers[1]`.
    pub key: String,
    /// What is wrong and, where it helps, what to do.
    pub reason: String,
}

impl Problem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// One problem per line, each prefixed with "  - ".
    pub fn list(problems: &[Problem]) -> String {
        problems
            .iter()
            .map(|p| format!("  - {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Compares a parsed file with the schema; removes every bad key so that the rest can
/// still be typed and checked, and returns the typed config when that succeeds.
pub(super) fn structure(mut table: toml::Table) -> (Option<Config>, Vec<Problem>) {
    let mut problems = Vec::new();
    let schema = match toml::Value::try_from(Config::schema_sample()) {
        Ok(toml::Value::Table(t)) => t,
        // The sample is a plain struct of strings, numbers and tables: it always converts.
        _ => unreachable!("the schema sample always serialises to a table"),
    };
    check_table(&mut table, &schema, "", &mut problems);
    match table.get("node").and_then(|n| n.as_table()) {
        None if !problems.iter().any(|p| p.key == "node") => {
            problems.push(Problem::new("node", "missing section [node]"))
        }
        Some(node) if !node.contains_key("id") && !problems.iter().any(|p| p.key == "node.id") => {
            problems.push(Problem::new(
                "node.id",
                "required (a unique name such as \"node-1\")",
            ))
        }
        _ => {}
    }
    match toml::Value::Table(table).try_into::<Config>() {
        Ok(c) => (Some(c), problems),
        Err(e) => {
            if problems.is_empty() {
                problems.push(Problem::new("config", e.to_string().trim().to_string()));
            }
            (None, problems)
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn check_table(
    table: &mut toml::Table,
    schema: &toml::Table,
    prefix: &str,
    out: &mut Vec<Problem>,
) {
    let mut bad = Vec::new();
    for (key, value) in table.iter_mut() {
        let path = join(prefix, key);
        match schema.get(key) {
            None => {
                let hint = closest(key, schema.keys().map(String::as_str))
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                out.push(Problem::new(&path, format!("unknown key{hint}")));
                bad.push(key.clone());
            }
            Some(expected) => {
                if !check_value(value, expected, &path, out) {
                    bad.push(key.clone());
                }
            }
        }
    }
    for key in bad {
        table.remove(&key);
    }
}

/// Returns false when the value must be dropped before typing.
fn check_value(
    value: &mut toml::Value,
    expected: &toml::Value,
    path: &str,
    out: &mut Vec<Problem>,
) -> bool {
    use toml::Value as V;
    match (value, expected) {
        (V::Table(t), V::Table(s)) => {
            check_table(t, s, path, out);
            true
        }
        (V::Integer(v), V::Integer(max)) => {
            if *v < 0 || *v > *max {
                out.push(Problem::new(
                    path,
                    format!("must be between 0 and {max}, got {v}"),
                ));
                return false;
            }
            true
        }
        (V::Array(items), V::Array(s)) => {
            let Some(elem) = s.first() else { return true };
            let before = out.len();
            for (i, item) in items.iter_mut().enumerate() {
                check_value(item, elem, &format!("{path}[{i}]"), out);
            }
            out.len() == before
        }
        (v, e) if v.same_type(e) => true,
        (v, e) => {
            out.push(Problem::new(
                path,
                format!("expected {}, found {}", e.type_str(), v.type_str()),
            ));
            false
        }
    }
}

/// The schema key nearest to a misspelt one, if it is near enough to be a typo.
fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(key, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Rules about meaning: ranges, addresses, names and settings that contradict each other.
pub(super) fn semantics(c: &Config) -> Vec<Problem> {
    let mut p = Vec::new();
    let mut range = |key: &str, v: u64, lo: u64, hi: u64, unit: &str| {
        if v < lo || v > hi {
            p.push(Problem::new(
                key,
                format!("must be between {lo} and {hi}{unit}, got {v}"),
            ));
        }
    };
    range("database.port", c.database.port.into(), 1, 65535, "");
    range(
        "database.pool_size",
        c.database.pool_size.into(),
        1,
        1000,
        "",
    );
    range(
        "database.connect_timeout_ms",
        c.database.connect_timeout_ms,
        100,
        600_000,
        " ms",
    );
    range("wal.batch_size", c.wal.batch_size.into(), 1, 100_000, "");
    range(
        "wal.flush_interval_ms",
        c.wal.flush_interval_ms,
        0,
        10_000,
        " ms",
    );
    range(
        "wal.segment_size_mb",
        c.wal.segment_size_mb,
        1,
        4096,
        " MiB",
    );
    range(
        "wal.retention_hours",
        c.wal.retention_hours,
        1,
        87_600,
        " hours",
    );
    range("wal.max_size_mb", c.wal.max_size_mb, 0, 100_000_000, " MiB");
    range(
        "cluster.heartbeat_interval_ms",
        c.cluster.heartbeat_interval_ms,
        10,
        60_000,
        " ms",
    );
    range(
        "cluster.check_chunk_rows",
        c.cluster.check_chunk_rows,
        1,
        1_000_000,
        " rows",
    );
    range(
        "cluster.check_interval_minutes",
        c.cluster.check_interval_minutes,
        0,
        525_600,
        " minutes",
    );
    range(
        "cluster.snapshot_chunk_kb",
        c.cluster.snapshot_chunk_kb,
        64,
        32_768,
        " KiB",
    );
    range(
        "cluster.election_timeout_ms",
        c.cluster.election_timeout_ms,
        50,
        600_000,
        " ms",
    );
    range(
        "api.max_body_bytes",
        c.api.max_body_bytes,
        1024,
        1 << 30,
        " bytes",
    );
    range(
        "api.max_result_rows",
        c.api.max_result_rows,
        1,
        100_000_000,
        " rows",
    );
    range(
        "api.max_result_bytes",
        c.api.max_result_bytes,
        1024,
        1 << 32,
        " bytes",
    );
    range(
        "api.max_connections",
        c.api.max_connections,
        1,
        65_536,
        " connections",
    );
    range(
        "api.max_concurrent_requests",
        c.api.max_concurrent_requests,
        1,
        65_536,
        " requests",
    );
    range(
        "cluster.max_connections",
        c.cluster.max_connections,
        4,
        65_536,
        " connections",
    );
    range(
        "cluster.max_requests_per_connection",
        c.cluster.max_requests_per_connection,
        1,
        65_536,
        " requests",
    );
    if let Some(n) = c.node.node_number {
        range("node.node_number", n.into(), 0, 1023, "");
    }

    // A follower stands for election after half to all of election_timeout_ms without a
    // heartbeat; a quarter lets two heartbeats go missing before that can happen.
    if c.cluster.heartbeat_interval_ms.saturating_mul(4) > c.cluster.election_timeout_ms {
        p.push(Problem::new(
            "cluster.heartbeat_interval_ms",
            format!(
                "must be at most a quarter of cluster.election_timeout_ms ({} > {} / 4): a follower \
                 starts an election after half to all of election_timeout_ms without a heartbeat",
                c.cluster.heartbeat_interval_ms, c.cluster.election_timeout_ms
            ),
        ));
    }

    if let Err(reason) = node_name(&c.node.id) {
        p.push(Problem::new("node.id", reason));
    }
    let node_bind = bind_address("node.bind_address", &c.node.bind_address, &mut p);
    if let Some(a) = &c.node.advertise_address {
        if let Err(reason) = host_port(a) {
            p.push(Problem::new("node.advertise_address", reason));
        }
    }
    if c.node
        .data_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        p.push(Problem::new("node.data_dir", "must not be empty"));
    }

    if c.database.host.trim().is_empty() {
        p.push(Problem::new("database.host", "must not be empty"));
    }
    if c.database.user.is_empty() || c.database.user.chars().count() > 80 {
        p.push(Problem::new("database.user", "must be 1 to 80 characters"));
    }
    if let Err(reason) = schema_name(&c.database.database) {
        p.push(Problem::new("database.database", reason));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
        p.push(Problem::new(
            "log.level",
            format!("not a log filter (`info`, `debug`, `info,openraft=warn`): {e}"),
        ));
    }

    let mut seen = HashSet::new();
    for (i, peer) in c.cluster.peers.iter().enumerate() {
        let key = format!("cluster.peers[{i}]");
        if let Err(reason) = host_port(peer) {
            p.push(Problem::new(&key, reason));
        } else if !seen.insert(peer.as_str()) {
            p.push(Problem::new(&key, format!("duplicate peer {peer}")));
        }
    }

    if c.api.enabled {
        let api_bind = bind_address("api.bind_address", &c.api.bind_address, &mut p);
        if let (Some(a), Some(n)) = (api_bind, node_bind) {
            if a.port() == n.port()
                && (a.ip() == n.ip() || a.ip().is_unspecified() || n.ip().is_unspecified())
            {
                p.push(Problem::new(
                    "api.bind_address",
                    format!("conflicts with node.bind_address ({n}): they need different ports"),
                ));
            }
        }
    }
    if c.proxy.enabled {
        check_proxy(&c.proxy, node_bind, &mut p);
    }
    p
}

/// `[proxy]`: a usable address apart from the node's, at least one connection, and users
/// with a name and exactly one password form each.
fn check_proxy(proxy: &super::ProxyConfig, node_bind: Option<SocketAddr>, p: &mut Vec<Problem>) {
    let bind = bind_address("proxy.bind_address", &proxy.bind_address, p);
    if let (Some(a), Some(n)) = (bind, node_bind) {
        if a.port() == n.port()
            && (a.ip() == n.ip() || a.ip().is_unspecified() || n.ip().is_unspecified())
        {
            p.push(Problem::new(
                "proxy.bind_address",
                format!("conflicts with node.bind_address ({n}): they need different ports"),
            ));
        }
    }
    if proxy.max_connections == 0 {
        p.push(Problem::new("proxy.max_connections", "must be at least 1"));
    }
    if !(100..=86_400_000).contains(&proxy.max_transaction_ms) {
        p.push(Problem::new(
            "proxy.max_transaction_ms",
            "must be between 100 (0.1 s) and 86400000 (one day)",
        ));
    }
    let mut seen = HashSet::new();
    for (i, user) in proxy.users.iter().enumerate() {
        let key = format!("proxy.users[{i}]");
        if user.name.is_empty() || user.name.len() > 80 {
            p.push(Problem::new(
                format!("{key}.name"),
                "must be 1 to 80 bytes long",
            ));
        } else if !seen.insert(user.name.as_str()) {
            p.push(Problem::new(
                format!("{key}.name"),
                format!("duplicate user {}", user.name),
            ));
        }
        match (&user.password, &user.password_sha1) {
            (Some(_), Some(_)) => p.push(Problem::new(
                &key,
                "set either password or password_sha1, not both",
            )),
            (None, None) => p.push(Problem::new(&key, "needs password or password_sha1")),
            (None, Some(hash)) => {
                if let Err(reason) = crate::proxy::auth::parse_stored(hash) {
                    p.push(Problem::new(format!("{key}.password_sha1"), reason));
                }
            }
            (Some(_), None) => {}
        }
    }
}

fn bind_address(key: &str, value: &str, p: &mut Vec<Problem>) -> Option<SocketAddr> {
    match value.parse::<SocketAddr>() {
        Ok(a) if a.port() == 0 => {
            p.push(Problem::new(key, "port must be between 1 and 65535, got 0"));
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            p.push(Problem::new(
                key,
                format!(
                    "`{value}` is not an IP:port address (e.g. \"0.0.0.0:7654\" or \"[::1]:7654\")"
                ),
            ));
            None
        }
    }
}

/// Checks a "host:port" (or "[v6]:port") address others dial.
pub(crate) fn host_port(value: &str) -> Result<(), String> {
    let bad = || format!("`{value}` is not a host:port address (e.g. \"10.0.0.2:7654\")");
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (h, r) = rest.split_once(']').ok_or_else(bad)?;
        (h, r.strip_prefix(':').ok_or_else(bad)?)
    } else {
        value.rsplit_once(':').ok_or_else(bad)?
    };
    if host.is_empty()
        || host.contains(char::is_whitespace)
        || (!value.starts_with('[') && host.contains(':'))
    {
        return Err(bad());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{value}`: port must be between 1 and 65535")),
        Ok(_) => Ok(()),
    }
}

/// Node names appear in logs, URLs and the state db: keep them plain.
pub(crate) fn node_name(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if !id
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{id}` may contain only letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// MariaDB's own rules for a database name, so a bad one fails here and not at start-up.
fn schema_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if name.chars().any(|ch| matches!(ch, '\0' | '/' | '\\' | '.')) || name.ends_with(' ') {
        return Err(format!("`{name}` is not a valid MariaDB database name (no '/', '\\', '.', NUL or trailing space)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_accepts_names_ipv4_and_ipv6() {
        for ok in [
            "db1:7654",
            "10.0.0.2:1",
            "[::1]:7654",
            "leader-host.example:65535",
        ] {
            assert_eq!(host_port(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "host",
            ":7654",
            "host:0",
            "host:65536",
            "host:x",
            "::1:7654",
            "[::1]7654",
            "a b:1",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_names() {
        assert!(node_name("node-1").is_ok());
        assert!(node_name("").is_err());
        assert!(node_name("a b").is_err());
        assert!(node_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn typo_suggestions() {
        let keys = ["batch_size", "fsync", "compression"];
        assert_eq!(
            closest("bacth_size", keys.iter().copied()),
            Some("batch_size")
        );
        assert_eq!(
            closest("compresion", keys.iter().copied()),
            Some("compression")
        );
        assert_eq!(closest("zzzzzzzz", keys.iter().copied()), None);
    }
}
