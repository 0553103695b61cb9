//! Results that must be the same on every node, on one 3-node cluster: a duplicate key is
//! the entry's result (409) and the LSN moves on; NOW() / CURRENT_TIMESTAMP give the
//! leader's time everywhere; non-deterministic SQL is refused with a 400 naming the
//! function and never reaches the log; AUTO_INCREMENT values agree under concurrent
//! inserts through different nodes; `min_lsn` gives read-your-writes on a follower, and a
//! linearizable read on a follower sees every write acknowledged before it started.

use super::assert_converged;
use crate::support::procs::{write, ProcCluster, DATABASE};
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wolfscale::api::client::{Client, WriteKind};
use wolfscale::api::{Consistency, QueryRequest, WriteResult};
use wolfscale::command::Input;

/// How long the log may take to settle between checks.
const SETTLE: Duration = Duration::from_secs(20);

async fn ok(client: &Client, kind: WriteKind, body: serde_json::Value) -> WriteResult {
    let text = body.to_string();
    match write(client, kind, &text).await {
        Ok(r) => r,
        Err(e) => panic!("{kind:?} {text} failed: {e}"),
    }
}

fn read(
    sql: &str,
    params: Vec<Input>,
    min_lsn: Option<u64>,
    timeout_ms: Option<u64>,
) -> QueryRequest {
    QueryRequest {
        sql: sql.into(),
        params,
        consistency: Consistency::None,
        min_lsn,
        timeout_ms,
    }
}

/// A value as text: NULL, or the bytes MariaDB's text protocol sent.
fn text(v: mysql_async::Value) -> String {
    match v {
        mysql_async::Value::NULL => "NULL".into(),
        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        other => other.as_sql(true),
    }
}

/// Every node's rows for `sql`, read from its MariaDB directly; asserts they agree.
async fn same_rows_everywhere(c: &ProcCluster, sql: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    for node in &c.nodes {
        let mut conn = node.db.conn_to(DATABASE).await.expect("connect");
        let rows: Vec<mysql_async::Row> = conn.query(sql).await.expect("read");
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| r.unwrap().into_iter().map(text).collect())
            .collect();
        all.push((node.name.clone(), rows));
    }
    for (name, rows) in &all[1..] {
        assert_eq!(&all[0].1, rows, "{sql}: {} and {name} differ", all[0].0);
    }
    all.swap_remove(0).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_time_and_auto_increment_agree_on_every_node_and_refusals_append_nothing() {
    let c = ProcCluster::start(3).await;
    let leader = c.leader(Duration::from_secs(10)).await;
    let follower = c.other_than(leader);
    let (lc, fc) = (c.client(leader), c.client(follower));
    for ddl in [
        "CREATE TABLE dup (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE times (id INT PRIMARY KEY, \
         created DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
         explicit DATETIME(6) NULL, stamped TIMESTAMP(6) NULL) ENGINE=InnoDB",
        "CREATE TABLE auto (id BIGINT AUTO_INCREMENT PRIMARY KEY, via INT NOT NULL, \
         k INT NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE ryw (id INT PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
    ] {
        ok(&lc, WriteKind::Ddl, json!({ "ddl": ddl })).await;
    }

    duplicate_key_is_the_result_everywhere(&c, &lc, &fc).await;
    now_is_the_leaders_time_everywhere(&c, &lc, &fc).await;
    non_deterministic_sql_is_refused_before_the_log(&c, &lc, &fc).await;
    auto_increment_agrees_under_concurrent_inserts(&c).await;
    min_lsn_reads_your_writes_on_a_follower(&lc, &fc).await;
    linearizable_reads_on_a_follower_see_every_acknowledged_write(&lc, &fc).await;
    assert_converged(&c).await;
}

async fn duplicate_key_is_the_result_everywhere(c: &ProcCluster, lc: &Client, fc: &Client) {
    let first = ok(
        lc,
        WriteKind::Insert,
        json!({"table": "dup", "values": {"id": 1, "v": "first"}}),
    )
    .await;
    // Through the leader and through a follower: the same 409, each entry takes an LSN.
    for (via, client) in [("leader", lc), ("follower", fc)] {
        for attempt in 1.. {
            let (term, before) = c.settled(SETTLE).await;
            let body = json!({"table": "dup", "values": {"id": 1, "v": via}, "wait": "all"});
            let e = write(client, WriteKind::Insert, &body.to_string())
                .await
                .expect_err("duplicate key");
            assert_eq!(e.status().map(|s| s.as_u16()), Some(409), "{e}");
            assert_eq!(e.code(), Some("conflict"), "{e}");
            assert!(e.to_string().contains("1062"), "names MariaDB's error: {e}");
            let (term_after, after) = c.settled(SETTLE).await;
            // An election in between appends its own entry: measure again.
            if term_after == term {
                // The failed entry takes an LSN, and the leader's report of its outcome
                // (outcome agreement) one more.
                assert_eq!(
                    after,
                    before + 2,
                    "the failed entry must take an LSN, its outcome report another ({via})"
                );
                break;
            }
            assert!(attempt < 3, "an election during each of 3 attempts");
        }
    }
    // The same result on every node: the entry failed there too, the row is untouched.
    let (state, lsn) = assert_converged(c).await;
    assert!(lsn > first.lsn);
    assert_eq!(state.tables["dup"].rows, 1);
    let rows = same_rows_everywhere(c, "SELECT id, v FROM dup").await;
    assert_eq!(rows, [["1".to_string(), "first".to_string()]]);
}

