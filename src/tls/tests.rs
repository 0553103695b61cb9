//! Certificates generated for real, rustls over real loopback sockets: `tls init` output,
//! `[tls]` validation, mutual TLS on the cluster transport and certificate reload.

use super::*;
use crate::config::{parse, EnvOverrides, ParseError};
use crate::transport::{self, AuthKey, Client, ClientConfig, Handler, Identity, PeerInfo};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "a-cluster-secret-of-some-length";

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn hosts() -> Vec<String> {
    names(&["127.0.0.1", "localhost"])
}

fn node_tls(dir: &Path, node: &str) -> TlsConfig {
    TlsConfig {
        cert_file: dir.join(format!("{node}.pem")),
        key_file: dir.join(format!("{node}-key.pem")),
        ca_file: dir.join("ca.pem"),
    }
}

#[test]
fn init_writes_a_ca_and_node_files_with_private_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("certs");
    let g = generate(&dir, &names(&["node-1", "node-2"]), &hosts()).expect("generate");
    assert_eq!(g.nodes.len(), 2);
    for key in ["ca-key.pem", "node-1-key.pem", "node-2-key.pem"] {
        let mode = std::fs::metadata(dir.join(key))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let m = Material::load(&node_tls(&dir, "node-2")).expect("loads");
    assert_eq!(m.chain.len(), 1);
    assert_eq!(m.roots.len(), 1);
    // Nothing is overwritten, and names that are not file names are refused.
    assert!(matches!(
        generate(&dir, &names(&["node-3", "node-1"]), &hosts()),
        Err(GenerateError::Exists(p)) if p == dir.join("ca.pem")
    ));
    assert!(!dir.join("node-3.pem").exists());
    let other = tmp.path().join("other");
    assert!(matches!(
        generate(&other, &names(&["../x"]), &hosts()),
        Err(GenerateError::BadName(_))
    ));
    assert!(matches!(
        generate(&other, &[], &hosts()),
        Err(GenerateError::Empty(_))
    ));
}

fn config_text(t: &TlsConfig) -> String {
    format!(
        "[node]\nid = \"n1\"\n[cluster]\nsecret = \"{SECRET}\"\n[tls]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n",
        t.cert_file, t.key_file, t.ca_file
    )
}

fn problem_keys(text: &str) -> Vec<String> {
    match parse(text, &EnvOverrides::default()) {
        Err(ParseError::Invalid(p)) => p.into_iter().map(|p| p.key).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn tls_section_is_validated_and_round_trips() {
    let tmp = tempfile::tempdir().expect("tmp");
    generate(tmp.path(), &names(&["n1", "n2"]), &hosts()).expect("generate");
    let t = node_tls(tmp.path(), "n1");
    let loaded = parse(&config_text(&t), &EnvOverrides::default()).expect("valid");
    assert_eq!(loaded.config.tls.as_ref(), Some(&t));
    let again = toml::to_string(&loaded.config).expect("serialise");
    let back = parse(&again, &EnvOverrides::default()).expect("round trip");
    assert_eq!(back.config, loaded.config);

    // Missing key file, a key that is not PEM, a CA that is not a certificate, a key
    // that belongs to another certificate: each named by its key.
    let mut missing = t.clone();
    missing.key_file = tmp.path().join("nope.pem");
    assert_eq!(problem_keys(&config_text(&missing)), ["tls.key_file"]);
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not pem at all").expect("write");
    let mut bad_key = t.clone();
    bad_key.key_file = junk.clone();
    assert_eq!(problem_keys(&config_text(&bad_key)), ["tls.key_file"]);
    let mut bad_ca = t.clone();
    bad_ca.ca_file = junk;
    assert_eq!(problem_keys(&config_text(&bad_ca)), ["tls.ca_file"]);
    let mut mismatch = t.clone();
    mismatch.key_file = tmp.path().join("n2-key.pem");
    assert_eq!(problem_keys(&config_text(&mismatch)), ["tls"]);
    // All three files are required.
    let partial = format!(
        "[node]\nid = \"n1\"\n[cluster]\nsecret = \"{SECRET}\"\n[tls]\ncert_file = {:?}\n",
        t.cert_file
    );
    assert!(!problem_keys(&partial).is_empty());
}

#[derive(Default)]
struct Counting {
    calls: AtomicUsize,
}

impl Handler for Counting {
    type Request = String;
    type Response = String;
    async fn handle(&self, _peer: &PeerInfo, request: String) -> Result<String, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(request)
    }
}

fn ident(node: &str) -> Identity {
    Identity {
        cluster: "test".into(),
        node: node.into(),
    }
}

struct Server {
    addr: String,
    handler: Arc<Counting>,
    tls: Option<Arc<Tls>>,
    stop: CancellationToken,
}

async fn server(tls: Option<TlsConfig>) -> Server {
    let tls = tls.map(|t| Tls::load(&t).expect("tls"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let handler = Arc::new(Counting::default());
    let stop = CancellationToken::new();
    let key = AuthKey::new(SECRET).expect("key");
    tokio::spawn(transport::serve_with(
        listener,
        transport::ServerConfig::new(ident("server"), key),
        handler.clone(),
        ClusterAcceptor(tls.clone()),
        stop.clone(),
    ));
    Server {
        addr,
        handler,
        tls,
        stop,
    }
}

fn client(tls: Option<TlsConfig>) -> Client<ClusterConnector> {
    let tls = tls.map(|t| Tls::load(&t).expect("tls"));
    let mut cfg = ClientConfig::new(ident("client"), AuthKey::new(SECRET).expect("key"));
    cfg.connect_timeout = Duration::from_secs(2);
    Client::with_connector(cfg, ClusterConnector(tls))
}

async fn call(c: &Client<ClusterConnector>, addr: &str) -> Result<String, transport::Error> {
    c.call::<String, String>(addr, &"ping".to_string(), Duration::from_secs(3))
        .await
}

#[tokio::test]
async fn cluster_port_needs_a_certificate_from_the_cluster_ca() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    generate(&ours, &names(&["a", "b"]), &hosts()).expect("ours");
    generate(&theirs, &names(&["b"]), &hosts()).expect("theirs");
    let s = server(Some(node_tls(&ours, "a"))).await;

    // Same CA: the handshake runs inside TLS and calls work.
    let good = client(Some(node_tls(&ours, "b")));
    assert_eq!(call(&good, &s.addr).await.expect("call"), "ping");
    assert_eq!(s.handler.calls.load(Ordering::SeqCst), 1);

    // A certificate from another CA (same secret): refused, nothing handled.
    let foreign = client(Some(node_tls(&theirs, "b")));
    let e = call(&foreign, &s.addr)
        .await
        .expect_err("foreign CA refused");
    assert!(
        matches!(
            e,
            transport::Error::Unreachable { .. } | transport::Error::Timeout { .. }
        ),
        "{e:?}"
    );
    // Plain TCP to a TLS port: refused, nothing handled.
    let plain = client(None);
    assert!(call(&plain, &s.addr).await.is_err());
    // A client that trusts our CA but presents no certificate at all.
    let anonymous = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(read_roots(&ours.join("ca.pem")).expect("roots"))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&s.addr).await.expect("tcp");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(anonymous))
        .connect(server_name(&s.addr).expect("name"), tcp)
        .await;
    if let Ok(mut stream) = tls {
        // TLS 1.3 reports the refusal on the first read.
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1];
        assert!(!matches!(stream.read(&mut buf).await, Ok(1)));
    }
    assert_eq!(s.handler.calls.load(Ordering::SeqCst), 1);

    // A TLS client calling a plain server does not get through either.
    let plain_server = server(None).await;
    assert!(call(&good, &plain_server.addr).await.is_err());
    assert_eq!(plain_server.handler.calls.load(Ordering::SeqCst), 0);
    s.stop.cancel();
    plain_server.stop.cancel();
}

