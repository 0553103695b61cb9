//! The comparison a user makes before choosing WolfScale: single-row inserts into three
//! systems that each keep three copies of every write on this machine, measured side by
//! side in one run with the same client code and the same MariaDB settings:
//!
//! - WolfScale: three `wolfscale` processes, each with its own MariaDB; clients call the
//!   leader's `POST /write/insert` (the HTTP client of `wolfscale-bench http`).
//! - Galera: three MariaDB nodes with `galera-4` on loopback (gcomm, rsync SST); clients
//!   run prepared INSERTs on node 1 (one connection each, autocommit).
//! - Semi-synchronous replication: a primary (binary log, `sync_binlog=1`,
//!   `rpl_semi_sync_master_wait_point=AFTER_SYNC`) and two replicas; clients on the
//!   primary.
//! - One bare MariaDB (one copy), the reference line, not a target.
//!
//! Each MariaDB runs `innodb_flush_log_at_trx_commit=2`, as the WolfScale cluster's do
//! (there the WAL is fsynced before a write is acknowledged; Galera's durability is
//! the other nodes' memory; semi-sync's is the binary log synced on the primary and
//! received by a replica). The bare server runs `=1`.

use crate::breakdown;
use crate::http::{self, bench_pool, Phase, WARM_UP};
use crate::mariadb::{self, Server, Template};
use crate::scratch::free_port;
use crate::stats::load_average;
use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where Debian's `galera-4` puts the provider library.
const GALERA_PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

pub fn run(
    dir: &Path,
    secs: f64,
    clients: &[usize],
    wolfscale: Option<PathBuf>,
) -> anyhow::Result<()> {
    http::launch(dir, "peers-bench", wolfscale, |path, bin| async move {
        run_in(&path, secs, clients, &bin).await
    })
}

/// A datadir template in `dir` that Galera nodes can be made from: the rsync state
/// transfer writes into copies of it (and the folder above) as another user than root.
pub(crate) async fn open_template(dir: &Path) -> anyhow::Result<Template> {
    for (path, package) in [(GALERA_PROVIDER, "galera-4"), ("/usr/bin/rsync", "rsync")] {
        if !Path::new(path).exists() {
            bail!("{path} is missing: run `apt-get install -y {package}`");
        }
    }
    let template = Template::make(dir).await?;
    open_up(dir)?;
    let status = tokio::process::Command::new("chmod")
        .arg("-R")
        .arg("a+rwX")
        .arg(dir.join("template"))
        .status()
        .await?;
    if !status.success() {
        bail!("chmod of the datadir template failed: {status}");
    }
    Ok(template)
}

