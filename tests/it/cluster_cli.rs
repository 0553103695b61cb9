//! `wolfscale cluster transfer-leader` and `wolfscale cluster remove` end to end (issue 4):
//! three `wolfscale` processes, each with its own private MariaDB and an API token, driven
//! by the real binary's subcommands; also how fast a follower stops on SIGTERM.

use crate::support::ports::PortReservation;
use crate::support::process::{signal, spawn_tied, wait_exit, Tied};
use crate::support::procs::NodeConfig;
use crate::support::MariaDb;
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, Error as ClientError, WriteKind};
use wolfscale::api::{NodeState, Role};

const TOKEN: &str = "cli-test-api-token-0123456789";

struct Proc {
    name: String,
    cfg: PathBuf,
    log: PathBuf,
    out: PathBuf,
    api: String,
    cluster: String,
    _ports: (PortReservation, PortReservation),
    child: Option<Tied>,
}

impl Proc {
    fn client(&self) -> Client {
        Client::new(&self.api).expect("client").with_token(TOKEN)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn config(dir: &Path, i: usize, db: &MariaDb) -> Proc {
    let f = NodeConfig::with(|c| c.api.token = Some(TOKEN.into())).write(dir, i, db);
    Proc {
        name: format!("node-{i}"),
        log: dir.join(format!("node-{i}.log")),
        out: dir.join(format!("node-{i}.out")),
        cfg: f.cfg,
        api: f.api,
        cluster: f.cluster,
        _ports: f.ports,
        child: None,
    }
}

async fn spawn(p: &mut Proc, args: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
    let log = std::fs::File::create(&p.log).expect("log file");
    let out = std::fs::File::create(&p.out).expect("stdout file");
    cmd.args(args)
        .arg("-c")
        .arg(&p.cfg)
        .env("WOLFSCALE_LOG", "info,openraft=warn")
        .env_remove("WOLFSCALE_API_TOKEN")
        .stdout(Stdio::from(out))
        .stderr(log);
    let child = tokio::task::spawn_blocking(move || spawn_tied(cmd))
        .await
        .expect("spawn task")
        .expect("spawn wolfscale");
    p.child = Some(child);
}

/// Runs `wolfscale ARGS` to completion (the CLI bounds its own calls).
async fn cli(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wolfscale"))
            .args(&args)
            .env_remove("WOLFSCALE_CONFIG")
            .env_remove("WOLFSCALE_API_TOKEN")
            .output()
            .expect("run wolfscale")
    })
    .await
    .expect("cli task")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn wait_until<F: AsyncFnMut() -> Option<String>>(what: &str, limit: Duration, mut f: F) {
    let start = Instant::now();
    loop {
        let Some(state) = f().await else { return };
        assert!(
            start.elapsed() < limit,
            "{what} not reached in {limit:?}: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Inserts row `id`, retrying while there is no leader; returns its LSN (0 when a retry
/// found the row already there: the earlier attempt was applied after all).
async fn insert(client: &Client, id: u64) -> u64 {
    let json = format!(r#"{{"table": "t", "values": {{"id": {id}, "v": "row {id}"}}}}"#);
    let start = Instant::now();
    let mut retried = false;
    loop {
        match client.write_raw(WriteKind::Insert, json.clone()).await {
            Ok(r) => return r.lsn,
            Err(ClientError::Api { status, .. })
                if status.as_u16() == 503 && start.elapsed() < Duration::from_secs(20) =>
            {
                retried = true;
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(ClientError::Api { status, .. }) if status.as_u16() == 409 && retried => return 0,
            Err(e) => panic!("insert {id} through {}: {e}", client.address()),
        }
    }
}

async fn table(db: &MariaDb) -> Vec<(u64, String)> {
    let mut conn = db.conn_to("app").await.expect("conn");
    conn.query("SELECT id, v FROM t ORDER BY id")
        .await
        .expect("select")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_transfer_leader_and_remove_from_the_command_line() {
    crate::support::init_tracing();
    let dbs = MariaDb::start_many(3).await.expect("mariadb");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut procs: Vec<Proc> = (0..3).map(|i| config(dir.path(), i + 1, &dbs[i])).collect();
    spawn(&mut procs[0], &["start", "--bootstrap"]).await;
    let c1 = procs[0].client();
    wait_until("node-1 healthy", Duration::from_secs(30), async || {
        c1.health().await.err().map(|e| e.to_string())
    })
    .await;
    let seed = procs[0].cluster.clone();
    for p in procs.iter_mut().skip(1) {
        spawn(p, &["join", &seed]).await;
    }
    wait_until(
        "3 ACTIVE nodes",
        Duration::from_secs(60),
        async || match c1.cluster().await {
            Ok(c)
                if c.nodes.len() == 3 && c.nodes.iter().all(|n| n.status == NodeState::Active) =>
            {
                None
            }
            other => Some(format!("{other:?}")),
        },
    )
    .await;
    c1.write_raw(
        WriteKind::Ddl,
        r#"{"ddl": "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(100))"}"#,
    )
    .await
    .expect("ddl");
    let mut next = 0u64;
    for _ in 0..20 {
        insert(&procs[next as usize % 3].client(), next).await;
        next += 1;
    }
    let before = c1.cluster().await.expect("cluster");
    let old_leader = before.leader_id.clone().expect("a leader");
    let target = procs
        .iter()
        .find(|p| p.name != old_leader)
        .expect("a follower")
        .name
        .clone();

    // transfer-leader through the third node's API; the token comes from its config file.
    let via = procs
        .iter()
        .find(|p| p.name != old_leader && p.name != target)
        .expect("a third node");
    let started = Instant::now();
    let out = cli(&[
        "cluster",
        "transfer-leader",
        &target,
        "--api",
        &via.api,
        "-c",
        via.cfg.to_str().expect("utf8 path"),
    ])
    .await;
    let took = started.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains(&format!("{target} (number"))
            && said.contains("is now the leader")
            && said.contains(&format!("was {old_leader}, term {}", before.term)),
        "{said}"
    );
    eprintln!("transfer-leader took {took:?}: {said}");
    let after = c1.cluster().await.expect("cluster");
    assert_eq!(after.leader_id.as_deref(), Some(target.as_str()));
    assert!(
        after.term > before.term,
        "{} -> {}",
        before.term,
        after.term
    );
    for _ in 0..10 {
        insert(&procs[next as usize % 3].client(), next).await;
        next += 1;
    }

    // Refusals: an unknown node (404), a missing token (401).
    let out = cli(&[
        "cluster",
        "remove",
        "node-9",
        "--api",
        &procs[0].api,
        "-c",
        procs[0].cfg.to_str().expect("utf8 path"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("404") && text(&out).contains("unknown_node"),
        "{}",
        text(&out)
    );
    let out = cli(&[
        "cluster",
        "transfer-leader",
        &old_leader,
        "--api",
        &procs[0].api,
        "-c",
        "/nonexistent/wolfscale.toml",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("unauthorized"), "{}", text(&out));

    // A follower that joined stops quickly on SIGTERM (the node's shutdown grace is 3 s).
    let victim = procs
        .iter()
        .position(|p| p.name != target && p.name != "node-1")
        .expect("a follower that joined");
    let child = procs[victim].child.as_mut().expect("running");
    let stopping = Instant::now();
    signal(&child.0, libc::SIGTERM).expect("SIGTERM");
    let status = wait_exit(&mut child.0, Duration::from_secs(15))
        .await
        .expect("wait")
        .unwrap_or_else(|| panic!("{} ignored SIGTERM", procs[victim].name));
    let stop_time = stopping.elapsed();
    assert!(status.success(), "{}: {status}", procs[victim].log_tail());
    eprintln!("follower stopped in {stop_time:?}");
    assert!(
        stop_time < Duration::from_millis(1500),
        "a follower took {stop_time:?} to stop on SIGTERM:\n{}",
        procs[victim].log_tail()
    );
    procs[victim].child = None;

    // `join` prints its progress until ACTIVE (its prints once blocked forever on the
    // stdout lock the CLI held, and with them the node's shutdown).
    let printed = std::fs::read_to_string(&procs[victim].out).expect("stdout file");
    assert!(printed.contains(" role="), "{printed:?}");
    let other_joined = procs
        .iter()
        .find(|p| p.name != "node-1" && p.name != procs[victim].name)
        .expect("the other node that joined");
    wait_until("join prints ACTIVE", Duration::from_secs(10), async || {
        let printed = std::fs::read_to_string(&other_joined.out).expect("stdout file");
        (!printed.contains(" is ACTIVE")).then(|| format!("{}: {printed:?}", other_joined.name))
    })
    .await;

    // Remove the stopped node through a member's API: it works while the node is down.
    let gone = procs[victim].name.clone();
    let asker = procs
        .iter()
        .position(|p| p.name != gone)
        .expect("a running node");
    let out = cli(&[
        "cluster",
        "remove",
        &gone,
        "--api",
        &procs[asker].api,
        "-c",
        procs[asker].cfg.to_str().expect("utf8 path"),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains(&format!("removed {gone} (number")), "{said}");
    assert!(said.contains("learners: (none)"), "{said}");
    let live: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    for &i in &live {
        let nodes = procs[i].client().nodes().await.expect("nodes");
        let names: Vec<&str> = nodes.iter().map(|n| n.node_id.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!names.contains(&gone.as_str()), "{names:?}");
    }
    let mut last = 0;
    for _ in 0..10 {
        last = insert(&procs[live[next as usize % 2]].client(), next).await;
        next += 1;
    }

    // Remove the leader itself: the other node leads alone, writes continue.
    let leader_slot = live
        .iter()
        .copied()
        .find(|i| procs[*i].name == target)
        .expect("the leader is running");
    let other = live
        .iter()
        .copied()
        .find(|i| *i != leader_slot)
        .expect("the other node");
    let out = cli(&[
        "cluster",
        "remove",
        &target,
        "--api",
        &procs[leader_slot].api,
        "-c",
        procs[leader_slot].cfg.to_str().expect("utf8 path"),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let survivor = procs[other].client();
    wait_until(
        "the survivor leads",
        Duration::from_secs(20),
        async || match survivor.status().await {
            Ok(s) if s.role == Role::Leader => None,
            other => Some(format!("{other:?}")),
        },
    )
    .await;
    let removed = procs[leader_slot].client();
    wait_until(
        "the old leader reports REMOVED",
        Duration::from_secs(10),
        async || match removed.status().await {
            Ok(s) if s.status == NodeState::Removed => None,
            other => Some(format!("{other:?}")),
        },
    )
    .await;
    for _ in 0..5 {
        last = insert(&survivor, next).await;
        next += 1;
    }
    // The last voter cannot be removed.
    let out = cli(&[
        "cluster",
        "remove",
        &procs[other].name,
        "--api",
        &procs[other].api,
        "-c",
        procs[other].cfg.to_str().expect("utf8 path"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("409") && text(&out).contains("last_voter"),
        "{}",
        text(&out)
    );
    wait_until(
        "the survivor applied everything",
        Duration::from_secs(20),
        async || match survivor.status().await {
            Ok(s) if s.applied_lsn >= last => None,
            other => Some(format!("{other:?}")),
        },
    )
    .await;
    let rows = table(&dbs[other]).await;
    assert_eq!(
        rows.len() as u64,
        next,
        "every acknowledged insert is on the survivor"
    );
    assert!(rows.iter().enumerate().all(|(i, (id, _))| *id == i as u64));
}
