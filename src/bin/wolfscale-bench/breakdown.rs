//! Where a WolfScale write's time goes: the leader's `wolfscale_write_stage_seconds`
//! histograms (and the followers' WAL fsync times) scraped from `/metrics` before and
//! after a phase, their difference printed per stage as mean, p50 and p99 (percentiles
//! interpolated within the histogram's buckets), beside what the clients measured.

use crate::http::{cluster_phase, Phase};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use wolfscale::api::client::Client;
use wolfscale::observe::stages::STAGES;

const STAGE: &str = "wolfscale_write_stage_seconds";
const HANDLER: &str = "wolfscale_write_duration_seconds";
const FSYNC: &str = "wolfscale_wal_fsync_duration_seconds";

/// One histogram: cumulative counts per upper bound (seconds), sum and count.
#[derive(Debug, Clone, Default)]
struct Hist {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Hist {
    fn minus(&self, before: &Hist) -> Hist {
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, n)| {
                let was = before
                    .buckets
                    .iter()
                    .find(|(b, _)| *b == le)
                    .map_or(0.0, |(_, n)| *n);
                (le, n - was)
            })
            .collect();
        Hist {
            buckets,
            sum: self.sum - before.sum,
            count: self.count - before.count,
        }
    }

    fn add(&mut self, other: &Hist) {
        if self.buckets.is_empty() {
            *self = other.clone();
            return;
        }
        for (le, n) in &mut self.buckets {
            *n += other
                .buckets
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, m)| *m);
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    fn mean_us(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count * 1e6
        } else {
            f64::NAN
        }
    }

    /// The `q` quantile (0–1) in microseconds, linear within the bucket that holds it.
    fn quantile_us(&self, q: f64) -> f64 {
        if self.count <= 0.0 {
            return f64::NAN;
        }
        let rank = q * self.count;
        let mut lower = (0.0, 0.0);
        for &(le, n) in &self.buckets {
            if n >= rank {
                if le.is_infinite() {
                    return lower.0 * 1e6;
                }
                let span = (n - lower.1).max(f64::MIN_POSITIVE);
                return (lower.0 + (le - lower.0) * (rank - lower.1) / span) * 1e6;
            }
            lower = (le, n);
        }
        lower.0 * 1e6
    }
}

/// Histograms by (metric, stage label or "").
#[derive(Debug, Default, Clone)]
pub(crate) struct Scrape(BTreeMap<(String, String), Hist>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut out: BTreeMap<(String, String), Hist> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let label = |key: &str| {
                labels.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k == key).then(|| v.trim_matches('"').to_string())
                })
            };
            for metric in [STAGE, HANDLER, FSYNC] {
                let Some(part) = name.strip_prefix(metric) else {
                    continue;
                };
                let key = (metric.to_string(), label("stage").unwrap_or_default());
                let h = out.entry(key).or_default();
                match part {
                    "_bucket" => {
                        let le = match label("le").as_deref() {
                            Some("+Inf") => f64::INFINITY,
                            Some(v) => v.parse().unwrap_or(f64::NAN),
                            None => continue,
                        };
                        h.buckets.push((le, value));
                    }
                    "_sum" => h.sum = value,
                    "_count" => h.count = value,
                    _ => {}
                }
            }
        }
        for h in out.values_mut() {
            h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Scrape(out)
    }

    /// Scrapes `/metrics` of `node`; an empty scrape if it does not answer.
    pub(crate) async fn of(node: &Client) -> Scrape {
        match node.metrics().await {
            Ok(text) => Scrape::parse(&text),
            Err(_) => Scrape::default(),
        }
    }

    fn minus(&self, before: &Scrape) -> Scrape {
        Scrape(
            self.0
                .iter()
                .map(|(k, h)| {
                    let d = before.0.get(k).map_or_else(|| h.clone(), |b| h.minus(b));
                    (k.clone(), d)
                })
                .collect(),
        )
    }

    fn get(&self, metric: &str, stage: &str) -> Option<&Hist> {
        self.0.get(&(metric.to_string(), stage.to_string()))
    }
}

/// A WolfScale phase with its breakdown.
pub(crate) struct Measured {
    pub(crate) phase: Phase,
    /// The leader's histograms over the phase.
    leader: Scrape,
    /// The followers' fsync histograms over the phase, added up.
    follower_fsync: Hist,
}