/// Makes `path` writable by everyone: the rsync state transfer of a Galera joiner runs
/// as another user than root and must write into the datadir and the folder above it.
fn open_up(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Three Galera nodes on loopback, started one at a time (each next one once the
/// previous is Synced).
pub(crate) async fn galera(template: &Template, dir: &Path) -> anyhow::Result<Vec<Server>> {
    let mut gcomm = Vec::new();
    for _ in 0..3 {
        gcomm.push((free_port()?, free_port()?, free_port()?));
    }
    let members: Vec<String> = gcomm
        .iter()
        .map(|(g, _, _)| format!("127.0.0.1:{g}"))
        .collect();
    let mut nodes = Vec::new();
    for (i, &(g, ist, sst)) in gcomm.iter().enumerate() {
        let name = format!("galera-{}", i + 1);
        open_up(&dir.join(&name))?;
        open_up(&dir.join(&name).join("tmp"))?;
        let address = if i == 0 {
            "gcomm://".to_string()
        } else {
            format!("gcomm://{}", members.join(","))
        };
        let args = move |_port: u16| {
            vec![
                "--wsrep-on=ON".to_string(),
                format!("--wsrep-provider={GALERA_PROVIDER}"),
                format!("--wsrep-cluster-address={address}"),
                "--wsrep-cluster-name=bench".to_string(),
                format!("--wsrep-node-name=g{}", i + 1),
                format!("--wsrep-node-address=127.0.0.1:{g}"),
                format!(
                    "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{g};\
                     ist.recv_addr=127.0.0.1:{ist};gcache.size=256M"
                ),
                "--wsrep-sst-method=rsync".to_string(),
                format!("--wsrep-sst-receive-address=127.0.0.1:{sst}"),
                "--binlog-format=ROW".to_string(),
                "--default-storage-engine=InnoDB".to_string(),
                "--innodb-autoinc-lock-mode=2".to_string(),
            ]
        };
        let node = Server::start_with(template, dir, &name, 2, args).await?;
        wait_galera_synced(&node, i + 1).await?;
        nodes.push(node);
    }
    Ok(nodes)
}

async fn wait_galera_synced(node: &Server, size: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let mut last = String::new();
        if let Ok(mut conn) = mysql_async::Conn::new(node.opts()).await {
            let rows: Vec<(String, String)> = conn
                .query(
                    "SHOW STATUS WHERE Variable_name IN \
                     ('wsrep_local_state_comment', 'wsrep_cluster_size')",
                )
                .await
                .unwrap_or_default();
            let _ = conn.disconnect().await;
            let get = |k: &str| {
                rows.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let state = get("wsrep_local_state_comment");
            let members: usize = get("wsrep_cluster_size").parse().unwrap_or(0);
            if state == "Synced" && members >= size {
                return Ok(());
            }
            last = format!("{state}, cluster size {members}");
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "galera node on port {} not Synced in a cluster of {size} within 120 s ({last})",
                node.port()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A semi-synchronous primary (AFTER_SYNC) and two replicas following it by GTID.
pub(crate) async fn semi_sync(template: &Template, dir: &Path) -> anyhow::Result<Vec<Server>> {
    let primary = Server::start_with(template, dir, "semi-primary", 2, |_| {
        vec![
            "--server-id=1".into(),
            "--log-bin=binlog".into(),
            "--binlog-format=ROW".into(),
            "--gtid-strict-mode=ON".into(),
            "--sync-binlog=1".into(),
            "--rpl-semi-sync-master-enabled=ON".into(),
            "--rpl-semi-sync-master-wait-point=AFTER_SYNC".into(),
            "--rpl-semi-sync-master-timeout=10000".into(),
        ]
    })
    .await?;
    let mut servers = vec![primary];
    for i in 2..=3u32 {
        let replica = Server::start_with(template, dir, &format!("semi-replica-{i}"), 2, |_| {
            vec![
                format!("--server-id={i}"),
                "--log-bin=binlog".into(),
                "--binlog-format=ROW".into(),
                "--gtid-strict-mode=ON".into(),
                "--rpl-semi-sync-slave-enabled=ON".into(),
            ]
        })
        .await?;
        let mut conn = mysql_async::Conn::new(replica.opts()).await?;
        conn.query_drop(format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
             MASTER_USE_GTID=slave_pos",
            servers[0].port()
        ))
        .await?;
        conn.query_drop("START SLAVE").await?;
        conn.disconnect().await?;
        servers.push(replica);
    }
    let started = Instant::now();
    loop {
        let mut conn = mysql_async::Conn::new(servers[0].opts()).await?;
        let clients: Option<(String, String)> = conn
            .query_first("SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'")
            .await?;
        conn.disconnect().await?;
        if clients.as_ref().is_some_and(|(_, v)| v == "2") {
            return Ok(servers);
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("semi-sync primary has {clients:?} semi-sync replicas after 60 s, not 2");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rows of `bench` on each server (to show every copy holds every write).
async fn counts(servers: &[Server]) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::new();
    for s in servers {
        let mut conn = mysql_async::Conn::new(s.opts()).await?;
        let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM bench.bench").await?;
        conn.disconnect().await?;
        out.push(n.unwrap_or(0));
    }
    Ok(out)
}

/// Waits until both semi-sync replicas hold as many rows as the primary.
async fn wait_replicas(servers: &[Server]) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let c = counts(servers).await?;
        if c.iter().all(|&n| n == c[0]) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("semi-sync replicas did not catch up within 300 s: {c:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn mysql_phase(
    pool: &mysql_async::Pool,
    n: usize,
    secs: f64,
    next_id: &Arc<AtomicU64>,
) -> anyhow::Result<Phase> {
    http::bare_phase(pool, n, Instant::now() + WARM_UP, next_id).await?;
    http::bare_phase(
        pool,
        n,
        Instant::now() + Duration::from_secs_f64(secs),
        next_id,
    )
    .await
}

async fn run_in(dir: &Path, secs: f64, clients: &[usize], bin: &Path) -> anyhow::Result<()> {
    let template = open_template(dir).await?;
    let mut ws_servers = Vec::new();
    for i in 1..=3 {
        ws_servers.push(Server::start(&template, dir, &format!("db-{i}"), 2).await?);
    }
    let (mut procs, leader_api, leader) = http::start_cluster(dir, bin, &ws_servers).await?;
    let followers = http::follower_clients(&procs, &leader_api)?;
    let galera = galera(&template, dir).await.context("start Galera")?;
    let galera_pool = bench_pool(galera[0].opts()).await?;
    let semi = semi_sync(&template, dir)
        .await
        .context("start semi-sync replication")?;
    let semi_pool = bench_pool(semi[0].opts()).await?;
    let bare = Server::start(&template, dir, "bare", 1).await?;
    let bare_pool = bench_pool(bare.opts()).await?;

    println!(
        "peers benchmark: single-row INSERTs (table `{}`), {secs} s per phase after a {} ms \
         warm-up; every system keeps three copies on this machine; every MariaDB: {} \
         (innodb_flush_log_at_trx_commit=2 in the three systems, =1 on the bare server); \
         data in {}",
        http::TABLE,
        WARM_UP.as_millis(),
        mariadb::describe_flags(),
        dir.display()
    );
    println!(
        "WolfScale: 3 processes, default config (WAL fsync on), clients on the leader's HTTP \
         API; Galera: 3 nodes (galera-4, gcomm on loopback), clients on node 1; semi-sync: \
         primary (sync_binlog=1, AFTER_SYNC) + 2 replicas, clients on the primary; MariaDB \
         clients: one connection each, prepared INSERT, autocommit"
    );
    println!("load average at start: {}", load_average());
    println!(
        "{:>7} | {:^25} | {:^25} | {:^25} | {:^25} | {:>7} {:>7} {:>7}",
        "clients",
        "WolfScale (HTTP)",
        "Galera, 3 nodes",
        "semi-sync, 1+2",
        "bare MariaDB (1 copy)",
        "ws/gal",
        "ws/semi",
        "ws/bare"
    );
    let head = format!("{:>9} {:>7} {:>7}", "ins/s", "p50 ms", "p99 ms");
    println!(
        "{:>7} | {head} | {head} | {head} | {head} | {:>7} {:>7} {:>7}",
        "", "", "", ""
    );
    let next_id = Arc::new(AtomicU64::new(1));
    let mut p50_ratio = Vec::new();
    let mut breakdowns = Vec::new();
    for &n in clients {
        http::cluster_phase(&leader, n, Instant::now() + WARM_UP, &next_id).await?;
        http::wait_caught_up(&leader).await?;
        let measured = breakdown::measured_phase(
            &leader,
            &followers,
            n,
            Instant::now() + Duration::from_secs_f64(secs),
            &next_id,
        )
        .await?;
        breakdowns.push(measured.table(n));
        let ws = measured.phase;
        http::wait_caught_up(&leader).await?;
        let gal = mysql_phase(&galera_pool, n, secs, &next_id).await?;
        let semi_phase = mysql_phase(&semi_pool, n, secs, &next_id).await?;
        wait_replicas(&semi).await?;
        let bare_phase = mysql_phase(&bare_pool, n, secs, &next_id).await?;
        println!(
            "{:>7} | {} | {} | {} | {} | {:>7.2} {:>7.2} {:>7.2}",
            n,
            ws.cells(),
            gal.cells(),
            semi_phase.cells(),
            bare_phase.cells(),
            ws.ops / gal.ops,
            ws.ops / semi_phase.ops,
            ws.ops / bare_phase.ops,
        );
        p50_ratio.push((
            n,
            ws.lat.percentile(50.0) / gal.lat.percentile(50.0),
            ws.lat.percentile(50.0) / semi_phase.lat.percentile(50.0),
        ));
    }
    println!("ratios are WolfScale's inserts/s over the other system's (> 1: WolfScale faster)");
    for (n, g, s) in p50_ratio {
        println!(
            "p50 latency at {n} client(s): WolfScale / Galera = {g:.2}, WolfScale / semi-sync = {s:.2} (< 1: WolfScale faster)"
        );
    }
    for b in breakdowns {
        print!("{b}");
    }
    println!(
        "rows per copy at the end: Galera {:?}, semi-sync {:?}",
        counts(&galera).await?,
        counts(&semi).await?
    );
    println!("load average at end: {}", load_average());
    for pool in [galera_pool, semi_pool, bare_pool] {
        pool.disconnect().await?;
    }
    for p in procs.iter_mut() {
        p.stop().await;
    }
    drop(ws_servers);
    // Galera's joiners go first so node 1 is not left waiting for them.
    drop(galera);
    drop(semi);
    drop(bare);
    Ok(())
}
