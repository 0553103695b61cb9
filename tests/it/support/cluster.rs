//! In-process WolfScale clusters for consensus tests: each node has its own data dir,
//! loopback port and [`SqliteApplier`], and talks to the others over real TCP through the
//! authenticated transport. Nodes can be stopped, crashed and restarted.

use super::ports::PortReservation;
use super::sqlite_applier::SqliteApplier;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use wolfscale::config::{self, EnvOverrides, Loaded};
use wolfscale::consensus::Request;
use wolfscale::node::{Node, Role, StartMode};

/// The secret every test node shares.
pub const SECRET: &str = "test-cluster-secret-0123456789";

/// One node slot: its files survive a stop, so it can be restarted.
pub struct Slot {
    pub name: String,
    pub dir: TempDir,
    pub port: PortReservation,
    pub node: Option<Node>,
    pub applier: SqliteApplier,
}

impl Slot {
    /// `host:port` of its cluster transport.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port.port())
    }

    fn loaded(&self) -> Loaded {
        let text = format!(
            "[node]\nid = \"{name}\"\nbind_address = \"{addr}\"\ndata_dir = \"{dir}\"\n\
             [cluster]\nsecret = \"{SECRET}\"\nheartbeat_interval_ms = 100\nelection_timeout_ms = 600\n\
             [wal]\nsegment_size_mb = 1\n[api]\nenabled = false\n",
            name = self.name,
            addr = self.addr(),
            dir = self.dir.path().display(),
        );
        config::parse(&text, &EnvOverrides::default()).expect("test config is valid")
    }

    /// Starts (or restarts) the node in `mode`.
    pub async fn start(&mut self, mode: StartMode) -> Result<(), wolfscale::node::NodeError> {
        let l = self.loaded();
        let node = Node::start(l.config, &l.secrets, mode, self.applier.clone()).await?;
        self.node = Some(node);
        Ok(())
    }

    /// Graceful stop.
    pub async fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            n.shutdown().await.expect("graceful shutdown");
        }
    }

    /// The running node.
    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("node is running")
    }
}

/// A set of node slots.
pub struct Cluster {
    pub slots: Vec<Slot>,
}

impl Cluster {
    /// Makes `n` stopped slots named node-1..node-n.
    pub fn new(n: usize) -> Cluster {
        super::init_tracing();
        Cluster {
            slots: (0..n).map(|i| Cluster::slot(i + 1)).collect(),
        }
    }

    fn slot(i: usize) -> Slot {
        let dir = tempfile::tempdir().expect("tempdir");
        let applier = SqliteApplier::open(&dir.path().join("sm"));
        Slot {
            name: format!("node-{i}"),
            port: PortReservation::new(Ipv4Addr::LOCALHOST).expect("free port"),
            dir,
            node: None,
            applier,
        }
    }

    /// Adds a stopped slot and returns its position.
    pub fn add_slot(&mut self) -> usize {
        let i = self.slots.len();
        self.slots.push(Cluster::slot(i + 1));
        i
    }

    /// Bootstraps slot 0 and joins every other slot through it; waits for all voters.
    pub async fn start_all(n: usize) -> Cluster {
        let mut c = Cluster::new(n);
        c.slots[0]
            .start(StartMode::Bootstrap)
            .await
            .expect("bootstrap");
        let seed = c.slots[0].addr();
        for i in 1..n {
            c.slots[i]
                .start(StartMode::Join(vec![seed.clone()]))
                .await
                .expect("join");
        }
        c.wait_voters(n, Duration::from_secs(20)).await;
        c
    }

    /// Running nodes.
    pub fn running(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.node.as_ref().map(|n| (i, n)))
    }

    /// Waits until some running node leads with `n` voters, and returns its slot.
    pub async fn wait_voters(&self, n: usize, limit: Duration) -> usize {
        let start = Instant::now();
        loop {
            for (i, node) in self.running() {
                let s = node.status();
                if s.role == Role::Leader && s.voters.len() == n && s.learners.is_empty() {
                    return i;
                }
            }
            assert!(
                start.elapsed() < limit,
                "no leader with {n} voters within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a leader among running nodes and returns its slot.
    pub async fn wait_leader(&self, limit: Duration) -> usize {
        let start = Instant::now();
        loop {
            let leaders: Vec<usize> = self
                .running()
                .filter(|(_, n)| n.status().role == Role::Leader)
                .map(|(i, _)| i)
                .collect();
            if let [one] = leaders[..] {
                return one;
            }
            assert!(
                start.elapsed() < limit,
                "no single leader within {limit:?} (leaders: {leaders:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every running node applied at least `lsn`.
    pub async fn wait_applied(&self, lsn: u64, limit: Duration) {
        let start = Instant::now();
        loop {
            let behind: Vec<(String, u64)> = self
                .running()
                .map(|(_, n)| (n.info().name.clone(), n.status().applied_lsn))
                .filter(|(_, a)| *a < lsn)
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "nodes behind lsn {lsn} after {limit:?}: {behind:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Proposes `payload` through slot `via` (forwarded to the leader if needed); returns the LSN.
    pub async fn write(
        &self,
        via: usize,
        payload: Vec<u8>,
    ) -> Result<u64, wolfscale::consensus::network::ClusterError> {
        let (lsn, _) = self.slots[via].node().propose(Request { payload }).await?;
        Ok(lsn)
    }
}
