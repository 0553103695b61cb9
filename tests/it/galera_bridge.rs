//! The SPEC's two-site bridge over Galera (issue 18): two 3-node Galera clusters on
//! loopback, a WolfScale leader applying into a node of cluster A and a non-voting
//! learner applying into a node of cluster B. Writes reach all six servers with
//! identical checksums; when the Galera node under the learner dies, the learner is
//! pointed at another node of B (config change, restart) and resumes from the position
//! that travelled with the data through Galera, applying nothing twice. Galera's own
//! rules are found (`database.galera = "auto"`) and refused at admission with a clear
//! 400, on the leader and through the learner. About 40 s here
//! (two clusters of three, rsync state transfers); needs `galera-4` and `rsync`, which
//! scripts/test.sh installs.

use crate::support::galera::Galera;
use crate::support::procs::{self, ProcCluster};
use crate::support::MariaDb;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use wolfscale::api::client::WriteKind;
use wolfscale::api::Role;

/// One write: a new event row and the counter bumped, in one transaction. Applied twice,
/// the counter would run ahead of the events.
async fn event(c: &ProcCluster, id: u64) -> u64 {
    let body = format!(
        r#"{{"statements": [
            {{"sql": "INSERT INTO events (id, note) VALUES (?, ?)", "params": [{id}, "e{id}"]}},
            {{"sql": "UPDATE counter SET n = n + 1 WHERE id = 1", "params": []}}
        ], "transaction": true}}"#
    );
    procs::write(&c.client(0), WriteKind::Sql, &body)
        .await
        .unwrap_or_else(|e| panic!("write {id}: {e}"))
        .lsn
}

/// (counter, event rows, CHECKSUM of events, CHECKSUM of counter) on `db`.
async fn contents(db: &MariaDb) -> Result<(i64, i64, u64, u64), String> {
    let mut conn = db
        .conn_to(procs::DATABASE)
        .await
        .map_err(|e| e.to_string())?;
    let n: Option<i64> = conn
        .query_first("SELECT n FROM counter WHERE id = 1")
        .await
        .map_err(|e| e.to_string())?;
    let rows: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM events")
        .await
        .map_err(|e| e.to_string())?;
    let sums: Vec<(String, Option<u64>)> = conn
        .query("CHECKSUM TABLE events, counter")
        .await
        .map_err(|e| e.to_string())?;
    conn.disconnect().await.map_err(|e| e.to_string())?;
    Ok((
        n.unwrap_or(-1),
        rows.unwrap_or(-1),
        sums[0].1.unwrap_or(0),
        sums[1].1.unwrap_or(0),
    ))
}

