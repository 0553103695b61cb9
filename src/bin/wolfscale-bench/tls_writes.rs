//! The end-to-end half of `wolfscale-bench tls`: single-row inserts through
//! `POST /write/insert` of two 3-process clusters started side by side, one without TLS
//! and one with `[tls]` on every node (the API over HTTPS, the cluster port mutual TLS),
//! each node with its own private MariaDB. Both clusters stay up for the whole run; for
//! each client count the plain one and the TLS one are measured back to back, so a burst
//! of load from elsewhere hits both sides of one ratio. The median ratio over the rounds
//! is the result.

use crate::http::{self, cluster_phase, wait_caught_up, Cpu, Phase, Proc, WARM_UP};
use crate::mariadb::{Server, Template};
use crate::stats::load_average;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wolfscale::api::client::Client;

/// One running cluster and what is needed to drive and account for it.
struct Cluster {
    procs: Vec<Proc>,
    _servers: Vec<Server>,
    leader: Client,
    next_id: Arc<AtomicU64>,
    /// (wolfscale processes, their MariaDB servers, this benchmark process).
    groups: Vec<Vec<u32>>,
}

/// What one case measured.
struct Case {
    phase: Phase,
    /// CPU µs per insert: wolfscale processes, MariaDB servers, the client (this process).
    cpu: Vec<f64>,
}

/// Starts a cluster in `<dir>/<name>`; `tls` gives each node's `[tls]` section and the CA
/// file the client trusts.
async fn start(
    dir: &Path,
    name: &str,
    bin: &Path,
    template: &Template,
    tls: Option<&wolfscale::tls::Generated>,
) -> anyhow::Result<Cluster> {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).with_context(|| format!("create {}", home.display()))?;
    let mut servers = Vec::new();
    for i in 1..=3 {
        servers.push(Server::start(template, &home, &format!("db-{i}"), 2).await?);
    }
    if let Some(g) = tls {
        anyhow::ensure!(g.nodes.len() >= 3, "a certificate per node");
    }
    let tweak = |i: usize, c: &mut wolfscale::config::Config| {
        if let Some((_, cert, key)) = tls.and_then(|g| g.nodes.get(i)) {
            c.tls = tls.map(|g| wolfscale::config::TlsConfig {
                cert_file: cert.clone(),
                key_file: key.clone(),
                ca_file: g.ca_file.clone(),
            });
        }
    };
    let ca: Option<PathBuf> = tls.map(|g| g.ca_file.clone());
    let client = |address: &str| -> anyhow::Result<Client> {
        let c = Client::new(address)?;
        Ok(match &ca {
            Some(ca) => c.with_ca_file(ca)?,
            None => c,
        })
    };
    let (procs, _, leader) = http::start_cluster_with(&home, bin, &servers, tweak, client).await?;
    let groups = vec![
        procs.iter().filter_map(Proc::pid).collect(),
        servers.iter().map(Server::pid).collect(),
        vec![std::process::id()],
    ];
    Ok(Cluster {
        procs,
        _servers: servers,
        leader,
        next_id: Arc::new(AtomicU64::new(1)),
        groups,
    })
}

/// A warm-up, then `secs` of inserts by `clients` clients; CPU counted until every node
/// has applied the whole log.
async fn measure(c: &Cluster, clients: usize, secs: f64) -> anyhow::Result<Case> {
    cluster_phase(&c.leader, clients, Instant::now() + WARM_UP, &c.next_id).await?;
    wait_caught_up(&c.leader).await?;
    let cpu = Cpu::start(c.groups.clone());
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let phase = cluster_phase(&c.leader, clients, until, &c.next_id).await?;
    wait_caught_up(&c.leader).await?;
    let cpu = cpu.per_op(phase.lat.len());
    Ok(Case { phase, cpu })
}

/// Rounds of off/on pairs per client count.
const ROUNDS: usize = 3;

/// Runs the end-to-end comparison: `clients` are the client counts, one case each per round.
pub fn run(
    dir: &Path,
    secs: f64,
    clients: &[usize],
    wolfscale: Option<PathBuf>,
) -> anyhow::Result<()> {
    http::launch(dir, "tls-writes-bench", wolfscale, |path, bin| async move {
        run_in(&path, secs, clients, &bin).await
    })
}

async fn run_in(dir: &Path, secs: f64, clients: &[usize], bin: &Path) -> anyhow::Result<()> {
    let certs = dir.join("certs");
    let names: Vec<String> = (1..=3).map(|i| format!("node-{i}")).collect();
    let g = wolfscale::tls::generate(&certs, &names, &["127.0.0.1".to_string()])?;
    let template = Template::make(dir).await?;
    let mut plain = start(dir, "plain", bin, &template, None).await?;
    let mut tls = start(dir, "tls", bin, &template, Some(&g)).await?;
    println!(
        "tls writes: single-row INSERTs through POST /write/insert of the leader, two \
         3-process clusters (each node its own MariaDB, WAL fsync on), one plain and one \
         with [tls] (HTTPS API, mutual-TLS cluster port); {secs} s per case, {ROUNDS} rounds, \
         load average {}",
        load_average()
    );
    println!(
        "{:>5} {:>7} | {:^25} | {:^25} | {:^17} | CPU µs per insert, plain → tls",
        "", "", "plain", "tls", "tls/plain"
    );
    println!(
        "{:>5} {:>7} | {:>9} {:>7} {:>7} | {:>9} {:>7} {:>7} | {:^17} |",
        "round", "clients", "ins/s", "p50 ms", "p99 ms", "ins/s", "p50 ms", "p99 ms", "rate"
    );
    let mut ratios: Vec<Vec<(f64, f64)>> = vec![Vec::new(); clients.len()];
    for round in 1..=ROUNDS {
        for (k, &n) in clients.iter().enumerate() {
            let off = measure(&plain, n, secs).await?;
            let on = measure(&tls, n, secs).await?;
            let rate = on.phase.ops / off.phase.ops;
            let total = |c: &Case| c.cpu.iter().sum::<f64>();
            ratios[k].push((rate, total(&on) / total(&off)));
            let pair = |i: usize| format!("{:.0} → {:.0}", off.cpu[i], on.cpu[i]);
            println!(
                "{round:>5} {n:>7} | {} | {} | {rate:>6.3} ({:+5.1} %) | wolfscale {}, mariadb {}, \
                 client {}, total {:.0} → {:.0}",
                off.phase.cells(),
                on.phase.cells(),
                (rate - 1.0) * 100.0,
                pair(0),
                pair(1),
                pair(2),
                total(&off),
                total(&on),
            );
        }
        println!("(after round {round}: load average {})", load_average());
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (k, &n) in clients.iter().enumerate() {
        let rate = median(ratios[k].iter().map(|r| r.0).collect());
        let cpu = median(ratios[k].iter().map(|r| r.1).collect());
        println!(
            "median tls/plain writes, {n:>2} clients: rate {rate:.3} ({:+.1} %), CPU per insert \
             (all processes) {cpu:.3}",
            (rate - 1.0) * 100.0
        );
    }
    println!("load average at end: {}", load_average());
    for p in plain.procs.iter_mut().chain(tls.procs.iter_mut()) {
        p.stop().await;
    }
    Ok(())
}
