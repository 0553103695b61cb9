//! The nemesis: a fault schedule drawn from the run's seed, and the code that injects
//! and heals each fault on the [`Cluster`]. Faults come one at a time; all are healed at
//! the end. A node that exits by itself is restarted (as systemd would) and, unless the
//! fault on it allows an exit (a failed fsync or a full disk), reported.
//!
//! A new fault kind is one more [`Fault`] variant with its `inject` and `heal` arms.

use super::cluster::{Cluster, Wrappers, ELECTION_TIMEOUT_MS, NODES};
use super::history::{secs, Event, FaultRecord};
use super::workload::Shared;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Asks the node at `api` for a linearizable read every 50 ms until it refuses one as cut
/// off from the majority (503 `quorum_lost`); returns the time from `since` to that
/// answer. Reads change nothing, so the probe leaves the workload's history alone.
async fn probe_refusal(api: String, since: Instant) -> Option<Duration> {
    let client = wolfscale::api::client::Client::new(&api)
        .ok()?
        .with_timeout(Duration::from_secs(2));
    let read = wolfscale::api::QueryRequest {
        sql: "SELECT COUNT(*) FROM hot".into(),
        params: Vec::new(),
        consistency: wolfscale::api::Consistency::Linearizable,
        min_lsn: None,
        timeout_ms: Some(200),
    };
    loop {
        match client.query(&read).await {
            Err(e) if e.code() == Some("quorum_lost") => return Some(since.elapsed()),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// How long after a fault that allows exits its node may still exit by itself.
const EXIT_GRACE: Duration = Duration::from_secs(15);

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// kill -9 the `wolfscale` process, restart it after the hold.
    Kill,
    /// SIGSTOP the process for longer than the election timeout, then SIGCONT.
    Pause,
    /// kill -9 the node's `mariadbd`, restart it after the hold.
    KillDb,
    /// Every fdatasync of the node fails (libfiu) during the hold.
    FsyncFail,
    /// The node's data dir (a tmpfs) is filled with a ballast file during the hold.
    DiskFull,
    /// The node's wall clock jumps by the step's offset during the hold (libfaketime).
    ClockSkew,
    /// Every link to and from the node is black-holed (aimed at the leader: it is cut
    /// off from the majority).
    Isolate,
    /// Only one direction: the node's calls to the others (or, with `inbound`, theirs to
    /// it) are black-holed.
    OneWay,
    /// Every link to and from a node that does not lead is black-holed.
    IsolateFollower,
    /// Five nodes split 2 | 3: the node (aimed at the leader) and the next one are cut off
    /// from the other three. Entries the old leader appended reach at most its partner:
    /// the new leader of the three may cut them, or — when the partner had them and is
    /// elected or they reached the majority side before the cut — still commit them.
    SplitPair,
}

impl Fault {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::KillDb => "kill-mariadbd",
            Fault::FsyncFail => "fsync-fail",
            Fault::DiskFull => "disk-full",
            Fault::ClockSkew => "clock-skew",
            Fault::Isolate => "partition",
            Fault::OneWay => "one-way-partition",
            Fault::IsolateFollower => "isolate-follower",
            Fault::SplitPair => "split-2-3",
        }
    }

    /// Whether only the run's wrapped node can take this fault.
    fn needs_wrapper(self) -> bool {
        matches!(self, Fault::FsyncFail | Fault::DiskFull | Fault::ClockSkew)
    }

    /// Whether the target may exit by itself while the fault lasts.
    fn may_exit(self) -> bool {
        matches!(self, Fault::FsyncFail | Fault::DiskFull)
    }

    /// Probability that the step aims at the leader rather than any node.
    fn leader_bias(self) -> f64 {
        match self {
            Fault::Kill | Fault::Isolate => 0.6,
            Fault::SplitPair => 0.8,
            Fault::Pause | Fault::OneWay => 0.5,
            Fault::IsolateFollower => 0.0,
            _ => 0.4,
        }
    }

    /// Hold time range in milliseconds.
    fn hold_ms(self) -> (u64, u64) {
        match self {
            Fault::Kill => (500, 4000),
            Fault::Pause => (ELECTION_TIMEOUT_MS * 3 / 2, ELECTION_TIMEOUT_MS * 4),
            Fault::KillDb => (500, 3000),
            Fault::FsyncFail | Fault::DiskFull => (2000, 6000),
            Fault::ClockSkew => (3000, 8000),
            Fault::Isolate | Fault::OneWay | Fault::IsolateFollower | Fault::SplitPair => {
                (ELECTION_TIMEOUT_MS * 2, ELECTION_TIMEOUT_MS * 6)
            }
        }
    }
}

