//! The cluster transport over real TCP on 127.0.0.1: authentication, multiplexing,
//! refusal of unauthenticated input, reconnects, timeouts and size limits.

use crate::support::{init_tracing, Proxy};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wolfscale::transport::frame::{self, Kind, MAX_PAYLOAD};
use wolfscale::transport::{
    serve, serve_with, Acceptor, AuthKey, Client, ClientConfig, Connector, Error, Handler,
    Identity, PeerInfo, ServerConfig, PROTOCOL_VERSION,
};

const SECRET: &str = "test-cluster-secret-0123456789";
const T: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize)]
enum Req {
    Echo { value: u64, delay_ms: u64 },
    Fail(String),
    Blob(Vec<u8>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Resp {
    Echo(u64),
    Len(usize),
}

#[derive(Default)]
struct Counting {
    calls: AtomicUsize,
    peers: Mutex<HashSet<(SocketAddr, String)>>,
}

impl Handler for Counting {
    type Request = Req;
    type Response = Resp;

    async fn handle(&self, peer: &PeerInfo, request: Req) -> Result<Resp, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.peers
            .lock()
            .unwrap()
            .insert((peer.addr, peer.node.clone()));
        match request {
            Req::Echo { value, delay_ms } => {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                Ok(Resp::Echo(value))
            }
            Req::Fail(why) => Err(why),
            Req::Blob(b) => Ok(Resp::Len(b.len())),
        }
    }
}

struct TestServer {
    addr: SocketAddr,
    handler: Arc<Counting>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, Arc::new(Counting::default()), tweak)
    }

    fn start_on(
        listener: TcpListener,
        handler: Arc<Counting>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        init_tracing();
        let addr = listener.local_addr().unwrap();
        let mut cfg = ServerConfig::new(identity("server-node"), AuthKey::new(SECRET).unwrap());
        tweak(&mut cfg);
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, cfg, handler.clone(), stop.clone()));
        TestServer {
            addr,
            handler,
            stop,
            task,
        }
    }

    fn calls(&self) -> usize {
        self.handler.calls.load(Ordering::SeqCst)
    }

    async fn stop(self) -> (SocketAddr, Arc<Counting>) {
        self.stop.cancel();
        tokio::time::timeout(T, self.task)
            .await
            .expect("server stops promptly")
            .unwrap();
        (self.addr, self.handler)
    }
}

fn identity(node: &str) -> Identity {
    Identity {
        cluster: "test".into(),
        node: node.into(),
    }
}

fn client_with(secret: &str) -> Client {
    let mut cfg = ClientConfig::new(identity("client-node"), AuthKey::new(secret).unwrap());
    cfg.backoff_min = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(200);
    Client::new(cfg)
}

async fn echo(c: &Client, addr: SocketAddr, value: u64) -> Result<Resp, Error> {
    let req = Req::Echo { value, delay_ms: 0 };
    c.call(&addr.to_string(), &req, T).await
}

/// Reads until the server closes the stream; fails if it stays open for 5 s.
async fn assert_closed_by_server(mut s: TcpStream) {
    let mut buf = vec![0u8; 4096];
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!("server kept an unauthenticated connection open"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_share_one_connection_and_match() {
    let server = TestServer::start(|_| {}).await;
    let client = client_with(SECRET);
    let peer = server.addr.to_string();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..1000u64 {
        let (client, peer) = (client.clone(), peer.clone());
        let delay_ms = rand::thread_rng().gen_range(0..20);
        calls.spawn(async move {
            let req = Req::Echo { value: i, delay_ms };
            let resp: Resp = client.call(&peer, &req, Duration::from_secs(20)).await?;
            Ok::<_, Error>((i, resp))
        });
    }
    let mut seen = HashSet::new();
    while let Some(r) = calls.join_next().await {
        let (i, resp) = r.unwrap().unwrap();
        assert_eq!(resp, Resp::Echo(i));
        seen.insert(i);
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(server.calls(), 1000);
    let peers = server.handler.peers.lock().unwrap().clone();
    assert_eq!(
        peers.len(),
        1,
        "one connection carried every call: {peers:?}"
    );
    assert!(peers.iter().all(|(_, node)| node == "client-node"));
    client.close().await;
    server.stop().await;
}

#[tokio::test]
async fn remote_failure_is_reported_and_connection_survives() {
    let server = TestServer::start(|_| {}).await;
    let client = client_with(SECRET);
    let err = client
        .call::<_, Resp>(
            &server.addr.to_string(),
            &Req::Fail("no such thing".into()),
            T,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote { message, .. } if message == "no such thing"),
        "{err}"
    );
    assert_eq!(echo(&client, server.addr, 5).await.unwrap(), Resp::Echo(5));
    // A request of another type than the handler's fails remotely, not the connection.
    let err = client
        .call::<_, Resp>(&server.addr.to_string(), &(u8::MAX, "x"), T)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote { message, .. } if message.contains("malformed")),
        "{err}"
    );
    assert_eq!(echo(&client, server.addr, 6).await.unwrap(), Resp::Echo(6));
    server.stop().await;
}

