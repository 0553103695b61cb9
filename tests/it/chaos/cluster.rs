//! Three real `wolfscale` processes for the chaos runs, each with its own private MariaDB
//! and a loopback HTTP API: forming the cluster, and the levers the nemesis pulls (kill -9
//! and restart, SIGSTOP/SIGCONT, a node's MariaDB kill -9 and restart, cutting links).
//! Node i's cluster transport listens on 127.0.0.(i+2) behind a [`Relay`] that peers dial
//! instead (its advertised address), so links can be black-holed one direction at a time. One
//! node per run may also carry the wrappers of the heavier faults: libfiu's preload
//! (fsync failure), libfaketime's preload (clock skew) and a small tmpfs data dir (disk
//! full). It knows nothing of workloads or checks.

use crate::support::ports::PortReservation;
use crate::support::process::{signal, spawn_tied, Tied};
use crate::support::relay::Relay;
use crate::support::MariaDb;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use wolfscale::api::client::Client;
use wolfscale::api::NodeState;

/// Nodes in a chaos cluster unless a profile asks for more ([`Cluster::start_n`]).
pub const NODES: usize = 3;
/// Heartbeat period of every node (ms).
pub const HEARTBEAT_MS: u64 = 150;
/// Election timeout of every node (ms); pauses last longer than this.
pub const ELECTION_TIMEOUT_MS: u64 = 1000;
/// The cluster secret every node shares.
const CHAOS_SECRET: &str = "chaos-secret-0123456789abcdef";
/// Size of the tmpfs that holds the disk-full node's data dir.
pub const TMPFS_SIZE: &str = "48m";

const FIU_LIBS: [&str; 2] = [
    "/usr/lib/fiu/fiu_run_preload.so",
    "/usr/lib/fiu/fiu_posix_preload.so",
];

/// The MySQL front-end account of chaos nodes: `(name, password)`.
pub const MYSQL_USER: (&str, &str) = ("bank", "bank-secret-0123");

/// Which fault wrappers the special node of a run carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrappers {
    /// Index of the node that carries them.
    pub node: usize,
    /// libfiu preload with remote control (`fiu-ctrl`).
    pub fiu: bool,
    /// libfaketime preload reading an offset file.
    pub faketime: bool,
    /// Data dir on a small tmpfs.
    pub tmpfs: bool,
}

/// One `wolfscale` process slot: its config, addresses and (while running) process.
pub struct Node {
    /// `node-1`, `node-2`, …
    pub name: String,
    /// `127.0.0.1:port` of its HTTP API.
    pub api: String,
    /// `127.0.0.1:port` of its MySQL front end (user [`MYSQL_USER`]).
    pub mysql: String,
    /// The address peers dial: its relay's.
    pub cluster_addr: String,
    /// The loopback address its transport listens on and dials from.
    pub ip: Ipv4Addr,
    relay: Relay,
    cfg: PathBuf,
    data: PathBuf,
    log: PathBuf,
    fiu: Option<PathBuf>,
    faketime: Option<PathBuf>,
    _ports: (PortReservation, PortReservation, PortReservation),
    child: Option<Tied>,
    paused: bool,
}

impl Node {
    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.0.id())
    }

    /// Its data dir (`wal/`, `state/`, …).
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Its log file (stdout and stderr of every start, appended).
    pub fn log_file(&self) -> &Path {
        &self.log
    }
}

/// Unmounts a tmpfs when dropped, also when a run panics.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The processes of one run. Dropping it SIGKILLs every node and MariaDB and (unless
/// [`Cluster::keep_dir`] was called) removes the directory with configs, data and logs.
pub struct Cluster {
    /// The nodes, in order `node-1`…
    pub nodes: Vec<Node>,
    /// Their MariaDB servers, same order.
    pub dbs: Vec<MariaDb>,
    /// The fault wrappers of this run.
    pub wrappers: Wrappers,
    // Drop order: processes (inside `nodes`) first, then mounts, then the directory.
    mounts: Vec<Tmpfs>,
    dir: Option<tempfile::TempDir>,
    kept: Option<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.child = None;
        }
        self.mounts.clear();
    }
}

impl Cluster {
    /// Starts MariaDB servers and three nodes (`start --bootstrap` on node-1, `join` on the
    /// others) and waits until all are ACTIVE.
    pub async fn start(wrappers: Wrappers) -> Cluster {
        Cluster::start_n(wrappers, NODES).await
    }

