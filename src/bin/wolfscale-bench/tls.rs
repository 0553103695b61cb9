//! `wolfscale-bench tls`: what TLS costs on each port, with and without it in one run.
//!
//! - cluster: 64 (by default) concurrent callers send 1 KiB requests over the cluster
//!   transport to an echo handler on loopback: plain TCP, then mutual TLS.
//! - http: the same number of HTTP/1.1 keep-alive clients call `GET /livez` on the API
//!   server loop (a trivial route, so this is the worst case: all the work is transport):
//!   plain HTTP, then HTTPS.
//!
//! Certificates come from `tls init` into `--dir`; calls are counted over `--seconds`.

use anyhow::{Context, Result};
use axum::routing::get;
use bytes::Bytes;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wolfscale::api::client::Client as HttpClient;
use wolfscale::config::TlsConfig;
use wolfscale::tls::{ClusterAcceptor, ClusterConnector, Tls};
use wolfscale::transport::{self, AuthKey, Client, ClientConfig, Handler, Identity, PeerInfo};

const SECRET: &str = "bench-secret-of-enough-length";

struct Echo;

impl Handler for Echo {
    type Request = Vec<u8>;
    type Response = Vec<u8>;
    async fn handle(&self, _peer: &PeerInfo, request: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(request)
    }
}

fn ident(node: &str) -> Identity {
    Identity {
        cluster: "bench".into(),
        node: node.into(),
    }
}

