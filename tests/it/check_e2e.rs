//! `wolfscale check` end to end (issue 12, part 4): three `wolfscale` processes, each
//! with its own MariaDB. A clean cluster is reported identical (exit 0); then node-3's
//! MariaDB is changed behind WolfScale's back — a row changed, a row missing, a table
//! dropped, an extra row — and the check, run from a follower while a client keeps
//! writing, names each table, the node and the key, and exits non-zero. The table being
//! written meanwhile stays identical: every node is compared at the barrier's LSN.

use crate::support::procs::{self, NodeConfig, ProcCluster, DATABASE};
use mysql_async::prelude::Queryable;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wolfscale::api::client::WriteKind;
use wolfscale::api::{RowDiffKind, TableCheck};

async fn ddl(c: &ProcCluster, sql: &str) {
    let json = serde_json::json!({ "ddl": sql }).to_string();
    procs::write(&c.client(0), WriteKind::Ddl, &json)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn sql(c: &ProcCluster, sql: &str) {
    let json = serde_json::json!({ "statements": [{ "sql": sql, "params": [] }] }).to_string();
    procs::write(&c.client(0), WriteKind::Sql, &json)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `wolfscale check --node API` to completion.
async fn check_cli(api: &str) -> Output {
    let api = api.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wolfscale"))
            .args(["check", "--node", &api, "-c", "/nonexistent/wolfscale.toml"])
            .env("NO_COLOR", "1")
            .env_remove("WOLFSCALE_API_TOKEN")
            .output()
            .expect("run wolfscale check")
    })
    .await
    .expect("check task")
}