#[tokio::test]
async fn wrong_secret_is_refused_and_handler_never_runs() {
    let server = TestServer::start(|_| {}).await;
    let client = client_with("a-different-secret-of-enough-length");
    let err = echo(&client, server.addr, 1).await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    assert!(err.to_string().contains("authentication"), "{err}");
    // During the backoff the same cause is repeated, not a vague "unreachable".
    let err = echo(&client, server.addr, 2).await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = echo(&client, server.addr, 3).await.unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    assert_eq!(server.calls(), 0);
    // The server is unharmed for a client with the right secret.
    assert_eq!(
        echo(&client_with(SECRET), server.addr, 4).await.unwrap(),
        Resp::Echo(4)
    );
    server.stop().await;
}

#[tokio::test]
async fn server_that_cannot_prove_the_secret_is_refused_by_the_client() {
    // A fake server answers Hello with a challenge, then a Welcome whose proof is junk.
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = s.split();
        let mut r = frame::FrameReader::new(rd, frame::MAX_PREAUTH_PAYLOAD);
        let hello = r.next().await.unwrap().unwrap();
        assert_eq!(hello.kind, Kind::Hello);
        let challenge = postcard::to_allocvec(&(PROTOCOL_VERSION, "impostor", [7u8; 32])).unwrap();
        let c = frame::encode(Kind::Challenge, 0, &challenge, 4096).unwrap();
        wr.write_all(&c).await.unwrap();
        let proof = r.next().await.unwrap().unwrap();
        assert_eq!(proof.kind, Kind::Proof);
        let w = frame::encode(Kind::Welcome, 0, &[0u8; 32], 4096).unwrap();
        wr.write_all(&w).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    let err = echo(&client_with(SECRET), addr, 1).await.unwrap_err();
    assert!(
        matches!(&err, Error::AuthFailed { reason, .. } if reason.contains("server")),
        "{err}"
    );
    fake.await.unwrap();
}

#[tokio::test]
async fn unauthenticated_input_is_closed_and_never_handled() {
    let server = TestServer::start(|_| {}).await;
    // A well-formed request frame without any handshake.
    let req = Req::Echo {
        value: 1,
        delay_ms: 0,
    };
    let bytes = frame::encode_value(Kind::Request, 1, &req, MAX_PAYLOAD).unwrap();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    assert_closed_by_server(s).await;
    // Random bytes.
    let junk: Vec<u8> = (0..4096).map(|_| rand::random()).collect();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let _ = s.write_all(&junk).await;
    assert_closed_by_server(s).await;
    // A header announcing a 1 GiB payload is refused from its length field.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    assert_closed_by_server(s).await;
    // A Hello followed by a request instead of a proof.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let hello = postcard::to_allocvec(&(PROTOCOL_VERSION, "test", "mallory", [1u8; 32])).unwrap();
    s.write_all(&frame::encode(Kind::Hello, 0, &hello, 4096).unwrap())
        .await
        .unwrap();
    s.write_all(&bytes).await.unwrap();
    assert_closed_by_server(s).await;
    assert_eq!(server.calls(), 0);
    let client = client_with(SECRET);
    assert_eq!(echo(&client, server.addr, 2).await.unwrap(), Resp::Echo(2));
    server.stop().await;
}

