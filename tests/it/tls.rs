//! TLS on a real node process (issue 13): certificates from `wolfscale tls init`, the API
//! served over HTTPS only (curl with the CA succeeds, plain HTTP does not), both ports
//! show the chain to `openssl s_client`, the MySQL front end speaks TLS and refuses a
//! plain-text login, and the CLI reaches the API with `--ca-file`.

use crate::support::mariadb::MariaDb;
use crate::support::process::spawn_tied;
use crate::support::procs::{NodeConfig, DATABASE, MYSQL_USER};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use wolfscale::api::client::{Client, WriteKind};

const ADMIN: &str = "admin-token-5c2e8a1f9d";

fn wolfscale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wolfscale"))
        .args(args)
        .env_remove("WOLFSCALE_CONFIG")
        .env_remove("WOLFSCALE_CA_FILE")
        .output()
        .expect("run wolfscale")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn run(program: &str, args: Vec<String>, stdin_null: bool) -> Output {
    let program = program.to_string();
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(&program);
        c.args(&args);
        if stdin_null {
            c.stdin(Stdio::null());
        }
        c.output().expect("run tool")
    })
    .await
    .expect("tool thread")
}

async fn s_client(addr: &str, ca: &Path) -> String {
    let o = run(
        "openssl",
        vec![
            "s_client".into(),
            "-connect".into(),
            addr.into(),
            "-CAfile".into(),
            ca.display().to_string(),
            "-showcerts".into(),
        ],
        true,
    )
    .await;
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_serves_https_and_mutual_tls_with_generated_certificates() {
    crate::support::init_tracing();
    let db = MariaDb::start().await.expect("start mariadb");
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    let certs_s = certs.display().to_string();
    let o = wolfscale(&["tls", "init", "--dir", &certs_s, "--nodes", "node-1,node-2"]);
    assert!(o.status.success(), "{}", text(&o));
    let ca = certs.join("ca.pem");
    let files = NodeConfig {
        mysql: true,
        ..with_tls(
            &certs.join("node-1.pem"),
            &certs.join("node-1-key.pem"),
            &certs.join("ca.pem"),
        )
    }
    .write(dir.path(), 1, &db);
    let cfg = files.cfg.display().to_string();
    let o = wolfscale(&["validate", "-c", &cfg]);
    assert!(o.status.success(), "{}", text(&o));

    let log = dir.path().join("node-1.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
    cmd.args(["start", "--bootstrap", "-c", &cfg])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    drop(files.ports);
    let _child = tokio::task::spawn_blocking(move || spawn_tied(cmd))
        .await
        .expect("spawn thread")
        .expect("spawn wolfscale");

    // The typed client with the CA: the node becomes writable over HTTPS.
    let client = Client::new(&files.api)
        .expect("address")
        .with_token(ADMIN)
        .with_ca_file(&ca)
        .expect("ca file");
    let start = Instant::now();
    loop {
        let ddl = r#"{"ddl": "CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY)"}"#;
        match client.write_raw(WriteKind::Ddl, ddl.to_string()).await {
            Ok(_) => break,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(120),
                "node not writable over HTTPS within 120 s: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // curl with the CA gets the answer; plain HTTP gets nothing.
    let url = format!("https://{}/status", files.api);
    let auth = format!("Authorization: Bearer {ADMIN}");
    let o = run(
        "curl",
        vec![
            "-sS",
            "--fail",
            "--cacert",
            &ca.display().to_string(),
            "-H",
            &auth,
            &url,
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        false,
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("node-1"),
        "{}",
        text(&o)
    );
    let plain = format!("http://{}/status", files.api);
    let o = run(
        "curl",
        vec!["-sS", "--max-time", "5", "-H", &auth, &plain]
            .into_iter()
            .map(String::from)
            .collect(),
        false,
    )
    .await;
    assert!(!o.status.success(), "plain HTTP answered: {}", text(&o));
    // Without the CA, curl refuses the self-signed chain.
    let o = run(
        "curl",
        vec!["-sS", "--max-time", "5", &url]
            .into_iter()
            .map(String::from)
            .collect(),
        false,
    )
    .await;
    assert!(
        !o.status.success(),
        "untrusted chain accepted: {}",
        text(&o)
    );

    // The MySQL front end: the mariadb CLI with TLS and the CA reads and writes; a
    // client that stays in plain text is refused at login; openssl sees our chain.
    let (mysql_host, mysql_port) = files
        .mysql
        .as_ref()
        .and_then(|(a, _)| a.rsplit_once(':'))
        .map(|(h, p)| (h.to_string(), p.to_string()))
        .expect("front end address");
    let mysql = |tls: &[&str], sql: &str| {
        let mut args: Vec<String> = vec![
            "-h".into(),
            mysql_host.clone(),
            "-P".into(),
            mysql_port.clone(),
            "--protocol=TCP".into(),
            format!("-u{}", MYSQL_USER.0),
            format!("-p{}", MYSQL_USER.1),
            "--batch".into(),
            "--skip-column-names".into(),
            "-e".into(),
            sql.into(),
        ];
        args.extend(tls.iter().map(|s| s.to_string()));
        args.push(DATABASE.into());
        run("mariadb", args, true)
    };
    let ca_arg = format!("--ssl-ca={}", ca.display());
    let o = mysql(
        &["--ssl", &ca_arg, "--ssl-verify-server-cert"],
        "INSERT INTO t (id) VALUES (7); SELECT id FROM t WHERE id = 7",
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "7",
        "{}",
        text(&o)
    );
    let o = mysql(&["--skip-ssl"], "SELECT 1").await;
    assert!(
        !o.status.success(),
        "plain-text MySQL login accepted: {}",
        text(&o)
    );
    assert!(text(&o).contains("Authenticate failed"), "{}", text(&o));
    let o = run(
        "openssl",
        vec![
            "s_client".into(),
            "-starttls".into(),
            "mysql".into(),
            "-connect".into(),
            format!("{mysql_host}:{mysql_port}"),
            "-CAfile".into(),
            ca.display().to_string(),
        ],
        true,
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("CN=node-1") || out.contains("CN = node-1"),
        "{out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    // Both ports show the chain to openssl s_client and it verifies against the CA.
    for addr in [&files.api, &files.cluster] {
        let out = s_client(addr, &ca).await;
        assert!(
            out.contains("CN=node-1") || out.contains("CN = node-1"),
            "{addr}:\n{out}"
        );
        assert!(out.contains("WolfScale test CA"), "{addr}:\n{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{addr}:\n{out}");
    }

    // The CLI takes the CA from the config's [tls], or from --ca-file.
    let o = wolfscale(&["status", "-c", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("node-1"),
        "{}",
        text(&o)
    );
    let no_cfg = dir.path().join("absent.toml").display().to_string();
    let o = wolfscale(&[
        "status",
        "-c",
        &no_cfg,
        "--node",
        &files.api,
        "--ca-file",
        &ca.display().to_string(),
    ]);
    // No token without a config: the API refuses (401) — but over TLS, not a TLS error.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("401")
            || String::from_utf8_lossy(&o.stderr)
                .to_lowercase()
                .contains("unauthorized"),
        "{}",
        text(&o)
    );
}

/// The `[api]` extra lines of a node with `[tls]` from these files.
/// A node config with the admin token and `[tls]` from these files.
fn with_tls(cert: &Path, key: &Path, ca: &Path) -> NodeConfig {
    let tls = wolfscale::config::TlsConfig {
        cert_file: cert.to_path_buf(),
        key_file: key.to_path_buf(),
        ca_file: ca.to_path_buf(),
    };
    NodeConfig::with(move |c| {
        c.api.token = Some(ADMIN.into());
        c.tls = Some(tls.clone());
    })
}

/// Starts `wolfscale ARGS -c CFG` tied to this test, its log in `log`.
async fn start(args: &[&str], cfg: &Path, log: &Path) -> crate::support::process::Tied {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wolfscale"));
    cmd.args(args)
        .arg("-c")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"));
    tokio::task::spawn_blocking(move || spawn_tied(cmd))
        .await
        .expect("spawn thread")
        .expect("spawn wolfscale")
}

/// A cluster-transport client presenting `cert`/`key` and trusting `ca`, with the
/// cluster's real secret.
fn peer_client(cert: &Path, key: &Path, ca: &Path) -> wolfscale::tls::ClusterClient {
    use wolfscale::transport::{AuthKey, ClientConfig, Identity};
    let tls = wolfscale::tls::Tls::load(&wolfscale::config::TlsConfig {
        cert_file: cert.to_path_buf(),
        key_file: key.to_path_buf(),
        ca_file: ca.to_path_buf(),
    })
    .expect("load client tls");
    let ident = Identity {
        cluster: "wolfscale".into(),
        node: "node-2".into(),
    };
    let key = AuthKey::new(crate::support::procs::SECRET).expect("secret");
    let mut cfg = ClientConfig::new(ident, key);
    cfg.connect_timeout = Duration::from_secs(10);
    wolfscale::tls::ClusterClient::with_connector(cfg, wolfscale::tls::ClusterConnector(Some(tls)))
}

/// Waits (generously: the machine is loaded) until `f` holds.
async fn wait_for<F, Fut>(what: &str, limit: Duration, log: &Path, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 13's proof for the cluster port: a node whose certificate comes from another CA
/// — even one that trusts our CA and knows the cluster secret — can neither send a frame
/// that is acted on nor join; with a certificate from the cluster's CA the same node
/// joins and receives the log over mutual TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_cannot_join_or_send_a_frame() {
    use mysql_async::prelude::Queryable;
    use wolfscale::consensus::network::{JoinRequest, PeerRequest, PeerResponse};
    crate::support::init_tracing();
    let (db1, db2) = tokio::join!(MariaDb::start(), MariaDb::start());
    let (db1, db2) = (db1.expect("mariadb 1"), db2.expect("mariadb 2"));
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    for (d, nodes) in [(&ours, "node-1,node-2"), (&theirs, "node-2")] {
        let d = d.display().to_string();
        let o = wolfscale(&["tls", "init", "--dir", &d, "--nodes", nodes]);
        assert!(o.status.success(), "{}", text(&o));
    }
    // The intruder trusts both CAs (a CA certificate is public), so the refusal tested
    // here is node-1's: the client certificate does not chain to its `ca_file`.
    let both = dir.path().join("both-cas.pem");
    let mut pem = std::fs::read(theirs.join("ca.pem")).expect("their ca");
    pem.extend(std::fs::read(ours.join("ca.pem")).expect("our ca"));
    std::fs::write(&both, pem).expect("write both-cas.pem");
    let ca = ours.join("ca.pem");

    let files1 = with_tls(&ours.join("node-1.pem"), &ours.join("node-1-key.pem"), &ca).write(
        dir.path(),
        1,
        &db1,
    );
    let log1 = dir.path().join("node-1.log");
    drop(files1.ports);
    let _node1 = start(&["start", "--bootstrap"], &files1.cfg, &log1).await;
    let client = Client::new(&files1.api)
        .expect("address")
        .with_token(ADMIN)
        .with_ca_file(&ca)
        .expect("ca file");
    let ddl = r#"{"ddl": "CREATE TABLE t (id INT PRIMARY KEY)"}"#;
    wait_for(
        "node-1 writable over HTTPS",
        Duration::from_secs(120),
        &log1,
        || async {
            client
                .write_raw(WriteKind::Ddl, ddl.to_string())
                .await
                .is_ok()
        },
    )
    .await;

    // Frames straight to the cluster port, with the right secret.
    let ask = Duration::from_secs(15);
    let good = peer_client(&ours.join("node-2.pem"), &ours.join("node-2-key.pem"), &ca);
    let answer = good
        .call::<_, PeerResponse>(&files1.cluster, &PeerRequest::Leader, ask)
        .await
        .expect("a peer with our CA's certificate is answered");
    assert!(
        matches!(answer, PeerResponse::Leader(Some(_))),
        "{answer:?}"
    );
    let intruder = peer_client(
        &theirs.join("node-2.pem"),
        &theirs.join("node-2-key.pem"),
        &both,
    );
    let join = PeerRequest::Join(JoinRequest {
        name: "node-2".into(),
        number: None,
        identity: "0123456789abcdef0123456789abcdef".into(),
        cluster_addr: "127.0.0.1:9".into(),
        api_addr: String::new(),
        learner: false,
        forwarded: false,
    });
    for request in [&PeerRequest::Leader, &join] {
        let r = intruder
            .call::<_, PeerResponse>(&files1.cluster, request, ask)
            .await;
        assert!(r.is_err(), "foreign certificate answered: {r:?}");
    }

    // The real binary with the foreign certificate: its join is refused until it gives up.
    let files2 = with_tls(
        &theirs.join("node-2.pem"),
        &theirs.join("node-2-key.pem"),
        &both,
    )
    .write(dir.path(), 2, &db2);
    drop(files2.ports);
    let cfg2 = files2.cfg.display().to_string();
    let cluster1 = files1.cluster.clone();
    let o = tokio::task::spawn_blocking(move || wolfscale(&["join", &cluster1, "-c", &cfg2]))
        .await
        .expect("join thread");
    assert!(!o.status.success(), "foreign node joined: {}", text(&o));
    let members = client.cluster().await.expect("cluster status").nodes;
    assert_eq!(members.len(), 1, "{members:?}");
    let log = std::fs::read_to_string(&log1).unwrap_or_default();
    assert!(
        log.contains("peer failed the handshake") && log.contains("certificate"),
        "node-1 logged no certificate refusal:\n{log}"
    );

    // With a certificate from the cluster's CA the same node joins, and the log reaches
    // its MariaDB over mutual TLS.
    let cfg2_text = std::fs::read_to_string(&files2.cfg).expect("read cfg 2");
    let mut cfg2: wolfscale::config::Config = toml::from_str(&cfg2_text).expect("cfg 2");
    cfg2.tls = Some(wolfscale::config::TlsConfig {
        cert_file: ours.join("node-2.pem"),
        key_file: ours.join("node-2-key.pem"),
        ca_file: ca.clone(),
    });
    crate::support::config::write(&cfg2, &files2.cfg);
    let log2 = dir.path().join("node-2.log");
    let _node2 = start(&["join", &files1.cluster], &files2.cfg, &log2).await;
    let insert = r#"{"table": "t", "values": {"id": 7}}"#;
    client
        .write_raw(WriteKind::Insert, insert.to_string())
        .await
        .expect("insert on node-1");
    wait_for(
        "row 7 on node-2",
        Duration::from_secs(120),
        &log2,
        || async {
            let Ok(mut conn) = db2.conn_to(crate::support::procs::DATABASE).await else {
                return false;
            };
            let row: Result<Option<i64>, _> =
                conn.query_first("SELECT id FROM t WHERE id = 7").await;
            matches!(row, Ok(Some(7)))
        },
    )
    .await;
    let members = client.cluster().await.expect("cluster status").nodes;
    assert_eq!(members.len(), 2, "{members:?}");
}
