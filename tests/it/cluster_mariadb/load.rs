//! 1,000 mixed writes through random nodes by 8 concurrent clients: inserts, updates,
//! deletes, all-or-nothing batches (some failing as a whole), per-statement batches with a
//! failing statement, some with `wait: "all"`. Every answer is checked against what the
//! client expects, `wait: "all"` writes are read back at once on another node, and in the
//! end every node holds identical tables and `_wolfscale` at the same LSN.

use super::assert_converged;
use crate::support::procs::{write, ProcCluster};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Instant;
use wolfscale::api::client::{Client, WriteKind};
use wolfscale::api::{Consistency, QueryRequest, WriteResult};
use wolfscale::command::Input;

const CLIENTS: usize = 8;
const WRITES_PER_CLIENT: usize = 125;

/// What one client did, for the final checks.
#[derive(Debug, Default)]
struct Tally {
    /// Ids of `items` it inserted and has not deleted.
    live: BTreeSet<i64>,
    /// `ledger` rows its successful all-or-nothing batches added.
    ledger_rows: u64,
    /// `wait: "all"` writes.
    waited_all: usize,
    /// Batches refused as a whole (409) as expected.
    refused_batches: usize,
}

fn wait_field(rng: &mut StdRng) -> &'static str {
    if rng.gen_bool(0.15) {
        "all"
    } else {
        "quorum"
    }
}

/// The answer of a write that must succeed.
async fn ok(client: &Client, kind: WriteKind, body: serde_json::Value) -> WriteResult {
    let text = body.to_string();
    match write(client, kind, &text).await {
        Ok(r) => r,
        Err(e) => panic!("{kind:?} {text} failed: {e}"),
    }
}

/// After a `wait: "all"` write, another node must already show it (no `min_lsn`).
async fn visible_now(other: &Client, id: i64, expect: i64) {
    let q = QueryRequest {
        sql: "SELECT COUNT(*) FROM items WHERE id = ?".into(),
        params: vec![Input::from(id)],
        consistency: Consistency::None,
        min_lsn: None,
        timeout_ms: None,
    };
    let rows = other.query(&q).await.expect("read back").rows;
    assert_eq!(
        rows,
        vec![vec![Input::from(expect)]],
        "a wait:all write on id {id} is not visible on another node"
    );
}

