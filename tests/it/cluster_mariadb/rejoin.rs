//! Issue 13, one identity per node: C is paused, W is acknowledged by A and B, then B's
//! data dir and database are wiped and B tries to join again under its old name. Were it
//! let back in as the same voter, B (empty) and C (without W) would be a majority once A
//! dies, and W would be lost. The join is refused; with A killed and C resumed nothing
//! can be elected without A, and once A is back W is on every live node. The way back for
//! B — remove it, then join — gives it a new number, never its old one.

use crate::support::procs::{write, ProcCluster, DATABASE};
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::time::{Duration, Instant};
use wolfscale::api::client::WriteKind;
use wolfscale::api::Role;

const W: u64 = 4242;

/// Whether row `W` is in node `i`'s MariaDB.
async fn has_w(c: &ProcCluster, i: usize) -> bool {
    let mut conn = c.nodes[i].db.conn_to(DATABASE).await.expect("connect");
    let row: Option<u64> = conn
        .query_first(format!("SELECT id FROM t WHERE id = {W}"))
        .await
        .expect("select W");
    row == Some(W)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_cannot_rejoin_under_its_old_name_and_w_survives() {
    let mut c = ProcCluster::start(3).await;
    write(
        &c.client(0),
        WriteKind::Ddl,
        &json!({"ddl": "CREATE TABLE t (id BIGINT PRIMARY KEY) ENGINE=InnoDB"}).to_string(),
    )
    .await
    .expect("create table");
    c.wait_converged(Duration::from_secs(30)).await;
    let a = c.leader(Duration::from_secs(10)).await;
    let b = c.other_than(a);
    let cc = (0..3).find(|&i| i != a && i != b).expect("a third node");
    let b_name = c.nodes[b].name.clone();
    let b_number = c.nodes[b].status().await.expect("status of B").node_number;

    // Pause C; W is acknowledged by A and B alone.
    c.nodes[cc].signal(libc::SIGSTOP);
    write(
        &c.client(a),
        WriteKind::Insert,
        &json!({"table": "t", "values": {"id": W}}).to_string(),
    )
    .await
    .expect("W is acknowledged by A and B");

    // B loses its data dir and its database, then asks to join under its old name.
    c.nodes[b].kill9().await;
    std::fs::remove_dir_all(c.data_dir(b)).expect("wipe B's data dir");
    let mut conn = c.nodes[b].db.conn().await.expect("connect to B's MariaDB");
    conn.query_drop(format!("DROP DATABASE `{DATABASE}`"))
        .await
        .expect("drop B's database");
    conn.query_drop(format!("CREATE DATABASE `{DATABASE}`"))
        .await
        .expect("recreate B's database");
    drop(conn);
    let seed = c.nodes[a].cluster.clone();
    c.nodes[b].spawn(&["join", &seed]);
    let exit = c.nodes[b]
        .wait_exit(Duration::from_secs(90))
        .await
        .expect("the refused join ends");
    assert!(!exit.success(), "a wiped B joined: {exit:?}");
    let expected = format!(
        "{b_name} is a member with another identity: remove {b_name} first \
         (wolfscale cluster remove {b_name}), then join"
    );
    assert!(
        c.nodes[b].log_text().contains(&expected),
        "B's log does not say why: {}",
        c.nodes[b].log_text()
    );

    // A dies; C comes back. Alone, C can elect nobody: W cannot be voted away.
    c.nodes[a].kill9().await;
    c.nodes[cc].signal(libc::SIGCONT);
    let alone = Instant::now();
    while alone.elapsed() < Duration::from_secs(3) {
        if let Some(s) = c.nodes[cc].status().await {
            assert_ne!(s.role, Role::Leader, "C led without a majority: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A returns: A and C are a majority, and W is on both.
    c.nodes[a].spawn(&["start"]);
    c.wait_converged(Duration::from_secs(60)).await;
    for i in [a, cc] {
        assert!(has_w(&c, i).await, "W is missing on {}", c.nodes[i].name);
    }

    // The way back for B: remove it, then join with its empty data dir. It comes back as
    // a new member under a new number and catches up, W included.
    let removed = c.client(a).remove_node(&b_name).await.expect("remove B");
    assert_eq!(removed.node_number, b_number);
    std::fs::remove_dir_all(c.data_dir(b)).expect("wipe B's data dir again");
    let seed = c.nodes[c.leader(Duration::from_secs(10)).await]
        .cluster
        .clone();
    c.nodes[b].spawn(&["join", &seed]);
    c.wait_active(3, Duration::from_secs(60)).await;
    c.wait_converged(Duration::from_secs(60)).await;
    let again = c.nodes[b].status().await.expect("status of B");
    assert_ne!(
        again.node_number, b_number,
        "a removed member's number was handed out again"
    );
    for i in 0..3 {
        assert!(has_w(&c, i).await, "W is missing on {}", c.nodes[i].name);
    }
}