#[tokio::test]
async fn silent_connection_is_closed_after_the_handshake_timeout() {
    let server = TestServer::start(|c| c.handshake_timeout = Duration::from_millis(200)).await;
    let s = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    assert_closed_by_server(s).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn replayed_session_transcript_is_refused() {
    let server = TestServer::start(|_| {}).await;
    let proxy = Proxy::start(server.addr).await;
    let proxy_addr = proxy.addr;
    let client = client_with(SECRET);
    assert_eq!(echo(&client, proxy_addr, 9).await.unwrap(), Resp::Echo(9));
    client.close().await;
    assert_eq!(server.calls(), 1);
    let transcript = proxy.recorded();
    assert!(transcript.len() > 100, "the proxy saw the session");
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(&transcript).await.unwrap();
    assert_closed_by_server(s).await;
    assert_eq!(server.calls(), 1, "the replayed request was not handled");
    let client = client_with(SECRET);
    assert_eq!(
        echo(&client, server.addr, 10).await.unwrap(),
        Resp::Echo(10)
    );
    server.stop().await;
}

#[tokio::test]
async fn call_timeout_leaves_the_connection_usable() {
    let server = TestServer::start(|_| {}).await;
    let client = client_with(SECRET);
    let peer = server.addr.to_string();
    assert_eq!(echo(&client, server.addr, 1).await.unwrap(), Resp::Echo(1));
    let slow = Req::Echo {
        value: 2,
        delay_ms: 1000,
    };
    let started = Instant::now();
    let err = client
        .call::<_, Resp>(&peer, &slow, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(echo(&client, server.addr, 3).await.unwrap(), Resp::Echo(3));
    // Let the late answer arrive and be dropped; the connection still works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(echo(&client, server.addr, 4).await.unwrap(), Resp::Echo(4));
    assert_eq!(
        server.handler.peers.lock().unwrap().len(),
        1,
        "no reconnect"
    );
    assert_eq!(client.peer_node(&peer).as_deref(), Some("server-node"));
    assert_eq!(client.peer_node("127.0.0.1:1"), None);
    server.stop().await;
}

#[tokio::test]
async fn peer_restart_fails_fast_then_reconnects_by_itself() {
    let server = TestServer::start(|_| {}).await;
    let client = client_with(SECRET);
    assert_eq!(echo(&client, server.addr, 1).await.unwrap(), Resp::Echo(1));
    // An in-flight call when the server goes away fails promptly, not at its timeout.
    let slow = {
        let (client, peer) = (client.clone(), server.addr.to_string());
        tokio::spawn(async move {
            let req = Req::Echo {
                value: 2,
                delay_ms: 10_000,
            };
            let started = Instant::now();
            let r = client
                .call::<_, Resp>(&peer, &req, Duration::from_secs(30))
                .await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (addr, handler) = server.stop().await;
    let (r, took) = slow.await.unwrap();
    // The request had been sent: the caller cannot know whether it was handled.
    assert!(matches!(r, Err(Error::Lost { .. })), "{r:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    for i in 0..5 {
        let started = Instant::now();
        let err = echo(&client, addr, 10 + i).await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    let listener = TcpListener::bind(addr).await.unwrap();
    let server = TestServer::start_on(listener, handler, |_| {});
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match echo(&client, addr, 20).await {
            Ok(r) => {
                assert_eq!(r, Resp::Echo(20));
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "no reconnect within 5 s: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn oversized_frames_are_refused() {
    let server = TestServer::start(|c| c.max_payload = 1024).await;
    let peer = server.addr.to_string();
    // The client refuses to send past its own limit, without touching the network.
    let mut cfg = ClientConfig::new(identity("client-node"), AuthKey::new(SECRET).unwrap());
    cfg.max_payload = 512;
    let small = Client::new(cfg);
    let err = small
        .call::<_, Resp>(&peer, &Req::Blob(vec![0; 600]), T)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Encode(_)), "{err}");
    // The server drops an authenticated peer that exceeds the server's limit.
    let client = client_with(SECRET);
    assert_eq!(
        client
            .call::<_, Resp>(&peer, &Req::Blob(vec![0; 100]), T)
            .await
            .unwrap(),
        Resp::Len(100)
    );
    let err = client
        .call::<_, Resp>(&peer, &Req::Blob(vec![0; 4096]), T)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Lost { .. }), "{err}");
    assert_eq!(server.calls(), 1);
    // The next call reconnects.
    assert_eq!(echo(&client, server.addr, 7).await.unwrap(), Resp::Echo(7));
    server.stop().await;
}

#[tokio::test]
async fn connection_limit_is_enforced() {
    let server = TestServer::start(|c| c.max_connections = 1).await;
    let first = client_with(SECRET);
    assert_eq!(echo(&first, server.addr, 1).await.unwrap(), Resp::Echo(1));
    let second = client_with(SECRET);
    let err = echo(&second, server.addr, 2).await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert_eq!(echo(&first, server.addr, 3).await.unwrap(), Resp::Echo(3));
    server.stop().await;
}

#[tokio::test]
async fn closed_client_refuses_calls() {
    let server = TestServer::start(|_| {}).await;
    let client = client_with(SECRET);
    assert_eq!(echo(&client, server.addr, 1).await.unwrap(), Resp::Echo(1));
    client.close().await;
    let err = echo(&client, server.addr, 2).await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn silent_peer_is_declared_dead_and_calls_fail() {
    let server = TestServer::start(|_| {}).await;
    let proxy = Proxy::start(server.addr).await;
    let mut cfg = ClientConfig::new(identity("client-node"), AuthKey::new(SECRET).unwrap());
    cfg.ping_interval = Duration::from_millis(100);
    cfg.dead_after = Duration::from_millis(600);
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.backoff_max = Duration::from_millis(100);
    let client = Client::new(cfg);
    assert_eq!(echo(&client, proxy.addr, 1).await.unwrap(), Resp::Echo(1));
    // Idle pings keep a healthy connection alive well past `dead_after`.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(echo(&client, proxy.addr, 2).await.unwrap(), Resp::Echo(2));
    assert_eq!(
        server.handler.peers.lock().unwrap().len(),
        1,
        "no reconnect"
    );
    proxy.set_blocked(true);
    let started = Instant::now();
    let req = Req::Echo {
        value: 3,
        delay_ms: 0,
    };
    let r = client
        .call::<_, Resp>(&proxy.addr.to_string(), &req, Duration::from_secs(30))
        .await;
    assert!(
        matches!(&r, Err(Error::Lost { reason, .. }) if reason.contains("silent")),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    proxy.set_blocked(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while echo(&client, proxy.addr, 4).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no reconnect after the partition healed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// Wraps streams in another type, as a TLS layer would, and counts how often it ran.
#[derive(Clone, Default)]
struct Wrapping {
    wrapped: Arc<AtomicUsize>,
}

impl Acceptor for Wrapping {
    type Stream = BufStream<TcpStream>;
    async fn accept(&self, tcp: TcpStream) -> std::io::Result<Self::Stream> {
        self.wrapped.fetch_add(1, Ordering::SeqCst);
        Ok(BufStream::new(tcp))
    }
}

impl Connector for Wrapping {
    type Stream = BufStream<TcpStream>;
    async fn connect(&self, tcp: TcpStream, _peer: &str) -> std::io::Result<Self::Stream> {
        self.wrapped.fetch_add(1, Ordering::SeqCst);
        Ok(BufStream::new(tcp))
    }
}

#[tokio::test]
async fn stream_seam_carries_calls_over_a_wrapped_stream() {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(Counting::default());
    let wrap = Wrapping::default();
    let stop = CancellationToken::new();
    let cfg = ServerConfig::new(identity("server-node"), AuthKey::new(SECRET).unwrap());
    let task = tokio::spawn(serve_with(
        listener,
        cfg,
        handler.clone(),
        wrap.clone(),
        stop.clone(),
    ));
    let cfg = ClientConfig::new(identity("client-node"), AuthKey::new(SECRET).unwrap());
    let client = Client::with_connector(cfg, wrap.clone());
    for i in 0..10 {
        let req = Req::Echo {
            value: i,
            delay_ms: 0,
        };
        let resp: Resp = client.call(&addr.to_string(), &req, T).await.unwrap();
        assert_eq!(resp, Resp::Echo(i));
    }
    assert_eq!(
        wrap.wrapped.load(Ordering::SeqCst),
        2,
        "one accept and one connect"
    );
    assert_eq!(handler.calls.load(Ordering::SeqCst), 10);
    client.close().await;
    stop.cancel();
    task.await.unwrap();
}

/// A connector slower than the callers' timeouts, as a distant peer would be.
#[derive(Clone, Default)]
struct Slow {
    dials: Arc<AtomicUsize>,
}

impl Connector for Slow {
    type Stream = TcpStream;
    async fn connect(&self, tcp: TcpStream, _peer: &str) -> std::io::Result<TcpStream> {
        self.dials.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(800)).await;
        Ok(tcp)
    }
}

#[tokio::test]
async fn dial_slower_than_call_timeouts_still_completes_once() {
    let server = TestServer::start(|_| {}).await;
    let slow = Slow::default();
    let cfg = ClientConfig::new(identity("client-node"), AuthKey::new(SECRET).unwrap());
    let client = Client::with_connector(cfg, slow.clone());
    let peer = server.addr.to_string();
    let short = Duration::from_millis(100);
    for i in 0..3 {
        let req = Req::Echo {
            value: i,
            delay_ms: 0,
        };
        let err = client
            .call::<_, Resp>(&peer, &req, short)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
    // Three short calls used ~300 ms of the dial's 800; it finishes with no caller waiting.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let req = Req::Echo {
        value: 9,
        delay_ms: 0,
    };
    assert_eq!(
        client.call::<_, Resp>(&peer, &req, short).await.unwrap(),
        Resp::Echo(9)
    );
    assert_eq!(
        slow.dials.load(Ordering::SeqCst),
        1,
        "callers shared one dial"
    );
    server.stop().await;
}
