//! TLS on a real node process (issue 13): certificates from `wolfscale tls init`, the API
//! served over HTTPS only (curl with the CA succeeds, plain HTTP does not), both ports
//! show the chain to `openssl s_client`, and the CLI reaches the API with `--ca-file`.

use crate::support::mariadb::MariaDb;
use crate::support::process::spawn_tied;
use crate::support::procs::NodeConfig;
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
    let api = format!(
        "token = \"{ADMIN}\"\n[tls]\ncert_file = \"{c}/node-1.pem\"\nkey_file = \"{c}/node-1-key.pem\"\nca_file = \"{c}/ca.pem\"",
        c = certs_s
    );
    let files = NodeConfig {
        api: &api,
        ..Default::default()
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
                start.elapsed() < Duration::from_secs(30),
                "node not writable over HTTPS within 30 s: {e}\n{}",
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
