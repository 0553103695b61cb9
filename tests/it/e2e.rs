//! The whole product end to end (issues 4 and 5): three `wolfscale` processes, each with
//! its own private MariaDB, formed with `start --bootstrap` and `join`, driven through the
//! HTTP API of different nodes; every node's MariaDB ends identical.

use crate::support::ports::PortReservation;
use crate::support::process::{spawn_tied, Tied};
use crate::support::procs::NodeConfig;
use crate::support::MariaDb;
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, Error as ClientError, WriteKind};
use wolfscale::api::NodeState;

struct Proc {
    cfg: std::path::PathBuf,
    api: String,
    cluster: String,
    _ports: (PortReservation, PortReservation),
    child: Option<Tied>,
}

fn write_config(dir: &Path, i: usize, db: &MariaDb) -> Proc {
    let f = NodeConfig::default().write(dir, i, db);
    Proc {
        cfg: f.cfg,
        api: f.api,
        cluster: f.cluster,
        _ports: f.ports,
        child: None,
    }
}

fn spawn(p: &mut Proc, args: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
    cmd.args(args)
        .arg("-c")
        .arg(&p.cfg)
        .env("WOLFSCALE_LOG", "info,openraft=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    p.child = Some(spawn_tied(cmd).expect("spawn wolfscale"));
}

async fn wait_active(client: &Client, n: usize) {
    let start = Instant::now();
    loop {
        let c = client.cluster().await;
        if let Ok(c) = &c {
            if c.nodes.len() == n && c.nodes.iter().all(|s| s.status == NodeState::Active) {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "cluster not ACTIVE in time: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn write(client: &Client, kind: WriteKind, json: String) -> Result<u64, ClientError> {
    let start = Instant::now();
    loop {
        match client.write_raw(kind, json.clone()).await {
            Ok(r) => return Ok(r.lsn),
            Err(ClientError::Api { status, .. })
                if status.as_u16() == 503 && start.elapsed() < Duration::from_secs(20) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_stay_identical_through_writes_on_every_node() {
    let (dbs, _dir, mut procs, clients) = form().await;
    let c0 = clients[0].clone();

    // DDL through a follower (forwarded to the leader).
    write(
        &clients[1],
        WriteKind::Ddl,
        r#"{"ddl": "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(100), at DATETIME(6) DEFAULT NOW(6))"}"#.into(),
    )
    .await
    .expect("ddl");
    let mut last = 0;
    for i in 0..300 {
        let via = &clients[i % 3];
        last = write(
            via,
            WriteKind::Insert,
            format!(r#"{{"table": "t", "values": {{"id": {i}, "v": "row {i}"}}}}"#),
        )
        .await
        .expect("insert");
        if i % 10 == 0 {
            last = write(
                via,
                WriteKind::Update,
                format!(
                    r#"{{"table": "t", "set": {{"v": "updated {i}"}}, "where_key": {{"id": {i}}}}}"#
                ),
            )
            .await
            .expect("update");
        }
        if i % 25 == 24 {
            last = write(
                via,
                WriteKind::Delete,
                format!(r#"{{"table": "t", "where_key": {{"id": {i}}}}}"#),
            )
            .await
            .expect("delete");
        }
    }
    // A duplicate key is the entry's result, the same everywhere: 409 through a follower.
    match write(
        &clients[2],
        WriteKind::Insert,
        r#"{"table": "t", "values": {"id": 1, "v": "dup"}}"#.into(),
    )
    .await
    {
        Err(ClientError::Api { status, .. }) if status.as_u16() == 409 => {}
        other => panic!("expected 409 for a duplicate key, got {other:?}"),
    }

    // Every node applies everything; then the tables are identical.
    let start = Instant::now();
    loop {
        let nodes = c0.cluster().await.expect("cluster").nodes;
        if nodes.iter().all(|n| n.applied_lsn >= last) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nodes did not apply lsn {last}: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut contents = Vec::new();
    for db in &dbs {
        let mut conn = db.conn_to("app").await.expect("conn");
        let rows: Vec<(i64, String, String)> = conn
            .query("SELECT id, v, CAST(at AS CHAR) FROM t ORDER BY id")
            .await
            .expect("select");
        let sum: Option<(String, Option<i64>)> = conn
            .query_first("CHECKSUM TABLE t")
            .await
            .expect("checksum");
        contents.push((rows, sum.and_then(|s| s.1)));
    }
    assert_eq!(contents[0].0.len(), 300 - 12);
    assert_eq!(contents[0], contents[1], "node-1 and node-2 differ");
    assert_eq!(contents[0], contents[2], "node-1 and node-3 differ");
    stop_all(&mut procs).await;
}

/// Three MariaDB servers and three `wolfscale` processes formed into one cluster with
/// `start --bootstrap` and `join`, every node ACTIVE; a client per node.
async fn form() -> (Vec<MariaDb>, tempfile::TempDir, Vec<Proc>, Vec<Client>) {
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
            start.elapsed() < Duration::from_secs(30),
            "node-1 never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seed = procs[0].cluster.clone();
    for p in procs.iter_mut().skip(1) {
        spawn(p, &["join", &seed]);
    }
    wait_active(&c0, 3).await;
    let clients: Vec<Client> = procs
        .iter()
        .map(|p| Client::new(&p.api).expect("client"))
        .collect();
    (dbs, dir, procs, clients)
}

/// SIGTERMs every running process and checks each exits cleanly.
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
            loop {
                match child.0.try_wait() {
                    Ok(Some(status)) => {
                        assert!(status.success(), "{} exited with {status}", p.cfg.display());
                        break;
                    }
                    _ if Instant::now() > deadline => {
                        panic!("{} did not stop on SIGTERM", p.cfg.display())
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }
}

/// `cluster.election_timeout_ms` of the processes (see [`write_config`]).
const ELECTION_TIMEOUT: Duration = Duration::from_millis(600);

/// Inserts rows `(writer, seq)` through the nodes in turn until `stop`; returns the ids
/// whose insert was acknowledged. Failed or unanswered writes are not retried: whether
/// they were applied is unknown, and the test only relies on acknowledged ones.
async fn insert_until(
    writer: i64,
    clients: Vec<Client>,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<i64> {
    let mut acked = Vec::new();
    let mut seq = 0i64;
    while !stop.is_cancelled() {
        let id = writer * 1_000_000 + seq;
        let via = &clients[(writer + seq) as usize % clients.len()];
        let json =
            format!(r#"{{"table": "t", "values": {{"id": {id}, "w": {writer}, "seq": {seq}}}}}"#);
        match via.write_raw(WriteKind::Insert, json).await {
            Ok(_) => acked.push(id),
            // Refused (no leader, node down) or unanswered: back off a little.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        seq += 1;
    }
    acked
}

/// The leader among `clients`' nodes, if one of them says it leads: (position, term).
async fn leader_of(clients: &[(usize, Client)]) -> Option<(usize, u64)> {
    for (i, c) in clients {
        if let Ok(s) = c.status().await {
            if s.role == wolfscale::api::Role::Leader {
                return Some((*i, s.term));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_with_sigkill_loses_no_acknowledged_write_and_rejoins() {
    let (dbs, _dir, mut procs, clients) = form().await;
    write(
        &clients[1],
        WriteKind::Ddl,
        r#"{"ddl": "CREATE TABLE t (id BIGINT PRIMARY KEY, w INT NOT NULL, seq INT NOT NULL)"}"#
            .into(),
    )
    .await
    .expect("ddl");
    let all: Vec<(usize, Client)> = clients
        .iter()
        .cloned()
        .map(|c| c.with_timeout(Duration::from_secs(1)))
        .enumerate()
        .collect();
    let (old, old_term) = leader_of(&all).await.expect("a leader");

    // Four writers, each cycling through all three nodes.
    let stop = tokio_util::sync::CancellationToken::new();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let cs = clients
                .iter()
                .cloned()
                .map(|c| c.with_timeout(Duration::from_secs(10)))
                .collect();
            tokio::spawn(insert_until(w, cs, stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // SIGKILL the leader mid-stream (dropping the handle kills and reaps it).
    let killed_at = Instant::now();
    drop(procs[old].child.take().expect("the leader runs"));
    let survivors: Vec<(usize, Client)> = all.iter().filter(|(i, _)| *i != old).cloned().collect();
    let (new, failover) = loop {
        if let Some((i, term)) = leader_of(&survivors).await {
            if term > old_term {
                break (i, killed_at.elapsed());
            }
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "no new leader after killing node-{}",
            old + 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "node-{} leads {failover:?} after node-{} was killed",
        new + 1,
        old + 1
    );
    assert!(
        failover < ELECTION_TIMEOUT + Duration::from_secs(1),
        "a new leader took {failover:?}"
    );

    // Writes go on through the survivors, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }
    let after_kill = clients[new].status().await.expect("status").commit_lsn;
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());

    // The killed node restarts with plain `start`, rejoins as a follower and catches up.
    spawn(&mut procs[old], &["start"]);
    wait_active(&clients[new], 3).await;
    let target = clients[new].status().await.expect("status").last_log_lsn;
    assert!(target >= after_kill);
    let start = Instant::now();
    loop {
        let nodes = clients[new].cluster().await.expect("cluster").nodes;
        if nodes.len() == 3 && nodes.iter().all(|n| n.applied_lsn >= target) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nodes did not apply lsn {target}: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rejoined = clients[old]
        .status()
        .await
        .expect("status of the restarted node");
    assert_eq!(
        rejoined.role,
        wolfscale::api::Role::Follower,
        "{rejoined:?}"
    );

    // Every acknowledged write is on every MariaDB, and the three tables are identical.
    let mut contents = Vec::new();
    for db in &dbs {
        let mut conn = db.conn_to("app").await.expect("conn");
        let rows: Vec<(i64, i32, i32)> = conn
            .query("SELECT id, w, seq FROM t ORDER BY id")
            .await
            .expect("select");
        let ids: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.0).collect();
        let missing: Vec<&i64> = acked.iter().filter(|id| !ids.contains(id)).collect();
        assert!(
            missing.is_empty(),
            "{} lacks acknowledged rows {missing:?}",
            db.addr()
        );
        let sum: Option<(String, Option<i64>)> = conn
            .query_first("CHECKSUM TABLE t")
            .await
            .expect("checksum");
        contents.push((rows, sum.and_then(|s| s.1)));
    }
    eprintln!(
        "{} writes acknowledged, {} rows applied",
        acked.len(),
        contents[0].0.len()
    );
    assert_eq!(contents[0], contents[1], "node-1 and node-2 differ");
    assert_eq!(contents[0], contents[2], "node-1 and node-3 differ");
    stop_all(&mut procs).await;
}
