//! `KILL QUERY` and `KILL CONNECTION` through the MySQL front end, with real clients
//! (mysql_async and the `mariadb` CLI's Ctrl-C): the connection id the handshake sends is
//! what `CONNECTION_ID()` answers and what `KILL` takes; a killed read stops on MariaDB and
//! its client gets 1317; a killed connection ends with its transaction rolled back.

use crate::proxy::{conn_opts, front_end, running, text};
use crate::support::procs::{NodeConfig, ProcCluster, DATABASE, MYSQL_USER};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::config::ProxyUser;

/// A second front-end account: it may not kill the first one's connections.
const OTHER_USER: (&str, &str) = ("other", "other-secret");

/// One node serving the front end to [`MYSQL_USER`] and [`OTHER_USER`].
async fn one_node() -> ProcCluster {
    ProcCluster::start_with(
        1,
        &NodeConfig {
            mysql: true,
            tweak: Some(Arc::new(|c: &mut wolfscale::config::Config| {
                c.proxy.users.push(ProxyUser {
                    name: OTHER_USER.0.into(),
                    password: Some(OTHER_USER.1.into()),
                    password_sha1: None,
                });
            })),
            ..NodeConfig::default()
        },
    )
    .await
}

async fn connect(c: &ProcCluster) -> Conn {
    Conn::new(conn_opts(c, 0)).await.expect("connect")
}

