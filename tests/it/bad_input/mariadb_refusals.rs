//! Statements our checker lets through but MariaDB refuses, every time and on every node:
//! they are the entry's result, a 4xx answered at once, never a 503 or a stalled applier.
//! And the applier's own bookkeeping table, `_wolfscale`, which no client may touch.

use super::{post_json, Case, Expect, Probe};
use serde_json::json;
use wolfscale::api::NodeState;

/// `/write/sql` statements on the (empty) table `t`, each with the error MariaDB 10.11
/// gives.
const WRITES: &[(&str, u16)] = &[
    ("INSERT INTO t (id, v) SELECT 1 UNION SELECT 1, 2", 1222),
    ("UPDATE t SET v = COUNT(*) WHERE id = 1", 1111),
    ("INSERT INTO t (id, v) VALUES (1, CONCAT())", 1582),
    ("INSERT INTO t (id, v) VALUES (1, 'x' REGEXP '(')", 1139),
    (
        "INSERT INTO t (id, v) VALUES (1, CAST('1' AS DECIMAL(100, 2)))",
        1426,
    ),
    ("UPDATE t SET v = 'x' WHERE MATCH(v) AGAINST ('x')", 1191),
    ("INSERT INTO t PARTITION (p0) (id, v) VALUES (1, 'x')", 1747),
    ("DELETE nope FROM t", 1109),
    (
        "INSERT INTO t (id, v) VALUES (1, ROW_NUMBER() OVER ())",
        4015,
    ),
    (
        "INSERT INTO t (id, v) SELECT 1, v FROM t WINDOW w AS (), w AS ()",
        4010,
    ),
    (
        "INSERT INTO t (id, v) VALUES (1, 'a' LIKE 'b' ESCAPE 'cd')",
        1210,
    ),
    (
        "INSERT INTO t (id, v) VALUES (1, CAST('x' AS CHAR(4294967296)))",
        1439,
    ),
    (
        "INSERT INTO t (id, v) SELECT 1, 'x' FROM t GROUP BY id WITH ROLLUP ORDER BY 1",
        1221,
    ),
    (
        "INSERT INTO t (id, v) VALUES (1, JSON_EXTRACT('{', '$'))",
        4037,
    ),
    (
        "INSERT INTO t (id, v) VALUES (1, JSON_EXTRACT('{}', '$['))",
        4041,
    ),
    ("INSERT INTO t (id, v) VALUES (1, NEXTVAL(canary))", 4089),
    (
        "INSERT INTO t (id, v) SELECT 1, 'x' FROM t FOR SYSTEM_TIME ALL",
        4124,
    ),
    ("INSERT INTO t (id, v) VALUES (1, (SELECT 1, 2))", 1241),
    ("INSERT INTO t (id, v) VALUES (1, 'x'), (2)", 1136),
    ("DELETE FROM t ORDER BY nope", 1054),
    ("INSERT INTO t (id, v) VALUES (1, nope())", 1305),
    ("INSERT INTO t (id, v) VALUES (POW(10, 400), 'x')", 1690),
    ("INSERT INTO t (id, v) VALUES ('abc', 'x')", 1366),
    ("INSERT INTO t (id, v) VALUES (1, 1 / 0)", 1365),
];

