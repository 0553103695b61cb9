//! Resync (issue 12) on real 3-node clusters, each node with its own MariaDB: a follower
//! changed behind WolfScale's back so that a later client entry's outcome differs there
//! (a row inserted by hand, so the client's INSERT gets 1062 only on that follower) goes
//! DIVERGED and — `cluster.auto_resync` being on by default — reinstalls a snapshot of the
//! leader's by itself and comes back ACTIVE and identical, while a client keeps writing;
//! and a follower changed by hand without any outcome difference is reported by
//! `wolfscale check` and fixed by `wolfscale resync`; a DIVERGED node killed and restarted
//! (with `auto_resync = false`) is still held as DIVERGED until `wolfscale resync`; a node
//! killed while it loads the leader's snapshot finishes and resyncs after its restart.
//! (The plain `auto_resync = false` case is in `outcomes`.)

use crate::support::procs::{write, ProcCluster, DATABASE};
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, WriteKind};
use wolfscale::api::{CheckReport, NodeState, NodeStatus};

/// Runs `wolfscale resync --node API` to completion.
pub(super) async fn resync_cli(api: &str) -> Output {
    let api = api.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wolfscale"))
            .args([
                "resync",
                "--node",
                &api,
                "-c",
                "/nonexistent/wolfscale.toml",
            ])
            .env("NO_COLOR", "1")
            .env_remove("WOLFSCALE_API_TOKEN")
            .output()
            .expect("run wolfscale resync")
    })
    .await
    .expect("resync task")
}

