//! Interactive transactions through the MySQL front end of a 3-node process cluster, with
//! real clients (mysql_async, sysbench): a lost update cannot happen, concurrent bank
//! transfers on every node keep the total, AUTO_INCREMENT ids stay identical on every
//! node although transactions take ids locally and roll back, and sysbench's read-write
//! transactions end with identical replicas.

use crate::proxy::{checksums, cluster, conn_opts, sysbench_count, sysbench_with};
use crate::support::procs::{ProcCluster, DATABASE, MYSQL_USER};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::{Duration, Instant};

async fn connect(c: &ProcCluster, i: usize) -> Conn {
    Conn::new(conn_opts(c, i)).await.expect("connect")
}

fn code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

/// One value of `sql` on every node's own MariaDB, once the cluster converged.
async fn on_every_node(c: &ProcCluster, sql: &str) -> Vec<Option<i64>> {
    c.wait_converged(Duration::from_secs(60)).await;
    let mut out = Vec::new();
    for node in &c.nodes {
        let mut conn = node.db.conn_to(DATABASE).await.expect("connect to node db");
        out.push(conn.query_first(sql).await.expect("query"));
        conn.disconnect().await.expect("disconnect");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_txn_lost_update_cannot_happen_and_rollback_leaves_nothing() {
    let c = cluster().await;
    let mut a = connect(&c, 0).await;
    let mut b = connect(&c, 1).await;
    a.query_drop("CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL)")
        .await
        .expect("create");
    a.query_drop("CREATE TABLE note (id BIGINT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(40) NOT NULL UNIQUE) ENGINE=InnoDB")
        .await
        .expect("create note");
    a.query_drop("INSERT INTO counter VALUES (1, 0)")
        .await
        .expect("seed");

    // Both read the counter and write read + 1, on different nodes.
    a.query_drop("BEGIN").await.expect("begin a");
    b.query_drop("START TRANSACTION").await.expect("begin b");
    let na: Option<i64> = a
        .exec_first("SELECT n FROM counter WHERE id = ?", (1,))
        .await
        .expect("read a");
    let nb: Option<i64> = b
        .query_first("SELECT n FROM counter WHERE id = 1")
        .await
        .expect("read b");
    assert_eq!((na, nb), (Some(0), Some(0)));
    a.exec_drop(
        "UPDATE counter SET n = ? WHERE id = ?",
        (na.unwrap_or(0) + 1, 1),
    )
    .await
    .expect("write a");
    assert_eq!(a.affected_rows(), 1);
    // The transaction sees its own write; other sessions do not.
    let own: Option<i64> = a
        .query_first("SELECT n FROM counter WHERE id = 1")
        .await
        .expect("own write");
    assert_eq!(own, Some(1));
    b.exec_drop(
        "UPDATE counter SET n = ? WHERE id = ?",
        (nb.unwrap_or(0) + 1, 1),
    )
    .await
    .expect("write b");
    a.query_drop("COMMIT").await.expect("a commits");
    let e = b.query_drop("COMMIT").await.expect_err("b must not commit");
    assert_eq!(code(&e), Some(1213), "{e:?}");
    if let mysql_async::Error::Server(s) = &e {
        assert_eq!(s.state, "40001", "{s:?}");
        // Certified in log order (the read of statement 0 differs), or rolled back on
        // node 1 earlier because a's entry needed the row b's local UPDATE held.
        assert!(
            s.message.contains("statement 0") || s.message.contains("rolled back"),
            "{s:?}"
        );
    }
    // Retried (node 1 may not have applied a's commit yet: its snapshot can still show 0,
    // and that attempt conflicts too), b commits read + 1 on top of a's value.
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 50, "b never committed");
        b.query_drop("BEGIN").await.expect("retry");
        let n: Option<i64> = b
            .query_first("SELECT n FROM counter WHERE id = 1")
            .await
            .expect("read again");
        b.exec_drop(
            "UPDATE counter SET n = ? WHERE id = 1",
            (n.unwrap_or(0) + 1,),
        )
        .await
        .expect("write again");
        match b.query_drop("COMMIT").await {
            Ok(()) => {
                assert_eq!(n, Some(1), "b committed over a value it did not read");
                break;
            }
            Err(e) if code(&e) == Some(1213) => {
                let _ = b.query_drop("ROLLBACK").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("b's retry: {e:?}"),
        }
    }
    assert_eq!(
        on_every_node(&c, "SELECT n FROM counter WHERE id = 1").await,
        vec![Some(2); 3]
    );

    // ROLLBACK, savepoints and generated ids: what the client saw is what commits.
    a.query_drop("BEGIN").await.expect("begin");
    a.exec_drop("INSERT INTO note (body) VALUES (?)", ("discarded",))
        .await
        .expect("insert");
    let discarded = a.last_insert_id().expect("an id");
    a.query_drop("ROLLBACK").await.expect("rollback");
    a.query_drop("SET autocommit = 0")
        .await
        .expect("autocommit off");
    a.exec_drop("INSERT INTO note (body) VALUES (?)", ("kept",))
        .await
        .expect("insert kept");
    let kept = a.last_insert_id().expect("an id");
    assert!(kept > discarded, "{kept} after {discarded}");
    let seen: Option<i64> = a
        .query_first("SELECT LAST_INSERT_ID()")
        .await
        .expect("LAST_INSERT_ID() is a read");
    assert_eq!(seen, Some(kept as i64));
    a.query_drop("SAVEPOINT s1").await.expect("savepoint");
    a.exec_drop("INSERT INTO note (body) VALUES (?)", ("undone",))
        .await
        .expect("insert undone");
    a.query_drop("ROLLBACK TO SAVEPOINT s1")
        .await
        .expect("to savepoint");
    // A duplicate inside the transaction fails and the transaction goes on.
    let e = a
        .exec_drop("INSERT INTO note (body) VALUES (?)", ("kept",))
        .await
        .expect_err("duplicate");
    assert_eq!(code(&e), Some(1062), "{e:?}");
    a.query_drop("COMMIT").await.expect("commit");
    a.query_drop("SET autocommit = 1")
        .await
        .expect("autocommit on");
    // An autocommit insert on another node after all that: every node gives it one id.
    b.exec_drop("INSERT INTO note (body) VALUES (?)", ("after",))
        .await
        .expect("insert after");
    let after = b.last_insert_id().expect("an id");
    assert!(after > kept);
    let kept_id = on_every_node(&c, "SELECT id FROM note WHERE body = 'kept'").await;
    assert_eq!(kept_id, vec![Some(kept as i64); 3]);
    assert_eq!(
        on_every_node(&c, "SELECT COUNT(*) FROM note").await,
        vec![Some(2); 3],
        "only the committed rows"
    );
    let sums = checksums(&c, &["counter", "note"]).await;
    assert!(sums.iter().all(|s| *s == sums[0]), "nodes differ: {sums:?}");

    // Reads that every node could not replay alike are fine until the transaction writes.
    a.query_drop("BEGIN").await.expect("begin");
    let _: Vec<i64> = a
        .query("SELECT id FROM note LIMIT 1")
        .await
        .expect("a read-only transaction may read anything");
    let e = a
        .query_drop("UPDATE counter SET n = n + 1 WHERE id = 1")
        .await
        .expect_err("write after an unreplayable read");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.message.contains("LIMIT")),
        "{e:?}"
    );
    a.query_drop("ROLLBACK").await.expect("rollback");
    // A schema change inside a transaction that wrote is refused; after it, it runs.
    a.query_drop("BEGIN").await.expect("begin");
    a.query_drop("UPDATE counter SET n = n + 1 WHERE id = 1")
        .await
        .expect("write");
    let e = a
        .query_drop("CREATE TABLE t2 (id INT PRIMARY KEY)")
        .await
        .expect_err("ddl in a transaction that wrote");
    assert_eq!(code(&e), Some(1179), "{e:?}");
    a.query_drop("ROLLBACK").await.expect("rollback");
    assert_eq!(
        on_every_node(&c, "SELECT n FROM counter WHERE id = 1").await,
        vec![Some(2); 3],
        "nothing of the rolled-back transactions"
    );
    // READ ONLY means read only.
    a.query_drop("START TRANSACTION READ ONLY")
        .await
        .expect("ro");
    let e = a
        .query_drop("UPDATE counter SET n = 0")
        .await
        .expect_err("write in read only");
    assert_eq!(code(&e), Some(1792), "{e:?}");
    a.query_drop("COMMIT").await.expect("commit ro");

    // COM_RESET_CONNECTION (what connection pools send) ends an open transaction with
    // nothing written; so does COM_CHANGE_USER once the user authenticated.
    a.query_drop("BEGIN").await.expect("begin");
    a.exec_drop("INSERT INTO note (body) VALUES (?)", ("reset",))
        .await
        .expect("insert");
    assert!(a.reset().await.expect("reset"), "COM_RESET_CONNECTION sent");
    a.query_drop("COMMIT")
        .await
        .expect("nothing open to commit");
    b.query_drop("BEGIN").await.expect("begin");
    b.exec_drop("INSERT INTO note (body) VALUES (?)", ("changed",))
        .await
        .expect("insert");
    let user = |pass: &str| {
        mysql_async::ChangeUserOpts::default()
            .with_user(Some(MYSQL_USER.0.to_string()))
            .with_pass(Some(pass.to_string()))
            .with_db_name(Some(DATABASE.to_string()))
    };
    let mut other = connect(&c, 2).await;
    other
        .change_user(user("not-the-password"))
        .await
        .expect_err("a wrong password is refused");
    b.change_user(user(MYSQL_USER.1))
        .await
        .expect("change user");
    b.query_drop("COMMIT")
        .await
        .expect("nothing open to commit");
    assert_eq!(
        on_every_node(
            &c,
            "SELECT COUNT(*) FROM note WHERE body IN ('reset', 'changed')"
        )
        .await,
        vec![Some(0); 3],
        "a reset transaction wrote something"
    );
    a.disconnect().await.expect("disconnect");
    b.disconnect().await.expect("disconnect");
}

