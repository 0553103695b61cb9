//! Follower lag in milliseconds (issue 16: "p99 ≤ 10 ms at half of the maximum
//! throughput"). A 3-process cluster (each node with its own MariaDB) takes single-row
//! inserts through the leader's HTTP API: first closed-loop from `clients` clients to find
//! the maximum rate, then open-loop at a fraction of it (each insert has a scheduled send
//! time; `clients` tasks take the next slot when free). Meanwhile one task per node polls
//! every `sample` interval: the followers with `GET /status`, which a node answers from
//! memory; the leader with `GET /metrics`, the only place that shows how far each
//! follower's log matches its own (`wolfscale_peer_replication_lag_entries`).
//!
//! Lag of a follower for LSN L = (first time the follower was seen with
//! `applied_lsn ≥ L`) − (first time L was seen committed on the leader). No endpoint shows
//! the leader's commit index as it moves: `commit_lsn` in `/status` and `/metrics` is
//! refreshed from openraft every 200 ms (never below the node's `applied_lsn`). So the
//! commit time is bracketed. Early evidence: a leader sample where a follower's log
//! matches up to L (with the leader's own copy a majority holds it; the leader's fsync
//! runs beside the follower's, so this can precede the commit slightly); the lag from it
//! is an upper bound. Late evidence: a leader sample with `applied_lsn ≥ L`, or a
//! client's answer for an insert at LSN ≥ L (the leader answers after commit and its own
//! apply); the lag from it is a lower bound. The follower side is late by at most one
//! sampling interval plus one round trip.

use crate::http::{launch, three_node_cluster, wait_caught_up, write_lsn};
use crate::stats::load_average;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wolfscale::api::client::{Client, WriteKind};

/// What `wolfscale-bench lag` is asked to do.
pub struct Args {
    pub dir: PathBuf,
    /// Seconds of the closed-loop maximum-rate probe.
    pub probe_seconds: f64,
    /// Seconds of the open-loop steady phase.
    pub seconds: f64,
    /// Concurrent clients in both phases.
    pub clients: usize,
    /// Steady rate as a fraction of the probe's rate.
    pub fraction: f64,
    /// Interval between two `/status` samples of one node, milliseconds.
    pub sample_ms: f64,
    pub wolfscale: Option<PathBuf>,
}

/// One sample of a node: when it arrived (ms since the run's origin), how long the
/// request took, and the LSNs it showed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Sample {
    pub(crate) at_ms: f64,
    pub(crate) rtt_ms: f64,
    pub(crate) applied: u64,
    /// The highest LSN a follower's log matches (leader samples only; 0 otherwise).
    pub(crate) replicated: u64,
}

/// From the leader's `/metrics` text: its applied LSN and the highest LSN any follower's
/// log matches (its last LSN minus that follower's replication lag). `None` if the
/// gauges are missing.
pub(crate) fn leader_lsns(metrics: &str) -> Option<(u64, u64)> {
    let (mut last, mut applied, mut min_lag) = (None, None, None::<u64>);
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        // Gauges hold whole LSNs, exactly representable in an f64 below 2^53.
        let value = value as u64;
        let name = series.split_once('{').map_or(series, |(n, _)| n);
        match name {
            "wolfscale_last_log_lsn" => last = Some(value),
            "wolfscale_applied_lsn" => applied = Some(value),
            "wolfscale_peer_replication_lag_entries" => {
                min_lag = Some(min_lag.map_or(value, |m| m.min(value)))
            }
            _ => {}
        }
    }
    let last = last?;
    Some((applied?, last.saturating_sub(min_lag?)))
}

/// One insert: its LSN, when it was scheduled, sent and answered (ms since origin).
#[derive(Debug, Clone, Copy)]
struct Insert {
    lsn: u64,
    due_ms: f64,
    sent_ms: f64,
    answered_ms: f64,
}

/// For LSNs `from..=to`, the first time each was reached in `seen`: (time, LSN reached
/// by then) pairs in time order. LSNs already reached by the first pair have no known
/// time (the observation began after them) and stay `None`, as do LSNs never reached.
pub(crate) fn first_seen(seen: &[(f64, u64)], from: u64, to: u64) -> Vec<Option<f64>> {
    let mut out = vec![None; usize::try_from(to.saturating_sub(from) + 1).unwrap_or(0)];
    let Some(&(_, first)) = seen.first() else {
        return out;
    };
    let mut reached = first;
    for &(t, lsn) in &seen[1..] {
        if lsn <= reached {
            continue;
        }
        for l in (reached + 1).max(from)..=lsn.min(to) {
            out[(l - from) as usize] = Some(t);
        }
        reached = lsn;
    }
    out
}