/// What one case measured.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Calls per second (wall clock): what other processes on the machine disturb most.
    calls_per_sec: f64,
    /// CPU time (user + system, client and server together: both run in this process)
    /// per call, in microseconds: much less disturbed by other processes' load.
    cpu_us_per_call: f64,
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage only writes the struct it is given; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage succeeded, so it filled the struct (and zeroed is valid anyway).
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Runs `clients` loops of `one` for `seconds`; returns the call rate and CPU per call.
async fn drive<F, Fut>(clients: usize, seconds: f64, one: F) -> Result<Rate>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let one = Arc::new(one);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    // Warm up: every client makes one call (connections, TLS sessions) before timing.
    for i in 0..clients {
        one(i).await?;
    }
    let start = Instant::now();
    let cpu_start = cpu_time();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..clients {
        let (one, stop, count) = (one.clone(), stop.clone(), count.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                one(i).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = tasks.join_next().await {
        r.context("client task")??;
    }
    let calls = count.load(Ordering::Relaxed).max(1) as f64;
    Ok(Rate {
        calls_per_sec: calls / start.elapsed().as_secs_f64(),
        cpu_us_per_call: (cpu_time() - cpu_start).as_secs_f64() * 1e6 / calls,
    })
}

async fn cluster(
    tls: Option<(&TlsConfig, &TlsConfig)>,
    clients: usize,
    seconds: f64,
) -> Result<Rate> {
    let (server_tls, client_tls) = match tls {
        Some((s, c)) => (Some(Tls::load(s)?), Some(Tls::load(c)?)),
        None => (None, None),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let stop = CancellationToken::new();
    let mut cfg = transport::ServerConfig::new(ident("server"), AuthKey::new(SECRET)?);
    cfg.max_connections = clients + 8;
    tokio::spawn(transport::serve_with(
        listener,
        cfg,
        Arc::new(Echo),
        ClusterAcceptor(server_tls),
        stop.clone(),
    ));
    // One transport client per caller, as each peer has its own connection.
    let callers: Arc<Vec<Client<ClusterConnector>>> = Arc::new(
        (0..clients)
            .map(|i| {
                let cc = ClientConfig::new(ident(&format!("c{i}")), AuthKey::new(SECRET)?);
                Ok(Client::with_connector(
                    cc,
                    ClusterConnector(client_tls.clone()),
                ))
            })
            .collect::<Result<_>>()?,
    );
    let payload = vec![7u8; 1024];
    let rate = drive(clients, seconds, move |i| {
        let (callers, addr, payload) = (callers.clone(), addr.clone(), payload.clone());
        async move {
            callers[i]
                .call::<Vec<u8>, Vec<u8>>(&addr, &payload, Duration::from_secs(10))
                .await?;
            Ok(())
        }
    })
    .await;
    stop.cancel();
    rate
}

async fn http(tls: Option<(&TlsConfig, &Path)>, clients: usize, seconds: f64) -> Result<Rate> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let router = axum::Router::new().route("/livez", get(|| async { "{\"status\":\"ok\"}" }));
    let stop = CancellationToken::new();
    let ca = match tls {
        Some((server, ca)) => {
            let t = Tls::load(server)?;
            tokio::spawn(wolfscale::api::serve_tls(
                listener,
                router,
                t,
                wolfscale::api::MAX_CONNECTIONS,
                stop.clone(),
            ));
            Some(ca.to_path_buf())
        }
        None => {
            tokio::spawn(wolfscale::api::serve(listener, router, stop.clone()));
            None
        }
    };
    let callers: Arc<Vec<HttpClient>> = Arc::new(
        (0..clients)
            .map(|_| {
                let c = HttpClient::new(&addr)?;
                Ok(match &ca {
                    Some(ca) => c.with_ca_file(ca)?,
                    None => c,
                })
            })
            .collect::<Result<_>>()?,
    );
    let rate = drive(clients, seconds, move |i| {
        let callers = callers.clone();
        async move {
            let r = callers[i]
                .raw(axum::http::Method::GET, "/livez", None, Bytes::new())
                .await?;
            anyhow::ensure!(r.status.is_success(), "status {}", r.status);
            Ok(())
        }
    })
    .await;
    stop.cancel();
    rate
}

/// Rounds of off/on pairs per port.
const ROUNDS: usize = 3;

/// Prints calls/s for both ports, TLS off and on, and the ratio, per round and the median.
pub fn run(dir: &Path, seconds: f64, clients: usize) -> Result<()> {
    let certs = dir.join("tls-bench-certs");
    if certs.exists() {
        std::fs::remove_dir_all(&certs).context("clear old certificates")?;
    }
    let hosts = vec!["127.0.0.1".to_string()];
    let g = wolfscale::tls::generate(&certs, &["a".into(), "b".into()], &hosts)?;
    let files = |i: usize| TlsConfig {
        cert_file: g.nodes[i].1.clone(),
        key_file: g.nodes[i].2.clone(),
        ca_file: g.ca_file.clone(),
    };
    let (a, b) = (files(0), files(1));
    let rt = tokio::runtime::Runtime::new()?;
    println!(
        "tls: {clients} clients, {seconds} s per case, {ROUNDS} rounds, load average {}",
        crate::stats::load_average()
    );
    // Off and on alternate within each round, so a burst of load from elsewhere on a
    // shared machine hits both sides of one ratio; the median ratio is the result.
    let mut cluster_ratios = Vec::new();
    let mut cluster_plain_cpu = Vec::new();
    let mut http_ratios = Vec::new();
    let line = |name: &str, off: Rate, on: Rate| {
        println!(
            "{name:<8} plain {:>8.0} calls/s {:>6.1} µs CPU/call   tls {:>8.0} calls/s {:>6.1} µs CPU/call   \
             tls/plain: rate {:.3} ({:+.1} %), CPU/call {:.3}",
            off.calls_per_sec,
            off.cpu_us_per_call,
            on.calls_per_sec,
            on.cpu_us_per_call,
            on.calls_per_sec / off.calls_per_sec,
            (on.calls_per_sec / off.calls_per_sec - 1.0) * 100.0,
            on.cpu_us_per_call / off.cpu_us_per_call,
        )
    };
    let ratios = |off: Rate, on: Rate| {
        (
            on.calls_per_sec / off.calls_per_sec,
            on.cpu_us_per_call / off.cpu_us_per_call,
        )
    };
    for round in 1..=ROUNDS {
        let cl_plain = rt.block_on(cluster(None, clients, seconds))?;
        let cl_tls = rt.block_on(cluster(Some((&a, &b)), clients, seconds))?;
        let http_plain = rt.block_on(http(None, clients, seconds))?;
        let http_tls = rt.block_on(http(Some((&a, &g.ca_file)), clients, seconds))?;
        println!(
            "round {round} (load average {})",
            crate::stats::load_average()
        );
        line("cluster", cl_plain, cl_tls);
        line("http", http_plain, http_tls);
        cluster_ratios.push(ratios(cl_plain, cl_tls));
        cluster_plain_cpu.push(cl_plain.cpu_us_per_call);
        http_ratios.push(ratios(http_plain, http_tls));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (name, r) in [("cluster", cluster_ratios), ("http", http_ratios)] {
        let rate = median(r.iter().map(|x| x.0).collect());
        let cpu = median(r.iter().map(|x| x.1).collect());
        println!(
            "median tls/plain {name}: rate {rate:.3} ({:+.1} %), CPU per call {cpu:.3} \
             (a CPU-bound node would lose {:.1} %)",
            (rate - 1.0) * 100.0,
            (1.0 - 1.0 / cpu) * 100.0
        );
    }
    crate::tls_floor::run(&a, Some(median(cluster_plain_cpu)))
}