/// Which faults a run draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo test`: kill, pause, mariadbd kill, partitions.
    Short,
    /// Soak runs: every fault kind.
    Full,
    /// Five nodes: kill, pause, mariadbd kill, partitions including a 2 | 3 split.
    Five,
}

impl Profile {
    /// Its name, as `WOLFSCALE_CHAOS_PROFILE` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Short => "short",
            Profile::Full => "full",
            Profile::Five => "five",
        }
    }

    /// How many nodes its cluster has.
    pub fn nodes(self) -> usize {
        match self {
            Profile::Five => 5,
            Profile::Short | Profile::Full => NODES,
        }
    }

    /// Parses `short` or `full`.
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "short" => Some(Profile::Short),
            "full" => Some(Profile::Full),
            "five" => Some(Profile::Five),
            _ => None,
        }
    }

    /// The faults and their relative weights.
    fn faults(self) -> &'static [(Fault, u32)] {
        match self {
            Profile::Short => &[
                (Fault::Kill, 3),
                (Fault::Pause, 2),
                (Fault::KillDb, 2),
                (Fault::Isolate, 1),
                (Fault::OneWay, 1),
                (Fault::IsolateFollower, 1),
            ],
            Profile::Full => &[
                (Fault::Kill, 3),
                (Fault::Pause, 2),
                (Fault::KillDb, 2),
                (Fault::Isolate, 1),
                (Fault::OneWay, 1),
                (Fault::IsolateFollower, 1),
                (Fault::FsyncFail, 2),
                (Fault::DiskFull, 2),
                (Fault::ClockSkew, 2),
            ],
            Profile::Five => &[
                (Fault::Kill, 2),
                (Fault::Pause, 1),
                (Fault::KillDb, 1),
                (Fault::Isolate, 1),
                (Fault::OneWay, 1),
                (Fault::IsolateFollower, 1),
                (Fault::SplitPair, 3),
            ],
        }
    }

    /// The wrappers the run's special node needs for this profile.
    pub fn wrappers(self, seed: u64) -> Wrappers {
        let full = self == Profile::Full;
        Wrappers {
            node: StdRng::seed_from_u64(seed ^ 0x5EED).gen_range(0..self.nodes()),
            fiu: full,
            faketime: full,
            tmpfs: full,
        }
    }
}

/// One scheduled fault.
#[derive(Debug, Clone)]
pub struct Step {
    /// Quiet time before it.
    pub gap: Duration,
    /// What.
    pub fault: Fault,
    /// Aim at the leader of the moment (else at node `pick`).
    pub aim_leader: bool,
    /// The node when not aiming at the leader.
    pub pick: usize,
    /// How long it lasts.
    pub hold: Duration,
    /// Clock offset in seconds, for [`Fault::ClockSkew`].
    pub skew_s: i64,
    /// For [`Fault::OneWay`]: cut the others' calls to the node rather than its calls.
    pub inbound: bool,
}

/// The schedule for `seed`: enough steps to fill `duration` (the run stops it there),
/// each of the profile's kinds first once, then weighted draws.
pub fn plan(seed: u64, profile: Profile, duration: Duration, wrapped: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xFA17);
    let kinds = profile.faults();
    let total: u32 = kinds.iter().map(|(_, w)| w).sum();
    let mut steps = Vec::new();
    let mut t = Duration::ZERO;
    // Every kind of the profile comes once, in a seeded order, before the weighted draws:
    // a run long enough for them never misses one.
    let mut unused: Vec<Fault> = kinds.iter().map(|(f, _)| *f).collect();
    // The five-node profile exists for its 2 | 3 split: a short run starts with it.
    let mut first = (profile == Profile::Five).then_some(Fault::SplitPair);
    while t < duration {
        let fault = if let Some(f) = first.take() {
            unused.retain(|u| *u != f);
            f
        } else if unused.is_empty() {
            let mut roll = rng.gen_range(0..total);
            kinds
                .iter()
                .find(|(_, w)| {
                    if roll < *w {
                        true
                    } else {
                        roll -= w;
                        false
                    }
                })
                .map_or(Fault::Kill, |(f, _)| *f)
        } else {
            unused.swap_remove(rng.gen_range(0..unused.len()))
        };
        let (lo, hi) = fault.hold_ms();
        let step = Step {
            gap: Duration::from_millis(rng.gen_range(1500..5000)),
            fault,
            aim_leader: !fault.needs_wrapper() && rng.gen_bool(fault.leader_bias()),
            pick: if fault.needs_wrapper() {
                wrapped
            } else {
                rng.gen_range(0..profile.nodes())
            },
            hold: Duration::from_millis(rng.gen_range(lo..hi)),
            skew_s: {
                let s = rng.gen_range(5..300);
                if rng.gen_bool(0.5) {
                    s
                } else {
                    -s
                }
            },
            inbound: rng.gen_bool(0.5),
        };
        t += step.gap + step.hold;
        steps.push(step);
    }
    steps
}