/// Transfers `amount` from `from` to `to` in one transaction (the chaos bank client's),
/// retrying on 1213; returns (committed, conflicts). Refuses to overdraw.
async fn transfer(conn: &mut Conn, from: i64, to: i64, amount: i64) -> (bool, u32) {
    let mut conflicts = 0;
    for _ in 0..50 {
        match crate::chaos::bank::transfer(conn, from, to, amount).await {
            Ok(done) => return (done, conflicts),
            Err(e) if code(&e) == Some(1213) => {
                conflicts += 1;
                // A doomed transaction still needs its ROLLBACK.
                let _ = conn.query_drop("ROLLBACK").await;
            }
            Err(e) => panic!("transfer {from} -> {to}: {e:?}"),
        }
    }
    panic!("transfer {from} -> {to} conflicted 50 times in a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_txn_bank_transfers_on_every_node_keep_the_total() {
    const ACCOUNTS: i64 = 8;
    const START: i64 = 100;
    let c = cluster().await;
    let mut setup = connect(&c, 0).await;
    setup
        .query_drop(crate::chaos::bank::SCHEMA)
        .await
        .expect("create");
    for id in 0..ACCOUNTS {
        setup
            .exec_drop("INSERT INTO bank VALUES (?, ?)", (id, START))
            .await
            .expect("seed");
    }
    setup.disconnect().await.expect("disconnect");
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..6u64 {
        let opts = conn_opts(&c, (client % 3) as usize);
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::new(opts).await.expect("connect");
            let (mut committed, mut conflicts) = (0u32, 0u32);
            let mut x = client * 7 + 1;
            for _ in 0..25 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let from = ((x >> 33) % ACCOUNTS as u64) as i64;
                let to = (from + 1 + ((x >> 40) % (ACCOUNTS as u64 - 1)) as i64) % ACCOUNTS;
                let amount = ((x >> 50) % 30) as i64 + 1;
                let (done, c) = transfer(&mut conn, from, to, amount).await;
                committed += u32::from(done);
                conflicts += c;
            }
            conn.disconnect().await.expect("disconnect");
            (committed, conflicts)
        }));
    }
    let (mut committed, mut conflicts) = (0, 0);
    for c in clients {
        let (a, b) = c.await.expect("client");
        committed += a;
        conflicts += b;
    }
    tracing::info!(
        committed,
        conflicts,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "bank transfers"
    );
    assert!(committed > 0, "no transfer committed");
    assert_eq!(
        on_every_node(&c, "SELECT SUM(balance) FROM bank").await,
        vec![Some(ACCOUNTS * START); 3],
        "the total changed"
    );
    assert_eq!(
        on_every_node(&c, "SELECT COUNT(*) FROM bank WHERE balance < 0").await,
        vec![Some(0); 3],
        "an account was overdrawn"
    );
    let sums = checksums(&c, &["bank"]).await;
    assert!(sums.iter().all(|s| *s == sums[0]), "nodes differ: {sums:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_txn_sysbench_read_write_and_write_only_end_identical() {
    let c = cluster().await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let follower = c.other_than(leader);
    // 2,000 rows: each oltp_read_write transaction reads four ranges of 100 rows, and
    // every row it read is certified, so on a small table nearly every transaction would
    // conflict with one of the 15 others.
    sysbench_with(
        &c,
        follower,
        "oltp_read_write",
        "prepare",
        &["--table-size=2000"],
    )
    .await;
    for workload in ["oltp_read_write", "oltp_write_only"] {
        // sysbench retries a transaction that gets 1213 (it counts it as an ignored error).
        let report = sysbench_with(
            &c,
            follower,
            workload,
            "run",
            &[
                "--threads=16",
                "--time=5",
                "--table-size=2000",
                "--mysql-ignore-errors=1213",
            ],
        )
        .await;
        let done = sysbench_count(&report, "transactions:");
        let retried = sysbench_count(&report, "ignored errors:");
        tracing::info!(
            workload,
            transactions = done,
            conflicts = retried,
            conflict_rate = retried as f64 / (done + retried).max(1) as f64,
            "sysbench through the front end"
        );
        println!("{workload}: {done} transactions, {retried} retried after 1213");
        assert!(done > 0, "{workload}: no transaction done:\n{report}");
        assert_eq!(sysbench_count(&report, "reconnects:"), 0, "{report}");
    }
    c.wait_converged(Duration::from_secs(60)).await;
    let sums = checksums(&c, &["sbtest1"]).await;
    assert!(sums[0][0].1.is_some(), "{sums:?}");
    assert!(sums.iter().all(|s| *s == sums[0]), "nodes differ: {sums:?}");
    // sysbench's C client re-executes prepared statements without resending the types:
    // every value it bound arrived intact (sysbench writes 119-character `c` and
    // 59-character `pad` values and ids 1..=2000).
    assert_eq!(
        on_every_node(
            &c,
            "SELECT COUNT(*) FROM sbtest1 WHERE CHAR_LENGTH(c) <> 119 \
             OR CHAR_LENGTH(pad) <> 59 OR id NOT BETWEEN 1 AND 2000"
        )
        .await,
        vec![Some(0); 3],
        "rows with values that sysbench never sends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_txn_select_for_update_on_two_nodes_one_commits_the_other_retries() {
    let c = cluster().await;
    let mut a = connect(&c, 0).await;
    let mut b = connect(&c, 1).await;
    a.query_drop("CREATE TABLE stock (id INT PRIMARY KEY, qty INT NOT NULL)")
        .await
        .expect("create");
    a.query_drop("INSERT INTO stock VALUES (1, 10)")
        .await
        .expect("seed");
    c.wait_converged(Duration::from_secs(60)).await;

    // Both lock the row on their own node, then take from what they read.
    a.query_drop("BEGIN").await.expect("begin a");
    b.query_drop("BEGIN").await.expect("begin b");
    let qa: Option<i64> = a
        .query_first("SELECT qty FROM stock WHERE id = 1 FOR UPDATE")
        .await
        .expect("a locks");
    let qb: Option<i64> = b
        .exec_first("SELECT qty FROM stock WHERE id = ? FOR UPDATE", (1,))
        .await
        .expect("b locks");
    assert_eq!((qa, qb), (Some(10), Some(10)));
    a.exec_drop(
        "UPDATE stock SET qty = ? WHERE id = 1",
        (qa.unwrap_or(0) - 1,),
    )
    .await
    .expect("a takes 1");
    b.exec_drop(
        "UPDATE stock SET qty = ? WHERE id = 1",
        (qb.unwrap_or(0) - 3,),
    )
    .await
    .expect("b takes 3");
    a.query_drop("COMMIT").await.expect("a commits");
    let e = b.query_drop("COMMIT").await.expect_err("b must not commit");
    assert_eq!(code(&e), Some(1213), "{e:?}");
    if let mysql_async::Error::Server(s) = &e {
        assert_eq!(s.state, "40001", "{s:?}");
    }

    // b retries the whole transaction until it commits over a's value.
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 50, "b never committed");
        let _ = b.query_drop("ROLLBACK").await;
        b.query_drop("BEGIN").await.expect("retry");
        let q: Option<i64> = match b
            .query_first("SELECT qty FROM stock WHERE id = 1 FOR UPDATE")
            .await
        {
            Ok(q) => q,
            Err(e) if code(&e) == Some(1213) => continue,
            Err(e) => panic!("b's locking read: {e:?}"),
        };
        let wrote = b
            .exec_drop(
                "UPDATE stock SET qty = ? WHERE id = 1",
                (q.unwrap_or(0) - 3,),
            )
            .await;
        match wrote {
            Ok(()) => {}
            Err(e) if code(&e) == Some(1213) => continue,
            Err(e) => panic!("b's update: {e:?}"),
        }
        match b.query_drop("COMMIT").await {
            Ok(()) => {
                assert_eq!(q, Some(9), "b committed over a value it did not read");
                break;
            }
            Err(e) if code(&e) == Some(1213) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("b's retry: {e:?}"),
        }
    }
    tracing::info!(attempts, "b committed after retrying");
    assert_eq!(
        on_every_node(&c, "SELECT qty FROM stock WHERE id = 1").await,
        vec![Some(6); 3]
    );
    a.disconnect().await.expect("disconnect");
    b.disconnect().await.expect("disconnect");
}