/// `/write/ddl` statements MariaDB refuses; none changes the schema.
const DDL: &[(&str, u16)] = &[
    ("CREATE TABLE bad (a VARCHAR(100000))", 1074),
    ("CREATE TABLE bad (a TEXT, PRIMARY KEY (a))", 1170),
    ("CREATE TABLE bad (a INT AUTO_INCREMENT)", 1075),
    ("CREATE TABLE bad (a DECIMAL(100, 2))", 1426),
    ("CREATE TABLE bad (a INT) PARTITION BY RANGE (a) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (5))", 1493),
    ("CREATE TABLE bad (a ENUM('x', 'x'))", 1291),
    ("CREATE TABLE bad (a INT DEFAULT (nope()))", 1901),
    ("CREATE INDEX i ON canary (v(1000))", 1089),
    ("CREATE FULLTEXT INDEX i ON canary (id)", 1283),
    ("CREATE SPATIAL INDEX i ON canary (v)", 1210),
    ("ALTER TABLE canary DROP COLUMN id, DROP COLUMN v", 1090),
    ("CREATE SEQUENCE s START WITH 10 MAXVALUE 5", 4085),
    ("CREATE TABLE bad (a INT, FOREIGN KEY (a) REFERENCES nope (id))", 1005),
    ("CREATE VIEW bad AS SELECT 1 AS a, 2 AS a", 1060),
    ("CREATE TABLE bad (a INT CHECK (a > nope))", 1054),
    ("DROP TABLE nope", 1051),
    ("ALTER TABLE canary ADD COLUMN id INT", 1060),
];

/// `/query` statements MariaDB refuses.
const READS: &[(&str, u16)] = &[
    ("SELECT 1 UNION SELECT 1, 2", 1222),
    ("SELECT 1 INTERSECT SELECT 1, 2", 1222),
    (
        "WITH RECURSIVE r AS (SELECT 1 UNION SELECT 1, 2) SELECT * FROM r",
        1222,
    ),
    ("SELECT * FROM information_schema.nope", 1109),
    ("SELECT 'x' REGEXP '('", 1139),
    ("SELECT CAST(1 AS DECIMAL(100, 1))", 1426),
    ("SELECT MATCH(v) AGAINST('x') FROM t", 1191),
    ("SELECT * FROM t PARTITION (p0)", 1747),
    ("SELECT SUM(SUM(id)) FROM t", 1111),
    ("SELECT CHAR_LENGTH()", 1582),
    ("SHOW CREATE VIEW canary", 1347),
    ("VALUES (1), (1, 2)", 4099),
    ("SELECT 'a' LIKE 'b' ESCAPE 'cd'", 1210),
    ("EXPLAIN FORMAT=nope SELECT 1", 1791),
    ("SELECT * FROM t FOR SYSTEM_TIME ALL", 4124),
    (
        "SELECT * FROM JSON_TABLE('[', '$[*]' COLUMNS (a INT PATH '$')) AS j",
        4037,
    ),
    ("SHOW TABLES FROM nope", 1049),
    ("DESCRIBE nope", 1146),
    ("EXPLAIN SELECT nope", 1054),
    ("SELECT * FROM t a JOIN t a", 1066),
    ("SELECT LASTVAL(nope)", 4091),
    ("SELECT * FROM t USE INDEX (nope)", 1176),
];

/// A join of 62 tables: MariaDB allows 61 (1116).
fn too_many_tables(prefix: &str) -> String {
    let from: Vec<String> = (0..62).map(|i| format!("t AS a{i}")).collect();
    format!("{prefix} FROM {}", from.join(", "))
}

async fn expect_refused(probe: &mut Probe<'_>, route: &str, body: serde_json::Value, code: u16) {
    let label = format!("{route} {body} (MariaDB {code})");
    let c = Case::new(
        label.clone(),
        post_json(route, body.to_string().as_bytes()),
        Expect::Client,
    );
    let got = probe.run(&c).await;
    assert!(
        got.as_deref().is_some_and(|g| g != "not_ready"),
        "{label}: answered {got:?}"
    );
    let status = probe.node.status().await;
    assert_eq!(
        status.status,
        NodeState::Active,
        "{label}: the node is not ACTIVE afterwards: {status:?}"
    );
}

