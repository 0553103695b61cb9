//! The consensus benchmark: commits/s of small entries through a 3-node cluster in this
//! process (real nodes: WAL with fsync, state db, authenticated TCP transport between
//! them), with a state machine whose apply costs nothing, so the figure is the cost of
//! consensus and durability alone. Each case is followed by the plain write + fdatasync
//! loop in the same directory, so both see the same disk.

use crate::scratch::{free_port, Scratch};
use crate::stats::{cpu_secs, fsync_baseline, load_average, Latencies};
use anyhow::{bail, Context};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::config::{self, Config, EnvOverrides};
use wolfscale::consensus::state_machine::{Applier, ApplyError};
use wolfscale::consensus::{Entry, LogId, Request, Response, Responses, StoredMembership};
use wolfscale::node::{Node, Role, StartMode};
use wolfscale::wal::MetricsSnapshot;

/// Applies nothing: keeps the applied position and membership in memory. The nodes never
/// restart during a run, so nothing needs to survive one.
#[derive(Default)]
struct NullApplier {
    applied: Option<LogId>,
    membership: StoredMembership,
}

impl Applier for NullApplier {
    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), ApplyError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply(&mut self, entries: Vec<Entry>) -> Result<Vec<Responses>, ApplyError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let answers = match e.payload {
                openraft::EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    Vec::new()
                }
                openraft::EntryPayload::Normal(rs) => vec![Response::default(); rs.0.len()],
                openraft::EntryPayload::Blank => Vec::new(),
            };
            self.applied = Some(e.log_id);
            out.push(Responses(answers));
        }
        Ok(out)
    }
}

struct BenchNode {
    node: Node,
    addr: String,
}

async fn start_node(dir: &Path, i: usize, mode: StartMode) -> anyhow::Result<BenchNode> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let data = dir.join(format!("node-{i}"));
    // Production defaults for [wal] and [cluster] timing; only what a test node needs set.
    let mut c = Config::new(&format!("node-{i}"), &addr, &data);
    c.cluster.secret = Some("bench-cluster-secret-0123456789".into());
    c.api.enabled = false;
    let text = c.to_toml()?;
    let loaded = config::parse(&text, &EnvOverrides::default())
        .map_err(|e| anyhow::anyhow!("node config refused: {e:?}"))?;
    let node = Node::start(loaded.config, &loaded.secrets, mode, NullApplier::default())
        .await
        .with_context(|| format!("start node-{i}"))?;
    Ok(BenchNode { node, addr })
}

async fn wait_for_three_voters(nodes: &[BenchNode]) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (i, n) in nodes.iter().enumerate() {
            let s = n.node.status();
            if s.role == Role::Leader && s.voters.len() == 3 && s.learners.is_empty() {
                return Ok(i);
            }
        }
        if Instant::now() > deadline {
            bail!("no leader with 3 voters within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `writers` tasks proposing `payload` through `leader` until `until`.
async fn drive(
    leader: &Node,
    payload: &Arc<Vec<u8>>,
    writers: usize,
    until: Instant,
) -> anyhow::Result<Latencies> {
    let mut tasks = Vec::with_capacity(writers);
    for _ in 0..writers {
        let (node, payload) = (leader.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::with_capacity(4096);
            while Instant::now() < until {
                let t0 = Instant::now();
                node.propose_local(Request {
                    payload: payload.to_vec(),
                })
                .await
                .map_err(|e| anyhow::anyhow!("write failed: {e}"))?;
                lat.push(t0.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Latencies::default();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

fn wal_metrics(n: &BenchNode) -> MetricsSnapshot {
    n.node.log_store().wal().metrics()
}

/// Runs every writer count and prints one line each.
pub fn run(dir: &Path, secs: f64, writers: &[usize], size: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let scratch = Scratch::new(dir, "cluster-bench")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_in(scratch.path(), secs, writers, size))?;
    drop(rt);
    drop(scratch);
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

async fn run_in(dir: &Path, secs: f64, writers: &[usize], size: usize) -> anyhow::Result<()> {
    let first = start_node(dir, 1, StartMode::Bootstrap).await?;
    let seed = first.addr.clone();
    let mut nodes = vec![first];
    for i in 2..=3 {
        nodes.push(start_node(dir, i, StartMode::Join(vec![seed.clone()])).await?);
    }
    let leader = wait_for_three_voters(&nodes).await?;
    let follower = (leader + 1) % nodes.len();
    println!(
        "cluster benchmark: 3 nodes in one process (2 tokio workers), {size}-byte entries, \
         null state machine, WAL defaults (fsync on), {secs} s per case; data in {}",
        dir.display()
    );
    println!("load average at start: {}", load_average());
    println!(
        "{:>7} | {:>10} {:>8} {:>8} {:>7} | {:>9} {:>9} {:>9} {:>9} | {:>9} {:>8}",
        "writers",
        "commits/s",
        "p50 ms",
        "p99 ms",
        "cpu us",
        "L syncs/s",
        "L ent/sy",
        "F syncs/s",
        "F ent/sy",
        "base sy/s",
        "c/base"
    );
    let payload = Arc::new(vec![0x42u8; size]);
    for &w in writers {
        // Warm-up outside the clock: connections, replication streams, a first segment.
        drive(
            &nodes[leader].node,
            &payload,
            w,
            Instant::now() + Duration::from_millis(300),
        )
        .await?;
        let (l0, f0) = (wal_metrics(&nodes[leader]), wal_metrics(&nodes[follower]));
        let cpu0 = cpu_secs(std::process::id()).unwrap_or(0.0);
        let started = Instant::now();
        let mut lat = drive(
            &nodes[leader].node,
            &payload,
            w,
            started + Duration::from_secs_f64(secs),
        )
        .await?;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_secs(std::process::id()).unwrap_or(0.0) - cpu0;
        let (l1, f1) = (wal_metrics(&nodes[leader]), wal_metrics(&nodes[follower]));
        let l_syncs = (l1.syncs - l0.syncs).max(1);
        let f_syncs = (f1.syncs - f0.syncs).max(1);
        let bytes_per_sync = ((l1.bytes - l0.bytes) / l_syncs).max(1) as usize;
        let dir2 = dir.to_path_buf();
        let base = tokio::task::spawn_blocking(move || {
            fsync_baseline(&dir2, bytes_per_sync, (secs / 2.0).max(0.5))
        })
        .await??;
        lat.sort();
        let commits = lat.len() as f64 / elapsed;
        println!(
            "{:>7} | {:>10.0} {:>8.2} {:>8.2} {:>7.0} | {:>9.0} {:>9.1} {:>9.0} {:>9.1} | {:>9.0} {:>8.1}",
            w,
            commits,
            lat.percentile(50.0),
            lat.percentile(99.0),
            cpu * 1e6 / lat.len().max(1) as f64,
            l_syncs as f64 / elapsed,
            (l1.records - l0.records) as f64 / l_syncs as f64,
            f_syncs as f64 / elapsed,
            (f1.records - f0.records) as f64 / f_syncs as f64,
            base.syncs_per_sec,
            commits / base.syncs_per_sec,
        );
    }
    println!(
        "columns: cpu us = CPU microseconds (user + system) of this process, all three nodes, \
         per commit; L/F = the leader's / one follower's WAL (fdatasyncs per second, entries per \
         sync); base = a plain write + fdatasync loop of the leader's mean bytes per sync in \
         the same directory right after the case; c/base = commits per baseline sync"
    );
    println!("load average at end: {}", load_average());
    for n in nodes {
        n.node
            .shutdown()
            .await
            .with_context(|| format!("stop {}", n.node.info().name))?;
    }
    Ok(())
}
