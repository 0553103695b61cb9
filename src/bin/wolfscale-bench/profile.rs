//! A CPU profile of the leader (issue 16: "profile with perf"): a 3-process cluster takes
//! single-row inserts through the leader's HTTP API from `clients` clients while
//! `perf record` samples the leader's `wolfscale` process with call graphs. The
//! recording is left in `--out` for `perf report` (scripts/profile-leader.sh runs both
//! and writes the top frames and folded stacks next to it).

use crate::http::{cluster_phase, launch, three_node_cluster, wait_caught_up, WARM_UP};
use crate::stats::{cpu_secs, load_average};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `wolfscale-bench profile` is asked to do.
pub struct Args {
    pub dir: PathBuf,
    /// Where `perf.data` goes (kept after the run).
    pub out: PathBuf,
    /// Seconds `perf record` samples.
    pub seconds: f64,
    pub clients: usize,
    /// Samples per second.
    pub freq: u32,
    /// `perf record --call-graph` mode: `dwarf` (works without frame pointers, which
    /// release builds omit) or `fp`.
    pub call_graph: String,
    pub wolfscale: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let dir = args.dir.clone();
    let bin = args.wolfscale.clone();
    launch(&dir, "profile-bench", bin, |path, bin| async move {
        run_in(&path, &bin, &args).await
    })
}

async fn run_in(dir: &Path, bin: &Path, args: &Args) -> anyhow::Result<()> {
    let (servers, mut procs, leader_api, leader) = three_node_cluster(dir, bin).await?;
    let pid = procs
        .iter()
        .find(|p| p.api == leader_api)
        .and_then(|p| p.pid())
        .context("the leader is none of the three nodes")?;
    let data = args
        .out
        .canonicalize()
        .context("resolve --out")?
        .join("perf.data");
    tokio::fs::write(args.out.join("leader.pid"), pid.to_string()).await?;
    println!(
        "profile: perf record -F {} --call-graph {} of the leader's wolfscale process (pid \
         {pid}) for {} s while {} clients insert single rows through its HTTP API; \
         recording in {}",
        args.freq,
        args.call_graph,
        args.seconds,
        args.clients,
        data.display()
    );
    println!("load average at start: {}", load_average());
    let next_id = Arc::new(AtomicU64::new(1));
    cluster_phase(&leader, args.clients, Instant::now() + WARM_UP, &next_id).await?;
    wait_caught_up(&leader).await?;

    // The load runs one second before and after the recording, so perf sees a steady state.
    let load_secs = args.seconds + 2.0;
    let until = Instant::now() + Duration::from_secs_f64(load_secs);
    let load = {
        let (leader, next_id, clients) = (leader.clone(), next_id.clone(), args.clients);
        tokio::spawn(async move { cluster_phase(&leader, clients, until, &next_id).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = cpu_secs(pid).unwrap_or(0.0);
    let perf = tokio::process::Command::new("perf")
        .arg("record")
        .arg("-F")
        .arg(args.freq.to_string())
        .arg("--call-graph")
        .arg(&args.call_graph)
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg("sleep")
        .arg(args.seconds.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .context("run perf (Debian: apt-get install linux-perf)")?;
    let cpu = cpu_secs(pid).unwrap_or(f64::NAN) - cpu0;
    let phase = load.await.context("the load task panicked")??;
    let stderr = String::from_utf8_lossy(&perf.stderr);
    println!(
        "load: {:.0} ins/s, p50 {:.2} ms, p99 {:.2} ms over {load_secs:.0} s; the leader's \
         process used {cpu:.2} CPU-seconds during the recording ({:.0}% of one core)",
        phase.ops,
        phase.lat.percentile(50.0),
        phase.lat.percentile(99.0),
        cpu * 100.0 / args.seconds
    );
    println!("perf: {}", stderr.trim());
    println!("load average at end: {}", load_average());
    for p in procs.iter_mut() {
        p.stop().await;
    }
    drop(servers);
    if !perf.status.success() {
        bail!("perf record failed ({}): {}", perf.status, stderr.trim());
    }
    Ok(())
}
