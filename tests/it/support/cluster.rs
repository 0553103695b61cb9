//! In-process WolfScale clusters for consensus tests: each node has its own data dir,
//! loopback port and [`SqliteApplier`], and talks to the others over real TCP through the
//! authenticated transport. Nodes can be stopped, crashed and restarted.
//!
//! A *partitionable* cluster ([`Cluster::start_partitionable`]) puts node i on its own
//! address 127.0.0.(i+2) behind a [`Relay`] that peers dial instead (its advertised
//! address); since nodes dial from their bind address, links can be cut per pair and per
//! direction ([`Cluster::cut`], [`Cluster::isolate`], [`Cluster::heal`]).

use super::ports::PortReservation;
use super::relay::Relay;
use super::sqlite_applier::SqliteApplier;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use wolfscale::config::Loaded;
use wolfscale::consensus::network::ClusterError;
use wolfscale::consensus::Request;
use wolfscale::node::{Node, Role, StartMode};

/// The secret every test node shares.
pub const SECRET: &str = "test-cluster-secret-0123456789";
pub use super::config::ELECTION_TIMEOUT_MS;

/// One node slot: its files survive a stop, so it can be restarted.
pub struct Slot {
    pub name: String,
    pub dir: TempDir,
    /// The address it binds and dials from.
    pub ip: Ipv4Addr,
    pub port: PortReservation,
    /// The relay peers dial instead of the node, in a partitionable cluster.
    pub relay: Option<Relay>,
    pub node: Option<Node>,
    pub applier: SqliteApplier,
    /// Joins as a non-voting learner (`cluster.voter = false`).
    pub learner: bool,
}

impl Slot {
    /// `host:port` other nodes dial: its relay's, or its own cluster transport's.
    pub fn addr(&self) -> String {
        match &self.relay {
            Some(r) => r.addr.to_string(),
            None => self.bind_addr().to_string(),
        }
    }

    fn bind_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port.port()))
    }

    fn loaded(&self) -> Loaded {
        let mut c = super::config::node(
            &self.name,
            &self.bind_addr().to_string(),
            self.dir.path(),
            SECRET,
        );
        c.node.advertise_address = self.relay.as_ref().map(|r| r.addr.to_string());
        c.wal.segment_size_mb = 1;
        c.api.enabled = false;
        c.cluster.voter = !self.learner;
        super::config::loaded(&c)
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
        Cluster::slot_on(i, Ipv4Addr::LOCALHOST)
    }

    fn slot_on(i: usize, ip: Ipv4Addr) -> Slot {
        let dir = tempfile::tempdir().expect("tempdir");
        let applier = SqliteApplier::open(&dir.path().join("sm"));
        Slot {
            name: format!("node-{i}"),
            port: PortReservation::new(ip).expect("free port"),
            ip,
            relay: None,
            dir,
            node: None,
            applier,
            learner: false,
        }
    }

    /// Makes `n` stopped slots, node i on 127.0.0.(i+2) behind its own relay.
    pub async fn new_partitionable(n: usize) -> Cluster {
        super::init_tracing();
        let mut slots = Vec::with_capacity(n);
        for i in 0..n {
            let ip = Ipv4Addr::new(127, 0, 0, u8::try_from(i + 2).expect("at most 253 nodes"));
            let mut slot = Cluster::slot_on(i + 1, ip);
            slot.relay = Some(Relay::start(IpAddr::V4(ip), slot.bind_addr()).await);
            slots.push(slot);
        }
        Cluster { slots }
    }

    /// A formed partitionable cluster of `n` voters (see [`Cluster::new_partitionable`]).
    pub async fn start_partitionable(n: usize) -> Cluster {
        Cluster::new_partitionable(n).await.form().await
    }

    fn relay(&self, i: usize) -> &Relay {
        self.slots[i]
            .relay
            .as_ref()
            .expect("links can only be cut in a cluster made by new_partitionable")
    }

    /// Cuts the link from slot `from` to slot `to`: `from`'s calls to `to` (and their
    /// answers) are black-holed; `to`'s calls to `from` still pass.
    pub fn cut(&self, from: usize, to: usize) {
        self.relay(to).cut(IpAddr::V4(self.slots[from].ip));
    }

    /// Cuts every link to and from slot `i`.
    pub fn isolate(&self, i: usize) {
        for j in 0..self.slots.len() {
            if j != i {
                self.cut(i, j);
                self.cut(j, i);
            }
        }
    }

    /// Restores every link; what was held is delivered.
    pub fn heal(&self) {
        for i in 0..self.slots.len() {
            self.relay(i).restore_all();
        }
    }

    /// Adds a stopped slot on 127.0.0.1 (without a relay) and returns its position.
    pub fn add_slot(&mut self) -> usize {
        let i = self.slots.len();
        self.slots.push(Cluster::slot(i + 1));
        i
    }

    /// A formed cluster of `n` voters on 127.0.0.1.
    pub async fn start_all(n: usize) -> Cluster {
        Cluster::new(n).form().await
    }

    /// Bootstraps slot 0 and joins every other slot through it; waits for all voters.
    async fn form(mut self) -> Cluster {
        let n = self.slots.len();
        let c = &mut self;
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
        self
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

    /// Proposes `payload` through slot `via`; returns the LSN (see [`propose_via`]).
    pub async fn write(
        &self,
        via: usize,
        payload: Vec<u8>,
    ) -> Result<u64, wolfscale::consensus::network::ClusterError> {
        let nodes: Vec<Node> = self.running().map(|(_, n)| n.clone()).collect();
        let (lsn, _) = propose_via(self.slots[via].node(), &nodes, Request { payload }).await?;
        Ok(lsn)
    }
}

/// Proposes `request` on `via` with the leader's half of the service's write path
/// ([`Node::propose_local`]); a follower's refusal naming the leader sends it to that node
/// among `nodes`, once, as the service forwards a client write. These nodes have no
/// service (their applier is not MariaDB), so the hop is made here, in process.
///
/// # Errors
/// The refusal or failure of the node that was asked last. Only `NoLeader` and
/// `NotLeader` mean "not appended"; never retry anything else.
pub async fn propose_via(
    via: &Node,
    nodes: &[Node],
    request: Request,
) -> Result<(u64, wolfscale::consensus::Response), ClusterError> {
    match via.propose_local(request.clone()).await {
        Err(ClusterError::NotLeader(leader, _)) => {
            match nodes.iter().find(|n| n.number() == leader) {
                Some(n) => n.propose_local(request).await,
                None => Err(ClusterError::NoLeader),
            }
        }
        other => other,
    }
}
