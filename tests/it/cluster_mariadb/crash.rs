//! Crashes in the middle of a write load, between apply and commit: kill -9 of a follower
//! process, of the leader process, of the leader's `mariadbd` and of a follower's
//! `mariadbd`, each restarted while the load goes on. Half the writes bump a counter and
//! log a row in a table without a unique key, so an entry applied twice shows as a counter
//! above the row count or as a repeated row; the other half are unique inserts. In the
//! end: every acknowledged write is there exactly once, nothing appears that was not
//! sent, and every node holds the same tables and `_wolfscale` position.

use super::assert_converged;
use crate::support::procs::{write, ProcCluster, DATABASE};
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, WriteKind};

const CLIENTS: usize = 4;

/// What the client knows about one write.
#[derive(Debug, Clone)]
enum Known {
    /// Answered 2xx: committed and applied on the leader.
    Acked,
    /// No answer or an error that does not say (connection lost, 503, 504, timeout).
    Unknown(String),
}

/// One write: client, sequence number, and whether it was acknowledged.
#[derive(Debug, Clone)]
struct Op {
    client: i64,
    k: i64,
    known: Known,
    at: Instant,
}

impl Op {
    /// Even sequence numbers bump the counter and log a row; odd ones insert a unique row.
    fn is_bump(&self) -> bool {
        self.k % 2 == 0
    }
}

async fn load(client_no: i64, clients: Vec<Client>, stop: Arc<AtomicBool>) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut k = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let via = &clients[(k as usize + client_no as usize) % clients.len()];
        let body = if k % 2 == 0 {
            json!({"statements": [
                {"sql": "UPDATE counter SET n = n + 1 WHERE id = 1"},
                {"sql": "INSERT INTO seen (client, k) VALUES (?, ?)", "params": [client_no, k]}
            ], "transaction": true})
        } else {
            json!({"table": "uniq", "values": {"client": client_no, "k": k}})
        };
        let kind = if k % 2 == 0 {
            WriteKind::Sql
        } else {
            WriteKind::Insert
        };
        // No retry with the same sequence number: an unknown outcome stays unknown.
        let known = match via.write_raw(kind, body.to_string()).await {
            Ok(_) => Known::Acked,
            Err(e) => {
                let code = e.status().map(|s| s.as_u16());
                assert!(
                    !matches!(code, Some(400 | 404 | 409)),
                    "write {client_no}/{k} got a deterministic error, as if applied twice: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                Known::Unknown(e.to_string())
            }
        };
        ops.push(Op {
            client: client_no,
            k,
            known,
            at: Instant::now(),
        });
        k += 1;
    }
    ops
}

