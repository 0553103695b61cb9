//! WAL retention and catch-up through a snapshot in a real cluster (issue 7): in-process
//! nodes over real TCP, each applying to its own private MariaDB with the real applier.
//! A member that is down but still within the member grace keeps every segment it needs;
//! once it has been gone longer, retention snapshots and purges past it, and when it
//! comes back it installs the snapshot, applies the rest of the log and ends identical.

use crate::support::config;
use crate::support::ports::PortReservation;
use crate::support::MariaDb;
use mysql_async::prelude::Queryable;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use wolfscale::apply::{Backoff, MariaDbApplier};
use wolfscale::command::{DdlRequest, Input, SqlRequest, SqlStatementRequest, Wait, WriteRequest};
use wolfscale::config::Loaded;
use wolfscale::id::Generator;
use wolfscale::node::{Node, RetentionPolicy, Role, StartMode};
use wolfscale::service::Service;

const SECRET: &str = "snapshot-cluster-secret-0123456789";

pub struct DbNode {
    pub name: String,
    pub dir: TempDir,
    pub port: PortReservation,
    pub db: MariaDb,
    pub node: Option<Node>,
    /// The running node's service: writes go through it, as a client's do.
    pub service: Option<Service>,
}

impl DbNode {
    pub fn new(i: usize, db: MariaDb) -> DbNode {
        DbNode {
            name: format!("node-{i}"),
            dir: tempfile::tempdir().expect("tempdir"),
            port: PortReservation::new(Ipv4Addr::LOCALHOST).expect("port"),
            db,
            node: None,
            service: None,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port.port())
    }

    fn loaded(&self) -> Loaded {
        let mut c = config::node(&self.name, &self.addr(), self.dir.path(), SECRET);
        config::on_mariadb(&mut c, &self.db, "app");
        c.wal.segment_size_mb = 1;
        c.api.enabled = false;
        config::loaded(&c)
    }

    pub async fn start(&mut self, mode: StartMode) {
        let l = self.loaded();
        let mut applier = MariaDbApplier::connect(&l.config.database, None)
            .await
            .expect("applier");
        applier.set_backoff(Backoff {
            min: Duration::from_millis(20),
            max: Duration::from_millis(300),
        });
        let (status, reader, checks) = (applier.status(), applier.reader(), applier.checks());
        let node = Node::start(l.config, &l.secrets, mode, applier)
            .await
            .expect("node starts");
        let number = u16::try_from(node.number()).expect("a Snowflake node number");
        let ids = Generator::new(number).expect("a Snowflake node number");
        let service = Service::install(node.clone(), status, reader, ids, checks, false);
        self.node = Some(node);
        self.service = Some(service);
    }

    pub async fn stop(&mut self) {
        self.service = None;
        if let Some(n) = self.node.take() {
            n.shutdown().await.expect("graceful shutdown");
        }
    }

    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("running")
    }

    pub fn service(&self) -> &Service {
        self.service.as_ref().expect("running")
    }
}

fn leader(nodes: &[DbNode]) -> Option<usize> {
    nodes.iter().position(|n| {
        n.node
            .as_ref()
            .is_some_and(|n| n.status().role == Role::Leader)
    })
}

