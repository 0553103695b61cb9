//! The MariaDB harness itself: private servers are independent, survive kill -9 and
//! restart with their data, bind the host asked for, and never outlive their handle.

use std::net::Ipv4Addr;
use std::time::Instant;

use anyhow::{ensure, Context};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::support::{self, process::pid_exists, MariaDb, Options};

const CREATE_TABLE: &str =
    "CREATE TABLE harness.t (id INT PRIMARY KEY, v VARCHAR(32) NOT NULL) ENGINE=InnoDB";

async fn rows(conn: &mut Conn) -> anyhow::Result<Vec<(i32, String)>> {
    Ok(conn
        .query("SELECT id, v FROM harness.t ORDER BY id")
        .await?)
}

async fn insert(
    conn: &mut Conn,
    ids: std::ops::RangeInclusive<i32>,
    tag: &str,
) -> anyhow::Result<()> {
    let rows: Vec<(i32, String)> = ids.map(|id| (id, format!("{tag}-{id}"))).collect();
    conn.exec_batch("INSERT INTO harness.t (id, v) VALUES (?, ?)", rows)
        .await?;
    Ok(())
}

#[tokio::test]
async fn two_private_servers_are_independent_and_keep_data_across_kill9() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut servers = MariaDb::start_many(2).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "two servers ready"
    );
    let (a, b) = match servers.as_mut_slice() {
        [a, b] => (a, b),
        _ => anyhow::bail!("start_many(2) returned {} servers", servers.len()),
    };
    for db in [&*a, &*b] {
        let t = db.timings();
        tracing::info!(
            port = db.port(),
            template_ms = t.template.as_millis(),
            copy_ms = t.copy.as_millis(),
            boot_ms = t.boot.as_millis(),
            "start-up"
        );
        ensure!(
            db.port() != 3306,
            "a private server took the machine's port 3306"
        );
        ensure!(
            db.url() == format!("mysql://root@127.0.0.1:{}/", db.port()),
            "url {}",
            db.url()
        );
    }
    ensure!(a.port() != b.port(), "both servers on port {}", a.port());
    ensure!(a.pid() != b.pid(), "both servers have pid {:?}", a.pid());

    // Each connection reaches its own server and datadir.
    for db in [&*a, &*b] {
        let mut conn = db.conn().await?;
        let (port, datadir): (u16, String) = conn
            .query_first("SELECT @@port, @@datadir")
            .await?
            .context("no row")?;
        ensure!(
            port == db.port(),
            "connected to port {port}, expected {}",
            db.port()
        );
        let expected = db.datadir();
        ensure!(
            std::path::Path::new(&datadir) == expected,
            "server uses datadir {datadir}, expected {}",
            expected.display()
        );
        db.create_database("harness").await?;
        conn.query_drop(CREATE_TABLE).await?;
        conn.disconnect().await?;
    }

    let mut conn_a = a.conn().await?;
    let mut conn_b = b.conn().await?;
    insert(&mut conn_a, 1..=100, "a").await?;
    ensure!(
        rows(&mut conn_a).await?.len() == 100,
        "a lacks its own rows"
    );
    ensure!(
        rows(&mut conn_b).await?.is_empty(),
        "a's rows leaked into b"
    );

    insert(&mut conn_b, 1..=3, "b").await?;
    let expected_b: Vec<(i32, String)> = (1..=3).map(|i| (i, format!("b-{i}"))).collect();
    ensure!(
        rows(&mut conn_b).await? == expected_b,
        "b reads back other rows"
    );
    let a_rows = rows(&mut conn_a).await?;
    ensure!(
        a_rows.len() == 100 && a_rows[0].1 == "a-1",
        "b's rows changed a"
    );
    conn_a.disconnect().await?;
    conn_b.disconnect().await?;

    // kill -9 loses no committed row, and the server comes back on the same port.
    let old_pid = a.pid().context("a not running")?;
    let port = a.port();
    a.kill9().await?;
    ensure!(a.pid().is_none(), "pid still set after kill9");
    ensure!(
        !pid_exists(old_pid),
        "pid {old_pid} still exists after kill9"
    );
    ensure!(a.conn().await.is_err(), "a accepts connections after kill9");
    a.restart().await?;
    ensure!(a.port() == port, "port changed across restart");
    ensure!(
        a.pid().is_some_and(|p| p != old_pid),
        "restart kept the old pid"
    );
    let mut conn_a = a.conn_to("harness").await?;
    let (count, sum): (u64, i64) = conn_a
        .query_first("SELECT COUNT(*), CAST(SUM(id) AS SIGNED) FROM t")
        .await?
        .context("no row")?;
    ensure!(
        (count, sum) == (100, 5050),
        "after kill9 and restart a has {count} rows, id sum {sum}"
    );
    conn_a.disconnect().await?;

    // A graceful stop, then a restart of a running server, keep data too.
    b.stop().await?;
    ensure!(b.conn().await.is_err(), "b accepts connections after stop");
    b.restart().await?;
    a.restart().await?;
    let pool = b.pool();
    let mut conn_b = pool.get_conn().await?;
    ensure!(
        rows(&mut conn_b).await? == expected_b,
        "b lost rows across stop and restart"
    );
    drop(conn_b);
    pool.disconnect().await?;

    let pids: Vec<u32> = servers.iter().filter_map(MariaDb::pid).collect();
    let dirs: Vec<_> = servers.iter().map(MariaDb::datadir).collect();
    ensure!(pids.len() == 2, "a server is not running before teardown");
    drop(servers);
    for pid in pids {
        ensure!(!pid_exists(pid), "mariadbd {pid} outlived its handle");
    }
    for dir in dirs {
        ensure!(!dir.exists(), "{} outlived its handle", dir.display());
    }
    Ok(())
}

