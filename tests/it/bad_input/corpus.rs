//! Injection corpora through every name, value and SQL field of every route: classic SQL
//! injection strings, backticks, comments, unicode confusables, NUL, 10 kB strings.
//! As names and SQL text they must be refused (or be MariaDB's own deterministic error);
//! as values they must be stored byte for byte.

use super::{check, post_json, Case, Expect, LiveNode, Probe};
use crate::support::raw_http;
use mysql_async::prelude::Queryable;
use serde_json::json;

/// The strings thrown through every field, with a short label.
pub fn corpus() -> Vec<(&'static str, String)> {
    let mut c: Vec<(&'static str, String)> = [
        ("or-true", "' OR '1'='1"),
        ("or-true comment", "' OR 1=1 -- "),
        ("drop after quote", "'; DROP TABLE canary; --"),
        ("drop after double quote", "\"; DROP TABLE canary; --"),
        ("drop after number", "1; DROP TABLE canary"),
        ("union", "' UNION SELECT user, password FROM mysql.user -- "),
        ("admin comment", "admin'--"),
        ("paren or", "') OR ('x'='x"),
        ("sleep", "1' AND SLEEP(3) AND '1'='1"),
        ("backslash quote", "\\'; DROP TABLE canary; #"),
        ("double backslash quote", "\\\\'; DROP TABLE canary; #"),
        ("backslash", "\\"),
        ("backtick", "`"),
        ("backtick break-out", "`canary`; DROP TABLE `canary`"),
        (
            "backtick column break-out",
            "v` = 1; DROP TABLE canary; -- ",
        ),
        ("double backtick", "t``; DROP TABLE canary"),
        ("open comment", "/*"),
        ("close comment", "*/ DROP TABLE canary /*"),
        // Code to MariaDB: as a whole DDL statement this is a real DROP, so it names a
        // table that does not exist (MariaDB's 404).
        ("executable comment", "/*! DROP TABLE nope_x */"),
        ("versioned comment", "/*!99999 DROP TABLE nope_x */"),
        ("dash comment", "-- "),
        ("hash comment", "#"),
        ("modifier apostrophe", "\u{2BC} OR 1=1 -- "),
        (
            "fullwidth quotes",
            "\u{FF07} OR \u{FF07}1\u{FF07}=\u{FF07}1",
        ),
        ("curly quote", "\u{2018}; DROP TABLE canary; --"),
        (
            "fullwidth backtick and semicolon",
            "\u{FF40}canary\u{FF40}\u{FF1B}DROP TABLE canary",
        ),
        ("cyrillic canary", "\u{441}\u{430}nary"),
        ("right-to-left override", "\u{202E}yranac"),
        ("zero-width", "can\u{200B}ary\u{FEFF}"),
        ("line separators", "a\u{2028}b\u{0085}c"),
        ("NUL inside", "a\0b"),
        ("NUL alone", "\0"),
        ("NUL then drop", "'\0'; DROP TABLE canary; --"),
        ("emoji", "\u{1F600}"),
        ("newlines", "line\nbreak\r\n"),
        ("percent-encoded", "%27%20OR%201%3D1"),
        ("placeholder", "?"),
        ("placeholders", "?, ?"),
        ("named placeholder", ":1"),
        ("dollar placeholder", "$1"),
        ("jndi", "${jndi:ldap://x/a}"),
        ("hex literal", "0x27"),
        ("charset introducer", "_latin1'a'"),
        ("national literal", "N'a'"),
        ("like wildcards", "%_%"),
        ("empty", ""),
        ("space", " "),
        ("trailing space", "t "),
        ("dot", "app.canary"),
        ("mysql table", "mysql.user"),
    ]
    .into_iter()
    .map(|(l, s)| (l, s.to_string()))
    .collect();
    c.push(("10 kB quotes", "'".repeat(10_240)));
    c.push(("10 kB letters", "a".repeat(10_240)));
    c.push(("10 kB backticks", "`".repeat(10_240)));
    c.push(("10 kB two-byte chars", "\u{E9}".repeat(5_120)));
    c.push(("10 kB NULs", "\0".repeat(10_240)));
    c.push(("65 characters", "a".repeat(65)));
    c
}

