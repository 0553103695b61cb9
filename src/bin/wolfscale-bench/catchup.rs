//! Catch-up rate (issue 16: "≥ 50,000 rows/s of single-row inserts for a follower that
//! was down"). A 3-process cluster, each node with its own MariaDB; one follower's
//! `wolfscale` process is SIGKILLed (its MariaDB keeps running), `rows` single-row inserts
//! go through the leader's HTTP API from `clients` clients, then the follower is started
//! again and its `GET /status` is polled until its `applied_lsn` reaches the leader's
//! commit LSN. The time from process start splits into start-up (until `/status`
//! answers), waiting for the first apply, and applying. At the end every node's table is
//! counted.

use crate::http::{launch, three_node_cluster, wait_caught_up, write_lsn, Proc};
use crate::stats::{cpu_secs, load_average};
use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, WriteKind};

/// What `wolfscale-bench catchup` is asked to do.
pub struct Args {
    pub dir: PathBuf,
    /// Single-row inserts written while the follower is down.
    pub rows: u64,
    /// Concurrent clients writing them.
    pub clients: usize,
    /// Interval between two `/status` polls of the restarted follower, milliseconds.
    pub sample_ms: f64,
    pub wolfscale: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.dir.clone();
    let bin = args.wolfscale.clone();
    launch(&dir, "catchup-bench", bin, |path, bin| async move {
        run_in(&path, &bin, &args).await
    })
}

/// Inserts ids `1..=rows` from `clients` tasks; answers the highest LSN.
async fn insert_rows(leader: &Client, clients: usize, rows: u64) -> anyhow::Result<u64> {
    let next_id = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, next_id) = (leader.clone(), next_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut max_lsn = 0;
            loop {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                if id > rows {
                    return anyhow::Ok(max_lsn);
                }
                let body = format!(r#"{{"table":"bench","values":{{"id":{id},"v":"row {id}"}}}}"#);
                max_lsn = max_lsn.max(write_lsn(&client, WriteKind::Insert, body).await?);
            }
        }));
    }
    let mut max_lsn = 0;
    for t in tasks {
        max_lsn = max_lsn.max(t.await??);
    }
    Ok(max_lsn)
}

/// When the restarted follower passed each mark, measured from its process start.
#[derive(Debug, Default)]
struct Marks {
    /// First `/status` answer.
    up: Option<Duration>,
    /// `applied_lsn` at that answer.
    applied_at_up: u64,
    /// First answer with `applied_lsn` above its position before the kill.
    first_apply: Option<Duration>,
    /// `applied_lsn` reached the target.
    done: Option<Duration>,
    /// It reported a snapshot transfer at some poll.
    snapshot: bool,
}

async fn watch(
    follower: &Client,
    proc: &Proc,
    before: u64,
    target: u64,
    every: Duration,
) -> anyhow::Result<Marks> {
    let start = Instant::now();
    let mut m = Marks::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let Ok(s) = follower.status().await else {
            if start.elapsed() > Duration::from_secs(600) {
                bail!(
                    "the follower did not answer /status within 600 s; its log:\n{}",
                    proc.log_tail()
                );
            }
            continue;
        };
        let now = start.elapsed();
        if m.up.is_none() {
            m.up = Some(now);
            m.applied_at_up = s.applied_lsn;
        }
        m.snapshot |= s.sync.is_some();
        if m.first_apply.is_none() && s.applied_lsn > before {
            m.first_apply = Some(now);
        }
        if s.applied_lsn >= target {
            m.done = Some(now);
            return Ok(m);
        }
        if now > Duration::from_secs(600) {
            bail!(
                "the follower applied {} of {target} within 600 s; its log:\n{}",
                s.applied_lsn,
                proc.log_tail()
            );
        }
    }
}

async fn count_rows(server: &crate::mariadb::Server) -> anyhow::Result<u64> {
    let mut conn = mysql_async::Conn::new(server.opts()).await?;
    let n: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM `app`.`bench`")
        .await?;
    conn.disconnect().await?;
    Ok(n.unwrap_or(0))
}

