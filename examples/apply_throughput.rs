//! Prints entries/s applied by one MariaDB applier: single-row inserts handed to it in
//! batches of 1, 64 and 512 entries (as openraft hands a lagging follower committed
//! entries), against one private MariaDB started for the run in a temp dir (needs
//! `mariadb-install-db` and `mariadbd`: `apt-get install -y mariadb-server`). A benchmark
//! program, not a test: `cargo run --release --example apply_throughput [entries-per-run]`.

use mysql_async::prelude::Queryable;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};
use wolfscale::apply::{MariaDbApplier, Outcome};
use wolfscale::command::{self, Command, Ident, Value};
use wolfscale::config::DatabaseConfig;
use wolfscale::consensus::{Entry, Request};

fn entry(index: u64, e: &command::Entry) -> Entry {
    Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Normal(Request {
            payload: e.encode(),
        }),
    }
}

fn row(i: u64) -> Result<command::Entry, command::Error> {
    Ok(command::Entry {
        timestamp_us: 1_732_596_266_000_000 + i,
        ids: vec![],
        command: Command::Insert {
            table: Ident::table("bench")?,
            values: vec![
                (Ident::column("id")?, Value::UInt(i)),
                (Ident::column("name")?, Value::Text(format!("user-{i}"))),
                (Ident::column("score")?, Value::Int((i % 1000) as i64)),
            ],
        },
    })
}

/// A private `mariadbd`, killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> anyhow::Result<std::path::PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = std::path::Path::new(dir).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    anyhow::bail!("`{name}` not found: run `apt-get install -y mariadb-server`")
}

async fn start_server() -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let root = unsafe { libc::geteuid() } == 0;
    let mut install = Process::new(tool("mariadb-install-db")?);
    install
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if root {
        install.arg("--user=root");
    }
    anyhow::ensure!(install.status()?.success(), "mariadb-install-db failed");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut cmd = Process::new(tool("mariadbd")?);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.path().join("sock").display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!(
            "--log-error={}",
            dir.path().join("error.log").display()
        ))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg("--skip-log-bin")
        .arg("--skip-name-resolve")
        .arg("--innodb-flush-log-at-trx-commit=2")
        .arg("--innodb-buffer-pool-size=256M")
        .arg("--performance-schema=OFF")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if root {
        cmd.arg("--user=root");
    }
    let server = Server {
        child: cmd.spawn()?,
        port,
        _dir: dir,
    };
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("root"))
        .prefer_socket(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(conn) = mysql_async::Conn::new(opts.clone()).await {
            let _ = conn.disconnect().await;
            return Ok(server);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "mariadbd did not start within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let per_run: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let db = start_server().await?;
    let cfg = DatabaseConfig {
        host: "127.0.0.1".into(),
        port: db.port,
        user: "root".into(),
        password: None,
        password_file: None,
        database: "bench".into(),
        pool_size: 2,
        connect_timeout_ms: 5000,
    };
    let mut a = MariaDbApplier::connect(&cfg, None).await?;
    let mut next = 1u64;
    let create = command::Entry {
        timestamp_us: 1,
        ids: vec![],
        command: Command::Ddl {
            statement: "CREATE TABLE bench (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(64) NOT NULL, score INT NOT NULL, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB".into(),
        },
    };
    a.apply_entries(vec![entry(next, &create)]).await?;
    next += 1;
    println!("apply_throughput: single-row inserts, one applier, MariaDB with innodb_flush_log_at_trx_commit=2");
    for batch in [1u64, 64, 512] {
        // Fewer entries at batch 1: one commit each.
        let total = if batch == 1 { per_run / 4 } else { per_run };
        let started = Instant::now();
        let mut applied = 0u64;
        while applied < total {
            let n = batch.min(total - applied);
            let mut entries = Vec::with_capacity(n as usize);
            for i in next..next + n {
                entries.push(entry(i, &row(i)?));
            }
            let out = a.apply_entries(entries).await?;
            if let Some(bad) = out.iter().find(|o| !matches!(o, Outcome::Applied { .. })) {
                anyhow::bail!("entry not applied: {bad:?}");
            }
            next += n;
            applied += n;
        }
        let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
        println!(
            "batch {batch:>4}: {total:>6} entries in {:>6.2} s = {:>8.0} entries/s",
            secs,
            total as f64 / secs
        );
    }
    // The floor on this machine: the same inserts straight over one connection, 512 per
    // transaction, one round trip each (the applier adds `SET timestamp` per entry).
    let mut conn = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(db.port)
            .user(Some("root"))
            .db_name(Some("bench"))
            .prefer_socket(false),
    )
    .await?;
    conn.query_drop("CREATE TABLE bare LIKE bench").await?;
    let started = Instant::now();
    for chunk in 0..per_run / 512 {
        conn.query_drop("START TRANSACTION").await?;
        for i in chunk * 512..(chunk + 1) * 512 {
            conn.exec_drop(
                "INSERT INTO bare (id, name, score) VALUES (?, ?, ?)",
                (i, format!("user-{i}"), (i % 1000) as i64),
            )
            .await?;
        }
        conn.query_drop("COMMIT").await?;
    }
    let n = per_run / 512 * 512;
    let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
    println!(
        "bare MariaDB, 512 prepared inserts per transaction: {n} rows in {secs:.2} s = {:.0} rows/s",
        n as f64 / secs
    );
    conn.disconnect().await?;
    let s = a.status().snapshot();
    println!(
        "transactions committed: {}, retries: {}",
        s.batches, s.retries
    );
    a.close().await?;
    drop(db);
    Ok(())
}