/// `(code, SQLSTATE)` of a server error.
fn server_error<T: std::fmt::Debug>(r: Result<T, mysql_async::Error>) -> (u16, String) {
    match r {
        Err(mysql_async::Error::Server(e)) => (e.code, e.state),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// Waits until `prefix` runs on the node's MariaDB.
async fn until_running(c: &ProcCluster, prefix: &str) {
    let started = Instant::now();
    while running(c, 0, prefix).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "`{prefix}` never started on MariaDB"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `prefix` no longer runs on the node's MariaDB (at most 5 s).
async fn until_stopped(c: &ProcCluster, prefix: &str) {
    let started = Instant::now();
    while running(c, 0, prefix).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "`{prefix}` still runs on MariaDB after it was killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `sql` on `conn` in a task: the caller kills it meanwhile.
fn in_background(
    mut conn: Conn,
    sql: &'static str,
) -> tokio::task::JoinHandle<(Conn, Result<(), mysql_async::Error>, Instant)> {
    tokio::spawn(async move {
        let r = conn.query_drop(sql).await;
        (conn, r, Instant::now())
    })
}

async fn rows_on_mariadb(c: &ProcCluster, sql: &str) -> Option<i64> {
    let mut conn = c.nodes[0].db.conn_to(DATABASE).await.expect("connect");
    let n = conn.query_first(sql).await.expect("query");
    conn.disconnect().await.expect("disconnect");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_kill_query_stops_the_statement_and_the_connection_goes_on() {
    let c = one_node().await;
    let a = connect(&c).await;
    let mut b = connect(&c).await;
    let mut a = a;
    // CONNECTION_ID() is the id the handshake sent (what the mariadb CLI's Ctrl-C kills).
    let id: Option<u32> = a.query_first("SELECT CONNECTION_ID()").await.expect("id");
    assert_eq!(id, Some(a.id()));
    let id_b: Option<u32> = b
        .exec_first("SELECT CONNECTION_ID()", ())
        .await
        .expect("id");
    assert_eq!(id_b, Some(b.id()));
    assert_ne!(a.id(), b.id());
    a.query_drop("CREATE TABLE kq (id INT PRIMARY KEY)")
        .await
        .expect("create");

    // A read outside a transaction: stopped on MariaDB, 1317 at once.
    let sleeper = in_background(a, "SELECT SLEEP(30)");
    until_running(&c, "SELECT SLEEP(30)").await;
    let sent = Instant::now();
    b.query_drop(format!("KILL QUERY {}", id.unwrap_or(0)))
        .await
        .expect("KILL QUERY");
    let (mut a, r, ended) = sleeper.await.expect("sleeper");
    assert_eq!(server_error(r), (1317, "70100".to_string()));
    assert!(
        ended - sent < Duration::from_secs(1),
        "the client waited {:?} for its error",
        ended - sent
    );
    until_stopped(&c, "SELECT SLEEP(30)").await;
    let one: Option<i64> = a.query_first("SELECT 1").await.expect("a goes on");
    assert_eq!(one, Some(1));

    // A statement of a transaction: stopped on the transaction's own MariaDB connection;
    // the transaction goes on.
    a.query_drop("BEGIN").await.expect("begin");
    let sleeper = in_background(a, "SELECT SLEEP(31)");
    until_running(&c, "SELECT SLEEP(31)").await;
    let sent = Instant::now();
    b.query_drop(format!("KILL QUERY {}", id.unwrap_or(0)))
        .await
        .expect("KILL QUERY");
    let (mut a, r, ended) = sleeper.await.expect("sleeper");
    assert_eq!(server_error(r), (1317, "70100".to_string()));
    assert!(ended - sent < Duration::from_secs(1), "{:?}", ended - sent);
    until_stopped(&c, "SELECT SLEEP(31)").await;
    let n: Option<i64> = a
        .query_first("SELECT COUNT(*) FROM kq")
        .await
        .expect("the transaction goes on");
    assert_eq!(n, Some(0));
    // Its own time limit stops a statement the same way, with 1969.
    let limited = Instant::now();
    let r = a
        .query_drop("SET STATEMENT max_statement_time = 0.5 FOR SELECT SLEEP(32)")
        .await;
    assert_eq!(server_error(r), (1969, "70100".to_string()));
    assert!(limited.elapsed() < Duration::from_secs(3));
    until_stopped(&c, "SELECT SLEEP(32)").await;
    a.query_drop("COMMIT").await.expect("commit");

    // A write of a transaction waiting for a row lock (held by a session on the node's
    // MariaDB): killed, undone, and not replayed at COMMIT; the rest of the transaction
    // commits.
    a.query_drop("INSERT INTO kq VALUES (1)")
        .await
        .expect("seed");
    c.wait_converged(Duration::from_secs(30)).await;
    let mut holder = c.nodes[0].db.conn_to(DATABASE).await.expect("connect");
    holder.query_drop("BEGIN").await.expect("begin");
    holder
        .query_drop("SELECT id FROM kq WHERE id = 1 FOR UPDATE")
        .await
        .expect("lock the row");
    a.query_drop("BEGIN").await.expect("begin");
    a.query_drop("INSERT INTO kq VALUES (5)")
        .await
        .expect("insert");
    let waiter = in_background(a, "UPDATE kq SET id = 2 WHERE id = 1");
    until_running(&c, "UPDATE kq SET id = 2").await;
    b.query_drop(format!("KILL QUERY {}", id.unwrap_or(0)))
        .await
        .expect("KILL QUERY");
    let (mut a, r, _) = waiter.await.expect("waiter");
    assert_eq!(server_error(r), (1317, "70100".to_string()));
    until_stopped(&c, "UPDATE kq SET id = 2").await;
    holder.query_drop("ROLLBACK").await.expect("release");
    holder.disconnect().await.expect("disconnect");
    a.query_drop("COMMIT").await.expect("commit");
    c.wait_converged(Duration::from_secs(30)).await;
    assert_eq!(
        rows_on_mariadb(&c, "SELECT SUM(id) FROM kq").await,
        Some(6),
        "ids 1 and 5 (the killed update was not replayed)"
    );

    // Wrong ids and users, and a connection's own id, answer as MariaDB does.
    assert_eq!(
        server_error(b.query_drop("KILL QUERY 999999").await),
        (1094, "HY000".to_string())
    );
    let mut other = Conn::new(
        conn_opts(&c, 0)
            .user(Some(OTHER_USER.0))
            .pass(Some(OTHER_USER.1)),
    )
    .await
    .expect("other user");
    let r = other.query_drop(format!("KILL {}", id.unwrap_or(0))).await;
    assert_eq!(server_error(r), (1095, "HY000".to_string()));
    let r = b.query_drop(format!("KILL QUERY {}", b.id())).await;
    assert_eq!(server_error(r), (1317, "70100".to_string()));
    let r = b.query_drop("KILL QUERY ID 5").await;
    assert_eq!(server_error(r).0, 1235);
    let one: Option<i64> = b.query_first("SELECT 1").await.expect("b goes on");
    assert_eq!(one, Some(1));
    let r = other.query_drop(format!("KILL {}", other.id())).await;
    assert_eq!(server_error(r), (1927, "70100".to_string()));
    assert!(
        other.query_drop("SELECT 1").await.is_err(),
        "a connection that killed itself must be closed"
    );
    a.disconnect().await.expect("disconnect");
    b.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_kill_connection_closes_it_and_rolls_its_transaction_back() {
    let c = one_node().await;
    let mut a = connect(&c).await;
    let mut b = connect(&c).await;
    let id = a.id();
    a.query_drop("CREATE TABLE kc (id INT PRIMARY KEY)")
        .await
        .expect("create");
    a.query_drop("INSERT INTO kc VALUES (10)")
        .await
        .expect("seed");
    c.wait_converged(Duration::from_secs(30)).await;
    // A session on the node's MariaDB holds row 10: a's update waits for it.
    let mut holder = c.nodes[0].db.conn_to(DATABASE).await.expect("connect");
    holder.query_drop("BEGIN").await.expect("begin");
    holder
        .query_drop("SELECT id FROM kc WHERE id = 10 FOR UPDATE")
        .await
        .expect("lock the row");
    a.query_drop("BEGIN").await.expect("begin");
    a.query_drop("INSERT INTO kc VALUES (1)")
        .await
        .expect("insert");
    let waiter = in_background(a, "UPDATE kc SET id = 11 WHERE id = 10");
    until_running(&c, "UPDATE kc SET id = 11").await;
    let sent = Instant::now();
    b.query_drop(format!("KILL CONNECTION {id}"))
        .await
        .expect("KILL CONNECTION");
    let (mut a, r, ended) = waiter.await.expect("waiter");
    assert!(
        !matches!(r, Ok(()) | Err(mysql_async::Error::Server(_))),
        "a killed connection is closed, not answered: {r:?}"
    );
    assert!(ended - sent < Duration::from_secs(2), "{:?}", ended - sent);
    until_stopped(&c, "UPDATE kc SET id = 11").await;
    holder.query_drop("ROLLBACK").await.expect("release");
    holder.disconnect().await.expect("disconnect");
    assert!(a.query_drop("SELECT 1").await.is_err(), "a is closed");
    // It is gone: a second kill finds nothing.
    let r = b.query_drop(format!("KILL {id}")).await;
    assert_eq!(server_error(r), (1094, "HY000".to_string()));
    // Its transaction was rolled back: nothing reached the log.
    b.query_drop("INSERT INTO kc VALUES (2)")
        .await
        .expect("a later write");
    c.wait_converged(Duration::from_secs(30)).await;
    assert_eq!(
        rows_on_mariadb(&c, "SELECT COUNT(*) FROM kc WHERE id = 1").await,
        Some(0)
    );

    // The mariadb CLI's Ctrl-C: it connects again and sends KILL QUERY <its connection
    // id>; the query stops, the CLI reports 1317.
    let (host, port) = front_end(&c, 0);
    let cli = tokio::process::Command::new("mariadb")
        .args(["-h", &host, "-P", &port.to_string(), "--protocol=TCP"])
        .arg(format!("-u{}", MYSQL_USER.0))
        .arg(format!("-p{}", MYSQL_USER.1))
        .args(["--skip-ssl", "-e", "SELECT SLEEP(34)", DATABASE])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run mariadb (apt-get install -y mariadb-client)");
    until_running(&c, "SELECT SLEEP(34)").await;
    let pid = cli.id().expect("cli pid");
    let sent = Instant::now();
    let signalled = tokio::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await
        .expect("kill -INT");
    assert!(signalled.success());
    let out = tokio::time::timeout(Duration::from_secs(10), cli.wait_with_output())
        .await
        .expect("the CLI ended after Ctrl-C")
        .expect("cli output");
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains("query killed") && stderr.contains("ERROR 1317 (70100)"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    until_stopped(&c, "SELECT SLEEP(34)").await;
    b.disconnect().await.expect("disconnect");
}
