//! The MySQL front end driven by real clients (the `mariadb` CLI, PyMySQL, mysql_async)
//! against a 3-node process cluster: what a client sees, and that every node ends with
//! the same data.

use crate::support::procs::{NodeConfig, ProcCluster, DATABASE, MYSQL_USER};
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

pub(crate) async fn cluster() -> ProcCluster {
    ProcCluster::start_with(
        3,
        &NodeConfig {
            mysql: true,
            ..NodeConfig::default()
        },
    )
    .await
}

/// `(host, port)` of node `i`'s front end.
pub(crate) fn front_end(c: &ProcCluster, i: usize) -> (String, u16) {
    let addr = c.nodes[i].mysql.as_deref().expect("node serves mysql");
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host.to_string(), port.parse().expect("port"))
}

/// Runs the `mariadb` CLI against node `i`'s front end with `args`, `stdin` as input.
pub(crate) async fn mariadb_cli(c: &ProcCluster, i: usize, args: &[&str], stdin: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let (host, port) = front_end(c, i);
    let mut child = tokio::process::Command::new("mariadb")
        .args(["-h", &host, "-P", &port.to_string(), "--protocol=TCP"])
        .arg(format!("-u{}", MYSQL_USER.0))
        .arg(format!("-p{}", MYSQL_USER.1))
        .args(["--batch", "--skip-ssl"])
        .args(args)
        .arg(DATABASE)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run mariadb (apt-get install -y mariadb-client)");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write script");
    drop(input);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("mariadb finished within 120 s")
        .expect("mariadb output")
}

pub(crate) fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `CHECKSUM TABLE` of `tables` on every node's own MariaDB.
pub(crate) async fn checksums(c: &ProcCluster, tables: &[&str]) -> Vec<Vec<(String, Option<u64>)>> {
    let mut all = Vec::new();
    for node in &c.nodes {
        let mut conn = node.db.conn_to(DATABASE).await.expect("connect to node db");
        let list = tables.join(", ");
        let rows: Vec<(String, Option<u64>)> = conn
            .query(format!("CHECKSUM TABLE {list}"))
            .await
            .expect("checksum");
        all.push(rows);
        conn.disconnect().await.expect("disconnect");
    }
    all
}

