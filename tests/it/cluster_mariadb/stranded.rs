//! A leader cut off from its majority (both followers SIGSTOPped) cannot commit: a write
//! sent to it gets a 504 "may or may not be applied" within the node's write deadline
//! instead of hanging until the partition heals. When the followers resume, the write is
//! either on every node or on none, and the cluster takes writes again. A linearizable
//! read on that leader is refused (503, retry) rather than answered from a state it cannot
//! vouch for.

use super::assert_converged;
use crate::support::procs::{write, ProcCluster, DATABASE};
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::time::{Duration, Instant};
use wolfscale::api::client::WriteKind;
use wolfscale::api::{Consistency, QueryRequest};
use wolfscale::node::WRITE_TIMEOUT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_a_majority_answers_504_within_the_write_deadline() {
    let c = ProcCluster::start(3).await;
    let setup = c.client(0);
    write(
        &setup,
        WriteKind::Ddl,
        &json!({"ddl": "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB"}).to_string(),
    )
    .await
    .expect("create table");

    let leader = c.leader(Duration::from_secs(10)).await;
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &f in &followers {
        c.nodes[f].signal(libc::SIGSTOP);
    }
    let client = c.client(leader).with_timeout(Duration::from_secs(30));
    // A linearizable read cannot be served either: the leader cannot confirm it leads.
    let lin = QueryRequest {
        sql: "SELECT COUNT(*) FROM t".into(),
        params: vec![],
        consistency: Consistency::Linearizable,
        min_lsn: None,
        timeout_ms: Some(1000),
    };
    let read_started = Instant::now();
    let e = client
        .query(&lin)
        .await
        .expect_err("a leader without a majority served a linearizable read");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503), "{e}");
    assert_eq!(e.code(), Some("no_leader"), "{e}");
    assert!(
        read_started.elapsed() < Duration::from_secs(4),
        "{:?}",
        read_started.elapsed()
    );
    let start = Instant::now();
    let answer = client
        .write_raw(
            WriteKind::Insert,
            json!({"table": "t", "values": {"id": 1}}).to_string(),
        )
        .await;
    let took = start.elapsed();
    for &f in &followers {
        c.nodes[f].signal(libc::SIGCONT);
    }
    let err = answer.expect_err("a leader without a majority acknowledged a write");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(504), "{err}");
    assert_eq!(err.code(), Some("timeout"), "{err}");
    assert!(err.to_string().contains("may or may not"), "{err}");
    assert!(
        took >= WRITE_TIMEOUT && took < WRITE_TIMEOUT + Duration::from_secs(3),
        "answered after {took:?}, deadline {WRITE_TIMEOUT:?}"
    );

    // Healed: writes are taken again, and the stranded insert is everywhere or nowhere.
    // The resumed followers may elect a new leader (they were frozen past the election
    // timeout) and cut a write in flight from the old leader's log: that answer is 504
    // "may or may not be applied", so the retry treats 409 (an earlier try applied) as done.
    let retry_until = Instant::now() + Duration::from_secs(30);
    loop {
        let r = write(
            &c.client(followers[0]),
            WriteKind::Insert,
            &json!({"table": "t", "values": {"id": 2}}).to_string(),
        )
        .await;
        match r {
            Ok(_) => break,
            Err(e) if e.status().is_some_and(|s| s.as_u16() == 409) => break,
            Err(e)
                if e.status().is_some_and(|s| s.as_u16() == 504)
                    && Instant::now() < retry_until =>
            {
                eprintln!("write after resuming: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("write after the followers resumed: {e}"),
        }
    }
    assert_converged(&c).await;
    let mut seen = Vec::new();
    for node in &c.nodes {
        let mut conn = node.db.conn_to(DATABASE).await.expect("connect");
        let ids: Vec<i64> = conn
            .query("SELECT id FROM t ORDER BY id")
            .await
            .expect("read t");
        seen.push(ids);
    }
    assert!(seen.iter().all(|s| s == &seen[0]), "{seen:?}");
    assert!(seen[0].contains(&2), "{seen:?}");
    eprintln!("after healing every node holds ids {:?}", seen[0]);
}