fn case(label: String, route: &str, body: serde_json::Value, expect: Expect) -> Case {
    Case::new(label, post_json(route, body.to_string().as_bytes()), expect)
}

/// Every name field of every route: table, column keys, the snowflake column, enum
/// fields and `/id`'s count. Each must be a 4xx.
pub async fn through_names(probe: &mut Probe<'_>) {
    for (label, s) in corpus() {
        let mut cases = vec![
            case(
                format!("insert table {label}"),
                "/write/insert",
                json!({"table": &s, "values": {"id": 1}}),
                Expect::Client,
            ),
            case(
                format!("insert column {label}"),
                "/write/insert",
                json!({"table": "t", "values": {s.clone(): 1}}),
                Expect::Client,
            ),
            case(
                format!("insert snowflake {label}"),
                "/write/insert",
                json!({"table": "t", "values": {"id": 1}, "snowflake": &s}),
                Expect::Client,
            ),
            case(
                format!("insert wait {label}"),
                "/write/insert",
                json!({"table": "t", "values": {"id": 1}, "wait": &s}),
                Expect::Status(400),
            ),
            case(
                format!("update table {label}"),
                "/write/update",
                json!({"table": &s, "set": {"v": "x"}, "where_key": {"id": 1}}),
                Expect::Client,
            ),
            case(
                format!("update set column {label}"),
                "/write/update",
                json!({"table": "t", "set": {s.clone(): "x"}, "where_key": {"id": 1}}),
                Expect::Client,
            ),
            case(
                format!("update where column {label}"),
                "/write/update",
                json!({"table": "t", "set": {"v": "x"}, "where_key": {s.clone(): 1}}),
                Expect::Client,
            ),
            case(
                format!("delete table {label}"),
                "/write/delete",
                json!({"table": &s, "where_key": {"id": 1}}),
                Expect::Client,
            ),
            case(
                format!("delete where column {label}"),
                "/write/delete",
                json!({"table": "t", "where_key": {s.clone(): 1}}),
                Expect::Client,
            ),
            case(
                format!("query consistency {label}"),
                "/query",
                json!({"sql": "SELECT 1", "consistency": &s}),
                Expect::Status(400),
            ),
        ];
        let mut target = b"/id?count=".to_vec();
        for b in s.as_bytes() {
            target.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
        cases.push(Case::new(
            format!("/id count {label}"),
            super::get(&target),
            Expect::Status(400),
        ));
        probe.run_all(&cases).await;
    }
}

/// Statements that smuggle a second statement or hide one in a comment, and other
/// statements the route does not take: each must be refused with a 400.
const SMUGGLED: &[(&str, &str)] = &[
    (
        "/write/sql",
        "DELETE FROM t WHERE id = -1; DROP TABLE canary",
    ),
    (
        "/write/sql",
        "DELETE FROM t WHERE id = -1 /*! ; DROP TABLE canary */",
    ),
    (
        "/write/sql",
        "DELETE FROM t WHERE id = -1 /*!99999 ; DROP TABLE canary */",
    ),
    (
        "/write/sql",
        "DELETE FROM t WHERE v = 'a\\\\'; DROP TABLE canary; -- '",
    ),
    (
        "/write/sql",
        "DELETE FROM t WHERE v = \"a\"; DROP TABLE canary",
    ),
    (
        "/write/sql",
        "DELETE FROM t WHERE id = -1 -- \n; DROP TABLE canary",
    ),
    (
        "/write/sql",
        "DELETE FROM t WHERE id = -1\0; DROP TABLE canary",
    ),
    ("/write/sql", "DROP TABLE canary"),
    ("/write/sql", "SELECT 1"),
    ("/write/sql", "CALL nope()"),
    ("/write/sql", "SET @@global.read_only = 1"),
    ("/write/sql", "LOAD DATA INFILE '/etc/passwd' INTO TABLE t"),
    (
        "/write/sql",
        "INSERT INTO t (id, v) VALUES (1, LOAD_FILE('/etc/passwd'))",
    ),
    ("/write/sql", "INSERT INTO t (id, v) VALUES (1, UUID())"),
    (
        "/write/ddl",
        "DROP TABLE IF EXISTS nope_x; DROP TABLE canary",
    ),
    (
        "/write/ddl",
        "DROP TABLE IF EXISTS nope_x /*! ; DROP TABLE canary */",
    ),
    (
        "/write/ddl",
        "CREATE TABLE IF NOT EXISTS canary (id INT); DROP TABLE canary",
    ),
    ("/write/ddl", "DROP DATABASE app"),
    ("/write/ddl", "CREATE DATABASE evil"),
    ("/write/ddl", "CREATE USER evil IDENTIFIED BY 'x'"),
    ("/write/ddl", "GRANT ALL ON *.* TO evil"),
    ("/write/ddl", "SET GLOBAL read_only = 1"),
    (
        "/write/ddl",
        "CREATE EVENT e ON SCHEDULE EVERY 1 SECOND DO DELETE FROM canary",
    ),
    ("/write/ddl", "SHUTDOWN"),
    ("/query", "SELECT 1; DROP TABLE canary"),
    ("/query", "SELECT 1 /*! ; DROP TABLE canary */"),
    ("/query", "SELECT * FROM canary INTO OUTFILE '/tmp/canary'"),
    ("/query", "SELECT * FROM canary INTO @x"),
    ("/query", "DELETE FROM canary"),
    ("/query", "DROP TABLE canary"),
    ("/query", "SET @x = 1"),
    ("/query", "DO SLEEP(1)"),
    ("/query", "HANDLER canary OPEN"),
    ("/query", "LOCK TABLES canary WRITE"),
];

/// Look-alikes that are one harmless statement (or MariaDB's syntax error): answered
/// 2xx or 4xx, and the caller checks MariaDB is unchanged.
const LOOK_ALIKES: &[(&str, &str)] = &[
    // `--;` is not a comment to MariaDB: minus minus, then a second statement.
    (
        "/write/sql",
        "DELETE FROM t WHERE id = -1 --; DROP TABLE canary",
    ),
    // A fullwidth semicolon is just a character.
    (
        "/write/sql",
        "DELETE FROM t WHERE id = -1 \u{FF1B} DROP TABLE canary",
    ),
    (
        "/write/sql",
        "DELETE FROM t WHERE id = -1 INTO OUTFILE '/tmp/x'",
    ),
];

/// The corpus as whole SQL statements and inside statement templates, plus statements
/// that smuggle a second one.
pub async fn through_sql_text(probe: &mut Probe<'_>) {
    for (label, s) in corpus() {
        let cases = [
            case(
                format!("sql {label}"),
                "/write/sql",
                json!({"statements": [{"sql": &s}]}),
                Expect::Client,
            ),
            case(
                format!("query {label}"),
                "/query",
                json!({"sql": &s}),
                Expect::Client,
            ),
        ];
        probe.run_all(&cases).await;
        // A version comment is code to our checker but may be a comment to MariaDB: the
        // checker is the stricter one, and such a statement is an empty success.
        let c = case(
            format!("ddl {label}"),
            "/write/ddl",
            json!({"ddl": &s}),
            Expect::Client,
        );
        answered(probe, &c).await;
        // Inside a literal of a statement on the empty table: the statement may parse or
        // not, but it can never reach anything else.
        let inside = format!("DELETE FROM t WHERE id = -1 AND v = '{s}'");
        let c = case(
            format!("sql template {label}"),
            "/write/sql",
            json!({"statements": [{"sql": inside}]}),
            Expect::Client,
        );
        answered(probe, &c).await;
        let read = format!("SELECT id FROM t WHERE v = '{s}'");
        let c = case(
            format!("query template {label}"),
            "/query",
            json!({"sql": read}),
            Expect::Client,
        );
        answered(probe, &c).await;
    }
    let body = |route: &str, sql: &str| match route {
        "/write/ddl" => json!({"ddl": sql}),
        "/write/sql" => json!({"statements": [{"sql": sql}]}),
        _ => json!({"sql": sql}),
    };
    for (route, sql) in SMUGGLED {
        let c = case(
            format!("{route} {sql:?}"),
            route,
            body(route, sql),
            Expect::Status(400),
        );
        probe.run(&c).await;
    }
    for (route, sql) in LOOK_ALIKES {
        let c = case(
            format!("{route} {sql:?}"),
            route,
            body(route, sql),
            Expect::Client,
        );
        answered(probe, &c).await;
    }
}

/// Sends `c`, which may succeed (2xx) or be refused (4xx JSON); never a 5xx.
async fn answered(probe: &mut Probe<'_>, c: &Case) {
    let reply = raw_http::exchange(&probe.node.api, &c.raw, super::ANSWER_LIMIT).await;
    match &reply {
        raw_http::Reply::Answer(a) if (200..300).contains(&a.status) => {}
        _ => {
            check(&c.label, &reply, Expect::Client);
        }
    }
    // A success (or a MariaDB result) is an entry whose outcome the leader reports next.
    probe.unsettled = true;
    probe.checked += 1;
}

/// Every value field of every write route, and `/query` params: each corpus string is
/// inserted into `table` (empty, shaped like `t`), matched, updated and deleted as data,
/// and read back byte for byte. Returns how many values were stored.
pub async fn through_values(node: &LiveNode, table: &str) -> usize {
    let client = node.client();
    let mut conn = node.db.conn_to("app").await.expect("conn");
    let items = corpus();
    let write = |route: &'static str, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let raw = client
                .raw(
                    axum::http::Method::POST,
                    route,
                    Some("application/json"),
                    body.to_string().into(),
                )
                .await
                .expect("connect");
            let v: serde_json::Value = serde_json::from_slice(&raw.body).expect("JSON answer");
            assert!(
                raw.status.is_success(),
                "{route} {body}: {} {v}",
                raw.status
            );
            v
        }
    };
    for (i, (label, s)) in items.iter().enumerate() {
        let id = 1000 + i as i64;
        let bytes: Vec<u8> = s.bytes().rev().chain([0xFF, 0xFE, 0x00, 0xC0]).collect();
        let b64 = base64_encode(&bytes);
        let w = write(
            "/write/insert",
            json!({"table": table, "values": {"id": id, "v": s, "b": {"$base64": b64}}}),
        )
        .await;
        assert_eq!(w["affected_rows"], 1, "insert {label}");
        let stored: Option<(String, Vec<u8>)> = conn
            .exec_first(format!("SELECT v, b FROM {table} WHERE id = ?"), (id,))
            .await
            .expect("read back");
        assert_eq!(
            stored,
            Some((s.clone(), bytes.clone())),
            "insert {label} round trip"
        );
        // As a where value: matches exactly its own row.
        let changed = format!("{s}|changed");
        let w = write(
            "/write/update",
            json!({"table": table, "set": {"v": &changed}, "where_key": {"id": id, "v": s}}),
        )
        .await;
        assert_eq!(w["affected_rows"], 1, "update where {label}");
        let q = write(
            "/query",
            json!({"sql": format!("SELECT v FROM {table} WHERE id = ? AND v = ?"), "params": [id, &changed]}),
        )
        .await;
        assert_eq!(q["rows"], json!([[&changed]]), "query param {label}");
        // Through the batch route's params, then deleted by value.
        let other = 5000 + i as i64;
        let w = write("/write/sql", json!({"statements": [{"sql": format!("INSERT INTO {table} (id, v) VALUES (?, ?)"), "params": [other, s]}]})).await;
        assert_eq!(w["affected_rows"], 1, "sql param {label}");
        let w = write(
            "/write/delete",
            json!({"table": table, "where_key": {"id": other, "v": s}}),
        )
        .await;
        assert_eq!(w["affected_rows"], 1, "delete where {label}");
        let back: Option<String> = conn
            .exec_first(format!("SELECT v FROM {table} WHERE id = ?"), (id,))
            .await
            .expect("read back");
        assert_eq!(back, Some(changed), "update {label} round trip");
    }
    let count: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("count");
    assert_eq!(
        count,
        Some(items.len() as i64),
        "exactly one row per corpus string"
    );
    items.len()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
