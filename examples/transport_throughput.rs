//! Prints calls/s of small request/response pairs over one authenticated transport
//! connection on 127.0.0.1, with 1 and 64 concurrent callers, then MiB/s of 1 MiB
//! requests (a `Vec<u8>` as openraft's snapshot chunks carry). A benchmark program, not a
//! test: `cargo run --release --example transport_throughput [seconds-per-run]`.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wolfscale::transport::{
    serve, AuthKey, Client, ClientConfig, Handler, Identity, PeerInfo, ServerConfig,
};

const SECRET: &str = "benchmark-secret-0123456789";

#[derive(Serialize, Deserialize)]
struct Ping {
    term: u64,
    index: u64,
    body: [u8; 32],
}

#[derive(Serialize, Deserialize)]
enum Req {
    Small(Ping),
    Chunk(Vec<u8>),
}

#[derive(Serialize, Deserialize)]
struct Pong {
    index: u64,
}

struct Echo;

impl Handler for Echo {
    type Request = Req;
    type Response = Pong;
    async fn handle(&self, _peer: &PeerInfo, req: Req) -> Result<Pong, String> {
        Ok(Pong {
            index: match req {
                Req::Small(p) => p.index,
                Req::Chunk(c) => c.len() as u64,
            },
        })
    }
}

fn identity(node: &str) -> Identity {
    Identity {
        cluster: "bench".into(),
        node: node.into(),
    }
}

async fn run(client: &Client, peer: &str, callers: usize, secs: f64) -> anyhow::Result<f64> {
    let stop_at = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..callers {
        let (client, peer) = (client.clone(), peer.to_string());
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop_at {
                let index = n * 1000 + c as u64;
                let req = Req::Small(Ping {
                    term: 1,
                    index,
                    body: [7; 32],
                });
                let resp: Pong = client.call(&peer, &req, Duration::from_secs(5)).await?;
                anyhow::ensure!(resp.index == index, "mismatched response");
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        });
    }
    let started = Instant::now();
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3.0);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let peer = listener.local_addr()?.to_string();
    let stop = CancellationToken::new();
    let server = ServerConfig::new(identity("server"), AuthKey::new(SECRET)?);
    let server = tokio::spawn(serve(listener, server, Arc::new(Echo), stop.clone()));
    let client = Client::new(ClientConfig::new(identity("client"), AuthKey::new(SECRET)?));
    run(&client, &peer, 1, 0.5).await?; // connect and warm up
    for callers in [1, 64] {
        let rate = run(&client, &peer, callers, secs).await?;
        println!("callers={callers:<3} calls/s={rate:.0}");
    }
    let chunk = Req::Chunk(vec![9u8; 1 << 20]);
    let (started, mut n) = (Instant::now(), 0u32);
    while started.elapsed() < Duration::from_secs_f64(secs) {
        let resp: Pong = client.call(&peer, &chunk, Duration::from_secs(5)).await?;
        anyhow::ensure!(resp.index == 1 << 20, "chunk not received whole");
        n += 1;
    }
    let mib_s = f64::from(n) / started.elapsed().as_secs_f64();
    println!("1 MiB chunks, 1 caller: MiB/s={mib_s:.0}");
    client.close().await;
    stop.cancel();
    server.await?;
    Ok(())
}
