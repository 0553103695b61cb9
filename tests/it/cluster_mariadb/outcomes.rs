//! Outcome agreement (issue 12) on a real 3-node cluster: a statement that fails the same
//! way on every node (a SIGNAL in a validation trigger) is the entry's result — a 4xx for
//! the client while the next write succeeds at once — and a follower whose MariaDB was
//! changed behind WolfScale's back, so that it reaches another outcome than the leader for
//! the same entry, stops applying and reports DIVERGED with that entry, while the others go
//! on serving writes. With `cluster.auto_resync = false` it stays DIVERGED until an
//! operator runs `wolfscale resync`, which makes it identical and ACTIVE again.

use crate::support::procs::{write, NodeConfig, ProcCluster, DATABASE};
use mysql_async::prelude::Queryable;
use serde_json::json;
use std::time::{Duration, Instant};
use wolfscale::api::client::WriteKind;
use wolfscale::api::NodeState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_statements_are_results_and_a_different_outcome_is_diverged_until_resync() {
    let config = NodeConfig::with(|c| c.cluster.auto_resync = false);
    let c = ProcCluster::start_with(3, &config).await;
    let leader = c.leader(Duration::from_secs(10)).await;
    let lc = c.client(leader);
    for ddl in [
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
        "CREATE TRIGGER acct_check BEFORE INSERT ON acct FOR EACH ROW \
         IF NEW.v < 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'negative balance'; END IF",
    ] {
        write(&lc, WriteKind::Ddl, &json!({ "ddl": ddl }).to_string())
            .await
            .unwrap_or_else(|e| panic!("{ddl}: {e}"));
    }

    // A SIGNAL fails the same way everywhere: 400 naming MariaDB's error, and the cluster
    // goes on at once (before outcome agreement, an unlisted error stalled every node).
    let refused = json!({
        "statements": [{"sql": "INSERT INTO acct (id, v) VALUES (1, -5)"}],
        "transaction": true
    });
    let e = write(&lc, WriteKind::Sql, &refused.to_string())
        .await
        .expect_err("the trigger refuses a negative balance");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert!(e.to_string().contains("negative balance"), "{e}");
    let started = Instant::now();
    let next = json!({"statements": [{"sql": "INSERT INTO acct (id, v) VALUES (1, 5)"}]});
    write(&lc, WriteKind::Sql, &next.to_string())
        .await
        .expect("the next write succeeds");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the next write took {:?}",
        started.elapsed()
    );
    let lsn = c.wait_converged(Duration::from_secs(30)).await;
    for node in &c.nodes {
        let s = node.status().await.expect("status");
        assert_eq!(
            s.status,
            NodeState::Active,
            "{} after the SIGNAL",
            node.name
        );
        assert!(s.applied_lsn >= lsn);
    }

    // Change one follower behind WolfScale's back: the same insert then fails there with
    // a duplicate key while it succeeds on the leader.
    let victim = c.other_than(leader);
    let mut conn = c.nodes[victim].db.conn_to(DATABASE).await.expect("connect");
    conn.query_drop("INSERT INTO acct (id, v) VALUES (10, 99)")
        .await
        .expect("write behind WolfScale's back");
    drop(conn);
    let ok = write(
        &lc,
        WriteKind::Sql,
        &json!({"statements": [{"sql": "INSERT INTO acct (id, v) VALUES (10, 1)"}]}).to_string(),
    )
    .await
    .expect("the leader applies it");

    let deadline = Instant::now() + Duration::from_secs(15);
    let diverged = loop {
        let s = c.nodes[victim]
            .status()
            .await
            .expect("status of the victim");
        if s.status == NodeState::Diverged {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the victim never reported DIVERGED: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = diverged.divergence.expect("DIVERGED carries the entry");
    assert_eq!(
        d.lsn, ok.lsn,
        "the diverging entry is the one that differed"
    );
    assert_ne!(d.own, d.agreed);
    let frozen = diverged.applied_lsn;

    // The others go on: more writes succeed and apply on the leader and the healthy
    // follower, never on the diverged node.
    for id in 20..25 {
        let body = json!({"statements": [{"sql": "INSERT INTO acct (id, v) VALUES (?, 1)", "params": [id]}]});
        write(&lc, WriteKind::Sql, &body.to_string())
            .await
            .expect("writes go on without the diverged node");
    }
    let healthy = (0..3)
        .find(|&i| i != leader && i != victim)
        .expect("a third node");
    let target = c.nodes[leader].status().await.expect("leader").last_log_lsn;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = c.nodes[healthy].status().await.expect("status");
        if h.applied_lsn >= target {
            assert_eq!(h.status, NodeState::Active, "{h:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the healthy follower lags: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = c.nodes[victim].status().await.expect("victim");
    assert_eq!(v.status, NodeState::Diverged);
    assert!(
        v.applied_lsn == frozen,
        "a diverged node applies nothing more: {frozen} then {}",
        v.applied_lsn
    );
    let l = c.nodes[leader].status().await.expect("leader");
    assert_eq!(l.status, NodeState::Active, "{l:?}");

    // Without auto resync it is still DIVERGED now, and resyncs only when told to.
    let v = c.nodes[victim].status().await.expect("victim");
    assert_eq!(v.status, NodeState::Diverged, "{v:?}");
    assert_eq!(v.resyncs, 0, "{v:?}");
    let out = super::resync::resync_cli(&c.nodes[victim].api).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "stdout: {text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("cleared the divergence at lsn {}", ok.lsn)),
        "{text}"
    );
    let v = super::resync::wait_status(&c, victim, Duration::from_secs(30), "ACTIVE", |s| {
        s.status == NodeState::Active
    })
    .await;
    assert!(v.divergence.is_none() && v.resyncs == 1, "{v:?}");
    write(
        &lc,
        WriteKind::Sql,
        &json!({"statements": [{"sql": "INSERT INTO acct (id, v) VALUES (30, 1)"}]}).to_string(),
    )
    .await
    .expect("a write after the resync");
    c.wait_converged(Duration::from_secs(60)).await;
    let report = super::resync::check(&lc).await;
    assert!(
        report.identical(),
        "{}",
        wolfscale::api::check_text(&report)
    );
}
