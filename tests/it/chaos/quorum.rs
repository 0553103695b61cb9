//! Issue 19 on a real cluster: a node cut off from its majority (every link to and from it
//! black-holed by the relays) says so within the election timeout + 1 s — `/status`
//! NO_QUORUM with `last_quorum_contact_ms`, `/health` 503 with the reason, `/livez` 200 —
//! and refuses writes and linearizable reads at once with 503 `quorum_lost` and
//! `retry_after`, appending nothing; the majority keeps serving; after healing there is
//! one leader, the refused writes are on no node, and every replica is identical
//! (`CHECKSUM TABLE` and row hashes). First for the leader, then for a lone follower, then
//! for a follower that lost only its link to the leader (it must not depose the leader).

use super::cluster::{Cluster, Wrappers, ELECTION_TIMEOUT_MS, NODES};
use crate::support::procs::write;
use crate::support::tables::{assert_identical, db_state};
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, Error as ClientError, WriteKind};
use wolfscale::api::{Consistency, NodeState, NodeStatus, QueryRequest, Role};

const DATABASE: &str = "app";
/// How soon a cut-off node must say so (the bound).
const NOTICE_BOUND: Duration = Duration::from_millis(ELECTION_TIMEOUT_MS + 1000);
/// How soon a refusal must come.
const REFUSAL_BOUND: Duration = Duration::from_secs(1);

fn client(c: &Cluster, i: usize) -> Client {
    Client::new(&c.nodes[i].api)
        .expect("client")
        .with_timeout(Duration::from_secs(15))
}

/// Black-holes every link to and from node `i`.
fn isolate(c: &Cluster, i: usize) {
    for j in (0..NODES).filter(|&j| j != i) {
        c.cut(i, j);
        c.cut(j, i);
    }
}

fn insert_body(id: i64) -> String {
    json!({"table": "q", "values": {"id": id, "v": format!("row {id}")}}).to_string()
}

