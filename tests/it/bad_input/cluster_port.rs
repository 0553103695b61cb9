//! Garbage at the cluster port of the live node: random bytes, truncated frames, oversized
//! and undersized length prefixes, wrong versions and kinds, handshake frames with junk
//! payloads, a wrong secret, and junk requests from an authenticated peer. Anonymous junk
//! must get the connection closed (the node may say why in a Reject frame first); an
//! authenticated junk request gets a failure answer and the connection stays usable.

use super::LiveNode;
use crate::support::live_node::SECRET;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wolfscale::consensus::network::{PeerRequest, PeerResponse};
use wolfscale::transport::frame::{self, Kind, MAX_PREAUTH_PAYLOAD};
use wolfscale::transport::{AuthKey, Client, ClientConfig, Error, Identity};

/// The node's handshake deadline (`ServerConfig::handshake_timeout`).
const HANDSHAKE: Duration = Duration::from_secs(5);
/// How long past it a loaded machine may take.
const SLACK: Duration = Duration::from_secs(15);

fn header(len: u32, version: u8, kind: u8) -> Vec<u8> {
    let mut v = len.to_be_bytes().to_vec();
    v.push(version);
    v.push(kind);
    v.extend_from_slice(&0u64.to_be_bytes());
    v
}

/// Sends `bytes` (then half-closes when `eof`) and waits for the node to close; returns
/// what it sent back.
async fn closed_after(addr: &str, label: &str, bytes: &[u8], eof: bool) -> Vec<u8> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect to the cluster port");
    // The node may close before it has read everything: a failed write is fine.
    let _ = s.write_all(bytes).await;
    if eof {
        let _ = s.shutdown().await;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(HANDSHAKE + SLACK, s.read(&mut buf)).await;
        match read {
            Err(_) => panic!("{label}: the cluster port kept the connection open"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        started.elapsed() <= HANDSHAKE + SLACK,
        "{label}: closed only after {:?}",
        started.elapsed()
    );
    // Whatever came back is at most a Reject frame.
    if !got.is_empty() {
        let decoded = frame::decode(&got, MAX_PREAUTH_PAYLOAD);
        assert!(
            matches!(&decoded, Ok(Some((f, _))) if f.kind == Kind::Reject),
            "{label}: answered {decoded:?}"
        );
    }
    got
}

fn identity(node: &str) -> Identity {
    Identity {
        cluster: "wolfscale".into(),
        node: node.into(),
    }
}

/// A junk request body an authenticated peer might send: not a `PeerRequest`.
#[derive(Serialize)]
struct Junk(u32, Vec<u8>);

pub async fn garbage(node: &LiveNode) {
    let addr = node.cluster.as_str();
    let mut rng = rand::rngs::StdRng::seed_from_u64(66);
    let mut cases: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for i in 0..6 {
        let len = rng.gen_range(1..8192);
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        cases.push((format!("random bytes #{i} ({len})"), bytes, i % 2 == 0));
    }
    let hello = Kind::Hello as u8;
    let pre = MAX_PREAUTH_PAYLOAD as u32;
    let mut junk_hello = header(10 + 64, frame::VERSION, hello);
    junk_hello.extend((0..64).map(|_| rng.gen::<u8>()));
    let mut request_first = header(10 + 3, frame::VERSION, Kind::Request as u8);
    request_first.extend_from_slice(&[1, 2, 3]);
    for (label, bytes, eof) in [
        ("zeros", vec![0u8; 64], false),
        (
            "length shorter than the header",
            header(3, frame::VERSION, hello),
            false,
        ),
        (
            "length u32::MAX",
            header(u32::MAX, frame::VERSION, hello),
            false,
        ),
        (
            "length just over the pre-auth limit",
            header(10 + pre + 1, frame::VERSION, hello),
            false,
        ),
        ("wrong version", header(10, 2, hello), false),
        ("unknown kind", header(10, frame::VERSION, 99), false),
        (
            "truncated header, then end",
            header(10 + 40, frame::VERSION, hello)[..9].to_vec(),
            true,
        ),
        (
            "truncated payload, then end",
            header(10 + 40, frame::VERSION, hello),
            true,
        ),
        ("handshake with a junk payload", junk_hello, false),
        ("a request before the handshake", request_first, false),
        (
            "a welcome from the client",
            header(10, frame::VERSION, Kind::Welcome as u8),
            false,
        ),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
        ),
    ] {
        cases.push((label.into(), bytes, eof));
    }
    // Bytes that stop mid-frame and then nothing: only the handshake deadline ends them.
    let stalls = [
        (
            "header, then silence",
            header(10 + 40, frame::VERSION, hello),
        ),
        ("one byte, then silence", vec![0u8]),
        ("nothing at all", Vec::new()),
    ];
    let stalled: Vec<_> = stalls
        .into_iter()
        .map(|(label, bytes)| {
            let addr = addr.to_string();
            tokio::spawn(async move { closed_after(&addr, label, &bytes, false).await })
        })
        .collect();
    for (label, bytes, eof) in &cases {
        closed_after(addr, label, bytes, *eof).await;
    }
    for s in stalled {
        s.await.expect("stalled client task");
    }

    // A peer with the wrong secret is refused; one with the right secret is served, and
    // a junk request from it is answered with a failure, not a dropped connection.
    let wrong = Client::new(ClientConfig::new(
        identity("intruder"),
        AuthKey::new("not-the-cluster-secret-at-all").expect("key"),
    ));
    let refused = wrong
        .call::<_, PeerResponse>(addr, &PeerRequest::Status, Duration::from_secs(10))
        .await;
    assert!(
        matches!(refused, Err(Error::AuthFailed { .. })),
        "wrong secret: {refused:?}"
    );
    let peer = Client::new(ClientConfig::new(
        identity("prober"),
        AuthKey::new(SECRET).expect("key"),
    ));
    let status = |peer: &Client| {
        let peer = peer.clone();
        let addr = addr.to_string();
        async move {
            peer.call::<_, PeerResponse>(&addr, &PeerRequest::Status, Duration::from_secs(10))
                .await
        }
    };
    assert!(
        matches!(status(&peer).await, Ok(PeerResponse::Status(_))),
        "an authenticated status call fails after the garbage"
    );
    for junk in [
        Junk(250, vec![1, 2, 3]),
        Junk(3, vec![0xFF; 64]),
        Junk(0, Vec::new()),
    ] {
        let r = peer
            .call::<_, PeerResponse>(addr, &junk, Duration::from_secs(10))
            .await;
        assert!(
            matches!(r, Err(Error::Remote { .. })),
            "junk request from a peer: {r:?}"
        );
    }
    assert!(
        matches!(status(&peer).await, Ok(PeerResponse::Status(_))),
        "the connection is unusable after junk requests"
    );
}
