//! Clusters of real `wolfscale` processes, each with its own private MariaDB, driven over
//! HTTP: bootstrap and join, kill -9 and restart of a node process or of its `mariadbd`,
//! finding the leader, waiting until every node has applied an LSN. Each node's log goes
//! to a file in the cluster's temp dir; when a test panics, the tail of every log is
//! printed so the failure can be read without a rerun.

use super::config;
use super::mariadb::MariaDb;
use super::ports::PortReservation;
use super::process::{self, spawn_tied, Tied};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use wolfscale::api::client::{Client, Error as ClientError, WriteKind};
use wolfscale::api::{NodeState, NodeStatus, Role, WriteResult};
use wolfscale::config::{Config, ProxyUser};

/// The replicated database every node uses.
pub const DATABASE: &str = "app";
/// The cluster secret every node shares.
pub const SECRET: &str = "cluster-test-secret-0123456789abcdef";
/// Default log filter of the node processes.
pub const LOG_FILTER: &str = "info,openraft=warn";

/// Changes a test makes to a node's config.
pub type Tweak = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// A node's `wolfscale.toml` for process tests: the common settings (loopback ports,
/// root on its own MariaDB, database `app`, short heartbeats) plus the test's changes,
/// written by serialising a [`Config`] (see [`super::config`]).
#[derive(Clone)]
pub struct NodeConfig {
    /// `cluster.election_timeout_ms`.
    pub election_timeout_ms: u64,
    /// Serve the MySQL front end on a free port, with the user [`MYSQL_USER`].
    pub mysql: bool,
    /// Applied last, to every node's config.
    pub tweak: Option<Tweak>,
}

/// The MySQL front-end account of process tests: `(name, password)`.
pub const MYSQL_USER: (&str, &str) = ("app", "app-secret");

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            election_timeout_ms: 600,
            mysql: false,
            tweak: None,
        }
    }
}

impl NodeConfig {
    /// The common settings changed by `tweak`.
    pub fn with(tweak: impl Fn(&mut Config) + Send + Sync + 'static) -> NodeConfig {
        NodeConfig {
            tweak: Some(Arc::new(tweak)),
            ..NodeConfig::default()
        }
    }
}

/// A written node config and the ports reserved for it (held until the node binds them).
pub struct NodeFiles {
    /// Path of `node-{i}.toml`.
    pub cfg: PathBuf,
    /// `host:port` of its HTTP API.
    pub api: String,
    /// `host:port` of its cluster transport.
    pub cluster: String,
    /// The two reserved ports (cluster, API).
    pub ports: (PortReservation, PortReservation),
    /// `host:port` of its MySQL front end and the port reserved for it, when served.
    pub mysql: Option<(String, PortReservation)>,
}

impl NodeConfig {
    /// Writes `dir/node-{i}.toml` for node `node-{i}` on `db`, data in `dir/data-{i}`.
    pub fn write(&self, dir: &Path, i: usize, db: &MariaDb) -> NodeFiles {
        let p1 = PortReservation::new(Ipv4Addr::LOCALHOST).expect("free port");
        let p2 = PortReservation::new(Ipv4Addr::LOCALHOST).expect("free port");
        let cluster = format!("127.0.0.1:{}", p1.port());
        let api = format!("127.0.0.1:{}", p2.port());
        let cfg = dir.join(format!("node-{i}.toml"));
        let mut c = config::node(
            &format!("node-{i}"),
            &cluster,
            &dir.join(format!("data-{i}")),
            SECRET,
        );
        config::on_mariadb(&mut c, db, DATABASE);
        c.cluster.election_timeout_ms = self.election_timeout_ms;
        c.api.bind_address = api.clone();
        let mysql = self.mysql.then(|| {
            let p = PortReservation::new(Ipv4Addr::LOCALHOST).expect("free port");
            (format!("127.0.0.1:{}", p.port()), p)
        });
        if let Some((addr, _)) = &mysql {
            c.proxy.bind_address = addr.clone();
            c.proxy.users.push(ProxyUser {
                name: MYSQL_USER.0.into(),
                password: Some(MYSQL_USER.1.into()),
                password_sha1: None,
            });
        }
        if let Some(tweak) = &self.tweak {
            tweak(&mut c);
        }
        config::write(&c, &cfg);
        NodeFiles {
            cfg,
            api,
            cluster,
            ports: (p1, p2),
            mysql,
        }
    }
}