/// A `mariadb-dump --compact` file of a table made in a scratch database of node 1's
/// MariaDB (outside the replicated database, so the cluster does not see it).
async fn dump_file(c: &ProcCluster, dir: &Path) -> std::path::PathBuf {
    let db = &c.nodes[0].db;
    let mut conn = db.conn().await.expect("connect");
    conn.query_drop("CREATE DATABASE scratch")
        .await
        .expect("create scratch");
    conn.query_drop(
        "CREATE TABLE scratch.dumped (id INT PRIMARY KEY, label VARCHAR(20) NOT NULL, \
         amount DECIMAL(8,2), seen DATETIME)",
    )
    .await
    .expect("create");
    conn.query_drop(
        "INSERT INTO scratch.dumped VALUES (1, 'one', 1.25, '2024-01-01 10:00:00'), \
         (2, 'two''s', NULL, NULL), (3, 'three', -3.50, '2024-03-03 03:03:03')",
    )
    .await
    .expect("insert");
    conn.disconnect().await.expect("disconnect");
    let out = tokio::process::Command::new("mariadb-dump")
        .args(["-h", &db.host().to_string(), "-P", &db.port().to_string()])
        .args(["--protocol=TCP", "-uroot", "--skip-ssl", "--compact"])
        .args(["scratch", "dumped"])
        .output()
        .await
        .expect("run mariadb-dump");
    assert!(out.status.success(), "mariadb-dump: {}", text(&out).1);
    let path = dir.join("dump.sql");
    std::fs::write(&path, &out.stdout).expect("write dump");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mariadb_cli_script_reaches_every_node() {
    let c = cluster().await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let follower = c.other_than(leader);
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dump_file(&c, dir.path()).await;

    // Through a follower: every write is forwarded to the leader.
    let script = format!(
        "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL, \
           price DECIMAL(10,2), added DATE);\n\
         INSERT INTO items (name, price, added) VALUES ('apple', 1.50, '2024-01-02'), \
           ('pear', 2.25, '2024-02-03');\n\
         UPDATE items SET price = 3.00 WHERE name = 'pear';\n\
         DELETE FROM items WHERE name = 'apple';\n\
         INSERT INTO items (name) VALUES ('plum');\n\
         source {}\n\
         SHOW TABLES;\n\
         DESCRIBE items;\n\
         SELECT id, name, price, added FROM items ORDER BY id;\n\
         SELECT label, amount FROM dumped ORDER BY id;\n",
        dump.display()
    );
    let out = mariadb_cli(&c, follower, &["--skip-column-names"], &script).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "script failed: {stderr}\n{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    for want in [
        "dumped",
        "items",
        "id\tint(11)\tNO\tPRI\tNULL\tauto_increment",
        "name\tvarchar(50)\tNO\t\tNULL\t",
        "2\tpear\t3.00\t2024-02-03",
        "3\tplum\tNULL\tNULL",
        "one\t1.25",
        "two's\tNULL",
        "three\t-3.50",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{stdout}");
    }

    // Errors keep MariaDB's number and SQLSTATE; WolfScale's refusals say why.
    for (sql, want) in [
        (
            "INSERT INTO items (id, name) VALUES (2, 'dup')",
            "ERROR 1062 (23000)",
        ),
        ("SELECT * FROM nope", "ERROR 1146 (42S02)"),
        ("INSERT INTO items (name) VALUES (", "ERROR 1064 (42000)"),
        (
            "INSERT INTO items (name) VALUES (UUID())",
            "cannot be replicated",
        ),
        ("SET time_zone = '+05:00'", "ERROR 1235 (42000)"),
        (
            "SET sql_mode = ''; INSERT INTO items (name) VALUES ('mode')",
            "SET sql_mode = DEFAULT",
        ),
        ("LOCK TABLES items WRITE", "ERROR 1235 (42000)"),
        (
            "BEGIN; INSERT INTO items (name) VALUES ('txn'); CREATE TABLE t9 (id INT PRIMARY KEY)",
            "ERROR 1179 (25000)",
        ),
        ("USE mysql", "ERROR 1044 (42000)"),
    ] {
        let out = mariadb_cli(&c, follower, &["-e", sql], "").await;
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{sql} must fail");
        assert!(stderr.contains(want), "{sql}: want {want:?}, got {stderr}");
    }

    // Session statements drivers send answer sensibly; reads of a read-only transaction
    // work.
    let out = mariadb_cli(
        &c,
        leader,
        &["--skip-column-names"],
        "SET NAMES utf8mb4;\nSET autocommit=1;\nSELECT @@version_comment LIMIT 1;\n\
         SELECT DATABASE();\nSHOW VARIABLES LIKE 'max_allowed_packet';\n\
         START TRANSACTION READ ONLY;\nSELECT COUNT(*) FROM items;\nCOMMIT;\nSHOW WARNINGS;\n",
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "session script: {stderr}\n{stdout}");
    assert!(stdout.lines().any(|l| l == DATABASE), "{stdout}");
    assert!(stdout.lines().any(|l| l == "2"), "{stdout}");

    // Every node holds the same rows.
    c.wait_converged(Duration::from_secs(60)).await;
    let sums = checksums(&c, &["items", "dumped"]).await;
    assert!(sums[0].iter().all(|(_, s)| s.is_some()), "{sums:?}");
    assert!(sums.iter().all(|s| *s == sums[0]), "nodes differ: {sums:?}");
}

/// The PyMySQL venv `scripts/test.sh` makes.
pub(crate) fn pymysql_python() -> std::path::PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pymysql-venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/test.sh once (it installs PyMySQL into a venv)",
        python.display()
    );
    python
}

