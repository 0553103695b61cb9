//! `wolfscale-bench snapshot`: state-transfer throughput (taking a snapshot of a database
//! and loading it into another server) beside `mariadb-dump | mariadb` of the same
//! database, in the same run, on servers the caller runs. Both copies are checked with
//! `CHECKSUM TABLE` against the source.

use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use wolfscale::apply::MariaDbApplier;
use wolfscale::config::DatabaseConfig;
use wolfscale::consensus::state_machine::Applier;
use wolfscale::snapshot::Snapshots;

const SRC: &str = "wsbench_src";
const DST: &str = "wsbench_snap";
const DUMP: &str = "wsbench_dump";
const TABLES: [&str; 3] = ["items", "blobs", "docs"];

/// Where the benchmark runs.
pub struct Args {
    /// Source server host:port.
    pub source: String,
    /// Target server host:port.
    pub target: String,
    /// Account (with rights to create and drop the wsbench_* databases).
    pub user: String,
    /// Approximate size of the generated database, MiB.
    pub mb: u64,
    /// Directory for the snapshot files.
    pub dir: std::path::PathBuf,
}

fn split(addr: &str) -> anyhow::Result<(String, u16)> {
    let (h, p) = addr
        .rsplit_once(':')
        .with_context(|| format!("{addr}: expected host:port"))?;
    Ok((h.to_string(), p.parse().context("port")?))
}

fn db_config(addr: &str, user: &str, database: &str) -> anyhow::Result<DatabaseConfig> {
    let (host, port) = split(addr)?;
    Ok(DatabaseConfig {
        host,
        port,
        user: user.to_string(),
        password: None,
        password_file: None,
        database: database.to_string(),
        pool_size: 4,
        connect_timeout_ms: 10_000,
        galera: Default::default(),
    })
}

async fn conn(addr: &str, user: &str) -> anyhow::Result<mysql_async::Conn> {
    let (host, port) = split(addr)?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user.to_string()))
        .prefer_socket(false);
    Ok(mysql_async::Conn::new(opts).await?)
}

/// Creates the source database: three tables (secondary indexes, text, random binary,
/// decimals, dates, JSON) filled to about `mb` MiB with the server's sequence engine.
async fn generate(c: &mut mysql_async::Conn, mb: u64) -> anyhow::Result<u64> {
    for db in [SRC] {
        c.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
            .await?;
        c.query_drop(format!("CREATE DATABASE {db}")).await?;
    }
    c.query_drop(format!("USE {SRC}")).await?;
    c.query_drop(
        "CREATE TABLE items (id BIGINT PRIMARY KEY, k INT NOT NULL, name VARCHAR(64), \
         price DECIMAL(12,2), at DATETIME(6), INDEX by_k (k)) ENGINE=InnoDB",
    )
    .await?;
    c.query_drop(
        "CREATE TABLE blobs (id BIGINT PRIMARY KEY, owner BIGINT, data VARBINARY(2048), \
         INDEX by_owner (owner)) ENGINE=InnoDB",
    )
    .await?;
    c.query_drop("CREATE TABLE docs (id BIGINT PRIMARY KEY, doc JSON, score DOUBLE) ENGINE=InnoDB")
        .await?;
    // Per group of rows: ~120 B in items, ~1 KiB in blobs, ~200 B in docs.
    let groups = (mb * 1024 * 1024 / 1400).max(1000);
    let step = 100_000u64;
    let mut from = 1;
    while from <= groups {
        let to = (from + step - 1).min(groups);
        c.query_drop(format!(
            "INSERT INTO items SELECT seq, seq % 5000, CONCAT('item ', MD5(seq)), \
             (seq % 100000) / 100, '2024-01-01' + INTERVAL seq SECOND FROM seq_{from}_to_{to}"
        ))
        .await?;
        c.query_drop(format!(
            "INSERT INTO blobs SELECT seq, seq % 997, RANDOM_BYTES(1024) FROM seq_{from}_to_{to}"
        ))
        .await?;
        c.query_drop(format!(
            "INSERT INTO docs SELECT seq, JSON_OBJECT('id', seq, 'tag', MD5(seq), 'n', seq * 3), \
             seq / 7 FROM seq_{from}_to_{to}"
        ))
        .await?;
        from = to + 1;
    }
    Ok(groups * 3)
}

async fn checksums(c: &mut mysql_async::Conn, db: &str) -> anyhow::Result<Vec<Option<i64>>> {
    let mut out = Vec::new();
    for t in TABLES {
        let row: Option<(String, Option<i64>)> =
            c.query_first(format!("CHECKSUM TABLE {db}.{t}")).await?;
        out.push(row.and_then(|r| r.1));
    }
    Ok(out)
}

