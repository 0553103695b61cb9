//! Figures shared by the benchmark modes: latency percentiles, and the plain
//! write + fdatasync loop every durable figure is compared with.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Latencies of completed operations, in microseconds.
#[derive(Debug, Default)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Latencies(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn extend(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The mean, in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.iter().map(|&us| f64::from(us)).sum::<f64>() / self.0.len() as f64 / 1000.0
    }

    /// Sorts in place; call before [`Latencies::percentile`].
    pub fn sort(&mut self) {
        self.0.sort_unstable();
    }

    /// The `p`-th percentile (0–100) of sorted latencies, in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (self.0.len() - 1) as f64).round() as usize;
        f64::from(self.0[rank.min(self.0.len() - 1)]) / 1000.0
    }
}

/// What the baseline loop measured.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    pub syncs_per_sec: f64,
}

/// A plain loop of `write(bytes)` + `fdatasync` to a fresh file in `dir` for `secs`: the
/// best a single durable writer can do on this disk right now.
pub fn fsync_baseline(dir: &Path, bytes: usize, secs: f64) -> std::io::Result<Baseline> {
    let path = dir.join(format!("fsync-baseline-{}.dat", std::process::id()));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let buf = vec![0x5au8; bytes.max(1)];
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut syncs = 0u64;
    while Instant::now() < deadline {
        f.write_all(&buf)?;
        f.sync_data()?;
        syncs += 1;
    }
    let elapsed = started.elapsed().as_secs_f64().max(f64::EPSILON);
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(Baseline {
        syncs_per_sec: syncs as f64 / elapsed,
    })
}

/// CPU seconds (user + system) process `pid` has used so far; `None` once it is gone.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces:
    // state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
    Some((utime + stime) / ticks)
}

/// The 1-minute load average, for the machine note every run prints.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let mut l = Latencies::default();
        for us in (1..=100).rev() {
            l.push(Duration::from_micros(us * 1000));
        }
        l.sort();
        assert_eq!(l.percentile(50.0), 51.0);
        assert_eq!(l.percentile(99.0), 99.0);
        assert_eq!(l.percentile(0.0), 1.0);
        assert!(Latencies::default().percentile(50.0).is_nan());
    }

    #[test]
    fn own_cpu_time_is_readable_and_grows() {
        let before = cpu_secs(std::process::id()).expect("own /proc stat");
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let after = cpu_secs(std::process::id()).expect("own /proc stat");
        assert!(after > before, "{before} -> {after}");
        assert_eq!(cpu_secs(u32::MAX), None);
    }
}