/// A CRUD script with bound parameters: PyMySQL interpolates them client-side into
/// COM_QUERY text, the way most Python applications talk to MariaDB.
const PYMYSQL_CRUD: &str = r#"
import sys, pymysql
host, port, user, password, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
conn = pymysql.connect(host=host, port=port, user=user, password=password, database=db,
                       autocommit=True, charset="utf8mb4")
cur = conn.cursor()
cur.execute("CREATE TABLE py (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL, "
            "qty INT NOT NULL, note TEXT, price DOUBLE)")
n = cur.execute("INSERT INTO py (name, qty, note, price) VALUES (%s, %s, %s, %s)",
                ("widget", 3, "it's \"quoted\"\n", 2.5))
assert n == 1 and cur.rowcount == 1, (n, cur.rowcount)
first = cur.lastrowid
assert first >= 1, first
cur.executemany("INSERT INTO py (name, qty, note, price) VALUES (%s, %s, %s, %s)",
                [("gadget", 5, None, 1.25), ("gizmo", 7, "é ☃", None)])
assert cur.rowcount == 2, cur.rowcount
n = cur.execute("UPDATE py SET qty = qty + %s WHERE qty >= %s", (10, 5))
assert n == 2 and cur.rowcount == 2, (n, cur.rowcount)
n = cur.execute("UPDATE py SET qty = qty WHERE id = %s", (first,))
assert n == 0, n
n = cur.execute("DELETE FROM py WHERE name = %s", ("gadget",))
assert n == 1, n
cur.execute("SELECT id, name, qty, note, price FROM py WHERE id >= %s ORDER BY id", (first,))
rows = cur.fetchall()
assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
    ("widget", 3, "it's \"quoted\"\n", 2.5), ("gizmo", 17, "é ☃", None)], rows
assert isinstance(rows[0][0], int) and isinstance(rows[0][2], int) and isinstance(rows[0][4], float), rows
try:
    cur.execute("INSERT INTO py (id, name, qty) VALUES (%s, %s, %s)", (first, "dup", 1))
    raise SystemExit("duplicate key accepted")
except pymysql.err.IntegrityError as e:
    assert e.args[0] == 1062, e.args