async fn run_client(c: usize, clients: Vec<Client>) -> Tally {
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + c as u64);
    let mut t = Tally::default();
    let mut next_id = (c as i64 + 1) * 1_000_000;
    let owner = c as i64;
    for op in 0..WRITES_PER_CLIENT {
        let via = rng.gen_range(0..clients.len());
        let client = &clients[via];
        let other = &clients[(via + 1) % clients.len()];
        let wait = wait_field(&mut rng);
        let roll: u32 = rng.gen_range(0..100);
        let pick = |rng: &mut StdRng, t: &Tally| {
            let i = rng.gen_range(0..t.live.len());
            *t.live.iter().nth(i).expect("index within the set")
        };
        match roll {
            _ if roll < 35 || t.live.is_empty() => {
                next_id += 1;
                let r = ok(
                    client,
                    WriteKind::Insert,
                    json!({"table": "items", "values": {"id": next_id, "owner": owner, "v": format!("c{c} op{op}")}, "wait": wait}),
                )
                .await;
                assert_eq!(r.affected_rows, 1, "{r:?}");
                t.live.insert(next_id);
                if wait == "all" {
                    visible_now(other, next_id, 1).await;
                }
            }
            35..=54 => {
                let id = pick(&mut rng, &t);
                let r = ok(
                    client,
                    WriteKind::Update,
                    json!({"table": "items", "set": {"v": format!("c{c} op{op} updated"), "n": op}, "where_key": {"id": id}, "wait": wait}),
                )
                .await;
                assert_eq!(r.affected_rows, 1, "update of {id}: {r:?}");
            }
            55..=64 => {
                let id = pick(&mut rng, &t);
                let r = ok(
                    client,
                    WriteKind::Delete,
                    json!({"table": "items", "where_key": {"id": id}, "wait": wait}),
                )
                .await;
                assert_eq!(r.affected_rows, 1, "delete of {id}: {r:?}");
                t.live.remove(&id);
                if wait == "all" {
                    visible_now(other, id, 0).await;
                }
            }
            65..=84 => {
                let r = ok(
                    client,
                    WriteKind::Sql,
                    json!({"statements": [
                        {"sql": "INSERT INTO ledger (client, op) VALUES (?, ?)", "params": [owner, op]},
                        {"sql": "UPDATE items SET n = n + 1, at = NOW(6) WHERE owner = ?", "params": [owner]}
                    ], "transaction": true, "wait": wait}),
                )
                .await;
                assert!(r.last_insert_id > 0, "{r:?}");
                assert_eq!(r.affected_rows, 1 + t.live.len() as u64, "{r:?}");
                t.ledger_rows += 1;
            }
            85..=94 => {
                // Per statement: the second insert repeats the first's key and fails alone.
                next_id += 1;
                let row = json!({"sql": "INSERT INTO items (id, owner, v) VALUES (?, ?, ?)", "params": [next_id, owner, "batch"]});
                let r = ok(
                    client,
                    WriteKind::Sql,
                    json!({"statements": [row, row], "transaction": false, "wait": wait}),
                )
                .await;
                assert_eq!(r.statements.len(), 2, "{r:?}");
                assert_eq!(r.statements[0].affected_rows, 1, "{r:?}");
                assert!(r.statements[0].error.is_none(), "{r:?}");
                let e = r.statements[1].error.as_ref().expect("duplicate fails");
                assert_eq!(e.code, "conflict", "{r:?}");
                t.live.insert(next_id);
            }
            _ => {
                // All or nothing: the ledger row must not survive the duplicate key.
                let id = pick(&mut rng, &t);
                let body = json!({"statements": [
                    {"sql": "INSERT INTO ledger (client, op) VALUES (?, ?)", "params": [owner, op]},
                    {"sql": "INSERT INTO items (id, owner, v) VALUES (?, ?, 'dup')", "params": [id, owner]}
                ], "transaction": true, "wait": wait});
                match write(client, WriteKind::Sql, &body.to_string()).await {
                    Err(e) if e.status().is_some_and(|s| s.as_u16() == 409) => {
                        t.refused_batches += 1
                    }
                    other => panic!("expected a 409 for the batch {body}: {other:?}"),
                }
            }
        }
        if wait == "all" {
            t.waited_all += 1;
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_mixed_writes_through_random_nodes_leave_every_node_identical() {
    let c = ProcCluster::start(3).await;
    let setup = c.client(0);
    for ddl in [
        "CREATE TABLE items (id BIGINT PRIMARY KEY, owner INT NOT NULL, v VARCHAR(200) NOT NULL, \
         n BIGINT NOT NULL DEFAULT 0, at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
         KEY items_owner (owner)) ENGINE=InnoDB",
        "CREATE TABLE ledger (seq BIGINT AUTO_INCREMENT PRIMARY KEY, client INT NOT NULL, \
         op INT NOT NULL, at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
    ] {
        ok(&setup, WriteKind::Ddl, json!({ "ddl": ddl })).await;
    }

    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let clients: Vec<Client> = (0..3).map(|n| c.client(n)).collect();
            tokio::spawn(run_client(i, clients))
        })
        .collect();
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.expect("client task"));
    }
    let elapsed = started.elapsed();
    let writes = CLIENTS * WRITES_PER_CLIENT;
    tracing::info!(
        writes,
        ms = elapsed.as_millis(),
        per_s = writes as f64 / elapsed.as_secs_f64(),
        "mixed load done"
    );
    assert!(
        tallies.iter().map(|t| t.waited_all).sum::<usize>() > 50,
        "too few wait:all writes to mean anything"
    );
    assert!(tallies.iter().map(|t| t.refused_batches).sum::<usize>() > 5);

    let (state, lsn) = assert_converged(&c).await;
    let live: usize = tallies.iter().map(|t| t.live.len()).sum();
    let ledger: u64 = tallies.iter().map(|t| t.ledger_rows).sum();
    assert_eq!(
        state.tables["items"].rows, live,
        "items rows vs the clients' model"
    );
    assert_eq!(state.tables["ledger"].rows as u64, ledger, "ledger rows");
    // The leader batches concurrent writes into shared entries, so the LSN no longer
    // counts writes (the row counts above show each applied once); it still covers the two
    // DDL entries, which are never batched, and at least one entry per client wave.
    assert!(lsn >= 2 + (writes / CLIENTS) as u64, "lsn {lsn}");
    tracing::info!(lsn, "nodes identical");
}