pub async fn wait_leader(nodes: &[DbNode], voters: usize) -> usize {
    let start = Instant::now();
    loop {
        if let Some(i) = leader(nodes) {
            if nodes[i].node().status().voters.len() == voters
                && nodes[i].node().status().learners.is_empty()
            {
                return i;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no leader with {voters} voters"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `len` pseudo-random letters and digits from `seed` (LZ4 cannot shrink them much, so
/// the WAL grows by whole segments).
pub fn noise_text(seed: u64, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            CHARS[(x % CHARS.len() as u64) as usize] as char
        })
        .collect()
}

/// Inserts rows `from..to` of table `kv` (1 KB each), 50 per write, through `service`;
/// returns the last LSN.
pub async fn write_rows(service: &Service, from: u64, to: u64) -> u64 {
    let mut last = 0;
    let mut i = from;
    while i < to {
        let n = (to - i).min(50);
        let marks = vec!["(?, ?, ?)"; n as usize].join(",");
        let mut params = Vec::new();
        for k in i..i + n {
            params.push(Input::from(k));
            params.push(Input::from(k % 7));
            params.push(Input::from(noise_text(k, 1000).as_str()));
        }
        let done = service
            .write(WriteRequest::Sql(SqlRequest {
                statements: vec![SqlStatementRequest {
                    sql: format!("INSERT INTO kv (id, grp, pad) VALUES {marks}"),
                    params,
                }],
                transaction: true,
                wait: Wait::Quorum,
            }))
            .await
            .expect("write");
        last = done.lsn;
        i += n;
    }
    last
}

pub async fn wait_applied(nodes: &[DbNode], lsn: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let behind: Vec<(String, u64)> = nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .map(|n| (n.info().name.clone(), n.status().applied_lsn))
            .filter(|(_, a)| *a < lsn)
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "behind lsn {lsn} after {limit:?}: {behind:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn checksum(db: &MariaDb, table: &str) -> (i64, Option<i64>) {
    let mut conn = db.conn_to("app").await.expect("conn");
    let n: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("count");
    let sum: Option<(String, Option<i64>)> = conn
        .query_first(format!("CHECKSUM TABLE {table}"))
        .await
        .expect("checksum");
    (n.unwrap_or(0), sum.and_then(|s| s.1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_live_members_segments_and_a_member_gone_longer_catches_up_by_snapshot() {
    crate::support::init_tracing();
    let dbs = MariaDb::start_many(3).await.expect("mariadb");
    let mut nodes: Vec<DbNode> = dbs
        .into_iter()
        .enumerate()
        .map(|(i, db)| DbNode::new(i + 1, db))
        .collect();
    nodes[0].start(StartMode::Bootstrap).await;
    let seed = nodes[0].addr();
    for n in nodes.iter_mut().skip(1) {
        n.start(StartMode::Join(vec![seed.clone()])).await;
    }
    let l = wait_leader(&nodes, 3).await;
    nodes[l]
        .service()
        .write(WriteRequest::Ddl(DdlRequest {
            ddl: "CREATE TABLE kv (id BIGINT PRIMARY KEY, grp INT, pad VARCHAR(2000), \
                  INDEX by_grp (grp))"
                .into(),
            wait: Wait::Quorum,
        }))
        .await
        .expect("ddl");
    let last = write_rows(nodes[l].service(), 0, 1500).await;
    wait_applied(&nodes, last, Duration::from_secs(60)).await;

    // node-3 goes down; the others keep writing several segments' worth.
    let gone = if l == 2 { 1 } else { 2 };
    nodes[gone].stop().await;
    let l = wait_leader(&nodes, 3).await;
    let gone_has = {
        let m = nodes[l].node().raft().metrics().borrow().clone();
        m.replication
            .as_ref()
            .and_then(|r| r.get(&(gone as u64 + 1)).copied())
            .flatten()
            .map_or(0, |lid| lid.index)
    };
    let last = write_rows(nodes[l].service(), 1500, 4500).await;

    // Down, but within the member grace: it counts as live, nothing it needs goes.
    let mut policy = RetentionPolicy {
        max_age: Duration::ZERO,
        max_bytes: None,
        member_grace: Duration::from_secs(3600),
        interval: Duration::from_secs(3600),
        min_snapshot_interval: Duration::ZERO,
    };
    nodes[l].node().set_retention_policy(policy.clone());
    let done = nodes[l].node().snapshot_now(true).await.expect("snapshot");
    assert!(done.manifest.index() >= last, "{:?}", done.manifest);
    let report = done.retention.expect("a purge ran");
    let need = report
        .needed_by
        .iter()
        .find(|n| n.number == gone as u64 + 1)
        .unwrap_or_else(|| panic!("the down member is protected: {report:?}"));
    assert_eq!(need.next_lsn, gone_has + 1, "{report:?}");
    let first = nodes[l].node().log_store().wal().first().map(|(f, _)| f);
    assert!(
        first.is_some_and(|f| f <= need.next_lsn),
        "a segment the member needs was purged: first {first:?}, needs {}",
        need.next_lsn
    );

    // Gone longer than the grace: retention (on its own timer) snapshots and purges past it.
    policy.member_grace = Duration::from_secs(1);
    policy.interval = Duration::from_millis(200);
    policy.max_age = Duration::from_secs(1);
    policy.min_snapshot_interval = Duration::from_millis(500);
    for n in nodes.iter().filter_map(|n| n.node.as_ref()) {
        n.set_retention_policy(policy.clone());
    }
    let last = write_rows(nodes[l].service(), 4500, 4600).await;
    let start = Instant::now();
    loop {
        let first = nodes[l].node().log_store().wal().first().map(|(f, _)| f);
        if first.is_some_and(|f| f > gone_has + 1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "retention never purged past the departed member (first {first:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // It comes back: its next entries are gone, so it installs a snapshot, then the log.
    nodes[gone].start(StartMode::Start).await;
    let writer = {
        let s = nodes[l].service().clone();
        tokio::spawn(async move { write_rows(&s, 4600, 5000).await })
    };
    let last = last.max(writer.await.expect("writer"));
    wait_applied(&nodes, last, Duration::from_secs(120)).await;
    let back = nodes[gone].node();
    let snaps = back.snapshots().expect("mariadb nodes have snapshots");
    assert!(
        snaps.progress().installs() >= 1,
        "the returning member caught up through a snapshot"
    );
    let listed = snaps.list().await.expect("list");
    assert_eq!(listed.last().map(|m| m.source.as_str()), Some("received"));
    let sums: Vec<(i64, Option<i64>)> = {
        let mut v = Vec::new();
        for n in &nodes {
            v.push(checksum(&n.db, "kv").await);
        }
        v
    };
    assert_eq!(sums[0].0, 5000);
    assert!(sums.iter().all(|s| *s == sums[0]), "{sums:?}");
    for n in &mut nodes {
        n.stop().await;
    }
}