/// What the nemesis did.
#[derive(Debug, Default)]
pub struct Report {
    /// Every fault injected.
    pub faults: Vec<FaultRecord>,
    /// Exits, restarts and other events.
    pub events: Vec<Event>,
    /// Problems that are violations by themselves (a node exiting without cause, a fault
    /// that could not be healed).
    pub problems: Vec<(Duration, String)>,
}

impl Report {
    /// Faults injected per kind.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for f in &self.faults {
            *m.entry(f.kind).or_insert(0) += 1;
        }
        m
    }
}

/// Runs the fault schedule against `cluster` until `stop`, then heals everything.
pub struct Nemesis<'a> {
    cluster: &'a mut Cluster,
    shared: Shared,
    t0: Instant,
    report: Report,
    /// Nodes that exited during a fault that allows it, restarted at its heal.
    exited: Vec<usize>,
    /// A node whose healed fault allowed an exit, until when it may still exit: a node
    /// that has failed takes a few seconds to shut down.
    grace: Option<(usize, Instant)>,
}

impl<'a> Nemesis<'a> {
    pub fn new(cluster: &'a mut Cluster, shared: Shared, t0: Instant) -> Nemesis<'a> {
        Nemesis {
            cluster,
            shared,
            t0,
            report: Report::default(),
            exited: Vec::new(),
            grace: None,
        }
    }

    /// Injects `steps` in order until `stop`; heals the current fault at once when `stop`
    /// fires, and returns what happened.
    pub async fn run(mut self, steps: Vec<Step>, stop: CancellationToken) -> Report {
        for step in steps {
            if !self.idle(step.gap, None, &stop).await {
                break;
            }
            let leader = self.shared.leader.load(Ordering::Relaxed);
            let n = self.cluster.nodes.len();
            let node = if step.aim_leader && leader < n {
                leader
            } else if step.fault == Fault::IsolateFollower && step.pick == leader {
                (step.pick + 1) % n
            } else {
                step.pick
            };
            let start = self.t0.elapsed();
            let injected = Instant::now();
            let detail = match self.inject(&step, node).await {
                Ok(d) => d,
                Err(e) => {
                    self.report.problems.push((
                        start,
                        format!(
                            "injecting {} on node-{} failed: {e}",
                            step.fault.name(),
                            node + 1
                        ),
                    ));
                    continue;
                }
            };
            for i in 0..n {
                self.cluster.mark_log(
                    i,
                    &format!(
                        "t={} {} node-{} {detail}",
                        secs(start),
                        step.fault.name(),
                        node + 1
                    ),
                );
            }
            let allow = step.fault.may_exit().then_some(node);
            // A node cut off from every other must refuse requests soon: time it.
            let probe = matches!(
                step.fault,
                Fault::Isolate | Fault::IsolateFollower | Fault::SplitPair
            )
            .then(|| {
                tokio::spawn(probe_refusal(
                    self.cluster.nodes[node].api.clone(),
                    injected,
                ))
            });
            self.idle(step.hold, allow, &stop).await;
            let refused_after = match probe {
                Some(p) if p.is_finished() => p.await.ok().flatten(),
                Some(p) => {
                    p.abort();
                    None
                }
                None => None,
            };
            if allow.is_some() {
                self.grace = Some((node, Instant::now() + EXIT_GRACE));
            }
            let healed = match self.heal(step.fault, node).await {
                Ok(()) => Some(self.t0.elapsed()),
                Err(e) => {
                    self.report.problems.push((
                        self.t0.elapsed(),
                        format!(
                            "healing {} on node-{} failed: {e}",
                            step.fault.name(),
                            node + 1
                        ),
                    ));
                    None
                }
            };
            self.report.faults.push(FaultRecord {
                kind: step.fault.name(),
                node,
                was_leader: node == leader,
                detail,
                start,
                healed,
                refused_after,
            });
        }
        self.heal_all().await;
        self.report
    }

    /// Waits `d` (or until `stop`), reaping nodes that exit; returns false on `stop`.
    async fn idle(&mut self, d: Duration, allow: Option<usize>, stop: &CancellationToken) -> bool {
        let until = Instant::now() + d;
        loop {
            self.reap(allow).await;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(left.min(Duration::from_millis(200))) => {}
            }
        }
    }