async fn now_is_the_leaders_time_everywhere(c: &ProcCluster, lc: &Client, fc: &Client) {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    ok(
        fc,
        WriteKind::Insert,
        json!({"table": "times", "values": {"id": 1}}),
    )
    .await;
    ok(
        lc,
        WriteKind::Sql,
        json!({"statements": [
            {"sql": "INSERT INTO times (id, explicit) VALUES (?, NOW(6))", "params": [2]},
            {"sql": "UPDATE times SET stamped = CURRENT_TIMESTAMP(6) WHERE id = ?", "params": [1]}
        ], "transaction": true}),
    )
    .await;
    // DDL runs under the leader's timestamp too: existing rows get the same default.
    ok(
        fc,
        WriteKind::Ddl,
        json!({"ddl": "ALTER TABLE times ADD COLUMN added DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"}),
    )
    .await;
    c.wait_converged(Duration::from_secs(20)).await;
    let rows = same_rows_everywhere(
        c,
        "SELECT id, created, explicit, stamped, added, UNIX_TIMESTAMP(created) FROM times ORDER BY id",
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_ne!(row[1], "NULL", "{row:?}");
        assert_ne!(row[4], "NULL", "{row:?}");
        // A microsecond part that is not all zeros: the leader's clock, not a second.
        assert!(!row[1].ends_with(".000000"), "{row:?}");
        let at: f64 = row[5].parse().expect("unix time");
        assert!(
            (at as i64 - wall).abs() < 600,
            "created {at} is far from the wall clock {wall}"
        );
    }
    assert_ne!(rows[1][2], "NULL", "NOW(6) stored: {rows:?}");
    assert_ne!(rows[0][3], "NULL", "CURRENT_TIMESTAMP(6) stored: {rows:?}");
}

