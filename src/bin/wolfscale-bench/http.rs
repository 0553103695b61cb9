//! The end-to-end benchmark: N concurrent clients doing single-row inserts through
//! `POST /write/insert` of a 3-node cluster (three `wolfscale` processes, each with its
//! own private MariaDB), and in the same run the same inserts (autocommit, prepared, one
//! connection per client) straight into one bare private MariaDB with the same settings
//! and table — with `innodb_flush_log_at_trx_commit=2` as the cluster's servers run, and
//! again with `=1`.

use crate::breakdown;
use crate::mariadb::{self, tie_to_parent, Server, Template};
use crate::scratch::{free_port, Scratch};
use crate::stats::{cpu_secs, load_average, Latencies};
use anyhow::{bail, Context};
use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, Error as ClientError, WriteKind};
use wolfscale::api::NodeState;
use wolfscale::config::Config;

/// The table on the cluster and on the bare server alike.
pub(crate) const TABLE: &str =
    "CREATE TABLE bench (id BIGINT PRIMARY KEY, v VARCHAR(100) NOT NULL, \
     at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB";
pub(crate) const WARM_UP: Duration = Duration::from_millis(500);

/// A `wolfscale` process, SIGKILLed on drop if it has not stopped.
pub(crate) struct Proc {
    child: Option<Child>,
    pub(crate) api: String,
    pub(crate) cluster: String,
    cfg: PathBuf,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Proc {
    /// A node's process for `db`, its config changed by `tweak` before it is written;
    /// started by [`Proc::spawn`].
    pub(crate) fn with_config(
        dir: &Path,
        i: usize,
        db: &Server,
        tweak: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Proc> {
        let cluster = format!("127.0.0.1:{}", free_port()?);
        let api = format!("127.0.0.1:{}", free_port()?);
        let cfg = dir.join(format!("node-{i}.toml"));
        let mut c = Config::new(
            &format!("node-{i}"),
            &cluster,
            &dir.join(format!("node-{i}-data")),
        );
        c.database.host = "127.0.0.1".into();
        c.database.port = db.port();
        c.database.user = "root".into();
        c.database.database = "app".into();
        c.cluster.secret = Some("bench-cluster-secret-0123456789".into());
        c.api.bind_address = api.clone();
        tweak(&mut c);
        std::fs::write(&cfg, c.to_toml()?)?;
        Ok(Proc {
            child: None,
            api,
            cluster,
            cfg,
            log: dir.join(format!("node-{i}.log")),
        })
    }

    pub(crate) fn spawn(&mut self, bin: &Path, args: &[&str]) -> anyhow::Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .arg("-c")
            .arg(&self.cfg)
            .env("WOLFSCALE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        tie_to_parent(&mut cmd);
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("spawn {}", bin.display()))?,
        );
        Ok(())
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(20).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// SIGKILLs the process, as a crash would: no shutdown, nothing flushed.
    pub(crate) async fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        child.kill().context("SIGKILL a node")?;
        // Reaped without blocking the runtime: SIGKILL ends it within milliseconds.
        while child.try_wait().context("reap a killed node")?.is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    pub(crate) async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: the child is not reaped yet, so the pid still names it.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits until the cluster has `procs.len()` ACTIVE members; answers the leader's API
/// address.
pub(crate) async fn wait_active(client: &Client, procs: &[Proc]) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(c) = client.cluster().await {
            if c.nodes.len() == procs.len() && c.nodes.iter().all(|s| s.status == NodeState::Active)
            {
                if let Some(leader) = c
                    .leader_id
                    .and_then(|l| c.nodes.into_iter().find(|n| n.node_id == l))
                {
                    return Ok(leader.api_address);
                }
            }
        }
        if Instant::now() > deadline {
            let tails: Vec<String> = procs.iter().map(Proc::log_tail).collect();
            bail!(
                "cluster not ACTIVE within 120 s; node logs:\n{}",
                tails.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CPU seconds used by groups of processes over one phase.
pub(crate) struct Cpu {
    groups: Vec<Vec<u32>>,
    start: Vec<f64>,
}

impl Cpu {
    fn total(pids: &[u32]) -> f64 {
        pids.iter().filter_map(|&p| cpu_secs(p)).sum()
    }

    pub(crate) fn start(groups: Vec<Vec<u32>>) -> Cpu {
        let start = groups.iter().map(|g| Cpu::total(g)).collect();
        Cpu { groups, start }
    }

    /// Microseconds of CPU per operation, per group.
    pub(crate) fn per_op(&self, ops: usize) -> Vec<f64> {
        self.groups
            .iter()
            .zip(&self.start)
            .map(|(g, s)| (Cpu::total(g) - s) * 1e6 / ops.max(1) as f64)
            .collect()
    }
}

/// One write, retried while the cluster has no leader (503).
pub(crate) async fn write(client: &Client, kind: WriteKind, json: String) -> anyhow::Result<()> {
    write_lsn(client, kind, json).await.map(|_| ())
}

/// [`write`], answering the entry's LSN.
pub(crate) async fn write_lsn(
    client: &Client,
    kind: WriteKind,
    json: String,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        match client.write_raw(kind, json.clone()).await {
            Ok(r) => return Ok(r.lsn),
            Err(ClientError::Api { status, .. })
                if status.as_u16() == 503 && started.elapsed() < Duration::from_secs(30) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub(crate) struct Phase {
    pub(crate) ops: f64,
    pub(crate) lat: Latencies,
}

impl Phase {
    pub(crate) fn cells(&self) -> String {
        format!(
            "{:>9.0} {:>7.2} {:>7.2}",
            self.ops,
            self.lat.percentile(50.0),
            self.lat.percentile(99.0)
        )
    }
}

pub(crate) async fn cluster_phase(
    client: &Client,
    clients: usize,
    until: Instant,
    next_id: &Arc<AtomicU64>,
) -> anyhow::Result<Phase> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, next_id) = (client.clone(), next_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::with_capacity(4096);
            while Instant::now() < until {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let body = format!(r#"{{"table":"bench","values":{{"id":{id},"v":"row {id}"}}}}"#);
                let t0 = Instant::now();
                write(&client, WriteKind::Insert, body).await?;
                lat.push(t0.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Latencies::default();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    Ok(Phase {
        ops: lat.len() as f64 / secs,
        lat,
    })
}

pub(crate) async fn bare_phase(
    pool: &mysql_async::Pool,
    clients: usize,
    until: Instant,
    next_id: &Arc<AtomicU64>,
) -> anyhow::Result<Phase> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(pool.get_conn().await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for mut conn in conns {
        let next_id = next_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::with_capacity(4096);
            while Instant::now() < until {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                conn.exec_drop(
                    "INSERT INTO bench (id, v) VALUES (?, ?)",
                    (id, format!("row {id}")),
                )
                .await?;
                lat.push(t0.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Latencies::default();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    Ok(Phase {
        ops: lat.len() as f64 / secs,
        lat,
    })
}

/// Waits until every node applied what the leader holds; returns how long that took.
pub(crate) async fn wait_caught_up(client: &Client) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let c = client.cluster().await?;
        let last = c.nodes.iter().map(|n| n.last_log_lsn).max().unwrap_or(0);
        if c.nodes.iter().all(|n| n.applied_lsn >= last) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("followers did not catch up within 300 s: {:?}", c.nodes);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clients of every node's API but the leader's (for their `/metrics`).
pub(crate) fn follower_clients(procs: &[Proc], leader_api: &str) -> anyhow::Result<Vec<Client>> {
    procs
        .iter()
        .filter(|p| p.api != leader_api)
        .map(|p| Ok(Client::new(&p.api)?))
        .collect()
}

/// Starts a 3-process cluster over `servers` (node-1 bootstraps, the others join),
/// waits until every node is ACTIVE and creates the benchmark table through it.
/// Returns the processes, the leader's API address and a client of the leader.
pub(crate) async fn start_cluster(
    dir: &Path,
    bin: &Path,
    servers: &[Server],
) -> anyhow::Result<(Vec<Proc>, String, Client)> {
    start_cluster_with(dir, bin, servers, |_, _| {}, plain_client).await
}

/// Three private MariaDB servers (flush=2, as the nodes run) and a 3-process cluster on
/// them: the servers, the processes, the leader's API address and a client of it.
pub(crate) async fn three_node_cluster(
    dir: &Path,
    bin: &Path,
) -> anyhow::Result<(Vec<crate::mariadb::Server>, Vec<Proc>, String, Client)> {
    let template = crate::mariadb::Template::make(dir).await?;
    let mut servers = Vec::new();
    for i in 1..=3 {
        servers.push(crate::mariadb::Server::start(&template, dir, &format!("db-{i}"), 2).await?);
    }
    let (procs, leader_api, leader) = start_cluster(dir, bin, &servers).await?;
    Ok((servers, procs, leader_api, leader))
}

/// A plain-HTTP client of the API at `address`.
pub(crate) fn plain_client(address: &str) -> anyhow::Result<Client> {
    Ok(Client::new(address)?)
}

/// [`start_cluster`] with `tweak(i, config)` applied to node i's config and the API
/// reached through `client(address)` (HTTPS when the nodes have `[tls]`).
pub(crate) async fn start_cluster_with(
    dir: &Path,
    bin: &Path,
    servers: &[Server],
    tweak: impl Fn(usize, &mut Config),
    client: impl Fn(&str) -> anyhow::Result<Client>,
) -> anyhow::Result<(Vec<Proc>, String, Client)> {
    let (procs, leader_api) = start_nodes_with(dir, bin, servers, tweak, &client).await?;
    let leader = client(&leader_api)?.with_timeout(Duration::from_secs(30));
    write(
        &leader,
        WriteKind::Ddl,
        serde_json::json!({ "ddl": TABLE }).to_string(),
    )
    .await
    .context("create the table through the cluster")?;
    Ok((procs, leader_api, leader))
}

/// Starts one `wolfscale` process per server (node-1 bootstraps, the others join), each
/// with its config changed by `tweak(i, config)`, and waits until every node is ACTIVE.
/// Returns the processes and the leader's API address.
pub(crate) async fn start_nodes(
    dir: &Path,
    bin: &Path,
    servers: &[Server],
    tweak: impl Fn(usize, &mut Config),
) -> anyhow::Result<(Vec<Proc>, String)> {
    start_nodes_with(dir, bin, servers, tweak, plain_client).await
}

/// [`start_nodes`] reaching the API through `client(address)`.
pub(crate) async fn start_nodes_with(
    dir: &Path,
    bin: &Path,
    servers: &[Server],
    tweak: impl Fn(usize, &mut Config),
    client: impl Fn(&str) -> anyhow::Result<Client>,
) -> anyhow::Result<(Vec<Proc>, String)> {
    let mut procs = Vec::new();
    for (i, db) in servers.iter().enumerate() {
        procs.push(Proc::with_config(dir, i + 1, db, |c| tweak(i, c))?);
    }
    procs[0].spawn(bin, &["start", "--bootstrap"])?;
    let first = client(&procs[0].api)?;
    let started = Instant::now();
    while first.health().await.is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "node-1 not healthy within 60 s; its log:\n{}",
                procs[0].log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seed = procs[0].cluster.clone();
    for p in procs.iter_mut().skip(1) {
        p.spawn(bin, &["join", &seed])?;
    }
    let leader_api = wait_active(&first, &procs).await?;
    Ok((procs, leader_api))
}

/// Creates database `bench` with the benchmark table on a plain server (or the primary
/// of a replicated one) and returns a pool of connections to it.
pub(crate) async fn bench_pool(
    opts: mysql_async::OptsBuilder,
) -> anyhow::Result<mysql_async::Pool> {
    let mut conn = mysql_async::Conn::new(opts.clone()).await?;
    conn.query_drop("CREATE DATABASE bench").await?;
    conn.query_drop(format!("USE bench; {TABLE}")).await?;
    conn.disconnect().await?;
    Ok(mysql_async::Pool::new(
        mysql_async::OptsBuilder::from_opts(opts)
            .db_name(Some("bench"))
            .pool_opts(mysql_async::PoolOpts::default().with_constraints(
                mysql_async::PoolConstraints::new(0, 256).context("pool constraints")?,
            )),
    ))
}

pub fn run(
    dir: &Path,
    secs: f64,
    clients: &[usize],
    wolfscale: Option<PathBuf>,
) -> anyhow::Result<()> {
    launch(dir, "http-bench", wolfscale, |path, bin| async move {
        run_in(&path, secs, clients, &bin).await
    })
}

/// Runs a benchmark that needs the `wolfscale` binary (`wolfscale`, or the one next to
/// this program) in a scratch directory `<dir>/<name>-<pid>` on the disk under test, on
/// a two-thread runtime; the scratch directory is removed afterwards.
pub(crate) fn launch<F, Fut>(
    dir: &Path,
    name: &str,
    wolfscale: Option<PathBuf>,
    body: F,
) -> anyhow::Result<()>
where
    F: FnOnce(PathBuf, PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let bin = match wolfscale {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("wolfscale"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it (`cargo build --release --bins`) or pass --wolfscale",
            bin.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let scratch = Scratch::new(dir, name)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(body(scratch.path().to_path_buf(), bin))?;
    drop(rt);
    drop(scratch);
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

async fn run_in(dir: &Path, secs: f64, clients: &[usize], bin: &Path) -> anyhow::Result<()> {
    let template = Template::make(dir).await?;
    let mut servers = Vec::new();
    for i in 1..=3 {
        servers.push(Server::start(&template, dir, &format!("db-{i}"), 2).await?);
    }
    let mut bare = Server::start(&template, dir, "bare", 2).await?;
    let (mut procs, leader_api, leader) = start_cluster(dir, bin, &servers).await?;

    let bare_pool = bench_pool(bare.opts()).await?;

    println!(
        "http benchmark: single-row INSERTs (table `{}`), {secs} s per phase; \
         the cluster: 3 wolfscale processes (default config: WAL fsync on, 2 s election \
         timeout), clients talk to the leader's HTTP API; every MariaDB (the cluster's three \
         and the bare one): {}; data in {}",
        TABLE,
        mariadb::describe_flags(),
        dir.display()
    );
    println!(
        "the cluster's MariaDB servers run innodb_flush_log_at_trx_commit=2 (allowed: the \
         WAL replays what they lose); the bare server runs with =2 and then =1"
    );
    println!("load average at start: {}", load_average());
    println!(
        "{:>7} | {:^25} | {:^25} {:>6} | {:^25} {:>6} | {:>8}",
        "clients",
        "cluster (leader API)",
        "bare MariaDB, flush=2",
        "ratio",
        "bare MariaDB, flush=1",
        "ratio",
        "catch-up"
    );
    println!(
        "{:>7} | {:>9} {:>7} {:>7} | {:>9} {:>7} {:>7} {:>6} | {:>9} {:>7} {:>7} {:>6} | {:>8}",
        "",
        "ins/s",
        "p50 ms",
        "p99 ms",
        "ins/s",
        "p50 ms",
        "p99 ms",
        "",
        "ins/s",
        "p50 ms",
        "p99 ms",
        "",
        "s"
    );
    let li = procs
        .iter()
        .position(|p| p.api == leader_api)
        .context("the leader is none of the three nodes")?;
    let pids = |f: &dyn Fn(usize) -> Option<u32>, leader: bool| -> Vec<u32> {
        (0..procs.len())
            .filter(|&i| (i == li) == leader)
            .filter_map(f)
            .collect()
    };
    let node_pid = |i: usize| procs[i].pid();
    let db_pid = |i: usize| Some(servers[i].pid());
    let me = std::process::id();
    let cluster_groups = vec![
        pids(&node_pid, true),
        pids(&node_pid, false),
        pids(&db_pid, true),
        pids(&db_pid, false),
        vec![me],
    ];
    let bare_groups = vec![vec![bare.pid()], vec![me]];
    let mut cpu_lines = Vec::new();
    let mut breakdowns = Vec::new();
    let followers = follower_clients(&procs, &leader_api)?;
    let next_id = Arc::new(AtomicU64::new(1));
    for &n in clients {
        cluster_phase(&leader, n, Instant::now() + WARM_UP, &next_id).await?;
        wait_caught_up(&leader).await?;
        let cpu = Cpu::start(cluster_groups.clone());
        let measured = breakdown::measured_phase(
            &leader,
            &followers,
            n,
            Instant::now() + Duration::from_secs_f64(secs),
            &next_id,
        )
        .await?;
        breakdowns.push(measured.table(n));
        let c = measured.phase;
        // Followers may still be applying: let them finish before measuring the bare
        // server, so the cluster's backlog does not slow the baseline. Their CPU counts.
        let catch_up = wait_caught_up(&leader).await?;
        let c_cpu = cpu.per_op(c.lat.len());
        bare_phase(&bare_pool, n, Instant::now() + WARM_UP, &next_id).await?;
        let cpu = Cpu::start(bare_groups.clone());
        let b2 = bare_phase(
            &bare_pool,
            n,
            Instant::now() + Duration::from_secs_f64(secs),
            &next_id,
        )
        .await?;
        let b_cpu = cpu.per_op(b2.lat.len());
        bare.set_flush(1).await?;
        let b1 = bare_phase(
            &bare_pool,
            n,
            Instant::now() + Duration::from_secs_f64(secs),
            &next_id,
        )
        .await?;
        bare.set_flush(2).await?;
        println!(
            "{:>7} | {} | {} {:>6.2} | {} {:>6.2} | {:>8.1}",
            n,
            c.cells(),
            b2.cells(),
            c.ops / b2.ops,
            b1.cells(),
            c.ops / b1.ops,
            catch_up.as_secs_f64()
        );
        cpu_lines.push(format!(
            "{:>7} | {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>7.0} {:>7.0} | {:>7.0} {:>7.0} {:>7.0}",
            n,
            c_cpu[0],
            c_cpu[1],
            c_cpu[2],
            c_cpu[3],
            c_cpu[4],
            c_cpu.iter().sum::<f64>(),
            b_cpu[0],
            b_cpu[1],
            b_cpu.iter().sum::<f64>(),
        ));
    }
    println!(
        "ratio = cluster ins/s / bare ins/s; catch-up = seconds after the cluster phase until \
         every node had applied the whole log"
    );
    println!("CPU per insert, microseconds (user + system, from /proc; the cluster's includes the followers' catch-up):");
    println!(
        "{:>7} | {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
        "clients",
        "ws lead",
        "ws foll",
        "db lead",
        "db foll",
        "client",
        "total",
        "bare db",
        "client",
        "total"
    );
    for l in cpu_lines {
        println!("{l}");
    }
    println!(
        "ws = wolfscale processes, db = their MariaDB servers (foll = both followers together), \
         client = this benchmark's client side; bare = the flush=2 phase"
    );
    for b in breakdowns {
        print!("{b}");
    }
    println!("load average at end: {}", load_average());
    bare_pool.disconnect().await?;
    for p in procs.iter_mut() {
        p.stop().await;
    }
    drop(servers);
    drop(bare);
    Ok(())
}