    /// Notices nodes that exited by themselves: allowed for `allow` (restarted at the
    /// heal) and for a node in its grace period (restarted now), otherwise reported and
    /// restarted now.
    async fn reap(&mut self, allow: Option<usize>) {
        for i in 0..self.cluster.nodes.len() {
            let Some(status) = self.cluster.reap(i) else {
                continue;
            };
            let at = self.t0.elapsed();
            let in_grace = self
                .grace
                .is_some_and(|(n, until)| n == i && Instant::now() < until);
            if allow == Some(i) {
                self.report.events.push(Event {
                    at,
                    what: format!("node-{} exited ({status}) under its fault", i + 1),
                });
                self.exited.push(i);
            } else if in_grace {
                self.report.events.push(Event {
                    at,
                    what: format!("node-{} exited ({status}) after its fault", i + 1),
                });
                self.cluster.restart(i).await;
                self.report.events.push(Event {
                    at: self.t0.elapsed(),
                    what: format!("node-{} restarted", i + 1),
                });
            } else {
                self.report.problems.push((
                    at,
                    format!(
                        "node-{} exited by itself ({status}) with no fault that allows it; see {}",
                        i + 1,
                        self.cluster.nodes[i].log_file().display()
                    ),
                ));
                self.cluster.restart(i).await;
                self.report.events.push(Event {
                    at: self.t0.elapsed(),
                    what: format!("node-{} restarted after exiting by itself", i + 1),
                });
            }
        }
    }

    async fn inject(&mut self, step: &Step, node: usize) -> Result<String, String> {
        let hold = format!("for {}ms", step.hold.as_millis());
        match step.fault {
            Fault::Kill => {
                self.cluster.kill(node);
                Ok(hold)
            }
            Fault::Pause => {
                self.cluster.pause(node);
                Ok(hold)
            }
            Fault::KillDb => {
                self.cluster.dbs[node]
                    .kill9()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(hold)
            }
            Fault::FsyncFail => {
                self.cluster
                    .fiu_ctrl(node, "enable name=posix/io/sync/*")
                    .await?;
                Ok(hold)
            }
            Fault::DiskFull => {
                self.shared.heavy.store(true, Ordering::Relaxed);
                let ballast = ballast(self.cluster, node);
                let bytes = tokio::task::spawn_blocking(move || fill(&ballast))
                    .await
                    .map_err(|e| e.to_string())??;
                Ok(format!("{hold}, ballast {} KiB", bytes / 1024))
            }
            Fault::ClockSkew => {
                self.cluster
                    .set_clock_offset(node, &format!("{:+}s", step.skew_s))?;
                Ok(format!("{hold}, offset {:+}s", step.skew_s))
            }
            Fault::SplitPair => {
                let n = self.cluster.nodes.len();
                let partner = (node + 1) % n;
                let pair = [node, partner];
                for a in pair {
                    for b in (0..n).filter(|b| !pair.contains(b)) {
                        self.cluster.cut(a, b);
                        self.cluster.cut(b, a);
                    }
                }
                Ok(format!("{hold}, with node-{} on its side", partner + 1))
            }
            Fault::Isolate | Fault::IsolateFollower => {
                for other in (0..self.cluster.nodes.len()).filter(|&o| o != node) {
                    self.cluster.cut(node, other);
                    self.cluster.cut(other, node);
                }
                Ok(hold)
            }
            Fault::OneWay => {
                for other in (0..self.cluster.nodes.len()).filter(|&o| o != node) {
                    if step.inbound {
                        self.cluster.cut(other, node);
                    } else {
                        self.cluster.cut(node, other);
                    }
                }
                let dir = if step.inbound {
                    "others' calls to it"
                } else {
                    "its calls to others"
                };
                Ok(format!("{hold}, {dir} cut"))
            }
        }
    }