/// The node that says it leads, among `among`, once exactly one does (in a term above
/// `above`).
async fn leader_among(c: &Cluster, among: &[usize], above: u64) -> (usize, NodeStatus) {
    let start = Instant::now();
    loop {
        let mut leaders = Vec::new();
        for &i in among {
            if let Ok(s) = client(c, i).status().await {
                if s.role == Role::Leader && s.term > above {
                    leaders.push((i, s));
                }
            }
        }
        if leaders.len() == 1 {
            return leaders.remove(0);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no single leader among {among:?} above term {above}: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls node `i` until `/status` is NO_QUORUM and `/health` 503; returns the status, the
/// `/health` error and when both held.
async fn wait_no_quorum(c: &Cluster, i: usize, since: Instant) -> (NodeStatus, ClientError) {
    let cl = client(c, i);
    loop {
        let s = cl
            .status()
            .await
            .expect("a cut-off node still answers /status");
        if s.status == NodeState::NoQuorum {
            let e = cl
                .health()
                .await
                .expect_err("/health 200 on a node that is NO_QUORUM");
            return (s, e);
        }
        assert!(
            since.elapsed() < NOTICE_BOUND + Duration::from_secs(2),
            "node-{} still says {:?} {:?} {:?} after {:?}",
            i + 1,
            s.role,
            s.status,
            s.last_quorum_contact_ms,
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A write to node `i` and a linearizable read there are refused at once with 503
/// `quorum_lost`; returns the write's answer time.
async fn assert_refused_at_once(c: &Cluster, i: usize, id: i64) -> Duration {
    let cl = client(c, i);
    let start = Instant::now();
    let e = cl
        .write_raw(WriteKind::Insert, insert_body(id))
        .await
        .expect_err("a node without quorum took a write");
    let took = start.elapsed();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503), "{e}");
    assert_eq!(e.code(), Some("quorum_lost"), "{e}");
    match &e {
        ClientError::Api { body, .. } => assert!(body.retry_after.is_some_and(|r| r >= 1), "{e}"),
        other => panic!("not an API error: {other}"),
    }
    assert!(took < REFUSAL_BOUND, "write refused only after {took:?}");
    let start = Instant::now();
    let e = cl
        .query(&QueryRequest {
            sql: "SELECT COUNT(*) FROM q".into(),
            params: vec![],
            consistency: Consistency::Linearizable,
            min_lsn: None,
            timeout_ms: Some(5000),
        })
        .await
        .expect_err("a node without quorum served a linearizable read");
    assert_eq!(
        (e.status().map(|s| s.as_u16()), e.code()),
        (Some(503), Some("quorum_lost")),
        "{e}"
    );
    assert!(start.elapsed() < REFUSAL_BOUND, "{:?}", start.elapsed());
    took
}

/// After healing: node `i` follows the single leader and is ready again.
async fn wait_rejoined(c: &Cluster, i: usize) -> NodeStatus {
    let start = Instant::now();
    loop {
        if let Ok(s) = client(c, i).status().await {
            if s.status == NodeState::Active
                && s.leader_id.is_some()
                && client(c, i).health().await.is_ok()
            {
                return s;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node-{} did not rejoin after healing",
            i + 1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every replica holds the same tables (CHECKSUM TABLE, row hashes, `_wolfscale`) and
/// none of the refused ids.
async fn assert_identical_without(c: &Cluster, refused: &[i64]) {
    // The leader reports outcome digests in entries of its own shortly after client
    // entries, so "converged" means every node applied the last entry and the log then
    // stayed put while the databases were read.
    let any = client(c, 0);
    let start = Instant::now();
    let (lsn, states) = loop {
        let mut applied = Vec::new();
        for i in 0..NODES {
            applied.push(client(c, i).status().await.map_or(0, |s| s.applied_lsn));
        }
        let last = any.status().await.map_or(0, |s| s.last_log_lsn);
        if applied.iter().all(|&a| a == last && a > 0) {
            tokio::time::sleep(wolfscale::node::OUTCOME_REPORT_INTERVAL * 4).await;
            let mut states = Vec::new();
            for (i, db) in c.dbs.iter().enumerate() {
                states.push((c.nodes[i].name.clone(), db_state(db, DATABASE).await));
            }
            let still = any.status().await.map_or(0, |s| s.last_log_lsn);
            if still == last && states.iter().all(|(_, s)| s.applied_index == Some(last)) {
                break (last, states);
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "replicas did not converge: applied {applied:?}, log {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (i, db) in c.dbs.iter().enumerate() {
        let mut conn = db.conn_to(DATABASE).await.expect("connect");
        for id in refused {
            let n: Option<i64> = conn
                .exec_first("SELECT COUNT(*) FROM q WHERE id = ?", (id,))
                .await
                .expect("count");
            assert_eq!(
                n,
                Some(0),
                "refused write {id} applied on node-{} (lsn {lsn})",
                i + 1
            );
        }
    }
    assert_identical(&states);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_its_majority_says_so_and_refuses_at_once() {
    crate::support::init_tracing();
    let c = Cluster::start(Wrappers::default()).await;
    let all: Vec<usize> = (0..NODES).collect();
    let (old, before) = leader_among(&c, &all, 0).await;
    write(
        &client(&c, old),
        WriteKind::Ddl,
        &json!({"ddl": "CREATE TABLE q (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB", "wait": "all"})
            .to_string(),
    )
    .await
    .expect("create table");
    for id in 1..=5 {
        write(
            &client(&c, id as usize % NODES),
            WriteKind::Insert,
            &insert_body(id),
        )
        .await
        .expect("insert before the partition");
    }

    // 1. The leader is cut off from both followers.
    isolate(&c, old);
    let cut = Instant::now();
    let (s, health) = wait_no_quorum(&c, old, cut).await;
    let noticed = cut.elapsed();
    eprintln!("the cut-off leader said NO_QUORUM after {noticed:?}: {s:?}; /health: {health}");
    assert!(noticed < NOTICE_BOUND, "NO_QUORUM only after {noticed:?}");
    assert_eq!(
        s.role,
        Role::Follower,
        "a leader without quorum still says it leads"
    );
    assert_eq!(s.leader_id, None);
    assert!(
        s.last_quorum_contact_ms
            .is_some_and(|ms| ms >= ELECTION_TIMEOUT_MS),
        "{s:?}"
    );
    assert_eq!(health.status().map(|s| s.as_u16()), Some(503), "{health}");
    assert!(health.to_string().contains("NO_QUORUM"), "{health}");
    client(&c, old)
        .livez()
        .await
        .expect("/livez answers while the node serves HTTP");
    let took = assert_refused_at_once(&c, old, 100).await;
    eprintln!(
        "a write to the cut-off leader was refused {took:?} after sending, {:?} after the cut",
        cut.elapsed()
    );
    // Its own view of the cluster names no leader: it cannot see a majority.
    let view = client(&c, old).cluster().await.expect("cluster");
    assert_eq!(view.leader_id, None, "{view:?}");

    // The majority elects its own leader and serves writes, directly and forwarded.
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != old).collect();
    let (new, led) = leader_among(&c, &majority, before.term).await;
    let follower = majority.iter().copied().find(|&i| i != new).expect("two");
    write(&client(&c, new), WriteKind::Insert, &insert_body(200))
        .await
        .expect("the majority's leader takes writes");
    write(&client(&c, follower), WriteKind::Insert, &insert_body(201))
        .await
        .expect("its follower forwards writes to it");
    let view = client(&c, follower).cluster().await.expect("cluster");
    assert_eq!(view.leader_id.as_deref(), Some(c.nodes[new].name.as_str()));
    assert_eq!(view.term, led.term);

    // Heal: one leader, the old one follows it, nothing of the refused write anywhere.
    c.heal_network();
    let rejoined = wait_rejoined(&c, old).await;
    assert_eq!(rejoined.role, Role::Follower);
    assert_eq!(
        rejoined.leader_id.as_deref(),
        Some(c.nodes[new].name.as_str())
    );
    let (_, after) = leader_among(&c, &all, before.term).await;
    assert_eq!(
        after.node_id, c.nodes[new].name,
        "the leadership moved on healing"
    );
    let view = client(&c, old).cluster().await.expect("cluster");
    assert!(
        view.nodes.iter().all(|n| !n.disagrees_on_leader),
        "{view:?}"
    );
    write(&client(&c, old), WriteKind::Insert, &insert_body(300))
        .await
        .expect("the old leader forwards writes once healed");
    assert_identical_without(&c, &[100]).await;

    // 2. A follower cut off alone: it says so, refuses at once; the leader carries on.
    isolate(&c, follower);
    let cut = Instant::now();
    let (s, health) = wait_no_quorum(&c, follower, cut).await;
    let noticed = cut.elapsed();
    eprintln!("the cut-off follower said NO_QUORUM after {noticed:?}; /health: {health}");
    assert!(noticed < NOTICE_BOUND, "NO_QUORUM only after {noticed:?}");
    assert_eq!(s.role, Role::Follower);
    assert!(health.to_string().contains("NO_QUORUM"), "{health}");
    assert_refused_at_once(&c, follower, 400).await;
    write(&client(&c, new), WriteKind::Insert, &insert_body(401))
        .await
        .expect("the leader keeps its majority without that follower");
    // Some node still leads (a node without quorum never says it does). On a loaded
    // machine a late heartbeat may move the leadership; it never goes to the cut-off node.
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != follower).collect();
    leader_among(&c, &others, 0).await;
    c.heal_network();
    wait_rejoined(&c, follower).await;
    assert_identical_without(&c, &[100, 400]).await;

    // 3. Only the link between the leader and that follower is cut: the follower hears no
    // leader and says so; the third node still hears the leader, so the follower's
    // pre-votes fail and it does not depose the leader; the others still see it.
    let (leader_now, _) = leader_among(&c, &all, 0).await;
    let lone = all
        .iter()
        .copied()
        .find(|&i| i != leader_now)
        .expect("a follower");
    let third = all
        .iter()
        .copied()
        .find(|&i| i != leader_now && i != lone)
        .expect("a third node");
    c.cut(leader_now, lone);
    c.cut(lone, leader_now);
    let cut = Instant::now();
    let (s, _) = wait_no_quorum(&c, lone, cut).await;
    assert!(cut.elapsed() < NOTICE_BOUND, "{:?}", cut.elapsed());
    assert_refused_at_once(&c, lone, 500).await;
    write(&client(&c, third), WriteKind::Insert, &insert_body(501))
        .await
        .expect("the rest of the cluster takes writes");
    let view = client(&c, third).cluster().await.expect("cluster");
    assert!(view.leader_id.is_some(), "{view:?}");
    let seen = view
        .nodes
        .iter()
        .find(|n| n.node_id == s.node_id)
        .expect("the cut-off follower is listed");
    assert_eq!(seen.status, NodeState::NoQuorum, "{view:?}");
    let (still, after) = leader_among(&c, &all, 0).await;
    assert_ne!(
        still, lone,
        "a follower that only lost the leader took over"
    );
    eprintln!(
        "leader while only the leader-follower link was cut: {} term {} (before: {} term {})",
        after.node_id, after.term, c.nodes[leader_now].name, s.term
    );
    c.heal_network();
    wait_rejoined(&c, lone).await;
    assert_identical_without(&c, &[100, 400, 500]).await;
}