fn table<'a>(tables: &'a [TableCheck], name: &str) -> &'a TableCheck {
    tables
        .iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("table {name} not in the report: {tables:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_finds_a_follower_changed_behind_wolfscales_back_while_writes_continue() {
    // Small chunks, so the walk over each table takes several chunks; a periodic check
    // every minute (the leader runs it).
    let config = NodeConfig::with(|c| {
        c.cluster.check_chunk_rows = 7;
        c.cluster.check_rows_per_sec = 0;
        c.cluster.check_interval_minutes = 1;
    });
    let c = ProcCluster::start_with(3, &config).await;
    for t in ["changed", "gone_row", "dropped", "extra", "clean", "busy"] {
        ddl(
            &c,
            &format!("CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(40), n DOUBLE NULL)"),
        )
        .await;
    }
    ddl(
        &c,
        "CREATE TABLE pair (a INT, b VARCHAR(10), v INT, PRIMARY KEY (a, b))",
    )
    .await;
    for t in ["changed", "gone_row", "dropped", "extra", "clean"] {
        let rows: Vec<String> = (1..=200)
            .map(|i| {
                format!(
                    "({i}, 'row {i}', {})",
                    if i % 3 == 0 { "NULL" } else { "1.5" }
                )
            })
            .collect();
        sql(
            &c,
            &format!("INSERT INTO {t} (id, v, n) VALUES {}", rows.join(", ")),
        )
        .await;
    }
    let pairs: Vec<String> = (1..=60)
        .map(|i| format!("({}, 'k{}', {i})", i / 4, i % 4))
        .collect();
    sql(
        &c,
        &format!("INSERT INTO pair (a, b, v) VALUES {}", pairs.join(", ")),
    )
    .await;
    c.wait_converged(Duration::from_secs(30)).await;

    // A clean cluster: identical, exit 0.
    let out = check_cli(&c.nodes[1].api).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "clean check failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in [
        "changed", "gone_row", "dropped", "extra", "clean", "busy", "pair",
    ] {
        assert!(text.contains(&format!("{t}: identical")), "{t}: {text}");
    }
    assert!(text.contains("7 table(s): 7 identical, 0 differ"), "{text}");

    // Behind WolfScale's back, on node-3 only.
    let mut conn = c.nodes[2]
        .db
        .conn_to(DATABASE)
        .await
        .expect("node-3 mariadb");
    for s in [
        "UPDATE changed SET v = 'tampered' WHERE id = 157",
        "UPDATE changed SET n = NULL WHERE id = 4",
        "DELETE FROM gone_row WHERE id = 33",
        "DROP TABLE dropped",
        "INSERT INTO extra (id, v) VALUES (1000, 'not replicated')",
        "UPDATE pair SET v = 99 WHERE a = 5 AND b = 'k2'",
    ] {
        conn.query_drop(s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    drop(conn);

    // A client keeps writing to `busy` through the check.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let client = c.client(0);
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut i = 1u64;
            while !stop.load(Ordering::Relaxed) {
                let json = format!(r#"{{"table": "busy", "values": {{"id": {i}, "v": "w{i}"}}}}"#);
                procs::write(&client, WriteKind::Insert, &json)
                    .await
                    .expect("write during the check");
                written.store(i, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = check_cli(&c.nodes[1].api).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("wolfscale check printed:\n{text}\n{err}");
    assert_eq!(out.status.code(), Some(1), "stdout: {text}\nstderr: {err}");
    assert!(
        err.contains("replicas differ: 5 of 7 table(s) differ"),
        "{err}"
    );
    assert!(text.contains("changed: DIFFERS"), "{text}");
    assert!(text.contains("`id` = 157: changed on node-3"), "{text}");
    assert!(text.contains("`id` = 4: changed on node-3"), "{text}");
    assert!(text.contains("gone_row: DIFFERS"), "{text}");
    assert!(text.contains("`id` = 33: missing on node-3"), "{text}");
    assert!(text.contains("dropped: DIFFERS"), "{text}");
    assert!(text.contains("table missing on: node-3"), "{text}");
    assert!(text.contains("extra: DIFFERS"), "{text}");
    assert!(text.contains("`id` = 1000: extra on node-3"), "{text}");
    assert!(
        text.contains("(`a`, `b`) = (5, 'k2'): changed on node-3"),
        "{text}"
    );
    assert!(text.contains("clean: identical (200 rows)"), "{text}");
    assert!(text.contains("busy: identical"), "{text}");

    // The API gives the same as structured data; writes still going on.
    let report = c
        .client(0)
        .with_timeout(Duration::from_secs(120))
        .check()
        .await
        .expect("POST /check");
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer task");
    assert!(
        written.load(Ordering::Relaxed) > 0,
        "the writer never wrote"
    );
    assert!(!report.identical());
    assert_eq!(report.nodes.len(), 3, "{report:?}");
    assert!(report.unchecked.is_empty(), "{report:?}");
    let changed = table(&report.tables, "changed");
    assert_eq!(changed.differing_nodes, vec!["node-3".to_string()]);
    let keys: Vec<(&str, RowDiffKind)> = changed
        .ranges
        .iter()
        .flat_map(|r| r.rows.iter().map(|row| (row.key.as_str(), row.kind)))
        .collect();
    assert!(
        keys.contains(&("`id` = 157", RowDiffKind::Changed)),
        "{keys:?}"
    );
    assert!(
        keys.contains(&("`id` = 4", RowDiffKind::Changed)),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 2, "{changed:?}");
    let gone = table(&report.tables, "gone_row");
    assert_eq!(gone.rows.get("node-3"), Some(&199));
    assert_eq!(gone.rows.get("node-1"), Some(&200));
    assert_eq!(table(&report.tables, "dropped").missing_on, vec!["node-3"]);
    assert!(table(&report.tables, "busy").identical);
    assert!(table(&report.tables, "clean").identical);

    // /status remembers the last check of the node that ran it (the periodic one may
    // have run since: it finds the same).
    let differing = vec!["changed", "dropped", "extra", "gone_row", "pair"];
    let status = c.nodes[0].status().await.expect("status");
    let last = status.last_check.expect("last_check in /status");
    assert!(!last.identical);
    assert_eq!(last.differing_tables, differing);

    // The periodic check: the leader runs one within a minute of starting, logs it and
    // shows it in /status.
    let leader = c.leader(Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let periodic = loop {
        let s = c.nodes[leader].status().await.expect("leader status");
        // A barrier after the API check's, so after the changes on node-3.
        if let Some(last) = s.last_check.filter(|l| l.lsn > report.lsn) {
            break last;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no periodic check on {} within 120 s",
            c.nodes[leader].name
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(!periodic.identical, "{periodic:?}");
    assert_eq!(periodic.differing_tables, differing);
    assert!(c.nodes[leader]
        .log_text()
        .contains("divergence check: replicas differ"));
}