    async fn heal(&mut self, fault: Fault, node: usize) -> Result<(), String> {
        match fault {
            Fault::Kill => {
                self.cluster.restart(node).await;
            }
            Fault::Pause => self.cluster.resume(node),
            Fault::KillDb => self.cluster.dbs[node]
                .restart()
                .await
                .map_err(|e| e.to_string())?,
            Fault::FsyncFail => {
                if self.cluster.is_running(node) {
                    self.cluster
                        .fiu_ctrl(node, "disable name=posix/io/sync/*")
                        .await?;
                }
            }
            Fault::DiskFull => {
                self.shared.heavy.store(false, Ordering::Relaxed);
                std::fs::remove_file(ballast(self.cluster, node)).map_err(|e| e.to_string())?;
            }
            Fault::ClockSkew => self.cluster.set_clock_offset(node, "+0")?,
            Fault::Isolate | Fault::OneWay | Fault::IsolateFollower | Fault::SplitPair => {
                self.cluster.heal_network()
            }
        }
        // A node that exited under the fault comes back now, as a supervisor would.
        self.reap(Some(node)).await;
        for i in std::mem::take(&mut self.exited) {
            self.cluster.restart(i).await;
            self.report.events.push(Event {
                at: self.t0.elapsed(),
                what: format!("node-{} restarted after its fault healed", i + 1),
            });
        }
        Ok(())
    }

    /// Leaves no fault behind: every node and MariaDB running, nothing paused, ballast
    /// gone, failpoints off, clocks true.
    async fn heal_all(&mut self) {
        self.shared.heavy.store(false, Ordering::Relaxed);
        self.cluster.heal_network();
        let w = self.cluster.wrappers;
        for i in 0..self.cluster.nodes.len() {
            self.cluster.resume(i);
            if self.cluster.dbs[i].pid().is_none() {
                if let Err(e) = self.cluster.dbs[i].restart().await {
                    self.report
                        .problems
                        .push((self.t0.elapsed(), format!("mariadb {i} restart: {e}")));
                }
            }
        }
        if w.tmpfs {
            let _ = std::fs::remove_file(ballast(self.cluster, w.node));
        }
        if w.faketime {
            let _ = self.cluster.set_clock_offset(w.node, "+0");
        }
        self.reap(w.fiu.then_some(w.node)).await;
        if w.fiu && self.cluster.is_running(w.node) {
            let _ = self
                .cluster
                .fiu_ctrl(w.node, "disable name=posix/io/sync/*")
                .await;
        }
        self.exited.clear();
        // A node that failed under the last fault may still be shutting down (its API
        // is the first thing to stop); one that answers /health did not fail.
        if let Some((n, until)) = self.grace {
            let api = wolfscale::api::client::Client::new(&self.cluster.nodes[n].api)
                .expect("client")
                .with_timeout(Duration::from_millis(500));
            while Instant::now() < until && self.cluster.is_running(n) {
                if api.health().await.is_ok() {
                    break;
                }
                self.reap(None).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        for i in 0..self.cluster.nodes.len() {
            if !self.cluster.is_running(i) {
                self.cluster.restart(i).await;
                self.report.events.push(Event {
                    at: self.t0.elapsed(),
                    what: format!("node-{} restarted at the final heal", i + 1),
                });
            }
        }
        self.report.events.push(Event {
            at: self.t0.elapsed(),
            what: "all faults healed".into(),
        });
    }
}

fn ballast(cluster: &Cluster, node: usize) -> PathBuf {
    cluster.nodes[node].data_dir().join("chaos-ballast")
}

/// Fills the file system holding `path` with one file; returns its size.
fn fill(path: &std::path::Path) -> Result<u64, String> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().ok_or("ballast has no parent")?;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: statvfs only writes into the struct we pass; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut size = free;
    // Metadata takes a little space too: back off until the allocation fits.
    while size > 0 {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open fd and non-negative offsets.
        let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) };
        if r == 0 {
            return Ok(size);
        }
        size = size.saturating_sub(64 * 1024);
    }
    Err("no space to allocate a ballast".into())
}

#[test]
fn every_plan_has_every_kind_of_its_profile() {
    // The short profile's six kinds fit in `cargo test`'s minute; the full profile's nine
    // need about a minute and a half.
    for (profile, secs) in [
        (Profile::Short, 60),
        (Profile::Full, 90),
        (Profile::Five, 90),
    ] {
        let run = Duration::from_secs(secs);
        for seed in 0..200u64 {
            let steps = plan(seed, profile, run, 1);
            let mut t = Duration::ZERO;
            let mut seen = std::collections::BTreeSet::new();
            for s in &steps {
                t += s.gap;
                if t < run {
                    seen.insert(s.fault);
                }
                t += s.hold;
            }
            let want: std::collections::BTreeSet<Fault> =
                profile.faults().iter().map(|(f, _)| *f).collect();
            assert_eq!(seen, want, "seed {seed} {}", profile.name());
        }
    }
}
