//! SPEC's "restore a backup first, then join" flow: `mariadb-dump --single-transaction` of
//! node-1's database taken while writes go on (the dump carries `_wolfscale`, its own
//! applied position), restored into a new empty MariaDB, and a 4th node joins with
//! `wolfscale join`. It must resume from the dump's LSN — its applier never runs an entry
//! at or below it (its debug log names every entry it runs) — and end identical to the
//! others, with every counter bump applied exactly once.

use super::assert_converged;
use crate::support::procs::{write, ProcCluster, DATABASE, LOG_FILTER};
use crate::support::MariaDb;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wolfscale::api::client::{Client, WriteKind};
use wolfscale::api::Role;

/// One counter bump with its own log row: a double apply shows as a counter above the
/// row count.
async fn bump(client: &Client, k: u64) {
    let body = json!({"statements": [
        {"sql": "UPDATE counter SET n = n + 1 WHERE id = 1"},
        {"sql": "INSERT INTO seen (k) VALUES (?)", "params": [k]}
    ], "transaction": true});
    write(client, WriteKind::Sql, &body.to_string())
        .await
        .unwrap_or_else(|e| panic!("bump {k}: {e}"));
}

/// The applied index stored in a dump's `_wolfscale` row.
fn dumped_position(dump: &str) -> u64 {
    let (_, rest) = dump
        .split_once("INSERT INTO `_wolfscale` VALUES")
        .unwrap_or_else(|| panic!("the dump has no _wolfscale row"));
    let row = rest.trim_start().trim_start_matches('(');
    let mut fields = row.split(',');
    assert_eq!(fields.next(), Some("1"), "{}", cut(row));
    fields
        .next()
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("no applied_index in {}", cut(row)))
}

fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

/// `log_index` of every "applying entry" line in a node's log.
fn applied_indexes(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("applying entry"))
        .filter_map(|l| {
            let at = l.find("log_index=")? + "log_index=".len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_dump_joins_and_resumes_from_its_own_lsn() {
    let (mut c, spare) = tokio::join!(ProcCluster::start(3), MariaDb::start());
    let spare = spare.expect("spare mariadb");
    let setup = c.client(0);
    for ddl in [
        "CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE seen (seq BIGINT AUTO_INCREMENT PRIMARY KEY, k BIGINT NOT NULL) ENGINE=InnoDB",
    ] {
        write(&setup, WriteKind::Ddl, &json!({ "ddl": ddl }).to_string())
            .await
            .expect("ddl");
    }
    write(
        &setup,
        WriteKind::Insert,
        &json!({"table": "counter", "values": {"id": 1, "n": 0}}).to_string(),
    )
    .await
    .expect("counter row");
    for k in 0..100 {
        bump(&c.client(k as usize % 3), k).await;
    }

    // Dump node-1 while a writer keeps going through node-2.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(100));
    let writer = {
        let (client, stop, done) = (c.client(1), stop.clone(), done.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let k = done.load(Ordering::Relaxed);
                bump(&client, k).await;
                done.store(k + 1, Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dump = c.nodes[0]
        .db
        .run_tool("mariadb-dump", &["--single-transaction", DATABASE])
        .await
        .expect("mariadb-dump");
    let dump = String::from_utf8(dump).expect("the dump is UTF-8");
    let dump_lsn = dumped_position(&dump);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let leader_lsn = c.wait_converged(Duration::from_secs(20)).await;
    assert!(
        dump_lsn > 100 && dump_lsn < leader_lsn,
        "the dump (lsn {dump_lsn}) should fall inside the load (log at {leader_lsn})"
    );

    // Restore into the new server, then join.
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &dump).expect("write dump");
    spare.create_database(DATABASE).await.expect("create db");
    let source = format!("source {}", file.path().display());
    spare
        .run_tool("mariadb", &["--database", DATABASE, "--execute", &source])
        .await
        .expect("restore the dump");
    let n = c.add_node(spare);
    c.nodes[n].set_log_filter(&format!("{LOG_FILTER},wolfscale::apply=debug"));
    let seed = c.nodes[0].cluster.clone();
    c.nodes[n].spawn(&["join", &seed]);
    c.wait_active(4, Duration::from_secs(60)).await;

    // The new node serves writes (forwarded to the leader) like any other.
    let status = c.nodes[n].status().await.expect("node-4 status");
    assert_eq!(status.role, Role::Follower, "{status:?}");
    let first_after = done.load(Ordering::Relaxed);
    for k in first_after..first_after + 30 {
        bump(&c.client(n), k).await;
    }

    let (state, _) = assert_converged(&c).await;
    let total = first_after + 30;
    assert_eq!(
        state.tables["seen"].rows as u64, total,
        "every bump exactly once"
    );
    let mut conn = c.nodes[n].db.conn_to(DATABASE).await.expect("connect");
    let counter: Option<u64> = mysql_async::prelude::Queryable::query_first(
        &mut conn,
        "SELECT n FROM counter WHERE id = 1",
    )
    .await
    .expect("counter");
    assert_eq!(counter, Some(total), "node-4's counter: a double apply?");

    // The joiner ran only entries after the dump's position, each once.
    let applied = applied_indexes(&c.nodes[n].log_text());
    assert!(!applied.is_empty(), "node-4's log names no applied entry");
    let first = *applied.iter().min().expect("not empty");
    assert!(
        first > dump_lsn,
        "node-4 applied entry {first}, at or below the dump's lsn {dump_lsn}"
    );
    let distinct: BTreeSet<u64> = applied.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        applied.len(),
        "node-4 applied an entry twice"
    );
    tracing::info!(
        dump_lsn,
        first,
        entries = applied.len(),
        "joiner resumed after the dump"
    );
}