/// `(client, k)` pairs of a table, with how often each appears.
async fn pairs(c: &ProcCluster, node: usize, table: &str) -> BTreeMap<(i64, i64), u64> {
    let mut conn = c.nodes[node].db.conn_to(DATABASE).await.expect("connect");
    let rows: Vec<(i64, i64, u64)> = conn
        .query(format!(
            "SELECT client, k, COUNT(*) FROM {table} GROUP BY client, k"
        ))
        .await
        .expect("read pairs");
    rows.into_iter().map(|(a, b, n)| ((a, b), n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_nodes_and_of_mariadbd_mid_load_loses_and_repeats_nothing() {
    let mut c = ProcCluster::start(3).await;
    let setup = c.client(0);
    for (kind, body) in [
        (
            WriteKind::Ddl,
            json!({"ddl": "CREATE TABLE counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB"}),
        ),
        (
            WriteKind::Ddl,
            json!({"ddl": "CREATE TABLE seen (seq BIGINT AUTO_INCREMENT PRIMARY KEY, client INT NOT NULL, k INT NOT NULL, KEY seen_ck (client, k)) ENGINE=InnoDB"}),
        ),
        (
            WriteKind::Ddl,
            json!({"ddl": "CREATE TABLE uniq (client INT NOT NULL, k INT NOT NULL, PRIMARY KEY (client, k)) ENGINE=InnoDB"}),
        ),
        (
            WriteKind::Insert,
            json!({"table": "counter", "values": {"id": 1, "n": 0}}),
        ),
    ] {
        write(&setup, kind, &body.to_string()).await.expect("setup");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..CLIENTS as i64)
        .map(|i| {
            let clients = (0..3)
                .map(|n| c.client(n).with_timeout(Duration::from_secs(20)))
                .collect();
            tokio::spawn(load(i, clients, stop.clone()))
        })
        .collect();

    // Each crash, and when the crashed part was started again.
    let pause = Duration::from_millis(1200);
    let mut phases: Vec<(String, Instant)> = Vec::new();
    tokio::time::sleep(pause).await;

    // A follower process.
    let leader = c.leader(Duration::from_secs(10)).await;
    let f = c.other_than(leader);
    c.nodes[f].kill9().await;
    tokio::time::sleep(pause).await;
    c.nodes[f].spawn(&["start"]);
    phases.push((
        format!("kill -9 of follower {}", c.nodes[f].name),
        Instant::now(),
    ));
    tokio::time::sleep(pause).await;

    // The leader process.
    let leader = c.leader(Duration::from_secs(10)).await;
    c.nodes[leader].kill9().await;
    tokio::time::sleep(pause).await;
    c.nodes[leader].spawn(&["start"]);
    phases.push((
        format!("kill -9 of leader {}", c.nodes[leader].name),
        Instant::now(),
    ));
    c.wait_active(3, Duration::from_secs(30)).await;
    tokio::time::sleep(pause).await;

    // The leader's MariaDB, then a follower's.
    let leader = c.leader(Duration::from_secs(10)).await;
    c.nodes[leader].db.kill9().await.expect("kill mariadbd");
    tokio::time::sleep(pause).await;
    c.nodes[leader]
        .db
        .restart()
        .await
        .expect("restart mariadbd");
    phases.push((
        format!("kill -9 of the mariadbd of leader {}", c.nodes[leader].name),
        Instant::now(),
    ));
    tokio::time::sleep(pause).await;
    let f = c.other_than(leader);
    c.nodes[f].db.kill9().await.expect("kill mariadbd");
    tokio::time::sleep(pause).await;
    c.nodes[f].db.restart().await.expect("restart mariadbd");
    phases.push((
        format!("kill -9 of the mariadbd of follower {}", c.nodes[f].name),
        Instant::now(),
    ));
    c.wait_active(3, Duration::from_secs(30)).await;
    tokio::time::sleep(pause).await;

    stop.store(true, Ordering::Relaxed);
    let mut ops = Vec::new();
    for t in tasks {
        ops.extend(t.await.expect("load task"));
    }
    let acked = ops
        .iter()
        .filter(|o| matches!(o.known, Known::Acked))
        .count();
    let unknown: Vec<&Op> = ops
        .iter()
        .filter(|o| matches!(o.known, Known::Unknown(_)))
        .collect();
    tracing::info!(
        writes = ops.len(),
        acked,
        unknown = unknown.len(),
        "crash load done"
    );
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for o in &unknown {
        if let Known::Unknown(e) = &o.known {
            *reasons.entry(e.chars().take(60).collect()).or_default() += 1;
        }
    }
    tracing::info!(?reasons, "writes with an unknown outcome");
    // Writes were acknowledged again after every restart.
    for (what, back) in &phases {
        let later = ops
            .iter()
            .filter(|o| o.at > *back && matches!(o.known, Known::Acked))
            .count();
        assert!(
            later > 0,
            "no write was acknowledged after the restart that followed {what}"
        );
    }

    let (state, _) = assert_converged(&c).await;
    // How often a re-apply found AUTO_INCREMENT counters moved by a rolled-back attempt.
    let reset: usize = c
        .nodes
        .iter()
        .map(|n| {
            n.log_text()
                .matches("auto_increment counter set back")
                .count()
        })
        .sum();
    tracing::info!(counters_set_back = reset, "crash checks");
    let sent: BTreeSet<(i64, i64)> = ops.iter().map(|o| (o.client, o.k)).collect();
    for node in 0..c.nodes.len() {
        let name = &c.nodes[node].name;
        let seen = pairs(&c, node, "seen").await;
        let uniq = pairs(&c, node, "uniq").await;
        let mut conn = c.nodes[node].db.conn_to(DATABASE).await.expect("connect");
        let n: Option<i64> = conn
            .query_first("SELECT n FROM counter WHERE id = 1")
            .await
            .expect("counter");
        let seen_rows: u64 = seen.values().sum();
        assert_eq!(
            n,
            Some(seen_rows as i64),
            "{name}: counter vs logged bumps (a double apply?)"
        );
        for (pair, count) in seen.iter().chain(uniq.iter()) {
            assert_eq!(*count, 1, "{name}: write {pair:?} applied {count} times");
            assert!(sent.contains(pair), "{name}: {pair:?} was never sent");
        }
        for o in &ops {
            let table = if o.is_bump() { &seen } else { &uniq };
            let present = table.contains_key(&(o.client, o.k));
            if matches!(o.known, Known::Acked) {
                assert!(
                    present,
                    "{name}: acknowledged write {}/{} is lost",
                    o.client, o.k
                );
            }
            if !o.is_bump() {
                assert!(
                    !seen.contains_key(&(o.client, o.k)),
                    "{name}: {o:?} in the wrong table"
                );
            }
        }
    }
    assert!(state.tables["seen"].rows > 0 && state.tables["uniq"].rows > 0);
}