#[tokio::test]
async fn servers_bind_distinct_loopback_hosts() -> anyhow::Result<()> {
    let hosts = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let servers = MariaDb::start_many_on(&hosts).await?;
    for (db, host) in servers.iter().zip(hosts) {
        ensure!(
            db.host() == host,
            "server on {}, asked for {host}",
            db.host()
        );
        ensure!(
            db.url() == format!("mysql://root@{host}:{}/", db.port()),
            "url {}",
            db.url()
        );
        let mut conn = db.conn().await?;
        let bound: String = conn
            .query_first("SELECT @@bind_address")
            .await?
            .context("no row")?;
        ensure!(
            bound == host.to_string(),
            "server bound {bound}, asked for {host}"
        );
        conn.disconnect().await?;
        // It listens on its own address only.
        let elsewhere = mysql_async::OptsBuilder::from_opts(db.opts()).ip_or_hostname("127.0.0.1");
        ensure!(
            Conn::new(elsewhere).await.is_err(),
            "server for {host} also answers on 127.0.0.1:{}",
            db.port()
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_panicking_test_leaves_no_server_behind() -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let first = MariaDb::start().await.expect("server on 127.0.0.1 starts");
        let second = MariaDb::start_on(Ipv4Addr::new(127, 0, 0, 4))
            .await
            .expect("server on 127.0.0.4 starts");
        let _ = tx.send([
            (first.pid(), first.datadir()),
            (second.pid(), second.datadir()),
        ]);
        panic!("deliberate panic with live servers");
    });
    let servers = rx.await.context("the task did not start its servers")?;
    let join = task.await;
    ensure!(
        join.as_ref().is_err_and(|e| e.is_panic()),
        "the task did not panic: {join:?}"
    );
    for (pid, datadir) in servers {
        let pid = pid.context("server has no pid")?;
        ensure!(!pid_exists(pid), "mariadbd {pid} outlived a panicking test");
        ensure!(
            !datadir.exists(),
            "{} outlived a panicking test",
            datadir.display()
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_failed_start_reports_the_server_error_log() -> anyhow::Result<()> {
    let options = Options {
        extra_args: vec!["--no-such-option-for-the-harness".into()],
        ..Options::default()
    };
    let err = match MariaDb::start_with(options).await {
        Ok(db) => anyhow::bail!("mariadbd started despite a bad flag (pid {:?})", db.pid()),
        Err(e) => e,
    };
    let message = err.to_string();
    ensure!(
        matches!(err, support::Error::Exited { .. }),
        "expected Exited, got {message}"
    );
    ensure!(
        message.contains("no-such-option-for-the-harness"),
        "the error does not quote the server's complaint: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_missing_mariadb_program_says_how_to_install_it() -> anyhow::Result<()> {
    let err = match support::datadir::find_tool("mariadbd-that-is-not-installed") {
        Ok(path) => anyhow::bail!("found {}", path.display()),
        Err(e) => e,
    };
    ensure!(
        err.to_string()
            .contains("apt-get install -y mariadb-server"),
        "message lacks the install command: {err}"
    );
    Ok(())
}

#[tokio::test]
async fn restart_waits_for_its_port_to_come_free() -> anyhow::Result<()> {
    let mut db = MariaDb::start().await?;
    db.kill9().await?;
    // Someone else holds the port for a while: restart retries instead of failing.
    let squatter = std::net::TcpListener::bind(db.addr())?;
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        drop(squatter);
    });
    db.restart().await?;
    release.await?;
    let mut conn = db.conn().await?;
    let port: Option<u16> = conn.query_first("SELECT @@port").await?;
    ensure!(
        port == Some(db.port()),
        "restarted on port {port:?}, expected {}",
        db.port()
    );
    conn.disconnect().await?;
    Ok(())
}