conn.close()
print("ok")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_drivers_crud_with_parameters() {
    let python = pymysql_python();
    let c = cluster().await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let follower = c.other_than(leader);
    let (host, port) = front_end(&c, follower);
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("crud.py");
    std::fs::write(&script, PYMYSQL_CRUD).expect("write script");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .arg(&script)
            .args([
                &host,
                &port.to_string(),
                MYSQL_USER.0,
                MYSQL_USER.1,
                DATABASE,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("PyMySQL script finished within 120 s")
    .expect("run python");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "PyMySQL CRUD failed:\n{stderr}\n{stdout}"
    );

    // mysql_async sends every statement with parameters as a server-side prepared
    // statement (COM_STMT_PREPARE / EXECUTE / CLOSE, binary protocol).
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(MYSQL_USER.0))
        .pass(Some(MYSQL_USER.1))
        .db_name(Some(DATABASE))
        .prefer_socket(false)
        .stmt_cache_size(0);
    // A wrong password or an unknown user does not get in.
    for (user, pass) in [(MYSQL_USER.0, "wrong"), ("nobody", MYSQL_USER.1)] {
        let bad = opts.clone().user(Some(user)).pass(Some(pass));
        match mysql_async::Conn::new(bad).await {
            Err(mysql_async::Error::Server(e)) => {
                assert!(e.message.contains("Authenticate failed"), "{user}: {e:?}")
            }
            other => panic!("{user}/{pass} must be refused, got {other:?}"),
        }
    }
    let mut conn = mysql_async::Conn::new(opts).await.expect("connect");
    conn.query_drop(
        "CREATE TABLE rs (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, k SMALLINT NOT NULL, \
         v VARBINARY(16), at DATETIME(6), d DATE, t TIME, f FLOAT, big BIGINT)",
    )
    .await
    .expect("create");
    conn.exec_drop(
        "INSERT INTO rs (k, v, at, d, t, f, big) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            -7i16,
            vec![0u8, 255, 10],
            mysql_async::Value::Date(2024, 5, 6, 7, 8, 9, 123_456),
            mysql_async::Value::Date(2024, 5, 6, 0, 0, 0, 0),
            mysql_async::Value::Time(true, 1, 2, 3, 4, 0),
            1.5f32,
            -9_000_000_000i64,
        ),
    )
    .await
    .expect("insert");
    assert_eq!(conn.affected_rows(), 1);
    let id = conn.last_insert_id().expect("an id");
    conn.exec_drop("INSERT INTO rs (k) VALUES (?), (?)", (1i16, 2i16))
        .await
        .expect("insert two");
    assert_eq!(conn.affected_rows(), 2);
    conn.exec_drop("UPDATE rs SET k = k + ? WHERE k > ?", (100i16, 0i16))
        .await
        .expect("update");
    assert_eq!(conn.affected_rows(), 2);
    // Read-your-writes on this connection: the rows are there at once, on a follower.
    let row: mysql_async::Row = conn
        .exec_first(
            "SELECT id, k, v, at, d, t, f, big FROM rs WHERE id = ?",
            (id,),
        )
        .await
        .expect("select")
        .expect("the row");
    let rid: u32 = row.get(0).expect("id");
    let k: i16 = row.get(1).expect("k");
    let v: Vec<u8> = row.get(2).expect("v");
    let at: mysql_async::Value = row.get(3).expect("at");
    let d: mysql_async::Value = row.get(4).expect("d");
    let t: mysql_async::Value = row.get(5).expect("t");
    let f: f32 = row.get(6).expect("f");
    let big: i64 = row.get(7).expect("big");
    assert_eq!(
        (rid, k, v, f, big),
        (id as u32, -7, vec![0, 255, 10], 1.5, -9_000_000_000)
    );
    assert_eq!(at, mysql_async::Value::Date(2024, 5, 6, 7, 8, 9, 123_456));
    assert_eq!(d, mysql_async::Value::Date(2024, 5, 6, 0, 0, 0, 0));
    assert_eq!(t, mysql_async::Value::Time(true, 1, 2, 3, 4, 0));
    let n: Option<i64> = conn
        .exec_first("SELECT COUNT(*) FROM rs WHERE k > ?", (100i16,))
        .await
        .expect("count");
    assert_eq!(n, Some(2));
    let err = conn
        .exec_drop("INSERT INTO rs (id, k) VALUES (?, ?)", (id, 1i16))
        .await
        .expect_err("duplicate");
    match err {
        mysql_async::Error::Server(e) => assert_eq!((e.code, e.state.as_str()), (1062, "23000")),
        other => panic!("{other:?}"),
    }
    conn.disconnect().await.expect("disconnect");

    c.wait_converged(Duration::from_secs(60)).await;
    let sums = checksums(&c, &["py", "rs"]).await;
    assert!(sums.iter().all(|s| *s == sums[0]), "nodes differ: {sums:?}");
}