async fn non_deterministic_sql_is_refused_before_the_log(
    c: &ProcCluster,
    lc: &Client,
    fc: &Client,
) {
    // Nothing may be appended: the log does not move (measured again if an election
    // appends its own entry meanwhile).
    for attempt in 1.. {
        let (term, before) = c.settled(SETTLE).await;
        let refused: [(WriteKind, serde_json::Value, &str); 7] = [
            (
                WriteKind::Sql,
                json!({"statements": [{"sql": "INSERT INTO dup (id, v) VALUES (7, UUID())"}]}),
                "UUID()",
            ),
            (
                WriteKind::Sql,
                json!({"statements": [{"sql": "UPDATE dup SET v = RAND() WHERE id = 1"}], "transaction": true}),
                "RAND()",
            ),
            (
                WriteKind::Sql,
                json!({"statements": [
                    {"sql": "INSERT INTO dup (id, v) VALUES (8, 'fine')"},
                    {"sql": "INSERT INTO times (id, explicit) VALUES (9, SYSDATE())"}
                ]}),
                "SYSDATE()",
            ),
            (
                WriteKind::Sql,
                json!({"statements": [{"sql": "DELETE FROM dup LIMIT 1"}]}),
                "LIMIT",
            ),
            (
                WriteKind::Sql,
                json!({"statements": [{"sql": "INSERT INTO dup (id, v) VALUES (10, @@hostname)"}]}),
                "@@",
            ),
            (
                WriteKind::Sql,
                json!({"statements": [{"sql": "INSERT INTO dup (id, v) VALUES (11, CONNECTION_ID())"}]}),
                "CONNECTION_ID()",
            ),
            (
                WriteKind::Ddl,
                json!({"ddl": "CREATE TABLE refused (id INT PRIMARY KEY, u CHAR(36) DEFAULT (UUID()))"}),
                "UUID()",
            ),
        ];
        for (i, (kind, body, name)) in refused.iter().enumerate() {
            let client = if i % 2 == 0 { lc } else { fc };
            let e = client
                .write_raw(*kind, body.to_string())
                .await
                .expect_err("refused");
            assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{body}: {e}");
            assert_eq!(e.code(), Some("non_deterministic"), "{body}: {e}");
            assert!(
                e.to_string().contains(name),
                "{body}: the error names {name}: {e}"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (term_after, after) = c.settled(SETTLE).await;
        if term_after == term {
            assert_eq!(after, before, "a refused write reached the log");
            break;
        }
        assert!(attempt < 3, "an election during each of 3 attempts");
    }
    // No table or row appeared.
    let tables = same_rows_everywhere(
        c,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'app' AND table_name = 'refused'",
    )
    .await;
    assert_eq!(tables, [["0".to_string()]]);
    let rows = same_rows_everywhere(c, "SELECT COUNT(*) FROM dup").await;
    assert_eq!(rows, [["1".to_string()]]);
}

async fn auto_increment_agrees_under_concurrent_inserts(c: &ProcCluster) {
    const PER_TASK: i64 = 20;
    let tasks: Vec<_> = (0..6)
        .map(|t| {
            let via = t % c.nodes.len();
            let client = c.client(via);
            tokio::spawn(async move {
                let mut got = Vec::new();
                for k in 0..PER_TASK {
                    let key = t as i64 * 1000 + k;
                    let body = json!({"table": "auto", "values": {"via": via, "k": key}});
                    let r = write(&client, WriteKind::Insert, &body.to_string())
                        .await
                        .unwrap_or_else(|e| panic!("insert {body}: {e}"));
                    got.push((key, r.last_insert_id));
                }
                got
            })
        })
        .collect();
    let mut answered = BTreeMap::new();
    for task in tasks {
        for (key, id) in task.await.expect("insert task") {
            assert!(id > 0, "no AUTO_INCREMENT id returned for k {key}");
            assert!(answered.insert(key, id).is_none());
        }
    }
    c.wait_converged(Duration::from_secs(20)).await;
    let rows = same_rows_everywhere(c, "SELECT k, id FROM auto ORDER BY id").await;
    assert_eq!(rows.len(), answered.len());
    for row in rows {
        let k: i64 = row[0].parse().expect("k");
        let id: u64 = row[1].parse().expect("id");
        assert_eq!(
            answered[&k], id,
            "the id returned for k {k} is not the one stored"
        );
    }
}

async fn min_lsn_reads_your_writes_on_a_follower(lc: &Client, fc: &Client) {
    for i in 0..20 {
        let v = format!("v{i}");
        let w = ok(
            lc,
            WriteKind::Insert,
            json!({"table": "ryw", "values": {"id": i, "v": v}}),
        )
        .await;
        let q = read(
            "SELECT v FROM ryw WHERE id = ?",
            vec![Input::from(i as i64)],
            Some(w.lsn),
            Some(10_000),
        );
        let rows = fc.query(&q).await.expect("read on the follower").rows;
        assert_eq!(
            rows,
            vec![vec![Input::from(v.as_str())]],
            "write {i} at lsn {}",
            w.lsn
        );
    }
    // A position far ahead: a clear timeout after the asked time, not a hang.
    let status = fc.status().await.expect("status");
    let far = status.last_log_lsn + 1_000_000;
    let started = Instant::now();
    let e = fc
        .query(&read("SELECT 1", vec![], Some(far), Some(500)))
        .await
        .expect_err("cannot reach that lsn");
    let waited = started.elapsed();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(504), "{e}");
    assert_eq!(e.code(), Some("timeout"), "{e}");
    assert!(
        e.to_string().contains(&far.to_string()),
        "names the lsn: {e}"
    );
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(5),
        "waited {waited:?} for a 500 ms timeout"
    );
}

async fn linearizable_reads_on_a_follower_see_every_acknowledged_write(lc: &Client, fc: &Client) {
    // The reader is not told the write's LSN: the follower asks the leader for its read
    // index and waits until it has applied that far.
    for i in 100..120 {
        let v = format!("lin{i}");
        ok(
            lc,
            WriteKind::Insert,
            json!({"table": "ryw", "values": {"id": i, "v": v}}),
        )
        .await;
        let q = QueryRequest {
            consistency: Consistency::Linearizable,
            ..read(
                "SELECT v FROM ryw WHERE id = ?",
                vec![Input::from(i as i64)],
                None,
                Some(10_000),
            )
        };
        let rows = fc
            .query(&q)
            .await
            .expect("linearizable read on the follower")
            .rows;
        assert_eq!(rows, vec![vec![Input::from(v.as_str())]], "write {i}");
    }
}
