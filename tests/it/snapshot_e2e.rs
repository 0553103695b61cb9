//! State transfer end to end (issue 7) with real `wolfscale` processes and private
//! MariaDB servers: 20,000 rows in three tables (secondary indexes, a view, a trigger),
//! a snapshot taken and the WAL purged through `POST /snapshot`, then empty nodes join
//! while writes continue. One joiner is killed (SIGKILL) in the middle of loading the
//! snapshot and restarted: it loads it again and every node ends identical. In a second
//! cluster the leader is killed while it streams a snapshot to a joiner (small chunks keep
//! the stream going long enough): the joiner gets the new leader's snapshot instead.

use crate::support::ports::PortReservation;
use crate::support::process::{spawn_tied, Tied};
use crate::support::procs::NodeConfig;
use crate::support::MariaDb;
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, Error as ClientError, WriteKind};
use wolfscale::api::NodeState;
use wolfscale::snapshot::{Phase, SyncProgress};

struct Proc {
    cfg: PathBuf,
    api: String,
    cluster: String,
    _ports: (PortReservation, PortReservation),
    child: Option<Tied>,
}

fn write_config(dir: &Path, i: usize, db: &MariaDb) -> Proc {
    write_config_with(dir, i, db, None)
}

/// A node's config, with `cluster.snapshot_chunk_kb` when given.
fn write_config_with(dir: &Path, i: usize, db: &MariaDb, snapshot_chunk_kb: Option<u64>) -> Proc {
    let f = NodeConfig {
        election_timeout_ms: 1000,
        ..NodeConfig::with(move |c| {
            c.wal.segment_size_mb = 1;
            if let Some(kb) = snapshot_chunk_kb {
                c.cluster.snapshot_chunk_kb = kb;
            }
        })
    }
    .write(dir, i, db);
    Proc {
        cfg: f.cfg,
        api: f.api,
        cluster: f.cluster,
        _ports: f.ports,
        child: None,
    }
}

