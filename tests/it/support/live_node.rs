//! One live `wolfscale` process for black-box tests: a bootstrapped one-node cluster on
//! its own private MariaDB, with an API token, its log captured to a file so a test can
//! check it never panicked. It owns the process, the MariaDB and the temp dir.

use super::config;
use super::ports::PortReservation;
use super::process::{spawn_tied, Tied};
use super::MariaDb;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wolfscale::api::client::Client;
use wolfscale::api::{NodeState, NodeStatus, Role};

/// The API token the node requires.
pub const TOKEN: &str = "bad-input-token-0123456789";
/// The cluster secret.
pub const SECRET: &str = "bad-input-secret-0123456789";

/// A running node and everything it owns.
pub struct LiveNode {
    /// Its private MariaDB; the node writes to database `app`.
    pub db: MariaDb,
    /// HTTP API address, `host:port`.
    pub api: String,
    /// Cluster transport address, `host:port`.
    pub cluster: String,
    log: PathBuf,
    child: Tied,
    _ports: (PortReservation, PortReservation),
    _dir: tempfile::TempDir,
}

impl LiveNode {
    /// Starts MariaDB and `wolfscale start --bootstrap`, and waits until the node leads
    /// and answers `/health`.
    ///
    /// # Panics
    /// When anything fails to start in time.
    pub async fn start(max_body_bytes: usize) -> LiveNode {
        let db = MariaDb::start().await.expect("mariadb");
        let dir = tempfile::tempdir().expect("tempdir");
        let p1 = PortReservation::new(Ipv4Addr::LOCALHOST).expect("port");
        let p2 = PortReservation::new(Ipv4Addr::LOCALHOST).expect("port");
        let cluster = format!("127.0.0.1:{}", p1.port());
        let api = format!("127.0.0.1:{}", p2.port());
        let cfg = dir.path().join("node.toml");
        let mut c = config::node("node-1", &cluster, &dir.path().join("data"), SECRET);
        config::on_mariadb(&mut c, &db, "app");
        c.api.bind_address = api.clone();
        c.api.token = Some(TOKEN.into());
        c.api.max_body_bytes = max_body_bytes as u64;
        config::write(&c, &cfg);
        let log = dir.path().join("node.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
        cmd.args(["start", "--bootstrap", "-c"])
            .arg(&cfg)
            .env("WOLFSCALE_LOG", "info,openraft=warn")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = tokio::task::spawn_blocking(move || spawn_tied(cmd))
            .await
            .expect("spawn task")
            .expect("spawn wolfscale");
        let mut node = LiveNode {
            db,
            api,
            cluster,
            log,
            child,
            _ports: (p1, p2),
            _dir: dir,
        };
        let client = node.client();
        let start = Instant::now();
        loop {
            if let Ok(s) = client.status().await {
                if s.role == Role::Leader && s.status == NodeState::Active {
                    break;
                }
            }
            assert!(node.alive(), "wolfscale exited:\n{}", node.log_text());
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "node not leading in time:\n{}",
                node.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    /// A typed client with the token.
    pub fn client(&self) -> Client {
        Client::new(&self.api)
            .expect("client")
            .with_token(TOKEN)
            .with_timeout(Duration::from_secs(30))
    }

    /// The node's own status.
    pub async fn status(&self) -> NodeStatus {
        self.client().status().await.expect("GET /status")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    /// Everything the node has logged so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Asserts the process runs and has never panicked.
    pub fn assert_sound(&mut self, after: &str) {
        assert!(
            self.alive(),
            "wolfscale died after {after}:\n{}",
            self.log_text()
        );
        let log = self.log_text();
        assert!(
            !log.contains("panicked"),
            "wolfscale panicked after {after}:\n{log}"
        );
    }
}