fn dump_and_load(a: &Args) -> anyhow::Result<()> {
    let (sh, sp) = split(&a.source)?;
    let (th, tp) = split(&a.target)?;
    let status = Command::new("mariadb")
        .args(["-h", &th, "-P", &tp.to_string(), "-u", &a.user, "-e"])
        .arg(format!(
            "DROP DATABASE IF EXISTS {DUMP}; CREATE DATABASE {DUMP}"
        ))
        .status()
        .context("running mariadb")?;
    if !status.success() {
        bail!("mariadb could not create {DUMP}");
    }
    let mut dump = Command::new("mariadb-dump")
        .args(["-h", &sh, "-P", &sp.to_string(), "-u", &a.user])
        .args(["--single-transaction", "--hex-blob", SRC])
        .stdout(Stdio::piped())
        .spawn()
        .context("running mariadb-dump")?;
    let pipe = dump.stdout.take().context("dump output")?;
    let load = Command::new("mariadb")
        .args(["-h", &th, "-P", &tp.to_string(), "-u", &a.user, DUMP])
        .stdin(pipe)
        .status()
        .context("running mariadb")?;
    let dumped = dump.wait()?;
    if !dumped.success() || !load.success() {
        bail!("mariadb-dump | mariadb failed ({dumped}, {load})");
    }
    Ok(())
}

fn rate(bytes: u64, rows: u64, secs: f64) -> String {
    format!(
        "{:8.1} s  {:7.1} MB/s  {:9.0} rows/s",
        secs,
        bytes as f64 / 1e6 / secs,
        rows as f64 / secs
    )
}

/// Runs the benchmark and prints the figures.
///
/// # Errors
/// A server is unreachable, a tool is missing, or a copy differs from the source.
pub fn run(a: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut src = conn(&a.source, &a.user).await?;
        let mut dst = conn(&a.target, &a.user).await?;
        println!("generating about {} MiB in {SRC} on {}", a.mb, a.source);
        let t = Instant::now();
        let rows = generate(&mut src, a.mb).await?;
        let size: Option<(u64,)> = src
            .query_first(format!(
                "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = '{SRC}'"
            ))
            .await?;
        let bytes = size.map_or(0, |s| s.0);
        println!(
            "source: {rows} rows in 3 tables, {:.1} MB on disk (generated in {:.1} s)",
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        let want = checksums(&mut src, SRC).await?;

        // WolfScale: the applier's position table, a snapshot, and a load elsewhere.
        let mut source =
            MariaDbApplier::connect(&db_config(&a.source, &a.user, SRC)?, None).await?;
        source
            .apply_entries(vec![wolfscale::consensus::Entry {
                log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), 1),
                payload: openraft::EntryPayload::Blank,
            }])
            .await?;
        dst.query_drop(format!("DROP DATABASE IF EXISTS {DST}"))
            .await?;
        let target = MariaDbApplier::connect(&db_config(&a.target, &a.user, DST)?, None).await?;
        let _ = std::fs::remove_dir_all(&a.dir);
        let from = Snapshots::open(
            &a.dir.join("source"),
            source.snapshot_db().context("snapshots")?,
        )?;
        let into = Snapshots::open(
            &a.dir.join("target"),
            target.snapshot_db().context("snapshots")?,
        )?;
        let t = Instant::now();
        let m = from.build().await?;
        let built = t.elapsed().as_secs_f64();
        let t = Instant::now();
        into.restore(&from.file_path(&m.id)).await?;
        let loaded = t.elapsed().as_secs_f64();
        let got = checksums(&mut dst, DST).await?;
        if got != want {
            bail!("the snapshot copy differs from the source: {got:?} vs {want:?}");
        }

        let a2 = Args {
            source: a.source.clone(),
            target: a.target.clone(),
            user: a.user.clone(),
            mb: a.mb,
            dir: a.dir.clone(),
        };
        let t = Instant::now();
        tokio::task::spawn_blocking(move || dump_and_load(&a2)).await??;
        let piped = t.elapsed().as_secs_f64();
        let dumped = checksums(&mut dst, DUMP).await?;
        if dumped != want {
            bail!("the dump copy differs from the source: {dumped:?} vs {want:?}");
        }

        let total = built + loaded;
        println!(
            "snapshot file: {:.1} MB ({} rows)",
            m.bytes as f64 / 1e6,
            m.rows
        );
        println!(
            "wolfscale snapshot (build)      {}",
            rate(bytes, rows, built)
        );
        println!(
            "wolfscale snapshot (verify+load){}",
            rate(bytes, rows, loaded)
        );
        println!(
            "wolfscale snapshot (total)      {}",
            rate(bytes, rows, total)
        );
        println!(
            "mariadb-dump | mariadb          {}",
            rate(bytes, rows, piped)
        );
        println!(
            "ratio (throughput, snapshot / dump pipeline): {:.2}x",
            piped / total
        );
        for db in [DST, DUMP] {
            dst.query_drop(format!("DROP DATABASE IF EXISTS {db}"))
                .await?;
        }
        src.query_drop(format!("DROP DATABASE IF EXISTS {SRC}"))
            .await?;
        let _ = source.close().await;
        let _ = target.close().await;
        let _ = std::fs::remove_dir_all(Path::new(&a.dir));
        anyhow::Ok(())
    })
}