pub(crate) fn conn_opts(c: &ProcCluster, i: usize) -> mysql_async::OptsBuilder {
    let (host, port) = front_end(c, i);
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(MYSQL_USER.0))
        .pass(Some(MYSQL_USER.1))
        .db_name(Some(DATABASE))
        .prefer_socket(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_leader_loss_answers_a_retryable_error_never_a_hang() {
    let mut c = cluster().await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let follower = c.other_than(leader);
    let mut conn = mysql_async::Conn::new(conn_opts(&c, follower))
        .await
        .expect("connect");
    conn.query_drop("CREATE TABLE k (id INT PRIMARY KEY, v INT NOT NULL)")
        .await
        .expect("create");
    conn.query_drop("INSERT INTO k VALUES (0, 0)")
        .await
        .expect("first insert");

    // Linearizable reads on request; a bad value is refused.
    conn.query_drop("SET @@wolfscale_consistency = 'linearizable'")
        .await
        .expect("set consistency");
    let n: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM k")
        .await
        .expect("read");
    assert_eq!(n, Some(1));
    let e = conn
        .query_drop("SET wolfscale_consistency = 'sometimes'")
        .await
        .expect_err("bad value");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 1231),
        "{e:?}"
    );
    conn.query_drop("SET wolfscale_consistency = none")
        .await
        .expect("back to none");

    c.nodes[leader].kill9().await;
    // Every write answers within a bound: applied, or an error the client can act on
    // (1213: nothing written, retry; 1105: outcome unknown). Then a new leader takes it.
    let started = std::time::Instant::now();
    let (mut retryable, mut applied) = (0, 0);
    for i in 1..=200 {
        let sent = std::time::Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            conn.query_drop(format!("INSERT INTO k VALUES ({i}, {i})")),
        )
        .await
        .unwrap_or_else(|_| panic!("insert {i} hung for 30 s"));
        match answer {
            Ok(()) => {
                applied += 1;
                if applied >= 3 {
                    break;
                }
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1213 => {
                assert_eq!(e.state, "40001", "{e:?}");
                retryable += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1105 => {
                assert!(e.message.contains("may or may not"), "{e:?}");
            }
            Err(other) => panic!("insert {i}: unexpected {other:?}"),
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "insert {i} took {:?}",
            sent.elapsed()
        );
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no write applied within 90 s of the leader's death"
        );
    }
    assert!(
        applied >= 3,
        "writes never resumed ({retryable} retryable errors)"
    );
    tracing::info!(retryable, applied, "writes resumed after the leader died");
    conn.disconnect().await.expect("disconnect");
}

/// Runs `sysbench <workload> <command>` against node `i`'s front end; returns its output.
async fn sysbench(c: &ProcCluster, i: usize, workload: &str, command: &str) -> String {
    sysbench_with(c, i, workload, command, &["--threads=4", "--time=3"]).await
}

/// [`sysbench`] with `extra` options (later ones win over the defaults). A `prepare` whose
/// write got WolfScale's "may or may not be applied" answer (a leader change while it was
/// in flight, which sysbench does not retry) is cleaned up and prepared again, as an
/// operator would; any other failure fails the test.
pub(crate) async fn sysbench_with(
    c: &ProcCluster,
    i: usize,
    workload: &str,
    command: &str,
    extra: &[&str],
) -> String {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (ok, stdout, stderr) = sysbench_once(c, i, workload, command, extra).await;
        if ok {
            return stdout;
        }
        let ambiguous = format!("{stdout}{stderr}").contains("may or may not be applied");
        assert!(
            command == "prepare" && ambiguous && attempts < 3,
            "sysbench {workload} {command} failed:\n{stderr}\n{stdout}"
        );
        tracing::warn!(
            workload,
            attempts,
            "sysbench prepare met a leader change; cleaning up and preparing again"
        );
        let (cleaned, out, err) = sysbench_once(c, i, workload, "cleanup", extra).await;
        assert!(cleaned, "sysbench {workload} cleanup failed:\n{err}\n{out}");
    }
}

/// Runs `sysbench <workload> <command>` once: whether it succeeded, its stdout and stderr.
async fn sysbench_once(
    c: &ProcCluster,
    i: usize,
    workload: &str,
    command: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let (host, port) = front_end(c, i);
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("sysbench")
            .arg(workload)
            .args([
                "--db-driver=mysql",
                &format!("--mysql-host={host}"),
                &format!("--mysql-port={port}"),
                &format!("--mysql-user={}", MYSQL_USER.0),
                &format!("--mysql-password={}", MYSQL_USER.1),
                &format!("--mysql-db={DATABASE}"),
                "--mysql-ssl=off",
                "--tables=1",
                "--table-size=200",
                "--events=0",
            ])
            .args(extra)
            .arg(command)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("sysbench {workload} {command} finished within 300 s"))
    .expect("run sysbench (apt-get install -y sysbench)");
    let (stdout, stderr) = text(&out);
    (out.status.success(), stdout, stderr)
}