/// Per-LSN differences `later − earlier` where both are known.
pub(crate) fn differences(later: &[Option<f64>], earlier: &[Option<f64>]) -> Vec<f64> {
    later
        .iter()
        .zip(earlier)
        .filter_map(|(l, e)| Some((*l)? - (*e)?))
        .collect()
}

/// Sorted values' `p`-th percentile (0–100), nearest rank as [`crate::stats::Latencies`].
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// "p50 p99 max" of `values` (sorted here), milliseconds.
fn summary(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{:>7.2} {:>7.2} {:>7.2}",
        percentile(&values, 50.0),
        percentile(&values, 99.0),
        values.last().copied().unwrap_or(f64::NAN)
    )
}

/// Polls `/status` of every node until cancelled; one series per node.
pub(crate) struct Sampler {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    /// Samples `nodes`; `nodes[leader]` through `/metrics`, the others through `/status`.
    pub(crate) fn start(
        nodes: &[Client],
        leader: usize,
        origin: Instant,
        every: Duration,
    ) -> Sampler {
        let stop = CancellationToken::new();
        let tasks = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (node, stop, leader) = (n.clone(), stop.clone(), i == leader);
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(16_384);
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return out,
                            _ = tick.tick() => {}
                        }
                        let sent = Instant::now();
                        // A sample that fails (a node restarting) is simply missing.
                        let lsns = if leader {
                            node.metrics().await.ok().and_then(|m| leader_lsns(&m))
                        } else {
                            node.status().await.ok().map(|s| (s.applied_lsn, 0))
                        };
                        if let Some((applied, replicated)) = lsns {
                            let got = Instant::now();
                            out.push(Sample {
                                at_ms: ms(got - origin),
                                rtt_ms: ms(got - sent),
                                applied,
                                replicated,
                            });
                        }
                    }
                })
            })
            .collect();
        Sampler { stop, tasks }
    }

    pub(crate) async fn stop(self) -> anyhow::Result<Vec<Vec<Sample>>> {
        self.stop.cancel();
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            out.push(t.await.context("a /status sampler panicked")?);
        }
        Ok(out)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Inserts from `clients` tasks until `until`: closed-loop when `rate` is `None`, else