/// `POST /check` from `client`, retried while a check cannot compare every node (a DDL
/// or resync may end a check's snapshots).
pub(super) async fn check(client: &Client) -> CheckReport {
    let client = client.clone().with_timeout(Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let report = client.check().await.expect("POST /check");
        if report.unchecked.is_empty() || Instant::now() > deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `pick` accepts node `i`'s status; panics with the last one after `limit`.
pub(super) async fn wait_status(
    c: &ProcCluster,
    i: usize,
    limit: Duration,
    what: &str,
    pick: impl Fn(&NodeStatus) -> bool,
) -> NodeStatus {
    let deadline = Instant::now() + limit;
    loop {
        let s = c.nodes[i].status().await;
        if let Some(s) = &s {
            if pick(s) {
                return s.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never {what} within {limit:?}: {s:?}",
            c.nodes[i].name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client that inserts rows into `busy` until stopped; returns how many it wrote.
pub(super) fn writer(client: Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let written = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        let mut i = 1u64;
        while !stop.load(Ordering::Relaxed) {
            let body = json!({"table": "busy", "values": {"id": i, "v": format!("w{i}")}});
            write(&client, WriteKind::Insert, &body.to_string())
                .await
                .unwrap_or_else(|e| panic!("write {i} while a node resyncs: {e}"));
            written.store(i, Ordering::Relaxed);
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        written.load(Ordering::Relaxed)
    })
}

async fn ddl(client: &Client, sql: &str) {
    write(client, WriteKind::Ddl, &json!({ "ddl": sql }).to_string())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(c: &ProcCluster, i: usize, table: &str) -> u64 {
    let mut conn = c.nodes[i].db.conn_to(DATABASE).await.expect("connect");
    let n: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("count");
    n.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_follower_resyncs_by_itself_and_is_identical_again() {
    let c = ProcCluster::start(3).await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let lc = c.client(leader);
    ddl(
        &lc,
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
    )
    .await;
    ddl(
        &lc,
        "CREATE TABLE busy (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
    )
    .await;
    for id in 1..=50 {
        let body = json!({"table": "acct", "values": {"id": id, "v": id * 10}});
        write(&lc, WriteKind::Insert, &body.to_string())
            .await
            .expect("seed");
    }
    c.wait_converged(Duration::from_secs(60)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(lc.clone(), stop.clone());

    // Behind WolfScale's back on one follower: the client's insert of id 100 then fails
    // with a duplicate key there only.
    let victim = c.other_than(leader);
    let mut conn = c.nodes[victim].db.conn_to(DATABASE).await.expect("connect");
    conn.query_drop("INSERT INTO acct (id, v) VALUES (100, -1)")
        .await
        .expect("write behind WolfScale's back");
    drop(conn);
    let ok = write(
        &lc,
        WriteKind::Insert,
        &json!({"table": "acct", "values": {"id": 100, "v": 1000}}).to_string(),
    )
    .await
    .expect("the leader applies it");

    // DIVERGED at that entry, then resynced by itself: ACTIVE, the divergence cleared.
    let s = wait_status(
        &c,
        victim,
        Duration::from_secs(90),
        "resynced and ACTIVE",
        |s| s.resyncs >= 1 && s.status == NodeState::Active && s.divergence.is_none(),
    )
    .await;
    assert!(s.resync_error.is_none(), "{s:?}");
    let log = c.nodes[victim].log_text();
    assert!(
        log.contains("outcome of an entry differs from the leader's"),
        "no divergence logged:\n{log}"
    );
    assert!(log.contains("resync started"), "{log}");
    assert!(log.contains("resync finished"), "{log}");

    // Writes never stopped, and the victim applies new ones.
    stop.store(true, Ordering::Relaxed);
    let written = writing.await.expect("writer");
    assert!(written > 0, "the writer never wrote");
    let after = write(
        &lc,
        WriteKind::Insert,
        &json!({"table": "acct", "values": {"id": 101, "v": 1010}}).to_string(),
    )
    .await
    .expect("a write after the resync");
    assert!(after.lsn > ok.lsn);
    let lsn = c.wait_converged(Duration::from_secs(60)).await;
    for (i, node) in c.nodes.iter().enumerate() {
        let s = node.status().await.expect("status");
        assert_eq!(s.status, NodeState::Active, "{}: {s:?}", node.name);
        assert!(s.applied_lsn >= lsn, "{}: {s:?}", node.name);
        assert_eq!(count(&c, i, "busy").await, written, "{}", node.name);
    }
    let mut conn = c.nodes[victim].db.conn_to(DATABASE).await.expect("connect");
    let v: Option<i64> = conn
        .query_first("SELECT v FROM acct WHERE id = 100")
        .await
        .expect("read");
    assert_eq!(
        v,
        Some(1000),
        "the victim holds the agreed row, not its own"
    );
    drop(conn);

    let report = check(&c.client(leader)).await;
    assert!(
        report.identical(),
        "{}",
        wolfscale::api::check_text(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wolfscale_resync_fixes_a_follower_check_reports_as_different() {
    let c = ProcCluster::start(3).await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let lc = c.client(leader);
    ddl(
        &lc,
        "CREATE TABLE item (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
    )
    .await;
    ddl(
        &lc,
        "CREATE TABLE busy (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
    )
    .await;
    let rows: Vec<String> = (1..=300).map(|i| format!("({i}, 'row {i}')")).collect();
    let body = json!({"statements": [{"sql": format!("INSERT INTO item (id, v) VALUES {}", rows.join(", "))}]});
    write(&lc, WriteKind::Sql, &body.to_string())
        .await
        .expect("seed");
    c.wait_converged(Duration::from_secs(60)).await;

    // Behind WolfScale's back on one follower: a changed row and a missing one. No later
    // entry touches them, so outcome agreement cannot notice; the check does.
    let victim = c.other_than(leader);
    let mut conn = c.nodes[victim].db.conn_to(DATABASE).await.expect("connect");
    for s in [
        "UPDATE item SET v = 'tampered' WHERE id = 42",
        "DELETE FROM item WHERE id = 250",
    ] {
        conn.query_drop(s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    drop(conn);
    let report = check(&lc).await;
    assert!(!report.identical());
    let item = report
        .tables
        .iter()
        .find(|t| t.table == "item")
        .expect("item in the report");
    assert_eq!(item.differing_nodes, vec![c.nodes[victim].name.clone()]);

    // The operator resyncs the node the check named, while a client keeps writing.
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(lc.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // What the victim reports while it resyncs.
    let seen = {
        let client = c.client(victim);
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = client.status().await {
                    seen.insert(format!("{:?}", s.status));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    let out = resync_cli(&c.nodes[victim].api).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "stdout: {text}\nstderr: {err}");
    assert!(
        text.contains(&format!("{} resynced from", c.nodes[victim].name)),
        "{text}"
    );
    let s = wait_status(&c, victim, Duration::from_secs(30), "ACTIVE", |s| {
        s.status == NodeState::Active
    })
    .await;
    assert_eq!(s.resyncs, 1, "{s:?}");
    stop.store(true, Ordering::Relaxed);
    let written = writing.await.expect("writer");
    assert!(written > 0, "the writer never wrote");
    let seen = seen.await.expect("status poller");
    assert!(
        seen.contains("Syncing"),
        "never SYNCING during the resync: {seen:?}"
    );

    // The leader cannot be resynced: its data is the agreed state.
    let refused = resync_cli(&c.nodes[leader].api).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(err.contains("transfer-leader"), "{err}");

    c.wait_converged(Duration::from_secs(60)).await;
    for (i, node) in c.nodes.iter().enumerate() {
        assert_eq!(count(&c, i, "busy").await, written, "{}", node.name);
    }
    let report = check(&lc).await;
    assert!(
        report.identical(),
        "{}",
        wolfscale::api::check_text(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_follower_that_restarts_is_still_held_until_resynced() {
    let config = crate::support::procs::NodeConfig::with(|c| c.cluster.auto_resync = false);
    let mut c = ProcCluster::start_with(3, &config).await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let lc = c.client(leader);
    ddl(
        &lc,
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
    )
    .await;
    c.wait_converged(Duration::from_secs(60)).await;
    let victim = c.other_than(leader);
    let mut conn = c.nodes[victim].db.conn_to(DATABASE).await.expect("connect");
    conn.query_drop("INSERT INTO acct (id, v) VALUES (7, -1)")
        .await
        .expect("write behind WolfScale's back");
    drop(conn);
    write(
        &lc,
        WriteKind::Insert,
        &json!({"table": "acct", "values": {"id": 7, "v": 70}}).to_string(),
    )
    .await
    .expect("the leader applies it");
    wait_status(&c, victim, Duration::from_secs(30), "DIVERGED", |s| {
        s.status == NodeState::Diverged
    })
    .await;
    // The divergence is recorded on disk within a moment.
    let marker = c.nodes[victim].data_dir().join("snapshots/RESYNC");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "no {} written", marker.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The divergence was found in memory; a stop must not make the node ACTIVE again.
    c.nodes[victim].kill9().await;
    c.nodes[victim].spawn(&["start"]);
    let s = wait_status(
        &c,
        victim,
        Duration::from_secs(60),
        "DIVERGED after a restart",
        |s| s.status == NodeState::Diverged && s.resync_error.is_some(),
    )
    .await;
    assert!(s.divergence.is_none(), "{s:?}");
    for id in 20..23 {
        let body = json!({"table": "acct", "values": {"id": id, "v": 1}});
        write(&lc, WriteKind::Insert, &body.to_string())
            .await
            .expect("the others take writes");
    }
    let held = c.nodes[victim].status().await.expect("victim");
    assert_eq!(held.status, NodeState::Diverged, "{held:?}");

    let out = resync_cli(&c.nodes[victim].api).await;
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_status(&c, victim, Duration::from_secs(30), "ACTIVE", |s| {
        s.status == NodeState::Active && s.resync_error.is_none()
    })
    .await;
    assert!(!marker.exists(), "the marker outlived the resync");
    c.wait_converged(Duration::from_secs(60)).await;
    let report = check(&lc).await;
    assert!(
        report.identical(),
        "{}",
        wolfscale::api::check_text(&report)
    );

    // Resynced: a later restart is an ordinary one.
    c.nodes[victim].kill9().await;
    c.nodes[victim].spawn(&["start"]);
    wait_status(
        &c,
        victim,
        Duration::from_secs(60),
        "ACTIVE after a clean restart",
        |s| s.status == NodeState::Active,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_killed_while_it_loads_the_leaders_snapshot_comes_back_identical() {
    let mut c = ProcCluster::start(3).await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let lc = c.client(leader);
    ddl(
        &lc,
        "CREATE TABLE bulk (id INT PRIMARY KEY, v VARCHAR(200) NOT NULL) ENGINE=InnoDB",
    )
    .await;
    // Enough rows that loading them takes a while.
    for chunk in 0..40 {
        let rows: Vec<String> = (1..=1000)
            .map(|i| {
                let id = chunk * 1000 + i;
                format!("({id}, '{}')", format!("{id:08}").repeat(20))
            })
            .collect();
        // IGNORE: a chunk whose answer was "may or may not be applied" (a leader change
        // while it was in flight, 504) is sent again and changes nothing if it was.
        let body = json!({"statements": [{"sql": format!("INSERT IGNORE INTO bulk (id, v) VALUES {}", rows.join(", "))}]});
        let mut attempts = 0;
        loop {
            attempts += 1;
            match write(&lc, WriteKind::Sql, &body.to_string()).await {
                Ok(_) => break,
                Err(e) if e.status().is_some_and(|s| s.as_u16() == 504) && attempts < 5 => {
                    tracing::warn!(chunk, error = %e, "seed chunk outcome unknown; sending it again");
                }
                Err(e) => panic!("seed: {e:?}"),
            }
        }
    }
    c.wait_converged(Duration::from_secs(120)).await;
    let victim = c.other_than(leader);
    let mut conn = c.nodes[victim].db.conn_to(DATABASE).await.expect("connect");
    conn.query_drop("UPDATE bulk SET v = 'tampered' WHERE id = 31337")
        .await
        .expect("write behind WolfScale's back");
    drop(conn);

    // Resync it, and kill it while it loads the snapshot into MariaDB.
    let asked = {
        let client = c.client(victim).with_timeout(Duration::from_secs(600));
        tokio::spawn(async move { client.resync().await })
    };
    wait_status(&c, victim, Duration::from_secs(120), "loading", |s| {
        s.sync
            .as_ref()
            .is_some_and(|p| p.phase == wolfscale::snapshot::Phase::Loading)
    })
    .await;
    c.nodes[victim].kill9().await;
    assert!(
        asked.await.expect("resync call").is_err(),
        "the resync cannot have finished: the node was killed while loading"
    );

    // Restarted, it finishes the load and resyncs by itself (its RESYNC marker): ACTIVE
    // and identical, never ACTIVE over a half-loaded database.
    c.nodes[victim].spawn(&["start"]);
    wait_status(
        &c,
        victim,
        Duration::from_secs(180),
        "resynced after the restart",
        |s| s.status == NodeState::Active && s.resyncs >= 1,
    )
    .await;
    let body = json!({"table": "bulk", "values": {"id": 99999, "v": "after"}});
    write(&lc, WriteKind::Insert, &body.to_string())
        .await
        .expect("a write after the restart");
    c.wait_converged(Duration::from_secs(120)).await;
    assert_eq!(count(&c, victim, "bulk").await, 40_001);
    let report = check(&lc).await;
    assert!(
        report.identical(),
        "{}",
        wolfscale::api::check_text(&report)
    );
}
