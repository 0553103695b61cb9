//! Galera clusters of private MariaDB servers on loopback, for tests and benchmarks that
//! compare with or bridge Galera: N nodes with their own group-communication (gcomm),
//! incremental-transfer and state-transfer ports, joined one at a time (the first
//! founds the cluster, each next one joins once the previous is Synced), rsync for the
//! state transfer. Each node is a [`MariaDb`]: stop, kill and connect to it as usual.
//! Needs the Debian packages `galera-4` and `rsync`; fails (never skips) without them.

use super::mariadb::{MariaDb, Options};
use super::ports::PortReservation;
use super::{Error, Result};
use mysql_async::prelude::Queryable;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where Debian's `galera-4` puts the provider library.
pub const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

/// One Galera cluster; node `i` is `nodes[i]`.
pub struct Galera {
    /// The servers.
    pub nodes: Vec<MariaDb>,
    /// gcomm, IST and SST ports of each node, held for the cluster's life.
    _ports: Vec<[PortReservation; 3]>,
}

impl Galera {
    /// Starts an `n`-node cluster named `name` on 127.0.0.1 and waits until every node
    /// is Synced in a cluster of `n`.
    ///
    /// # Errors
    /// [`Error::Io`] (naming the package) without `galera-4` or `rsync`; a node that does not start
    /// or does not reach Synced within its timeout.
    pub async fn start(name: &str, n: usize) -> Result<Galera> {
        for (path, package) in [(PROVIDER, "galera-4"), ("/usr/bin/rsync", "rsync")] {
            if !Path::new(path).exists() {
                return Err(Error::io(
                    format!("{path} is missing: run `apt-get install -y {package}`"),
                    std::io::ErrorKind::NotFound.into(),
                ));
            }
        }
        let host = Ipv4Addr::LOCALHOST;
        let mut ports = Vec::with_capacity(n);
        for _ in 0..n {
            ports.push([
                PortReservation::new(host).map_err(|e| Error::io("reserve a gcomm port", e))?,
                PortReservation::new(host).map_err(|e| Error::io("reserve an IST port", e))?,
                PortReservation::new(host).map_err(|e| Error::io("reserve an SST port", e))?,
            ]);
        }
        let members: Vec<String> = ports
            .iter()
            .map(|[g, _, _]| format!("{host}:{}", g.port()))
            .collect();
        let mut nodes = Vec::with_capacity(n);
        for (i, [gcomm, ist, sst]) in ports.iter().enumerate() {
            // The first node founds the cluster; the others join through every member.
            let address = if i == 0 {
                "gcomm://".to_string()
            } else {
                format!("gcomm://{}", members.join(","))
            };
            let extra_args = vec![
                "--wsrep-on=ON".to_string(),
                format!("--wsrep-provider={PROVIDER}"),
                format!("--wsrep-cluster-address={address}"),
                format!("--wsrep-cluster-name={name}"),
                format!("--wsrep-node-name={name}-{}", i + 1),
                format!("--wsrep-node-address={host}:{}", gcomm.port()),
                format!(
                    "--wsrep-provider-options=gmcast.listen_addr=tcp://{host}:{};ist.recv_addr={host}:{};gcache.size=32M",
                    gcomm.port(),
                    ist.port()
                ),
                "--wsrep-sst-method=rsync".to_string(),
                format!("--wsrep-sst-receive-address={host}:{}", sst.port()),
                "--binlog-format=ROW".to_string(),
                "--default-storage-engine=InnoDB".to_string(),
                "--innodb-autoinc-lock-mode=2".to_string(),
            ];
            let db = MariaDb::start_with(Options {
                host,
                extra_args,
                ready_timeout: Duration::from_secs(120),
                shared_dir: true,
            })
            .await?;
            wait_synced(&db, i + 1, Duration::from_secs(120)).await?;
            nodes.push(db);
        }
        tracing::info!(cluster = name, nodes = n, "galera cluster synced");
        Ok(Galera {
            nodes,
            _ports: ports,
        })
    }
}

/// Waits until `db` reports Synced in a cluster of at least `size` nodes.
///
/// # Errors
/// [`Error::NotReady`] with the last state seen when it does not within `limit`.
pub async fn wait_synced(db: &MariaDb, size: usize, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let last = match state(db).await {
            Ok((comment, members)) if comment == "Synced" && members >= size => return Ok(()),
            Ok((comment, members)) => format!("{comment}, cluster size {members}"),
            Err(e) => e.to_string(),
        };
        if start.elapsed() > limit {
            return Err(Error::NotReady {
                addr: db.addr().to_string(),
                waited: limit,
                last_error: format!("galera node not Synced in a cluster of {size}: {last}"),
                log_tail: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `wsrep_local_state_comment` and `wsrep_cluster_size` of `db`.
async fn state(db: &MariaDb) -> Result<(String, usize)> {
    let mut conn = db.conn().await?;
    let rows: Vec<(String, String)> = conn
        .query(
            "SHOW STATUS WHERE Variable_name IN \
             ('wsrep_local_state_comment', 'wsrep_cluster_size')",
        )
        .await?;
    conn.disconnect().await?;
    let get = |k: &str| {
        rows.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok((
        get("wsrep_local_state_comment"),
        get("wsrep_cluster_size").parse().unwrap_or(0),
    ))
}