/// slot k is due at `start + k / rate` and sent when a task is free (late if none is).
async fn drive(
    leader: &Client,
    clients: usize,
    rate: Option<f64>,
    origin: Instant,
    until: Instant,
    next_id: &Arc<AtomicU64>,
) -> anyhow::Result<Vec<Insert>> {
    let start = Instant::now();
    let slots = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, next_id, slots) = (leader.clone(), next_id.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(8192);
            loop {
                let due = match rate {
                    Some(r) => {
                        let k = slots.fetch_add(1, Ordering::Relaxed);
                        start + Duration::from_secs_f64(k as f64 / r)
                    }
                    None => Instant::now(),
                };
                if due >= until {
                    return anyhow::Ok(out);
                }
                tokio::time::sleep_until(due.into()).await;
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let body = format!(r#"{{"table":"bench","values":{{"id":{id},"v":"row {id}"}}}}"#);
                let sent = Instant::now();
                let lsn = write_lsn(&client, WriteKind::Insert, body).await?;
                let answered = Instant::now();
                out.push(Insert {
                    lsn,
                    due_ms: ms(due - origin),
                    sent_ms: ms(sent - origin),
                    answered_ms: ms(answered - origin),
                });
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.dir.clone();
    let bin = args.wolfscale.clone();
    launch(&dir, "lag-bench", bin, |path, bin| async move {
        run_in(&path, &bin, &args).await
    })
}

/// What one phase measured, printed as a block.
fn report(
    name: &str,
    inserts: &[Insert],
    samples: &[Vec<Sample>],
    leader: usize,
    names: &[String],
    secs: f64,
) {
    let (Some(lo), Some(hi)) = (
        inserts.iter().map(|i| i.lsn).min(),
        inserts.iter().map(|i| i.lsn).max(),
    ) else {
        println!("{name}: no inserts");
        return;
    };
    let entries = hi - lo + 1;
    let mut from_due: Vec<f64> = inserts.iter().map(|i| i.answered_ms - i.due_ms).collect();
    let mut from_send: Vec<f64> = inserts.iter().map(|i| i.answered_ms - i.sent_ms).collect();
    from_due.sort_by(f64::total_cmp);
    from_send.sort_by(f64::total_cmp);
    println!(
        "{name}: {:.0} ins/s achieved ({} inserts in {secs:.1} s, LSNs {lo}..={hi}: {entries} \
         entries, {:.2} inserts per entry); answer latency p50/p99 ms from the scheduled \
         send {:.2}/{:.2}, from the actual send {:.2}/{:.2}",
        inserts.len() as f64 / secs,
        inserts.len(),
        inserts.len() as f64 / entries as f64,
        percentile(&from_due, 50.0),
        percentile(&from_due, 99.0),
        percentile(&from_send, 50.0),
        percentile(&from_send, 99.0),
    );
    // The leader's evidence of commit: its samples and every client answer (after
    // commit and the leader's apply). With what a follower's log matches: the early
    // reference; with the leader's applied LSN only: the late one.
    let seen_on_leader = |lsn: fn(&Sample) -> u64| {
        let mut points: Vec<(f64, u64)> = samples[leader]
            .iter()
            .map(|s| (s.at_ms, lsn(s)))
            .chain(inserts.iter().map(|i| (i.answered_ms, i.lsn)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        first_seen(&points, lo, hi)
    };
    let replicated_seen = seen_on_leader(|s| s.replicated.max(s.applied));
    let applied_seen = seen_on_leader(|s| s.applied);
    println!(
        "  {:<8} | {:^23} | {:^23} | {:>6} {:>5} | {:>7} {:>7} {:>7}",
        "", "lag after replicated", "lag after leader apply", "", "", "", "", ""
    );
    println!(
        "  {:<8} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>6} {:>5} | {:>7} {:>7} {:>7}",
        "node",
        "p50",
        "p99",
        "max",
        "p50",
        "p99",
        "max",
        "LSNs",
        "neg",
        "smp/s",
        "rtt p50",
        "rtt p99"
    );
    for (n, series) in samples.iter().enumerate() {
        let mut rtt: Vec<f64> = series.iter().map(|s| s.rtt_ms).collect();
        rtt.sort_by(f64::total_cmp);
        let rate = series.len() as f64 / secs;
        if n == leader {
            println!(
                "  {:<8} | {:^23} | {:^23} | {:>6} {:>5} | {:>7.0} {:>7.2} {:>7.2}",
                names[n],
                "(leader)",
                "",
                "",
                "",
                rate,
                percentile(&rtt, 50.0),
                percentile(&rtt, 99.0)
            );
            continue;
        }
        let applied: Vec<(f64, u64)> = series.iter().map(|s| (s.at_ms, s.applied)).collect();
        let seen = first_seen(&applied, lo, hi);
        let lag = differences(&seen, &replicated_seen);
        let negative = lag.iter().filter(|&&l| l < 0.0).count();
        let counted = lag.len();
        let after_leader = differences(&seen, &applied_seen);
        println!(
            "  {:<8} | {} | {} | {:>6} {:>5} | {:>7.0} {:>7.2} {:>7.2}",
            names[n],
            summary(lag),
            summary(after_leader),
            counted,
            negative,
            rate,
            percentile(&rtt, 50.0),
            percentile(&rtt, 99.0)
        );
    }
}

async fn run_in(dir: &Path, bin: &Path, args: &Args) -> anyhow::Result<()> {
    let (servers, mut procs, leader_api, leader) = three_node_cluster(dir, bin).await?;
    let li = procs
        .iter()
        .position(|p| p.api == leader_api)
        .context("the leader is none of the three nodes")?;
    let nodes: Vec<Client> = procs
        .iter()
        .map(|p| Ok(Client::new(&p.api)?.with_timeout(Duration::from_secs(5))))
        .collect::<anyhow::Result<_>>()?;
    let names: Vec<String> = (1..=procs.len()).map(|i| format!("node-{i}")).collect();
    let every = Duration::from_secs_f64(args.sample_ms / 1e3);
    println!(
        "lag benchmark: single-row INSERTs through the leader's HTTP API of a 3-process \
         cluster (default config), {} clients; followers polled with GET /status and the \
         leader with GET /metrics every {} ms; data in {}",
        args.clients,
        args.sample_ms,
        dir.display()
    );
    println!("load average at start: {}", load_average());
    let next_id = Arc::new(AtomicU64::new(1));
    let origin = Instant::now();
    // Warm-up: connections, the first segment, MariaDB's buffer pool.
    drive(
        &leader,
        args.clients,
        None,
        origin,
        Instant::now() + Duration::from_millis(500),
        &next_id,
    )
    .await?;
    wait_caught_up(&leader).await?;

    let mut phases = Vec::new();
    let sampler = Sampler::start(&nodes, li, origin, every);
    let started = Instant::now();
    let probe = drive(
        &leader,
        args.clients,
        None,
        origin,
        started + Duration::from_secs_f64(args.probe_seconds),
        &next_id,
    )
    .await?;
    let probe_secs = started.elapsed().as_secs_f64();
    wait_caught_up(&leader).await?;
    let probe_samples = sampler.stop().await?;
    let max_rate = probe.len() as f64 / probe_secs;
    phases.push((
        format!("maximum (closed loop, {} clients)", args.clients),
        probe,
        probe_samples,
        probe_secs,
    ));

    let rate = max_rate * args.fraction;
    let sampler = Sampler::start(&nodes, li, origin, every);
    let started = Instant::now();
    let steady = drive(
        &leader,
        args.clients,
        Some(rate),
        origin,
        started + Duration::from_secs_f64(args.seconds),
        &next_id,
    )
    .await?;
    let steady_secs = started.elapsed().as_secs_f64();
    wait_caught_up(&leader).await?;
    let steady_samples = sampler.stop().await?;
    phases.push((
        format!(
            "steady (open loop at {:.0}% of the maximum = {rate:.0} ins/s, {} clients)",
            args.fraction * 100.0,
            args.clients
        ),
        steady,
        steady_samples,
        steady_secs,
    ));

    println!(
        "columns: follower lag in ms per LSN (p50 p99 max) = first seen applied on the \
         follower − first seen committed on the leader, by the early evidence (a follower's \
         log matched it on the leader, or the leader applied it, or a client got its \
         answer: an upper bound of the lag) and then by the late one (the leader applied \
         it or a client got its answer: a lower bound); LSNs = entries counted; neg = how \
         many of them were seen applied before the early evidence (sampling skew); \
         smp/s = samples per second; rtt = their round trip, ms. A follower's time is late \
         by up to one interval ({} ms) plus one round trip.",
        args.sample_ms
    );
    for (name, inserts, samples, secs) in &phases {
        report(name, inserts, samples, li, &names, *secs);
    }
    println!("load average at end: {}", load_average());
    for p in procs.iter_mut() {
        p.stop().await;
    }
    drop(servers);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_fills_every_lsn_a_jump_covers() {
        // Observation starts at LSN 3; 4..=6 arrive together at t=10, 7 at t=12.
        let seen = [(0.0, 3), (5.0, 3), (10.0, 6), (11.0, 5), (12.0, 7)];
        let got = first_seen(&seen, 2, 8);
        assert_eq!(
            got,
            vec![
                None,
                None,
                Some(10.0),
                Some(10.0),
                Some(10.0),
                Some(12.0),
                None
            ]
        );
        assert_eq!(first_seen(&[], 1, 2), vec![None, None]);
    }

    #[test]
    fn leader_lsns_come_from_the_gauges() {
        let text = "# TYPE wolfscale_last_log_lsn gauge\n\
                    wolfscale_last_log_lsn 120\n\
                    wolfscale_applied_lsn 111\n\
                    wolfscale_commit_lsn 100\n\
                    wolfscale_peer_replication_lag_entries{peer=\"node-2\"} 7\n\
                    wolfscale_peer_replication_lag_entries{peer=\"node-3\"} 3\n\
                    wolfscale_wal_fsync_duration_seconds_count 5\n";
        assert_eq!(leader_lsns(text), Some((111, 117)));
        assert_eq!(leader_lsns("wolfscale_last_log_lsn 120\n"), None);
    }

    #[test]
    fn lag_is_matched_per_lsn_and_skips_unknowns() {
        let leader = [Some(1.0), Some(2.0), None, Some(4.0)];
        let follower = [Some(1.5), None, Some(3.0), Some(3.5)];
        assert_eq!(differences(&follower, &leader), vec![0.5, -0.5]);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