    /// Like [`Cluster::start`] with `n` nodes.
    pub async fn start_n(wrappers: Wrappers, n: usize) -> Cluster {
        let dbs = MariaDb::start_many(n).await.expect("start mariadb");
        let dir = tempfile::Builder::new()
            .prefix("wolfscale-chaos-")
            .tempdir()
            .expect("tempdir");
        let mut mounts = Vec::new();
        let mut nodes = Vec::new();
        for (i, db) in dbs.iter().enumerate() {
            let special = i == wrappers.node;
            let data = dir.path().join(format!("data-{}", i + 1));
            std::fs::create_dir_all(&data).expect("data dir");
            if special && wrappers.tmpfs {
                mounts.push(mount_tmpfs(&data));
            }
            nodes.push(node_config(dir.path(), i, db, &data, special, wrappers).await);
        }
        let mut cluster = Cluster {
            nodes,
            dbs,
            wrappers,
            mounts,
            dir: Some(dir),
            kept: None,
        };
        cluster.launch(0, &["start", "--bootstrap"]).await;
        let first = Client::new(&cluster.nodes[0].api).expect("client");
        wait_until("node-1 healthy", Duration::from_secs(60), || async {
            first.health().await.is_ok()
        })
        .await;
        let seed = cluster.nodes[0].cluster_addr.clone();
        for i in 1..n {
            cluster.launch(i, &["join", &seed]).await;
        }
        wait_until("all nodes ACTIVE", Duration::from_secs(180), || async {
            match first.cluster().await {
                Ok(c) => {
                    c.nodes.len() == n && c.nodes.iter().all(|n| n.status == NodeState::Active)
                }
                Err(_) => false,
            }
        })
        .await;
        cluster
    }

    /// Keeps the run's directory (configs, data, node logs) after the run and returns it.
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            self.kept = Some(dir.keep());
        }
        self.kept.clone().unwrap_or_default()
    }

    /// Starts node `i` again from its data dir (`wolfscale start`).
    pub async fn restart(&mut self, i: usize) {
        self.launch(i, &["start"]).await;
    }

    async fn launch(&mut self, i: usize, args: &[&str]) {
        assert!(
            self.nodes[i].child.is_none(),
            "{} still runs",
            self.nodes[i].name
        );
        let cmd = self.nodes[i].command(args);
        let child = tokio::task::spawn_blocking(move || spawn_tied(cmd))
            .await
            .expect("spawn task")
            .expect("spawn wolfscale");
        self.nodes[i].child = Some(child);
        self.nodes[i].paused = false;
    }

    /// SIGKILLs node `i` and reaps it (no-op when it is not running).
    pub fn kill(&mut self, i: usize) {
        // Dropping a `Tied` SIGKILLs and reaps it; a stopped process dies as well.
        self.nodes[i].child = None;
        self.nodes[i].paused = false;
    }

    /// SIGSTOPs node `i`.
    pub fn pause(&mut self, i: usize) {
        if let Some(c) = &self.nodes[i].child {
            signal(&c.0, libc::SIGSTOP).expect("SIGSTOP");
            self.nodes[i].paused = true;
        }
    }

    /// SIGCONTs node `i` if it is paused.
    pub fn resume(&mut self, i: usize) {
        if let Some(c) = &self.nodes[i].child {
            if self.nodes[i].paused {
                signal(&c.0, libc::SIGCONT).expect("SIGCONT");
            }
        }
        self.nodes[i].paused = false;
    }

    /// Whether node `i` has a process.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// The exit status of node `i` if its process ended by itself since the last call
    /// (the slot is then empty, ready for [`Cluster::restart`]).
    pub fn reap(&mut self, i: usize) -> Option<ExitStatus> {
        let child = self.nodes[i].child.as_mut()?;
        match child.0.try_wait() {
            Ok(Some(status)) => {
                self.nodes[i].child = None;
                Some(status)
            }
            _ => None,
        }
    }

    /// Sends a libfiu remote-control command (e.g. `enable name=posix/io/sync/fdatasync`)
    /// to node `i`, which must run with the fiu wrapper.
    pub async fn fiu_ctrl(&self, i: usize, command: &str) -> Result<(), String> {
        let node = &self.nodes[i];
        let prefix = node.fiu.clone().ok_or("node has no fiu wrapper")?;
        let pid = node.pid().ok_or("node is not running")?;
        let command = command.to_string();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("fiu-ctrl")
                .arg("-f")
                .arg(&prefix)
                .arg("-c")
                .arg(&command)
                .arg(pid.to_string())
                .output()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("run fiu-ctrl (apt-get install fiu-utils): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "fiu-ctrl failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Sets node `i`'s wall clock offset (libfaketime syntax, e.g. `+30s`, `-2m`, `+0`);
    /// the node notices within a second.
    pub fn set_clock_offset(&self, i: usize, offset: &str) -> Result<(), String> {
        let file = self.nodes[i]
            .faketime
            .as_ref()
            .ok_or("node has no faketime wrapper")?;
        std::fs::write(file, format!("{offset}\n")).map_err(|e| e.to_string())
    }

    /// Cuts the link from node `from` to node `to`: `from`'s calls to `to` (and their
    /// answers) are black-holed; `to`'s calls to `from` still pass.
    pub fn cut(&self, from: usize, to: usize) {
        self.nodes[to].relay.cut(IpAddr::V4(self.nodes[from].ip));
    }

    /// Restores every link; held bytes are delivered.
    pub fn heal_network(&self) {
        for n in &self.nodes {
            n.relay.restore_all();
        }
    }

    /// Appends a marker line to node `i`'s log, to line it up with the run's timeline.
    pub fn mark_log(&self, i: usize, line: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.nodes[i].log)
        {
            let _ = writeln!(f, "=== chaos: {line}");
        }
    }
}