/// Runs [`cluster_phase`] against `leader`, scraping it and `followers` around it.
pub(crate) async fn measured_phase(
    leader: &Client,
    followers: &[Client],
    clients: usize,
    until: Instant,
    next_id: &Arc<AtomicU64>,
) -> anyhow::Result<Measured> {
    let before = Scrape::of(leader).await;
    let mut f_before = Vec::new();
    for f in followers {
        f_before.push(Scrape::of(f).await);
    }
    let phase = cluster_phase(leader, clients, until, next_id).await?;
    let leader_scrape = Scrape::of(leader).await.minus(&before);
    let mut follower_fsync = Hist::default();
    for (f, b) in followers.iter().zip(&f_before) {
        if let Some(h) = Scrape::of(f).await.minus(b).get(FSYNC, "") {
            follower_fsync.add(h);
        }
    }
    Ok(Measured {
        phase,
        leader: leader_scrape,
        follower_fsync,
    })
}

impl Measured {
    /// The breakdown table, one line per stage, for `clients` clients.
    pub(crate) fn table(&self, clients: usize) -> String {
        let mut out = format!(
            "write path at {clients} client(s), microseconds (mean / p50 / p99; stages from the \
             leader's /metrics, wal_sync and send..replicate run side by side):\n"
        );
        let row = |out: &mut String, name: &str, h: Option<&Hist>| {
            if let Some(h) = h.filter(|h| h.count > 0.0) {
                out.push_str(&format!(
                    "  {name:<22} {:>8.0} {:>8.0} {:>8.0}   n={:.0}\n",
                    h.mean_us(),
                    h.quantile_us(0.5),
                    h.quantile_us(0.99),
                    h.count
                ));
            } else {
                out.push_str(&format!("  {name:<22} {:>8}\n", "-"));
            }
        };
        out.push_str(&format!(
            "  {:<22} {:>8} {:>8} {:>8}\n",
            "stage", "mean", "p50", "p99"
        ));
        let mean = |s: &str| {
            self.leader
                .get(STAGE, s)
                .map(Hist::mean_us)
                .filter(|m| m.is_finite())
                .unwrap_or(0.0)
        };
        for s in STAGES {
            row(&mut out, s, self.leader.get(STAGE, s));
        }
        row(&mut out, "(follower fsync)", Some(&self.follower_fsync));
        row(
            &mut out,
            "leader handler total",
            self.leader.get(HANDLER, ""),
        );
        let lat = &self.phase.lat;
        out.push_str(&format!(
            "  {:<22} {:>8.0} {:>8.0} {:>8.0}   n={}\n",
            "client round trip",
            lat.mean_ms() * 1e3,
            lat.percentile(50.0) * 1e3,
            lat.percentile(99.0) * 1e3,
            lat.len()
        ));
        // The critical path of the means: the slower of the local sync and replication.
        let path: f64 = ["parse", "prepare", "batch_wait", "propose"]
            .iter()
            .map(|s| mean(s))
            .sum::<f64>()
            + mean("wal_sync").max(mean("send") + mean("replicate"))
            + mean("commit")
            + mean("apply")
            + mean("answer");
        let handler = self.leader.get(HANDLER, "").map_or(f64::NAN, Hist::mean_us);
        out.push_str(&format!(
            "  sum of stage means on the critical path {path:.0}; handler total minus it {:.0} \
             (body read, dispatch, response); client minus handler {:.0} (HTTP on both \
             sides, loopback, client)\n",
            handler - path,
            lat.mean_ms() * 1e3 - handler
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_parsed_diffed_and_interpolated() {
        let before = Scrape::parse(
            "wolfscale_write_stage_seconds_bucket{stage=\"apply\",le=\"0.0001\"} 1\n\
             wolfscale_write_stage_seconds_bucket{stage=\"apply\",le=\"0.0002\"} 2\n\
             wolfscale_write_stage_seconds_bucket{stage=\"apply\",le=\"+Inf\"} 2\n\
             wolfscale_write_stage_seconds_sum{stage=\"apply\"} 0.0002\n\
             wolfscale_write_stage_seconds_count{stage=\"apply\"} 2\n",
        );
        let after = Scrape::parse(
            "# HELP x\n\
             wolfscale_write_stage_seconds_bucket{stage=\"apply\",le=\"0.0001\"} 1\n\
             wolfscale_write_stage_seconds_bucket{stage=\"apply\",le=\"0.0002\"} 12\n\
             wolfscale_write_stage_seconds_bucket{stage=\"apply\",le=\"+Inf\"} 12\n\
             wolfscale_write_stage_seconds_sum{stage=\"apply\"} 0.0017\n\
             wolfscale_write_stage_seconds_count{stage=\"apply\"} 12\n",
        );
        let d = after.minus(&before);
        let h = d.get(STAGE, "apply").expect("parsed");
        assert_eq!(h.count, 10.0);
        assert!((h.mean_us() - 150.0).abs() < 1e-6, "{}", h.mean_us());
        // All ten new samples sit in (100, 200] µs: the median interpolates to 150.
        assert!((h.quantile_us(0.5) - 150.0).abs() < 1e-6);
        assert!(h.quantile_us(0.99) <= 200.0 + 1e-6);
    }
}