/// The count sysbench reports on its `label:` line, e.g. `ignored errors:`.
pub(crate) fn sysbench_count(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in:\n{report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_sysbench_and_mariadb_dump_through_the_front_end() {
    let c = cluster().await;
    let leader = c.leader(Duration::from_secs(30)).await;
    let follower = c.other_than(leader);
    sysbench(&c, follower, "oltp_insert", "prepare").await;
    for workload in [
        "oltp_point_select",
        "oltp_read_only",
        "oltp_update_non_index",
        "oltp_insert",
    ] {
        let report = sysbench(&c, follower, workload, "run").await;
        let done = sysbench_count(&report, "transactions:");
        tracing::info!(workload, transactions = done, "sysbench run");
        assert!(done > 0, "{workload}: no transaction done:\n{report}");
        assert_eq!(
            sysbench_count(&report, "ignored errors:"),
            0,
            "{workload}:\n{report}"
        );
        assert_eq!(
            sysbench_count(&report, "reconnects:"),
            0,
            "{workload}:\n{report}"
        );
    }
    c.wait_converged(Duration::from_secs(60)).await;
    let sums = checksums(&c, &["sbtest1"]).await;
    assert!(sums[0][0].1.is_some(), "{sums:?}");
    assert!(sums.iter().all(|s| *s == sums[0]), "nodes differ: {sums:?}");

    // A logical backup of the replicated database through the front end.
    let (host, port) = front_end(&c, follower);
    let out = tokio::process::Command::new("mariadb-dump")
        .args([
            "-h",
            &host,
            "-P",
            &port.to_string(),
            "--protocol=TCP",
            "--skip-ssl",
        ])
        .arg(format!("-u{}", MYSQL_USER.0))
        .arg(format!("-p{}", MYSQL_USER.1))
        .args(["--single-transaction", "--skip-tz-utc", "--no-tablespaces"])
        .args([DATABASE, "sbtest1"])
        .output()
        .await
        .expect("run mariadb-dump");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "mariadb-dump failed: {stderr}");
    assert!(stdout.contains("CREATE TABLE `sbtest1`"), "{stdout:.2000}");
    // Every row is in the dump: extended INSERTs hold `(…),(…)` tuples.
    let inserts = stdout.matches("INSERT INTO `sbtest1` VALUES").count();
    let dumped = inserts + stdout.matches("),(").count() + stdout.matches("),\n(").count();
    let mut conn = c.nodes[follower]
        .db
        .conn_to(DATABASE)
        .await
        .expect("connect");
    let rows: Option<usize> = conn
        .query_first("SELECT COUNT(*) FROM sbtest1")
        .await
        .expect("count");
    conn.disconnect().await.expect("disconnect");
    assert!(inserts > 0, "{stdout:.2000}");
    assert_eq!(Some(dumped), rows, "rows in the dump vs the table");
}

/// Statements running on node `i`'s MariaDB whose text starts with `prefix`.
pub(crate) async fn running(c: &ProcCluster, i: usize, prefix: &str) -> i64 {
    let mut conn = c.nodes[i].db.conn().await.expect("connect");
    let n: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ?",
            (format!("{prefix}%"),),
        )
        .await
        .expect("processlist");
    conn.disconnect().await.expect("disconnect");
    n.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_client_disconnect_stops_its_read() {
    let c = cluster().await;
    let (host, port) = front_end(&c, 1);
    let mut cli = tokio::process::Command::new("mariadb")
        .args([
            "-h",
            &host,
            "-P",
            &port.to_string(),
            "--protocol=TCP",
            "--skip-ssl",
        ])
        .arg(format!("-u{}", MYSQL_USER.0))
        .arg(format!("-p{}", MYSQL_USER.1))
        .args(["-e", "SELECT SLEEP(25)", DATABASE])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run mariadb");
    let started = std::time::Instant::now();
    while running(&c, 1, "SELECT SLEEP(25)").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the read never started on MariaDB"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cli.kill().await.expect("kill the client");
    let gone = std::time::Instant::now();
    while running(&c, 1, "SELECT SLEEP(25)").await > 0 {
        assert!(
            gone.elapsed() < Duration::from_secs(15),
            "the read kept running after its client disconnected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