fn secs(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64())
}

async fn run_in(dir: &Path, bin: &Path, args: &Args) -> anyhow::Result<()> {
    let (servers, mut procs, leader_api, leader) = three_node_cluster(dir, bin).await?;
    let li = procs
        .iter()
        .position(|p| p.api == leader_api)
        .context("the leader is none of the three nodes")?;
    let fi = (li + 1) % procs.len();
    let follower = Client::new(&procs[fi].api)?.with_timeout(Duration::from_secs(2));
    println!(
        "catch-up benchmark: 3-process cluster (default config), node-{} killed with \
         SIGKILL (its MariaDB keeps running), {} single-row INSERTs through the leader \
         (node-{}) from {} clients, then node-{} started again and polled with GET /status \
         every {} ms; data in {}",
        fi + 1,
        args.rows,
        li + 1,
        args.clients,
        fi + 1,
        args.sample_ms,
        dir.display()
    );
    println!("load average at start: {}", load_average());
    wait_caught_up(&leader).await?;
    let before = follower.status().await?.applied_lsn;
    procs[fi].kill().await?;

    let started = Instant::now();
    let max_lsn = insert_rows(&leader, args.clients, args.rows).await?;
    let write_secs = started.elapsed().as_secs_f64();
    let target = max_lsn.max(leader.status().await?.commit_lsn);
    let entries = target.saturating_sub(before);
    println!(
        "while it was down: {} inserts in {write_secs:.2} s ({:.0} ins/s) as {entries} \
         entries (LSN {before} → {target}, {:.2} inserts per entry); load average {}",
        args.rows,
        args.rows as f64 / write_secs,
        args.rows as f64 / entries.max(1) as f64,
        load_average()
    );

    let db_cpu0 = cpu_secs(servers[fi].pid()).unwrap_or(0.0);
    procs[fi].spawn(bin, &["start"])?;
    let every = Duration::from_secs_f64(args.sample_ms / 1e3);
    let m = watch(&follower, &procs[fi], before, target, every).await?;
    let ws_cpu = procs[fi].pid().and_then(cpu_secs).unwrap_or(f64::NAN);
    let db_cpu = cpu_secs(servers[fi].pid()).unwrap_or(f64::NAN) - db_cpu0;
    let total = secs(m.done);
    let applying = total - secs(m.first_apply);
    println!(
        "restart → caught up: {total:.2} s = start-up (until /status answered, applied LSN \
         {} then) {:.2} s + until the first new apply {:.2} s + applying {applying:.2} s{}",
        m.applied_at_up,
        secs(m.up),
        secs(m.first_apply) - secs(m.up),
        if m.snapshot {
            " (it reported a snapshot transfer)"
        } else {
            ""
        }
    );
    println!(
        "catch-up rate: {:.0} rows/s, {:.0} entries/s from process start; {:.0} rows/s, \
         {:.0} entries/s while applying (target ≥ 50,000 rows/s); the follower's CPU over \
         it: wolfscale {ws_cpu:.2} s, its MariaDB {db_cpu:.2} s ({:.0} + {:.0} µs per row)",
        args.rows as f64 / total,
        entries as f64 / total,
        args.rows as f64 / applying,
        entries as f64 / applying,
        ws_cpu * 1e6 / args.rows as f64,
        db_cpu * 1e6 / args.rows as f64,
    );
    println!("load average at end: {}", load_average());

    wait_caught_up(&leader).await?;
    let mut counts = Vec::with_capacity(servers.len());
    for s in &servers {
        counts.push(count_rows(s).await?);
    }
    println!(
        "rows per node: {} (expected {} each)",
        counts
            .iter()
            .enumerate()
            .map(|(i, n)| format!("node-{} {n}", i + 1))
            .collect::<Vec<_>>()
            .join(", "),
        args.rows
    );
    for p in procs.iter_mut() {
        p.stop().await;
    }
    drop(servers);
    if counts.iter().any(|&n| n != args.rows) {
        bail!(
            "a node does not hold exactly {} rows: {counts:?}",
            args.rows
        );
    }
    Ok(())
}