/// The leaf certificate the server at `addr` presents to a fresh connection.
async fn served_cert(addr: &str, client: &TlsConfig) -> CertificateDer<'static> {
    let cfg = Configs::build(&Material::load(client).expect("client")).expect("configs");
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let stream = tokio_rustls::TlsConnector::from(cfg.cluster_client.clone())
        .connect(server_name(addr).expect("name"), tcp)
        .await
        .expect("tls");
    let (_, conn) = stream.get_ref();
    conn.peer_certificates().expect("certs")[0].clone()
}

#[tokio::test]
async fn replaced_certificate_is_served_to_new_connections() {
    let tmp = tempfile::tempdir().expect("tmp");
    let first = tmp.path().join("first");
    generate(&first, &names(&["a", "b", "c"]), &hosts()).expect("first");
    let live = tmp.path().join("live");
    std::fs::create_dir(&live).expect("dir");
    let files = TlsConfig {
        cert_file: live.join("cert.pem"),
        key_file: live.join("key.pem"),
        ca_file: first.join("ca.pem"),
    };
    std::fs::copy(first.join("a.pem"), &files.cert_file).expect("cp");
    std::fs::copy(first.join("a-key.pem"), &files.key_file).expect("cp");
    let s = server(Some(files.clone())).await;
    let old = served_cert(&s.addr, &node_tls(&first, "b")).await;
    assert_eq!(old, read_certs(&first.join("a.pem")).expect("a")[0]);

    // Swap in c's certificate (same CA) and let the watcher notice the new mtime.
    let watcher = tokio::spawn(s.tls.clone().expect("tls").watch(s.stop.clone()));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::copy(first.join("c.pem"), &files.cert_file).expect("cp");
    std::fs::copy(first.join("c-key.pem"), &files.key_file).expect("cp");
    let want = read_certs(&first.join("c.pem")).expect("c")[0].clone();
    let deadline = tokio::time::Instant::now() + RELOAD_CHECK_INTERVAL * 4;
    loop {
        let now = served_cert(&s.addr, &node_tls(&first, "b")).await;
        if now == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "certificate not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken file is refused and the last good certificate stays in service.
    std::fs::write(&files.cert_file, "garbage").expect("write");
    assert!(s.tls.as_ref().expect("tls").reload().is_err());
    assert_eq!(served_cert(&s.addr, &node_tls(&first, "b")).await, want);
    s.stop.cancel();
    watcher.await.expect("watcher ends");
}