impl Node {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
        cmd.args(args)
            .arg("-c")
            .arg(&self.cfg)
            .env("WOLFSCALE_LOG", "info,openraft=warn")
            .stdin(Stdio::null());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let err = log.try_clone().expect("dup log handle");
        cmd.stdout(log).stderr(err);
        let mut preload: Vec<&str> = Vec::new();
        if let Some(prefix) = &self.fiu {
            preload.extend(FIU_LIBS);
            cmd.env("FIU_ENABLE", "").env("FIU_CTRL_FIFO", prefix);
        }
        let faketime_lib = faketime_lib();
        if let Some(file) = &self.faketime {
            preload.push(&faketime_lib);
            cmd.env("FAKETIME_TIMESTAMP_FILE", file)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        if !preload.is_empty() {
            cmd.env("LD_PRELOAD", preload.join(" "));
        }
        cmd
    }
}

async fn node_config(
    dir: &Path,
    i: usize,
    db: &MariaDb,
    data: &Path,
    special: bool,
    wrappers: Wrappers,
) -> Node {
    let ip = Ipv4Addr::new(127, 0, 0, u8::try_from(i + 2).expect("few nodes"));
    let p1 = PortReservation::new(ip).expect("port");
    let p2 = PortReservation::new(Ipv4Addr::LOCALHOST).expect("port");
    let p3 = PortReservation::new(Ipv4Addr::LOCALHOST).expect("port");
    let mysql = format!("127.0.0.1:{}", p3.port());
    let bind = std::net::SocketAddr::from((ip, p1.port()));
    let relay = Relay::start(IpAddr::V4(ip), bind).await;
    let cluster_addr = relay.addr.to_string();
    let api = format!("127.0.0.1:{}", p2.port());
    let name = format!("node-{}", i + 1);
    let cfg = dir.join(format!("{name}.toml"));
    let mut c = crate::support::config::node(&name, &bind.to_string(), data, CHAOS_SECRET);
    c.node.advertise_address = Some(cluster_addr.clone());
    crate::support::config::on_mariadb(&mut c, db, "app");
    c.wal.segment_size_mb = 1;
    c.cluster.heartbeat_interval_ms = HEARTBEAT_MS;
    c.cluster.election_timeout_ms = ELECTION_TIMEOUT_MS;
    c.api.bind_address = api.clone();
    c.proxy.bind_address = mysql.clone();
    c.proxy.users = vec![wolfscale::config::ProxyUser {
        name: MYSQL_USER.0.to_string(),
        password: Some(MYSQL_USER.1.to_string()),
        password_sha1: None,
    }];
    crate::support::config::write(&c, &cfg);
    let fiu = (special && wrappers.fiu).then(|| {
        assert!(
            FIU_LIBS.iter().all(|l| Path::new(l).exists()),
            "libfiu's preload libraries are missing: apt-get install fiu-utils"
        );
        dir.join(format!("fiu-{name}"))
    });
    let faketime = (special && wrappers.faketime).then(|| {
        assert!(
            Path::new(&faketime_lib()).exists(),
            "{} is missing: apt-get install faketime",
            faketime_lib()
        );
        let f = dir.join(format!("faketime-{name}"));
        std::fs::write(&f, "+0\n").expect("write faketime file");
        f
    });
    Node {
        log: dir.join(format!("{name}.log")),
        name,
        api,
        mysql,
        cluster_addr,
        ip,
        relay,
        cfg,
        data: data.to_path_buf(),
        fiu,
        faketime,
        _ports: (p1, p2, p3),
        child: None,
        paused: false,
    }
}

/// libfaketime's multi-threaded preload library, where Debian installs it.
fn faketime_lib() -> String {
    format!(
        "/usr/lib/{}-linux-gnu/faketime/libfaketimeMT.so.1",
        std::env::consts::ARCH
    )
}

fn mount_tmpfs(dir: &Path) -> Tmpfs {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
        .arg(dir)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mounting a tmpfs for the disk-full fault failed ({}): it needs root",
        String::from_utf8_lossy(&out.stderr)
    );
    Tmpfs(dir.to_path_buf())
}

/// Polls `check` every 100 ms until it is true; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