/// Polls `c` (node `name`) until its snapshot sync progress satisfies `reached`, failing
/// if the node turns ACTIVE first (the sync finished too soon) or after `within`.
async fn wait_sync(
    c: &Client,
    name: &str,
    within: Duration,
    reached: impl Fn(&SyncProgress) -> bool,
) -> SyncProgress {
    let start = Instant::now();
    loop {
        if let Ok(s) = c.status().await {
            if let Some(p) = s.sync.as_ref().filter(|p| reached(p)) {
                return p.clone();
            }
            assert_ne!(
                s.status,
                NodeState::Active,
                "{name} finished its sync before the awaited point"
            );
        }
        assert!(
            start.elapsed() < within,
            "{name} never reached the awaited sync point"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGKILLs a running node process and reaps it.
fn kill9(p: &mut Proc) {
    if let Some(mut child) = p.child.take() {
        child.0.kill().expect("SIGKILL");
        let _ = child.0.wait();
    }
}

fn spawn(p: &mut Proc, args: &[&str]) {
    spawn_to(p, args, None);
}

/// Spawns `wolfscale ARGS`, its standard output going to `stdout` (else nowhere).
fn spawn_to(p: &mut Proc, args: &[&str], stdout: Option<&Path>) {
    let out = match stdout {
        Some(path) => Stdio::from(std::fs::File::create(path).expect("stdout file")),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
    cmd.args(args)
        .arg("-c")
        .arg(&p.cfg)
        .env("WOLFSCALE_LOG", "info,openraft=warn")
        .stdout(out)
        .stderr(Stdio::inherit());
    p.child = Some(spawn_tied(cmd).expect("spawn wolfscale"));
}

async fn write(
    client: &Client,
    kind: WriteKind,
    body: serde_json::Value,
) -> Result<u64, ClientError> {
    let start = Instant::now();
    loop {
        match client.write_raw(kind, body.to_string()).await {
            Ok(r) => return Ok(r.lsn),
            Err(ClientError::Api { status, .. })
                if status.as_u16() == 503 && start.elapsed() < Duration::from_secs(30) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e),
        }
    }
}

async fn wait_active(client: &Client, n: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        let c = client.cluster().await;
        if let Ok(c) = &c {
            if c.nodes.len() == n && c.nodes.iter().all(|s| s.status == NodeState::Active) {
                return;
            }
        }
        assert!(start.elapsed() < limit, "cluster not ACTIVE in time: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 100 users (with a ~1 KB bio) per request.
fn users(from: u64) -> serde_json::Value {
    let n = 100;
    let marks = vec!["(?, ?, ?, ?)"; n].join(",");
    let mut params = Vec::new();
    for id in from..from + n as u64 {
        params.push(json!(id));
        params.push(json!(format!("user {id}")));
        params.push(json!(format!("u{id}@example.com")));
        params.push(json!(crate::snapshot_cluster::noise_text(id, 1000)));
    }
    json!({"statements": [{"sql": format!("INSERT INTO users (id, name, email, bio) VALUES {marks}"), "params": params}], "transaction": true})
}

/// 100 orders per request.
fn orders(from: u64) -> serde_json::Value {
    let n = 100;
    let marks = vec!["(?, ?, ?, NOW(6))"; n].join(",");
    let mut params = Vec::new();
    for id in from..from + n as u64 {
        params.push(json!(id));
        params.push(json!(id % 997));
        params.push(json!(format!("{}.{:02}", id % 1000, id % 100)));
    }
    json!({"statements": [{"sql": format!("INSERT INTO orders (id, user_id, total, at) VALUES {marks}"), "params": params}], "transaction": true})
}

async fn table_sums(db: &MariaDb) -> Vec<(String, i64, Option<i64>)> {
    let mut conn = db.conn_to("app").await.expect("conn");
    let mut out = Vec::new();
    for t in ["users", "orders", "stats"] {
        let n: Option<i64> = conn
            .query_first(format!("SELECT COUNT(*) FROM {t}"))
            .await
            .expect("count");
        let s: Option<(String, Option<i64>)> = conn
            .query_first(format!("CHECKSUM TABLE {t}"))
            .await
            .expect("checksum");
        out.push((t.to_string(), n.unwrap_or(0), s.and_then(|s| s.1)));
    }
    let view: Vec<(i64, String)> = conn
        .query("SELECT user_id, CAST(spent AS CHAR) FROM big_spenders ORDER BY user_id")
        .await
        .expect("view");
    out.push(("big_spenders".into(), view.len() as i64, None));
    let triggers: Option<i64> = conn
        .query_first(
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app'",
        )
        .await
        .expect("triggers");
    out.push(("triggers".into(), triggers.unwrap_or(0), None));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_nodes_join_through_a_snapshot_while_writes_continue_even_when_killed_mid_install() {
    crate::support::init_tracing();
    let dbs = MariaDb::start_many(3).await.expect("mariadb");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut procs: Vec<Proc> = (0..3)
        .map(|i| write_config(dir.path(), i + 1, &dbs[i]))
        .collect();
    spawn(&mut procs[0], &["start", "--bootstrap"]);
    let c0 = Client::new(&procs[0].api).expect("client");
    let start = Instant::now();
    while c0.health().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "node-1 never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for ddl in [
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), bio TEXT, UNIQUE KEY by_email (email))",
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, total DECIMAL(12,2), at DATETIME(6), INDEX by_user (user_id))",
        "CREATE TABLE stats (user_id BIGINT PRIMARY KEY, orders INT NOT NULL)",
        "CREATE TRIGGER count_orders AFTER INSERT ON orders FOR EACH ROW INSERT INTO stats (user_id, orders) VALUES (NEW.user_id, 1) ON DUPLICATE KEY UPDATE orders = orders + 1",
        "CREATE VIEW big_spenders AS SELECT user_id, SUM(total) AS spent FROM orders GROUP BY user_id",
    ] {
        write(&c0, WriteKind::Ddl, json!({ "ddl": ddl })).await.expect(ddl);
    }
    for i in 0..100 {
        write(&c0, WriteKind::Sql, users(i * 100))
            .await
            .expect("users");
        write(&c0, WriteKind::Sql, orders(i * 100))
            .await
            .expect("orders");
    }

    // A snapshot, and every WAL segment it covers purged: joiners cannot replay the log.
    let created = c0
        .clone()
        .with_timeout(Duration::from_secs(300))
        .snapshot_create(true)
        .await
        .expect("snapshot");
    assert_eq!(created.snapshot.rows, 10_000 + 10_000 + 997, "{created:?}");
    assert!(created.purged_up_to.is_some(), "{created:?}");
    assert!(
        created.wal_first_lsn.is_some_and(|f| f > 10),
        "the early log is gone: {created:?}"
    );

    // Writes continue during the transfers.
    let stop = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicU64::new(0));
    let writer = {
        let (c, stop, last) = (c0.clone(), stop.clone(), last.clone());
        tokio::spawn(async move {
            let mut id = 1_000_000u64;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let lsn = write(&c, WriteKind::Sql, orders(id))
                    .await
                    .expect("write during sync");
                last.store(lsn, Ordering::SeqCst);
                id += 100;
                n += 100;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            n
        })
    };

    // node-2 joins with an empty MariaDB.
    let seed = procs[0].cluster.clone();
    spawn(&mut procs[1], &["join", &seed]);
    wait_active(&c0, 2, Duration::from_secs(180)).await;

    // node-3 joins and is killed while it loads the snapshot, then restarted.
    spawn(&mut procs[2], &["join", &seed]);
    let c2 = Client::new(&procs[2].api).expect("client");
    let seen = wait_sync(&c2, "node-3", Duration::from_secs(180), |p| {
        p.phase == Phase::Loading && p.rows_done > 0
    })
    .await;
    kill9(&mut procs[2]);
    assert!(
        seen.rows_total.is_some_and(|t| t > seen.rows_done),
        "{seen:?}"
    );
    spawn(&mut procs[2], &["start"]);
    wait_active(&c0, 3, Duration::from_secs(180)).await;

    stop.store(true, Ordering::SeqCst);
    let written = writer.await.expect("writer");
    assert!(written > 0);
    let last = last.load(Ordering::SeqCst);
    let start = Instant::now();
    loop {
        let nodes = c0.cluster().await.expect("cluster").nodes;
        if nodes.iter().all(|n| n.applied_lsn >= last) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nodes did not apply lsn {last}: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sums = [
        table_sums(&dbs[0]).await,
        table_sums(&dbs[1]).await,
        table_sums(&dbs[2]).await,
    ];
    assert_eq!(sums[0][0].1, 10_000);
    assert_eq!(sums[0][1].1, 10_000 + written as i64);
    assert_eq!(sums[0][4].1, 1, "the trigger exists");
    assert_eq!(sums[0], sums[1], "node-1 and node-2 differ");
    assert_eq!(sums[0], sums[2], "node-1 and node-3 differ");
    for p in &procs[1..] {
        let list = Client::new(&p.api)
            .expect("client")
            .snapshot_list()
            .await
            .expect("list");
        assert!(
            list.installs >= 1,
            "{} installed no snapshot: {list:?}",
            p.api
        );
        assert_eq!(
            list.snapshots.last().map(|s| s.source.as_str()),
            Some("received"),
            "{list:?}"
        );
    }
    stop_all(&mut procs).await;
}

/// Tables with secondary indexes, a trigger and a view.
const SCHEMA: [&str; 5] = [
    "CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200), bio TEXT, UNIQUE KEY by_email (email))",
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, total DECIMAL(12,2), at DATETIME(6), INDEX by_user (user_id))",
    "CREATE TABLE stats (user_id BIGINT PRIMARY KEY, orders INT NOT NULL)",
    "CREATE TRIGGER count_orders AFTER INSERT ON orders FOR EACH ROW INSERT INTO stats (user_id, orders) VALUES (NEW.user_id, 1) ON DUPLICATE KEY UPDATE orders = orders + 1",
    "CREATE VIEW big_spenders AS SELECT user_id, SUM(total) AS spent FROM orders GROUP BY user_id",
];

async fn wait_healthy(client: &Client, what: &str) {
    let start = Instant::now();
    while client.health().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter_mut() {
        if let Some(child) = p.child.as_mut() {
            // SIGTERM: a clean shutdown.
            unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
        }
    }
    for p in procs.iter_mut() {
        if let Some(mut child) = p.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !matches!(child.0.try_wait(), Ok(Some(_))) {
                assert!(
                    Instant::now() < deadline,
                    "{} did not stop",
                    p.cfg.display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_gets_the_snapshot_from_the_new_leader_when_the_sender_is_killed_mid_transfer() {
    crate::support::init_tracing();
    let dbs = MariaDb::start_many(4).await.expect("mariadb");
    let dir = tempfile::tempdir().expect("tempdir");
    // 64 KiB chunks: the ~10 MB snapshot takes well over a hundred RPCs to send.
    let mut procs: Vec<Proc> = (0..4)
        .map(|i| write_config_with(dir.path(), i + 1, &dbs[i], Some(64)))
        .collect();
    spawn(&mut procs[0], &["start", "--bootstrap"]);
    let c0 = Client::new(&procs[0].api).expect("client");
    wait_healthy(&c0, "node-1").await;
    let seed = procs[0].cluster.clone();
    spawn(&mut procs[1], &["join", &seed]);
    spawn(&mut procs[2], &["join", &seed]);
    wait_active(&c0, 3, Duration::from_secs(120)).await;
    for ddl in SCHEMA {
        write(&c0, WriteKind::Ddl, json!({ "ddl": ddl }))
            .await
            .expect(ddl);
    }
    for i in 0..100 {
        write(&c0, WriteKind::Sql, users(i * 100))
            .await
            .expect("users");
        write(&c0, WriteKind::Sql, orders(i * 100))
            .await
            .expect("orders");
    }
    // Every voter snapshots and purges, so whoever leads next must send a snapshot too.
    let mut first_lsns = Vec::new();
    for p in &procs[..3] {
        let created = Client::new(&p.api)
            .expect("client")
            .with_timeout(Duration::from_secs(300))
            .snapshot_create(true)
            .await
            .expect("snapshot");
        assert_eq!(created.snapshot.rows, 10_000 + 10_000 + 997, "{created:?}");
        first_lsns.push(created.wal_first_lsn);
    }
    assert!(
        first_lsns.iter().all(|f| f.is_some_and(|f| f > 10)),
        "the early log is gone everywhere: {first_lsns:?}"
    );
    let leader_before = c0.status().await.expect("status");
    assert_eq!(leader_before.leader_id.as_deref(), Some("node-1"));

    // node-4 joins with an empty MariaDB; node-1 is killed while it streams the snapshot.
    let join_out = dir.path().join("join-4.out");
    spawn_to(&mut procs[3], &["join", &seed], Some(&join_out));
    let c3 = Client::new(&procs[3].api).expect("client");
    let seen = wait_sync(&c3, "node-4", Duration::from_secs(120), |p| {
        p.phase == Phase::Receiving && p.bytes_done > 0
    })
    .await;
    kill9(&mut procs[0]);
    assert!(
        seen.bytes_total.is_some_and(|t| t > seen.bytes_done),
        "the kill came mid-transfer: {seen:?}"
    );

    // A new leader among node-2 and node-3 takes writes and finishes node-4's transfer.
    let c1 = Client::new(&procs[1].api).expect("client");
    let start = Instant::now();
    loop {
        if let Ok(s) = c1.status().await {
            if s.leader_id.as_deref().is_some_and(|l| l != "node-1") {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no new leader after node-1 was killed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut last = 0;
    for i in 0..10 {
        last = write(&c1, WriteKind::Sql, orders(2_000_000 + i * 100))
            .await
            .expect("write after failover");
    }
    let start = Instant::now();
    loop {
        if let Ok(s) = c3.status().await {
            if s.status == NodeState::Active && s.applied_lsn >= last {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "node-4 never caught up: {:?}",
            c3.status().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // `join` showed the transfer's progress, then ACTIVE (its output is a file: one plain
    // line a second rather than a terminal bar).
    let start = Instant::now();
    let printed = loop {
        let printed = std::fs::read_to_string(&join_out).expect("join output");
        if printed.contains("node-4 is ACTIVE") || start.elapsed() > Duration::from_secs(10) {
            break printed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let bar = printed
        .lines()
        .find(|l| l.starts_with("node-4: SYNCING ") && l.contains("% receiving snapshot"))
        .unwrap_or_else(|| panic!("no progress bar in join's output:\n{printed}"));
    assert!(bar.contains(" MB, ") && bar.contains("ETA"), "{bar}");
    assert!(printed.contains("node-4 is ACTIVE"), "{printed}");
    let list = c3.snapshot_list().await.expect("list");
    assert!(list.installs >= 1, "{list:?}");
    let installed = list.snapshots.last().expect("a snapshot on node-4");
    assert_eq!(installed.source, "received", "{list:?}");
    assert_ne!(
        installed.id, seen.snapshot_id,
        "node-4 holds the dead leader's snapshot, not the new leader's"
    );
    for p in &procs[1..3] {
        let applied = Client::new(&p.api).expect("client").status().await;
        assert!(
            applied.as_ref().is_ok_and(|s| s.applied_lsn >= last),
            "{applied:?}"
        );
    }
    let sums = [
        table_sums(&dbs[1]).await,
        table_sums(&dbs[2]).await,
        table_sums(&dbs[3]).await,
    ];
    assert_eq!(sums[0][0].1, 10_000);
    assert_eq!(sums[0][1].1, 10_000 + 1_000);
    assert_eq!(sums[0][4].1, 1, "the trigger exists");
    assert_eq!(sums[0], sums[1], "node-2 and node-3 differ");
    assert_eq!(sums[0], sums[2], "node-2 and node-4 differ");
    stop_all(&mut procs).await;
}

/// Runs `wolfscale ARGS -c CFG` to completion; returns its stdout, or panics with stderr.
fn run_cli(p: &Proc, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wolfscale"))
        .args(args)
        .arg("-c")
        .arg(&p.cfg)
        .env("WOLFSCALE_LOG", "warn")
        .output()
        .expect("run wolfscale");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wolfscale {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_seeded_from_a_snapshot_file_joins_without_a_transfer() {
    crate::support::init_tracing();
    let dbs = MariaDb::start_many(2).await.expect("mariadb");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut procs: Vec<Proc> = (0..2)
        .map(|i| write_config(dir.path(), i + 1, &dbs[i]))
        .collect();
    spawn(&mut procs[0], &["start", "--bootstrap"]);
    let c0 = Client::new(&procs[0].api).expect("client");
    wait_healthy(&c0, "node-1").await;
    for ddl in SCHEMA {
        write(&c0, WriteKind::Ddl, json!({ "ddl": ddl }))
            .await
            .expect(ddl);
    }
    for i in 0..10 {
        write(&c0, WriteKind::Sql, users(i * 100))
            .await
            .expect("users");
        write(&c0, WriteKind::Sql, orders(i * 100))
            .await
            .expect("orders");
    }

    // `snapshot create` and `snapshot list` through the CLI.
    let api = procs[0].api.clone();
    let created = run_cli(&procs[0], &["snapshot", "create", "--node", &api]);
    let listed = run_cli(&procs[0], &["snapshot", "list", "--node", &api]);
    let list = c0.snapshot_list().await.expect("list");
    let snap = list.snapshots.last().expect("a snapshot on node-1").clone();
    assert_eq!(snap.source, "built");
    assert_eq!(snap.rows, 1_000 + 1_000 + 997, "{snap:?}");
    assert!(created.contains(&snap.id), "create printed {created}");
    assert!(
        listed.contains(&snap.id) && listed.contains(&snap.path),
        "list printed {listed}"
    );

    // Writes go on; the file is copied and seeds node-2, which then joins.
    let mut last = 0;
    for i in 0..5 {
        last = write(&c0, WriteKind::Sql, orders(3_000_000 + i * 100))
            .await
            .expect("orders");
    }
    let copy = dir.path().join("copied.snap");
    std::fs::copy(&snap.path, &copy).expect("copy the snapshot file");
    let copy_arg = copy.display().to_string();
    let restored = run_cli(&procs[1], &["snapshot", "restore", &copy_arg]);
    assert!(
        restored.contains(&format!("lsn {}", snap.lsn)),
        "restore printed {restored}"
    );
    let seed = procs[0].cluster.clone();
    spawn(&mut procs[1], &["join", &seed]);
    wait_active(&c0, 2, Duration::from_secs(120)).await;
    let c1 = Client::new(&procs[1].api).expect("client");
    let start = Instant::now();
    while c1.status().await.map_or(true, |s| s.applied_lsn < last) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "node-2 did not apply lsn {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let l1 = c1.snapshot_list().await.expect("list");
    assert_eq!(l1.installs, 0, "node-2 was sent a snapshot: {l1:?}");
    assert_eq!(
        l1.snapshots.last().map(|s| s.source.as_str()),
        Some("restored"),
        "{l1:?}"
    );
    let (a, b) = (table_sums(&dbs[0]).await, table_sums(&dbs[1]).await);
    assert_eq!(a[1].1, 1_000 + 500);
    assert_eq!(a, b, "node-1 and node-2 differ");
    stop_all(&mut procs).await;
    // A member cannot be seeded again.
    let again = Command::new(env!("CARGO_BIN_EXE_wolfscale"))
        .args(["snapshot", "restore", &copy_arg, "-c"])
        .arg(&procs[1].cfg)
        .output()
        .expect("run wolfscale");
    assert!(!again.status.success(), "seeding a member must be refused");
}