/// One node: its config, addresses, MariaDB and (while running) its process.
pub struct NodeProc {
    /// `node.id`, e.g. `node-2`.
    pub name: String,
    /// Its private MariaDB.
    pub db: MariaDb,
    /// `host:port` of its HTTP API.
    pub api: String,
    /// `host:port` of its cluster transport.
    pub cluster: String,
    /// `host:port` of its MySQL front end, when it serves one.
    pub mysql: Option<String>,
    cfg: PathBuf,
    log: PathBuf,
    log_filter: String,
    _ports: (PortReservation, PortReservation),
    _mysql_port: Option<PortReservation>,
    child: Option<Tied>,
}

impl NodeProc {
    fn new(dir: &Path, i: usize, db: MariaDb) -> NodeProc {
        Self::with_config(dir, i, db, &NodeConfig::default())
    }

    fn with_config(dir: &Path, i: usize, db: MariaDb, config: &NodeConfig) -> NodeProc {
        let files = config.write(dir, i, &db);
        let name = format!("node-{i}");
        NodeProc {
            log: dir.join(format!("{name}.log")),
            name,
            db,
            api: files.api,
            cluster: files.cluster,
            mysql: files.mysql.as_ref().map(|(a, _)| a.clone()),
            _mysql_port: files.mysql.map(|(_, p)| p),
            cfg: files.cfg,
            log_filter: LOG_FILTER.into(),
            _ports: files.ports,
            child: None,
        }
    }

    /// Its data dir (`data-{i}` beside its config).
    pub fn data_dir(&self) -> PathBuf {
        self.cfg
            .with_file_name(self.name.replacen("node-", "data-", 1))
    }

    /// Points the node at `db` from its next spawn on (its config's `database.host` and
    /// `port` change, nothing else); returns the server it used before.
    pub fn swap_db(&mut self, db: MariaDb) -> MariaDb {
        let text = std::fs::read_to_string(&self.cfg).expect("read node config");
        let mut c: Config = toml::from_str(&text).expect("node config is a Config");
        c.database.host = db.host().to_string();
        c.database.port = db.port();
        config::write(&c, &self.cfg);
        std::mem::replace(&mut self.db, db)
    }

    /// A client for its API (a new one per call: cheap, and bound to the caller's runtime).
    pub fn client(&self) -> Client {
        Client::new(&self.api).expect("api address is host:port")
    }

    /// Sets the `WOLFSCALE_LOG` filter used from the next spawn on.
    pub fn set_log_filter(&mut self, filter: &str) {
        self.log_filter = filter.into();
    }

    /// Whether its process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs `wolfscale <args> -c <config>`, appending its log output to the node's log.
    pub fn spawn(&mut self, args: &[&str]) {
        self.spawn_with_env(args, &[]);
    }

    /// [`NodeProc::spawn`] with extra environment variables.
    pub fn spawn_with_env(&mut self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
        cmd.args(args)
            .arg("-c")
            .arg(&self.cfg)
            .env("WOLFSCALE_LOG", &self.log_filter)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(spawn_tied(cmd).expect("spawn wolfscale"));
    }

