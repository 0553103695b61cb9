//! What the MySQL front end puts on the wire besides rows, checked with real clients
//! against what MariaDB itself sends: MariaDB's own error numbers (above 1885) with their
//! SQLSTATEs, the server status flags (autocommit, in transaction) of the greeting and of
//! every OK and EOF, and the columns' character sets, lengths and decimals.

use crate::proxy::{conn_opts, front_end, pymysql_python, text};
use crate::support::procs::{NodeConfig, ProcCluster, DATABASE, MYSQL_USER};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::Duration;

async fn one_node() -> ProcCluster {
    ProcCluster::start_with(
        1,
        &NodeConfig {
            mysql: true,
            ..NodeConfig::default()
        },
    )
    .await
}

fn server_error<T: std::fmt::Debug>(r: Result<T, mysql_async::Error>) -> mysql_async::ServerError {
    match r {
        Err(mysql_async::Error::Server(e)) => e,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_mariadb_error_numbers_and_sqlstates_reach_the_client() {
    let c = one_node().await;
    let mut conn = Conn::new(conn_opts(&c, 0)).await.expect("connect");
    conn.query_drop(
        "CREATE TABLE chk (id INT PRIMARY KEY, n INT NOT NULL, CONSTRAINT positive CHECK (n > 0))",
    )
    .await
    .expect("create");

    // A CHECK constraint (4025) through the log, as text and as a prepared statement.
    let e = server_error(conn.query_drop("INSERT INTO chk VALUES (1, 0)").await);
    assert_eq!((e.code, e.state.as_str()), (4025, "23000"), "{e:?}");
    assert!(e.message.contains("CONSTRAINT `positive` failed"), "{e:?}");
    let e = server_error(
        conn.exec_drop("INSERT INTO chk VALUES (?, ?)", (2, -1))
            .await,
    );
    assert_eq!((e.code, e.state.as_str()), (4025, "23000"), "{e:?}");
    // And inside a transaction, on its local connection; the transaction goes on.
    conn.query_drop("BEGIN").await.expect("begin");
    let e = server_error(conn.query_drop("INSERT INTO chk VALUES (3, -3)").await);
    assert_eq!((e.code, e.state.as_str()), (4025, "23000"), "{e:?}");
    conn.query_drop("INSERT INTO chk VALUES (3, 3)")
        .await
        .expect("a valid row");
    conn.query_drop("COMMIT").await.expect("commit");

    // A statement's own time limit (1969).
    let e = server_error(
        conn.query_drop("SET STATEMENT max_statement_time = 0.01 FOR SELECT SLEEP(1)")
            .await,
    );
    assert_eq!((e.code, e.state.as_str()), (1969, "70100"), "{e:?}");
    assert!(e.message.contains("max_statement_time exceeded"), "{e:?}");
    // Within the limit, the read answers; a limit on a write is refused, not ignored.
    let n: Option<i64> = conn
        .query_first("SET STATEMENT max_statement_time = 10 FOR SELECT COUNT(*) FROM chk")
        .await
        .expect("limited read");
    assert_eq!(n, Some(1));
    let e = server_error(
        conn.query_drop("SET STATEMENT max_statement_time = 1 FOR DELETE FROM chk")
            .await,
    );
    assert_eq!(e.code, 1235, "{e:?}");
    conn.disconnect().await.expect("disconnect");

    // The mariadb CLI prints what it got.
    for (sql, want) in [
        ("INSERT INTO chk VALUES (9, 0)", "ERROR 4025 (23000)"),
        (
            "SET STATEMENT max_statement_time=0.01 FOR SELECT SLEEP(1)",
            "ERROR 1969 (70100)",
        ),
    ] {
        let out = crate::proxy::mariadb_cli(&c, 0, &["-e", sql], "").await;
        let (_, stderr) = text(&out);
        assert!(stderr.contains(want), "{sql}: want {want:?}, got {stderr}");
    }
}

/// Prints, one per line, the server status bits (in transaction 1, autocommit 2, read-only
/// transaction 0x2000) PyMySQL holds after connecting and after each statement, then
/// whether a BLOB and a VARBINARY come back as bytes and a TEXT as str (PyMySQL decides by
/// the column's character set: 63 is binary).
const PYMYSQL_STATUS: &str = r#"
import sys, pymysql
host, port, user, password, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
password = password or ""
conn = pymysql.connect(host=host, port=port, user=user, password=password, database=db,
                       autocommit=None, charset="utf8mb4")
MASK = 0x0001 | 0x0002 | 0x2000
print("connect", conn.server_status & MASK)
cur = conn.cursor()
for sql in ["SELECT 1", "BEGIN", "SELECT id FROM wire", "INSERT INTO wire (id, b, vb, t) VALUES (2, 'x', 'y', 'z')",
            "ROLLBACK", "SET autocommit = 0", "SELECT COUNT(*) FROM wire", "COMMIT", "SET autocommit = 1",
            "START TRANSACTION READ ONLY", "SELECT 2", "COMMIT", "SELECT 3"]:
    cur.execute(sql)
    cur.fetchall()
    print(sql, conn.server_status & MASK)
cur.execute("SELECT b, vb, t FROM wire WHERE id = 1")
row = cur.fetchone()
print("types", type(row[0]).__name__, type(row[1]).__name__, type(row[2]).__name__)
conn.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_status_flags_and_column_metadata_match_mariadb() {
    let python = pymysql_python();
    let c = one_node().await;
    let mut conn = Conn::new(conn_opts(&c, 0)).await.expect("connect");
    conn.query_drop(
        "CREATE TABLE wire (id INT PRIMARY KEY, b BLOB, vb VARBINARY(10), t TEXT, \
         name VARCHAR(20), amount DECIMAL(8,3), seen DATETIME(3), f DOUBLE)",
    )
    .await
    .expect("create");
    conn.query_drop(
        "INSERT INTO wire VALUES (1, 'blob', 'vbin', 'text', 'name', 12.5, \
         '2024-01-02 03:04:05.678', 1.5)",
    )
    .await
    .expect("insert");
    conn.disconnect().await.expect("disconnect");
    c.wait_converged(Duration::from_secs(30)).await;

    let (host, port) = front_end(&c, 0);
    let db = &c.nodes[0].db;
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("status.py");
    std::fs::write(&script, PYMYSQL_STATUS).expect("write script");
    let run = |host: String, port: u16, user: &'static str, password: &'static str| {
        let python = python.clone();
        let script = script.clone();
        async move {
            let out = tokio::time::timeout(
                Duration::from_secs(60),
                tokio::process::Command::new(&python)
                    .arg(&script)
                    .args([&host, &port.to_string(), user, password, DATABASE])
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("PyMySQL finished within 60 s")
            .expect("run python");
            let (stdout, stderr) = text(&out);
            assert!(out.status.success(), "PyMySQL failed:\n{stderr}\n{stdout}");
            stdout
        }
    };
    let ours = run(host.clone(), port, MYSQL_USER.0, MYSQL_USER.1).await;
    let mariadb = run(db.host().to_string(), db.port(), "root", "").await;
    assert_eq!(
        ours, mariadb,
        "front end vs MariaDB (status after each statement)"
    );
    assert!(ours.contains("connect 2\n"), "{ours}");
    assert!(ours.contains("BEGIN 3\n"), "{ours}");
    assert!(ours.contains("SELECT 2 8195\n"), "{ours}");
    assert!(ours.contains("types bytes bytes str\n"), "{ours}");

    // The status of the OK that ends each result set (mysql_async asks for
    // CLIENT_DEPRECATE_EOF) and of each statement's OK, as MariaDB sets them.
    let ours = ok_statuses(conn_opts(&c, 0)).await;
    let mariadb = ok_statuses(db.opts().db_name(Some(DATABASE))).await;
    assert_eq!(ours, mariadb, "front end vs MariaDB (status of each OK)");
    assert!(
        ours.contains(&("SELECT id FROM wire".to_string(), 3)),
        "{ours:?}"
    );

    // The columns as the mariadb CLI describes them: type, character set, length,
    // decimals and flags as MariaDB's own.
    let describe = |host: String, port: u16, user: &'static str, password: &'static str| async move {
        use tokio::io::AsyncWriteExt;
        // The CLI prints column info for statements it reads, not for `-e`.
        let mut child = tokio::process::Command::new("mariadb")
            .args([
                "-h",
                &host,
                "-P",
                &port.to_string(),
                "--protocol=TCP",
                "--skip-ssl",
            ])
            .arg(format!("-u{user}"))
            // An empty `-p` would prompt for a password.
            .args((!password.is_empty()).then(|| format!("-p{password}")))
            .args([
                "--default-character-set=utf8mb4",
                "--column-type-info",
                "-t",
            ])
            .arg(DATABASE)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run mariadb");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(b"SELECT id, b, vb, t, name, amount, seen, f, 'lit' AS lit FROM wire;\n")
            .await
            .expect("write the query");
        drop(input);
        let out = child.wait_with_output().await.expect("mariadb output");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        stdout
            .lines()
            .filter(|l| {
                [
                    "Field",
                    "Type:",
                    "Collation:",
                    "Length:",
                    "Decimals:",
                    "Flags:",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let ours = describe(host, port, MYSQL_USER.0, MYSQL_USER.1).await;
    let mariadb = describe(db.host().to_string(), db.port(), "root", "").await;
    assert!(ours.iter().any(|l| l.contains("binary (63)")), "{ours:#?}");
    assert_eq!(ours, mariadb, "front end vs MariaDB (column definitions)");
}

/// The status bits (in transaction, autocommit, read-only transaction) of the last OK
/// packet after each statement of a fixed sequence.
async fn ok_statuses(opts: mysql_async::OptsBuilder) -> Vec<(String, u16)> {
    let mask = 0x0001 | 0x0002 | 0x2000;
    let mut conn = Conn::new(opts).await.expect("connect");
    let mut out = Vec::new();
    for sql in [
        "SELECT 1",
        "BEGIN",
        "SELECT id FROM wire",
        "COMMIT",
        "SET autocommit = 0",
        "SELECT id FROM wire",
        "ROLLBACK",
        "SET autocommit = 1",
        "START TRANSACTION READ ONLY",
        "SELECT id FROM wire",
        "COMMIT",
        "SELECT id FROM wire",
    ] {
        let _: Vec<mysql_async::Row> = conn.query(sql).await.expect(sql);
        let status = conn
            .last_ok_packet()
            .map_or(0xffff, |ok| ok.status_flags().bits() & mask);
        out.push((sql.to_string(), status));
    }
    conn.disconnect().await.expect("disconnect");
    out
}
