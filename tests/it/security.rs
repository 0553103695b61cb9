//! Security of one real node process on its own MariaDB (issue 13): roles of the API
//! tokens, a private data dir, no secret in the log, and reads that are bounded and
//! killed on MariaDB when abandoned.

use crate::support::mariadb::MariaDb;
use crate::support::process::{spawn_tied, Tied};
use crate::support::procs::{NodeConfig, NodeFiles};
use mysql_async::prelude::Queryable;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use wolfscale::api::client::{Client, WriteKind};
use wolfscale::api::QueryRequest;

const ADMIN: &str = "admin-token-7f3a9c1e5b";
const READER: &str = "read-token-2d8e6b4f0a";

/// One bootstrapped node process, killed when dropped.
struct OneNode {
    db: MariaDb,
    files: NodeFiles,
    data: PathBuf,
    log: PathBuf,
    child: Tied,
    _dir: TempDir,
}

impl OneNode {
    /// A node with the admin and read tokens, and `api.max_result_bytes` when given.
    async fn start(max_result_bytes: Option<u64>) -> OneNode {
        crate::support::init_tracing();
        let db = MariaDb::start().await.expect("start mariadb");
        let dir = tempfile::tempdir().expect("tempdir");
        let files = NodeConfig::with(move |c| {
            c.api.token = Some(ADMIN.into());
            c.api.read_token = Some(READER.into());
            if let Some(bytes) = max_result_bytes {
                c.api.max_result_bytes = bytes;
            }
        })
        .write(dir.path(), 1, &db);
        let log = dir.path().join("node-1.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
        cmd.args(["start", "--bootstrap", "-c"])
            .arg(&files.cfg)
            .env("WOLFSCALE_LOG", "debug,openraft=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = tokio::task::spawn_blocking(move || spawn_tied(cmd))
            .await
            .expect("spawn thread")
            .expect("spawn wolfscale");
        let node = OneNode {
            data: dir.path().join("data-1"),
            db,
            files,
            log,
            child,
            _dir: dir,
        };
        node.wait_writable().await;
        node
    }

    fn client(&self, token: &str) -> Client {
        Client::new(&self.files.api)
            .expect("api address")
            .with_token(token)
    }

    async fn wait_writable(&self) {
        let start = Instant::now();
        let c = self.client(ADMIN);
        loop {
            let ddl = r#"{"ddl": "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)"}"#;
            match c.write_raw(WriteKind::Ddl, ddl.to_string()).await {
                Ok(_) => return,
                Err(e) => assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "node not writable within 30 s: {e}\n{}",
                    self.log_text()
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Peak resident memory of the node process so far (`VmHWM`), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// How many statements containing `needle` MariaDB is running (this one excluded).
    async fn running(&self, needle: &str) -> u64 {
        let mut conn = self.db.conn().await.expect("connect to mariadb");
        conn.exec_first::<u64, _, _>(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE INFO LIKE CONCAT('%', ?, '%') AND ID <> CONNECTION_ID()",
            (needle,),
        )
        .await
        .expect("read the process list")
        .unwrap_or(0)
    }

    /// Waits until no statement containing `needle` runs; returns how long that took.
    async fn gone_within(&self, needle: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        while self.running(needle).await > 0 {
            assert!(
                start.elapsed() < limit,
                "`{needle}` still runs on MariaDB after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }
}

fn query(sql: &str, timeout_ms: u64) -> QueryRequest {
    QueryRequest {
        sql: sql.into(),
        params: Vec::new(),
        consistency: Default::default(),
        min_lsn: None,
        timeout_ms: Some(timeout_ms),
    }
}

/// Every directory under `dir` is 0700 and every file 0600 (no bit for group or others).
fn assert_private(dir: &Path) {
    let mode = std::fs::metadata(dir).expect("stat").permissions().mode();
    assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", dir.display());
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            assert_private(&path);
        } else {
            let mode = meta.permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:o}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_have_roles_files_are_private_and_the_log_holds_no_secret() {
    let node = OneNode::start(None).await;
    let admin = node.client(ADMIN);
    let reader = node.client(READER);
    let insert = r#"{"table": "t", "values": {"id": 1}}"#;

    let e = reader
        .write_raw(WriteKind::Insert, insert.to_string())
        .await
        .expect_err("the read-only token cannot write");
    assert_eq!(e.code(), Some("forbidden"), "{e}");
    let e = node
        .client("not-the-token")
        .write_raw(WriteKind::Insert, insert.to_string())
        .await
        .expect_err("a wrong token cannot write");
    assert_eq!(e.code(), Some("unauthorized"), "{e}");
    admin
        .write_raw(WriteKind::Insert, insert.to_string())
        .await
        .expect("the admin token writes");
    let rows = reader
        .query(&query("SELECT id FROM t", 5000))
        .await
        .expect("the read-only token reads");
    assert_eq!(rows.rows.len(), 1);
    reader
        .status()
        .await
        .expect("the read-only token sees /status");

    assert_private(&node.data);
    let log = node.log_text();
    for secret in [ADMIN, READER, "cluster-test-secret"] {
        assert!(!log.contains(secret), "the log holds a secret ({secret})");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_reads_are_killed_and_big_answers_are_refused() {
    let node = OneNode::start(Some(1_048_576)).await;
    let admin = node.client(ADMIN);
    let values: Vec<String> = (1..=1000).map(|i| format!("({i})")).collect();
    let batch = serde_json::json!({
        "statements": [{"sql": format!("INSERT INTO t (id) VALUES {}", values.join(","))}]
    });
    admin
        .write_raw(WriteKind::Sql, batch.to_string())
        .await
        .expect("insert 1000 rows");

    // A statement past its timeout: answered 504 and gone from MariaDB within a second.
    let started = Instant::now();
    let e = admin
        .query(&query("SELECT SLEEP(3600)", 500))
        .await
        .expect_err("SLEEP(3600) cannot finish in 500 ms");
    assert_eq!(e.code(), Some("timeout"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let took = node
        .gone_within("SLEEP(3600)", Duration::from_secs(1))
        .await;
    tracing::info!(
        ms = took.as_millis() as u64,
        "timed-out read gone from mariadb"
    );

    // A client that hangs up: its statement is killed although its timeout is far off.
    let client = admin.clone();
    let call =
        tokio::spawn(async move { client.query(&query("SELECT SLEEP(3599)", 60_000)).await });
    let start = Instant::now();
    while node.running("SLEEP(3599)").await == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the read never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    let took = node
        .gone_within("SLEEP(3599)", Duration::from_secs(2))
        .await;
    tracing::info!(
        ms = took.as_millis() as u64,
        "abandoned read gone from mariadb"
    );

    // Ten million rows against a 1 MiB cap: 413, killed, and the node's memory stays flat.
    let before = node.peak_rss_kib();
    let big = "SELECT a.id, b.id, c.id FROM t a, t b, t c LIMIT 10000000";
    let e = admin
        .query(&query(big, 60_000))
        .await
        .expect_err("ten million rows are over the cap");
    assert_eq!(e.code(), Some("too_large"), "{e}");
    assert!(e.to_string().contains("api.max_result_bytes"), "{e}");
    node.gone_within("FROM t a, t b, t c", Duration::from_secs(1))
        .await;
    let after = node.peak_rss_kib();
    tracing::info!(before_kib = before, after_kib = after, "node peak rss");
    assert!(
        after.saturating_sub(before) < 64 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );

    // The node still serves reads.
    let rows = admin
        .query(&query("SELECT COUNT(*) FROM t", 5000))
        .await
        .expect("count");
    assert_eq!(rows.rows.len(), 1);
}
