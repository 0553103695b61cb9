//! The applier benchmark: entries/s one [`MariaDbApplier`] applies when handed committed
//! single-row inserts in batches of 1 to `MAX_GROUP` entries, as openraft hands them to a
//! follower catching up (one batch per append RPC, up to 512 entries). One private
//! MariaDB with `innodb_flush_log_at_trx_commit=2`, as the nodes run. The floor beside
//! it: the same inserts straight over one connection, prepared, one round trip each.

use crate::mariadb::{self, Server, Template};
use crate::scratch::Scratch;
use crate::stats::load_average;
use anyhow::Context;
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::time::Instant;
use wolfscale::apply::{MariaDbApplier, Outcome, MAX_GROUP};
use wolfscale::command::{self, Command, Ident, Value};
use wolfscale::config::DatabaseConfig;
use wolfscale::consensus::{Entry, Request, Requests};

/// The table every insert goes to; `at` reads the entry's timestamp, so `SET timestamp`
/// matters for it.
const TABLE: &str = "CREATE TABLE bench (id BIGINT UNSIGNED PRIMARY KEY, \
     name VARCHAR(64) NOT NULL, score INT NOT NULL, \
     at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB";

/// Leader timestamps one microsecond apart, from 2024-11-26.
const T0: u64 = 1_732_596_266_000_000;

fn entry(index: u64, e: &command::Entry) -> Entry {
    Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::Normal(Requests::one(Request {
            payload: e.encode(),
        })),
    }
}

fn row(i: u64) -> anyhow::Result<command::Entry> {
    Ok(command::Entry {
        timestamp_us: T0 + i,
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

async fn questions(conn: &mut mysql_async::Conn) -> anyhow::Result<u64> {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Questions'")
        .await?;
    Ok(row.map_or(0, |r| r.1))
}

pub fn run(dir: &Path, entries: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let scratch = Scratch::new(dir, "apply-bench")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_in(scratch.path(), entries))?;
    drop(rt);
    drop(scratch);
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

async fn run_in(dir: &Path, per_run: u64) -> anyhow::Result<()> {
    let template = Template::make(dir).await?;
    let db = Server::start(&template, dir, "db", 2).await?;
    let cfg = DatabaseConfig {
        host: "127.0.0.1".into(),
        port: db.port(),
        user: "root".into(),
        password: None,
        password_file: None,
        database: "bench".into(),
        pool_size: 2,
        connect_timeout_ms: 5000,
        galera: Default::default(),
    };
    let mut a = MariaDbApplier::connect(&cfg, None).await?;
    let mut stats = mysql_async::Conn::new(db.opts()).await?;
    let mut next = 1u64;
    let create = command::Entry {
        timestamp_us: T0,
        ids: vec![],
        command: Command::Ddl {
            statement: TABLE.into(),
        },
    };
    a.apply_entries(vec![entry(next, &create)]).await?;
    next += 1;
    println!(
        "apply benchmark: single-row inserts (distinct leader timestamps) applied by one \
         MariaDbApplier; MariaDB innodb_flush_log_at_trx_commit={}, {}; data in {}",
        db.flush(),
        mariadb::describe_flags(),
        dir.display()
    );
    println!("load average at start: {}", load_average());
    println!(
        "{:>6} | {:>8} {:>8} {:>10} | {:>10}",
        "batch", "entries", "seconds", "entries/s", "stmts/ent"
    );
    for batch in [1u64, 64, 512, MAX_GROUP as u64] {
        // One commit per entry at batch 1: fewer entries, same shape.
        let total = if batch == 1 { per_run / 8 } else { per_run };
        let mut prepared = Vec::with_capacity(total as usize);
        for i in next..next + total {
            prepared.push(entry(i, &row(i)?));
        }
        let q0 = questions(&mut stats).await?;
        let started = Instant::now();
        let mut it = prepared.into_iter();
        loop {
            let chunk: Vec<Entry> = it.by_ref().take(batch as usize).collect();
            if chunk.is_empty() {
                break;
            }
            let out = a.apply_entries(chunk).await?;
            if let Some(bad) = out.iter().find(|o| !matches!(o, Outcome::Applied { .. })) {
                anyhow::bail!("entry not applied: {bad:?}");
            }
        }
        let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
        let q1 = questions(&mut stats).await?;
        next += total;
        println!(
            "{:>6} | {:>8} {:>8.2} {:>10.0} | {:>10.2}",
            batch,
            total,
            secs,
            total as f64 / secs,
            (q1 - q0).saturating_sub(1) as f64 / total as f64
        );
    }
    // The floor on this machine: the same inserts straight over one connection, 512 per
    // transaction, prepared, one round trip each (no timestamp, no position update).
    let mut conn = mysql_async::Conn::new(db.opts().db_name(Some("bench"))).await?;
    conn.query_drop("CREATE TABLE bare LIKE bench").await?;
    let started = Instant::now();
    let chunks = per_run / 512;
    for chunk in 0..chunks {
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
    let n = chunks * 512;
    let secs = started.elapsed().as_secs_f64().max(f64::EPSILON);
    println!(
        "floor: the same rows as 512 prepared single-row INSERTs per transaction over one \
         connection: {n} rows in {secs:.2} s = {:.0} rows/s",
        n as f64 / secs
    );
    conn.disconnect().await?;
    stats.disconnect().await?;
    let s = a.status().snapshot();
    println!(
        "applier transactions committed: {}, retries: {}; load average at end: {}",
        s.batches,
        s.retries,
        load_average()
    );
    a.close().await?;
    drop(db);
    Ok(())
}