/// Waits until every server in `dbs` holds `writes` events and a counter of `writes`,
/// with identical checksums; returns them.
async fn converged(dbs: &[&MariaDb], writes: i64, limit: Duration) -> (i64, i64, u64, u64) {
    let start = Instant::now();
    loop {
        let mut seen = Vec::new();
        for db in dbs {
            seen.push(contents(db).await);
        }
        let first = seen[0].clone();
        if let Ok(want) = &first {
            if want.0 == writes && want.1 == writes && seen.iter().all(|s| s == &first) {
                return *want;
            }
        }
        assert!(
            start.elapsed() < limit,
            "servers did not converge on {writes} writes within {limit:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The learner's applied LSN, once it answers and has reached `lsn`.
async fn learner_at(c: &ProcCluster, lsn: u64, limit: Duration) -> u64 {
    let start = Instant::now();
    loop {
        if let Some(s) = c.nodes[1].status().await {
            assert_eq!(s.role, Role::Learner, "{s:?}");
            if s.applied_lsn >= lsn {
                return s.applied_lsn;
            }
        }
        assert!(
            start.elapsed() < limit,
            "the learner did not apply lsn {lsn} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn applied_index(db: &MariaDb) -> u64 {
    let mut conn = db.conn_to(procs::DATABASE).await.expect("connect");
    let at: Option<u64> = conn
        .query_first("SELECT applied_index FROM _wolfscale WHERE id = 1")
        .await
        .expect("read the position");
    conn.disconnect().await.expect("disconnect");
    at.expect("a position row")
}

/// `database.galera = "auto"` (the default) found `@@wsrep_on` on the leader's server: a
/// table without a primary key and dropping one are refused with a clear 400, on the
/// leader and through the learner (which relays the leader's refusal), and nothing
/// reaches any server.
async fn galera_rules_refused(c: &ProcCluster) {
    for (node, ddl, rule) in [
        (
            0,
            "CREATE TABLE nokey (a INT, b TEXT)",
            "CREATE TABLE without a PRIMARY KEY",
        ),
        (
            1,
            "CREATE TABLE nokey (a INT UNIQUE)",
            "CREATE TABLE without a PRIMARY KEY",
        ),
        (
            0,
            "ALTER TABLE events DROP PRIMARY KEY",
            "ALTER TABLE … DROP PRIMARY KEY",
        ),
    ] {
        let e = procs::write(
            &c.client(node),
            WriteKind::Ddl,
            &format!(r#"{{"ddl": "{ddl}"}}"#),
        )
        .await
        .expect_err(ddl);
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{ddl}: {e}");
        assert_eq!(e.code(), Some("galera_unsupported"), "{ddl}: {e}");
        let message = e.to_string();
        assert!(
            message.contains(rule) && message.contains("primary key"),
            "{ddl}: {message}"
        );
    }
    // The learner may lag; the leader's server applied the CREATE TABLEs already.
    let mut conn = c.nodes[0]
        .db
        .conn_to(procs::DATABASE)
        .await
        .expect("connect");
    let tables: Vec<String> = conn
        .query("SHOW TABLES LIKE 'nokey'")
        .await
        .expect("tables");
    let keys: Vec<String> = conn
        .query(
            "SELECT index_name FROM information_schema.statistics WHERE table_schema = \
             DATABASE() AND table_name = 'events' AND index_name = 'PRIMARY'",
        )
        .await
        .expect("keys");
    conn.disconnect().await.expect("disconnect");
    assert!(tables.is_empty(), "{tables:?}");
    assert_eq!(keys, ["PRIMARY"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_bridges_two_galera_clusters_and_moves_to_another_node() {
    let started = Instant::now();
    let mut a = Galera::start("site_a", 3).await.expect("galera cluster A");
    let mut b = Galera::start("site_b", 3).await.expect("galera cluster B");
    tracing::info!(
        secs = started.elapsed().as_secs(),
        "two galera clusters synced"
    );
    let mut c = ProcCluster::on(vec![a.nodes.remove(0), b.nodes.remove(0)]);
    c.nodes[0].spawn(&["start", "--bootstrap"]);
    c.wait_healthy(0, Duration::from_secs(60)).await;
    let seed = c.nodes[0].cluster.clone();
    c.nodes[1].spawn(&["join", &seed, "--learner"]);
    c.wait_active(2, Duration::from_secs(120)).await;
    let s = c.nodes[1].status().await.expect("learner status");
    assert_eq!(s.role, Role::Learner, "{s:?}");

    let leader = c.client(0);
    for ddl in [
        "CREATE TABLE events (id BIGINT PRIMARY KEY, note VARCHAR(40)) ENGINE=InnoDB",
        "CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB",
    ] {
        procs::write(&leader, WriteKind::Ddl, &format!(r#"{{"ddl": "{ddl}"}}"#))
            .await
            .expect("ddl");
    }
    procs::write(
        &leader,
        WriteKind::Insert,
        r#"{"table": "counter", "values": {"id": 1, "n": 0}}"#,
    )
    .await
    .expect("counter row");
    galera_rules_refused(&c).await;
    let mut writes = 0i64;
    let mut last = 0;
    for id in 0..100u64 {
        last = event(&c, id).await;
        writes += 1;
    }
    learner_at(&c, last, Duration::from_secs(60)).await;
    let all = [
        &c.nodes[0].db,
        &a.nodes[0],
        &a.nodes[1],
        &c.nodes[1].db,
        &b.nodes[0],
        &b.nodes[1],
    ];
    converged(&all, writes, Duration::from_secs(60)).await;

    // The Galera node under the learner dies. The position the learner had applied is
    // already on the other nodes of B: Galera commits it with the rows.
    let held = learner_at(&c, last, Duration::from_secs(5)).await;
    c.nodes[1].db.kill9().await.expect("kill B1");
    // At least that position (the learner may have applied an internal entry, such as
    // the leader's outcome digests, after it was read).
    let on_b0 = applied_index(&b.nodes[0]).await;
    assert!(on_b0 >= held, "B0 holds position {on_b0}, below {held}");
    // The voters go on without the learner.
    for id in 100..150u64 {
        last = event(&c, id).await;
        writes += 1;
    }
    // Point the learner at B2 and restart it: it resumes at `held`.
    c.nodes[1].kill9().await;
    let b2 = b.nodes.remove(0);
    let dead_b1 = c.nodes[1].swap_db(b2);
    c.nodes[1].spawn(&["start"]);
    learner_at(&c, last, Duration::from_secs(120)).await;
    let log = c.nodes[1].log_text();
    let live = [
        &c.nodes[0].db,
        &a.nodes[0],
        &a.nodes[1],
        &c.nodes[1].db,
        &b.nodes[0],
    ];
    let (n, rows, _, _) = converged(&live, writes, Duration::from_secs(60)).await;
    assert_eq!((n, rows), (150, 150), "nothing lost, nothing applied twice");
    assert!(
        !log.contains("Duplicate entry"),
        "the learner re-applied an entry:\n{log}"
    );
    drop(dead_b1);
    tracing::info!(
        secs = started.elapsed().as_secs(),
        "galera bridge test finished"
    );
}
