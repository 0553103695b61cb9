//! sysbench (`oltp_insert` by default, or a transactional workload with its abort rate)
//! through the MySQL front end of a 3-process cluster (each
//! `wolfscale` process with its own private MariaDB), clients on the leader's front end,
//! and in the same run the same sysbench against a 3-node Galera cluster (node 1) and
//! semi-synchronous replication (the primary; AFTER_SYNC, two replicas), launched as
//! `wolfscale-bench peers` launches them: one case per thread count, ratios printed.

use crate::http::start_nodes;
use crate::mariadb::{self, Server};
use crate::scratch::free_port;
use crate::stats::load_average;
use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use wolfscale::config::ProxyUser;

const USER: (&str, &str) = ("bench", "bench-secret");
const TABLE_SIZE: u32 = 1000;

pub fn run(
    dir: &Path,
    secs: f64,
    threads: &[usize],
    wolfscale: Option<PathBuf>,
    workload: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        [
            "oltp_insert",
            "oltp_write_only",
            "oltp_read_write",
            "oltp_update_index"
        ]
        .contains(&workload),
        "--workload: one of oltp_insert, oltp_write_only, oltp_read_write, oltp_update_index"
    );
    let workload = workload.to_string();
    crate::http::launch(dir, "sysbench-bench", wolfscale, |path, bin| async move {
        run_in(&path, secs, threads, &bin, &workload).await
    })
}

async fn run_in(
    dir: &Path,
    secs: f64,
    threads: &[usize],
    bin: &Path,
    workload: &str,
) -> anyhow::Result<()> {
    let template = crate::peers::open_template(dir).await?;
    let mut servers = Vec::new();
    for i in 1..=3 {
        servers.push(Server::start(&template, dir, &format!("db-{i}"), 2).await?);
    }
    let mut fronts = Vec::new();
    for _ in &servers {
        fronts.push(format!("127.0.0.1:{}", free_port()?));
    }
    let (mut procs, leader_api) = start_nodes(dir, bin, &servers, |i, c| {
        c.proxy.bind_address = fronts[i].clone();
        c.proxy.max_connections = 512;
        c.proxy.users.push(ProxyUser {
            name: USER.0.into(),
            password: Some(USER.1.into()),
            password_sha1: None,
        });
    })
    .await?;
    let li = procs
        .iter()
        .position(|p| p.api == leader_api)
        .context("the leader is none of the three nodes")?;
    let front = Target {
        addr: fronts[li].clone(),
        user: USER.0,
        password: USER.1,
        db: "app",
    };
    let galera = crate::peers::galera(&template, dir)
        .await
        .context("start Galera")?;
    let semi = crate::peers::semi_sync(&template, dir)
        .await
        .context("start semi-sync replication")?;
    let mut peers = Vec::new();
    for server in [&galera[0], &semi[0]] {
        let mut conn = mysql_async::Conn::new(server.opts()).await?;
        conn.query_drop("CREATE DATABASE sbtest").await?;
        conn.disconnect().await?;
        peers.push(Target {
            addr: format!("127.0.0.1:{}", server.port()),
            user: "root",
            password: "",
            db: "sbtest",
        });
    }
    for target in std::iter::once(&front).chain(&peers) {
        sysbench(target, workload, 1, 0.0, "prepare").await?;
    }
    println!(
        "sysbench benchmark: {workload} (1 table of {TABLE_SIZE} rows to start; 1213 and \
         1205 answers retried and counted as aborts), {secs} s \
         per case; WolfScale: the leader's MySQL front end of 3 wolfscale processes (default \
         config: WAL fsync on); Galera: 3 nodes (galera-4, gcomm on loopback), sysbench on \
         node 1; semi-sync: primary (sync_binlog=1, AFTER_SYNC) + 2 replicas, sysbench on the \
         primary; every MariaDB: {} (innodb_flush_log_at_trx_commit=2); data in {}",
        mariadb::describe_flags(),
        dir.display()
    );
    println!("load average at start: {}", load_average());
    let head = format!("{:>9} {:>9} {:>7}", "tx/s", "p95 ms", "abort%");
    println!(
        "{:>7} | {:^27} | {:^27} | {:^27} | {:>7} {:>7}",
        "threads",
        "WolfScale (front end)",
        "Galera, 3 nodes",
        "semi-sync, 1+2",
        "ws/gal",
        "ws/semi"
    );
    println!("{:>7} | {head} | {head} | {head} |", "");
    for &t in threads {
        let mut cells = Vec::new();
        let mut rates = Vec::new();
        for target in std::iter::once(&front).chain(&peers) {
            let report = sysbench(target, workload, t, secs, "run").await?;
            let tps = figure(&report, "transactions:", true).context("transactions")?;
            let done = figure(&report, "transactions:", false).context("transactions")?;
            let p95 = figure(&report, "95th percentile:", false).context("p95")?;
            let errors = figure(&report, "ignored errors:", false).context("errors")?;
            let aborts = 100.0 * errors / (done + errors).max(1.0);
            cells.push(format!("{tps:>9.0} {p95:>9.2} {aborts:>7.1}"));
            rates.push(tps);
        }
        println!(
            "{t:>7} | {} | {:>7.2} {:>7.2}",
            cells.join(" | "),
            rates[0] / rates[1],
            rates[0] / rates[2]
        );
    }
    println!(
        "ratios are WolfScale's transactions/s over the other system's (> 1: WolfScale \
         faster); abort% = transactions answered 1213/1205 (retried) over all attempts"
    );
    println!("load average at end: {}", load_average());
    for p in &mut procs {
        p.stop().await;
    }
    drop(galera);
    drop(semi);
    Ok(())
}

/// Where sysbench connects.
struct Target {
    addr: String,
    user: &'static str,
    password: &'static str,
    db: &'static str,
}

/// Runs sysbench `<workload> <command>` against `target` with `threads`.
async fn sysbench(
    target: &Target,
    workload: &str,
    threads: usize,
    secs: f64,
    command: &str,
) -> anyhow::Result<String> {
    let (host, port) = target.addr.rsplit_once(':').context("host:port")?;
    let out = tokio::process::Command::new("sysbench")
        .arg(workload)
        .args([
            "--db-driver=mysql",
            &format!("--mysql-host={host}"),
            &format!("--mysql-port={port}"),
            &format!("--mysql-user={}", target.user),
            &format!("--mysql-password={}", target.password),
            &format!("--mysql-db={}", target.db),
            "--mysql-ssl=off",
            "--tables=1",
            &format!("--table-size={TABLE_SIZE}"),
            &format!("--threads={threads}"),
            &format!("--time={}", secs.ceil().max(1.0) as u64),
            "--events=0",
            "--percentile=95",
            "--mysql-ignore-errors=1213,1205",
        ])
        .arg(command)
        .kill_on_drop(true)
        .output()
        .await
        .context("run sysbench (apt-get install -y sysbench)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "sysbench {workload} {command} failed:\n{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// The number on sysbench's `label` line: the rate in parentheses when `rate`.
fn figure(report: &str, label: &str, rate: bool) -> Option<f64> {
    let rest = report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))?
        .trim();
    let text = if rate {
        rest.split_once('(')?.1.split_whitespace().next()?
    } else {
        rest.split_whitespace().next()?
    };
    text.parse().ok()
}