    /// SIGKILLs the node process, as a crash would; its data dir and MariaDB stay.
    pub async fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        child.0.kill().expect("SIGKILL wolfscale");
        process::wait_exit(&mut child.0, Duration::from_secs(10))
            .await
            .expect("wait for wolfscale")
            .expect("wolfscale exits on SIGKILL");
        tracing::info!(node = %self.name, "node process killed");
    }

    /// Waits up to `limit` for the node process to exit by itself and returns how it
    /// ended (`None` if it still ran: it is then killed).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take().expect("node process runs");
        process::wait_exit(&mut child.0, limit)
            .await
            .expect("wait for wolfscale")
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to the running node process.
    pub fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("node process runs");
        process::signal(&child.0, signal).expect("signal wolfscale");
    }

    /// The node's log so far, ANSI colours removed.
    pub fn log_text(&self) -> String {
        let raw = std::fs::read(&self.log).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&raw))
    }

    /// The node's log file as written, byte for byte.
    pub fn log_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap_or_default()
    }

    /// `GET /status`, if the node answers.
    pub async fn status(&self) -> Option<NodeStatus> {
        self.client().status().await.ok()
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A cluster of node processes.
pub struct ProcCluster {
    /// The nodes, `nodes[i]` named `node-{i+1}`.
    pub nodes: Vec<NodeProc>,
    dir: TempDir,
}

impl ProcCluster {
    /// Starts `n` MariaDB servers, bootstraps node-1 and joins the others through it, and
    /// waits until every node is an ACTIVE voter.
    pub async fn start(n: usize) -> ProcCluster {
        Self::start_with(n, &NodeConfig::default()).await
    }

    /// [`ProcCluster::start`] with every node's config written from `config`.
    pub async fn start_with(n: usize, config: &NodeConfig) -> ProcCluster {
        super::init_tracing();
        let started = Instant::now();
        let dbs = MariaDb::start_many(n).await.expect("start mariadb servers");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes: Vec<NodeProc> = dbs
            .into_iter()
            .enumerate()
            .map(|(i, db)| NodeProc::with_config(dir.path(), i + 1, db, config))
            .collect();
        nodes[0].spawn(&["start", "--bootstrap"]);
        let mut c = ProcCluster { nodes, dir };
        c.wait_healthy(0, Duration::from_secs(30)).await;
        let seed = c.nodes[0].cluster.clone();
        for node in c.nodes.iter_mut().skip(1) {
            node.spawn(&["join", &seed]);
        }
        c.wait_active(n, Duration::from_secs(60)).await;
        tracing::info!(
            nodes = n,
            ms = started.elapsed().as_millis(),
            "process cluster ready"
        );
        c
    }

    /// Stopped nodes `node-1`.. on the given servers (`node-{i+1}` on `dbs[i]`), for a test
    /// that starts them itself.
    pub fn on(dbs: Vec<MariaDb>) -> ProcCluster {
        super::init_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes = dbs
            .into_iter()
            .enumerate()
            .map(|(i, db)| NodeProc::new(dir.path(), i + 1, db))
            .collect();
        ProcCluster { nodes, dir }
    }

    /// Node `i`'s data dir (`node.data_dir`).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("data-{}", i + 1))
    }

    /// Adds a stopped node `node-{len+1}` on `db`; returns its position.
    pub fn add_node(&mut self, db: MariaDb) -> usize {
        let i = self.nodes.len();
        let node = NodeProc::new(self.dir.path(), i + 1, db);
        self.nodes.push(node);
        i
    }

    /// A client for node `i`.
    pub fn client(&self, i: usize) -> Client {
        self.nodes[i].client()
    }

    /// Waits until node `i` answers `/health` with 200.
    pub async fn wait_healthy(&self, i: usize, limit: Duration) {
        let start = Instant::now();
        let client = self.client(i);
        while let Err(e) = client.health().await {
            assert!(
                start.elapsed() < limit,
                "{} not healthy within {limit:?}: {e}",
                self.nodes[i].name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until some running node reports `n` members, all ACTIVE.
    pub async fn wait_active(&self, n: usize, limit: Duration) {
        let start = Instant::now();
        loop {
            let mut last = None;
            for node in self.nodes.iter().filter(|x| x.is_running()) {
                if let Ok(c) = node.client().cluster().await {
                    if c.nodes.len() == n && c.nodes.iter().all(|s| s.status == NodeState::Active) {
                        return;
                    }
                    last = Some(c);
                }
            }
            assert!(
                start.elapsed() < limit,
                "cluster not {n} ACTIVE nodes within {limit:?}: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The position of the node that leads, as the running nodes report it (waits for one).
    pub async fn leader(&self, limit: Duration) -> usize {
        let start = Instant::now();
        loop {
            for node in self.nodes.iter().filter(|x| x.is_running()) {
                if let Some(s) = node.status().await {
                    if s.role == Role::Leader {
                        return self.position(&s.node_id);
                    }
                }
            }
            assert!(
                start.elapsed() < limit,
                "no leader among the running nodes within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A running node other than `not`.
    pub fn other_than(&self, not: usize) -> usize {
        (0..self.nodes.len())
            .find(|&i| i != not && self.nodes[i].is_running())
            .expect("another running node")
    }

    fn position(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("unknown node {name}"))
    }

    /// Waits until every running node has applied the leader's whole log (all writes
    /// must have finished), and returns that LSN.
    pub async fn wait_converged(&self, limit: Duration) -> u64 {
        let start = Instant::now();
        loop {
            let leader = self.leader(limit).await;
            let target = self.nodes[leader]
                .status()
                .await
                .map_or(u64::MAX, |s| s.last_log_lsn);
            let mut behind = Vec::new();
            for node in self.nodes.iter().filter(|x| x.is_running()) {
                match node.status().await {
                    Some(s) if s.applied_lsn >= target && s.last_log_lsn == target => {}
                    other => behind.push((node.name.clone(), other.map(|s| s.applied_lsn))),
                }
            }
            if behind.is_empty() {
                // The leader reports outcome digests in an entry of its own shortly after
                // client entries: converged means the log also stayed put meanwhile.
                tokio::time::sleep(wolfscale::node::OUTCOME_REPORT_INTERVAL * 4).await;
                let still = self.nodes[leader]
                    .status()
                    .await
                    .is_some_and(|s| s.last_log_lsn == target);
                if still {
                    return target;
                }
                continue;
            }
            assert!(
                start.elapsed() < limit,
                "nodes not at lsn {target} within {limit:?}: {behind:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader's term and last LSN once every running node has applied the whole log
    /// and it stayed put for a while (the leader reports outcome digests in entries of its
    /// own shortly after client entries): two equal terms around some requests mean no
    /// election appended an entry between.
    pub async fn settled(&self, limit: Duration) -> (u64, u64) {
        let start = Instant::now();
        let quiet = wolfscale::node::OUTCOME_REPORT_INTERVAL * 4;
        loop {
            let lsn = self.wait_converged(limit).await;
            tokio::time::sleep(quiet).await;
            let leader = self.leader(limit).await;
            if let Some(s) = self.nodes[leader].status().await {
                if s.last_log_lsn == lsn && s.role == Role::Leader && s.applied_lsn == lsn {
                    return (s.term, lsn);
                }
            }
            assert!(
                start.elapsed() < limit,
                "the log did not settle within {limit:?}"
            );
        }
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for node in &self.nodes {
            let text = node.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("---- last lines of {} ----\n{}", node.name, tail.join("\n"));
        }
    }
}

/// A write through `client`, retried while the cluster has no leader (503) for up to
/// 20 s; any other error is returned.
pub async fn write(
    client: &Client,
    kind: WriteKind,
    json: &str,
) -> Result<WriteResult, ClientError> {
    let start = Instant::now();
    loop {
        match client.write_raw(kind, json.to_string()).await {
            Err(e)
                if e.status().is_some_and(|s| s.as_u16() == 503)
                    && start.elapsed() < Duration::from_secs(20) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => return other,
        }
    }
}