/// Every statement above is answered 4xx and leaves the node ACTIVE.
pub async fn deterministic_errors(probe: &mut Probe<'_>) {
    for (sql, code) in WRITES {
        expect_refused(
            probe,
            "/write/sql",
            json!({"statements": [{"sql": sql}], "transaction": true}),
            *code,
        )
        .await;
    }
    let join = too_many_tables("INSERT INTO t (id, v) SELECT 1, 'x'");
    expect_refused(
        probe,
        "/write/sql",
        json!({"statements": [{"sql": join}], "transaction": true}),
        1116,
    )
    .await;
    for (sql, code) in DDL {
        expect_refused(probe, "/write/ddl", json!({"ddl": sql}), *code).await;
    }
    for (sql, code) in READS {
        expect_refused(probe, "/query", json!({"sql": sql}), *code).await;
    }
    let join = too_many_tables("SELECT 1");
    expect_refused(probe, "/query", json!({"sql": join}), 1116).await;
}

/// No write route may touch `_wolfscale`, the applier's position table, under any
/// spelling: a client that deleted its row or dropped it would make the node re-apply
/// the whole log or stall for good. Reading it is fine.
pub async fn bookkeeping(probe: &mut Probe<'_>) {
    let mut cases = Vec::new();
    for name in ["_wolfscale", "_WOLFSCALE", "_Wolfscale"] {
        cases.push(("/write/insert", json!({"table": name, "values": {"id": 2}})));
        cases.push((
            "/write/update",
            json!({"table": name, "set": {"applied_index": 0}, "where_key": {"id": 1}}),
        ));
        cases.push((
            "/write/delete",
            json!({"table": name, "where_key": {"id": 1}}),
        ));
    }
    for sql in [
        "DELETE FROM _wolfscale",
        "DELETE FROM `_wolfscale` WHERE id = 1",
        "DELETE FROM app._wolfscale",
        "DELETE FROM `app`.`_wolfscale`",
        "UPDATE _wolfscale SET applied_index = 0 WHERE id = 1",
        "UPDATE t, _wolfscale SET t.v = 'x', _wolfscale.applied_index = 0",
        "INSERT INTO _WOLFSCALE (id) VALUES (2)",
        "REPLACE INTO _wolfscale (id) VALUES (1)",
        "DELETE FROM t WHERE id IN (SELECT applied_index FROM _wolfscale)",
    ] {
        cases.push(("/write/sql", json!({"statements": [{"sql": sql}]})));
    }
    for ddl in [
        "DROP TABLE _wolfscale",
        "DROP TABLE IF EXISTS canary_x, `_wolfscale`",
        "TRUNCATE TABLE _wolfscale",
        "TRUNCATE _wolfscale",
        "ALTER TABLE _wolfscale DROP COLUMN membership",
        "RENAME TABLE _wolfscale TO wolfscale_old",
        "CREATE TRIGGER tr BEFORE UPDATE ON _wolfscale FOR EACH ROW SET NEW.applied_index = 0",
        "CREATE TRIGGER tr AFTER INSERT ON canary FOR EACH ROW DELETE FROM _wolfscale",
        "CREATE OR REPLACE TABLE _wolfscale (id INT)",
        "CREATE VIEW _wolfscale_v AS SELECT * FROM _wolfscale",
        "DROP TABLE /*! `_wolfscale` */ nope_x",
    ] {
        cases.push(("/write/ddl", json!({"ddl": ddl})));
    }
    for (route, body) in cases {
        let label = format!("{route} {body}");
        let c = Case::new(
            label.clone(),
            post_json(route, body.to_string().as_bytes()),
            Expect::Status(400),
        );
        let code = probe.run(&c).await;
        assert!(
            matches!(
                code.as_deref(),
                Some("invalid_identifier" | "reserved_name")
            ),
            "{label}: answered {code:?}"
        );
    }
    // Reading it, and the name inside a value, are fine.
    let read = post_json(
        "/query",
        br#"{"sql": "SELECT applied_index FROM _wolfscale"}"#,
    );
    let reply =
        crate::support::raw_http::exchange(&probe.node.api, &read, super::ANSWER_LIMIT).await;
    assert!(
        matches!(&reply, crate::support::raw_http::Reply::Answer(a) if a.status == 200),
        "reading _wolfscale: {reply:?}"
    );
}
