//! The chaos workload: `K` clients, each with its own seeded RNG, sending unique writes
//! to random nodes (followers forward them) — fresh rows, appends to a few hot rows, and
//! inserts that must conflict — plus reads of the hot rows on followers with `min_lsn`.
//! Every request is recorded with its outcome as the client can tell it.

use super::history::{Kind, Op, Outcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wolfscale::api::client::{Client, Error as ClientError, WriteKind};
use wolfscale::api::{QueryRequest, WriteResult};

/// Hot rows `1..=HOT_ROWS` of table `hot`.
pub const HOT_ROWS: i64 = 3;
/// Tables of the workload, created through the API before it starts.
pub const SCHEMA: [&str; 2] = [
    "CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64) NOT NULL, \
     pad MEDIUMTEXT NULL) ENGINE=InnoDB",
    "CREATE TABLE hot (id BIGINT NOT NULL PRIMARY KEY, v MEDIUMTEXT NOT NULL) ENGINE=InnoDB",
];
/// The append statement, sent through `/write/sql`.
pub const APPEND_SQL: &str = "UPDATE hot SET v = CONCAT(v, ',', ?) WHERE id = ?";
/// How long a client waits for one write's answer before it counts as unknown.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(6);
/// What the HTTP client reports when it could not open a connection (nothing was sent).
const CONNECT_REFUSED: &str = "client error (Connect)";
/// How long a client waits for one read.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// State the workload shares with the rest of the run.
#[derive(Clone)]
pub struct Shared {
    /// Node index the monitor last saw leading (`usize::MAX`: none known).
    pub leader: Arc<AtomicUsize>,
    /// Highest LSN any client got acknowledged: reads wait for it.
    pub max_acked: Arc<AtomicU64>,
    /// While set, inserts carry ~32 KiB of incompressible padding (disk-full fault).
    pub heavy: Arc<AtomicBool>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            leader: Arc::new(AtomicUsize::new(usize::MAX)),
            max_acked: Arc::new(AtomicU64::new(0)),
            heavy: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The id of client `client`'s `seq`-th request's row.
pub fn row_id(client: usize, seq: u64) -> i64 {
    (client as i64 + 1) * 1_000_000_000 + seq as i64
}

/// Runs `clients` clients against `apis` until `stop`; returns every request they made.
pub async fn run(
    seed: u64,
    clients: usize,
    apis: Vec<String>,
    shared: Shared,
    t0: Instant,
    stop: CancellationToken,
) -> Vec<Op> {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let rng =
                StdRng::seed_from_u64(seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let w = ClientLoop {
                client: c,
                rng,
                writers: apis
                    .iter()
                    .map(|a| Client::new(a).expect("client").with_timeout(WRITE_TIMEOUT))
                    .collect(),
                readers: apis
                    .iter()
                    .map(|a| Client::new(a).expect("client").with_timeout(READ_TIMEOUT))
                    .collect(),
                shared: shared.clone(),
                t0,
                acked_ids: Vec::new(),
                ops: Vec::new(),
            };
            tokio::spawn(w.run(stop.clone()))
        })
        .collect();
    let mut ops = Vec::new();
    for t in tasks {
        ops.extend(t.await.expect("client task"));
    }
    ops
}

struct ClientLoop {
    client: usize,
    rng: StdRng,
    writers: Vec<Client>,
    readers: Vec<Client>,
    shared: Shared,
    t0: Instant,
    acked_ids: Vec<i64>,
    ops: Vec<Op>,
}

impl ClientLoop {
    async fn run(mut self, stop: CancellationToken) -> Vec<Op> {
        let mut seq = 0u64;
        while !stop.is_cancelled() {
            seq += 1;
            let roll = self.rng.gen_range(0..100);
            let op = if roll < 45 {
                self.insert(seq).await
            } else if roll < 75 {
                self.append(seq).await
            } else if roll < 80 && !self.acked_ids.is_empty() {
                self.conflict(seq).await
            } else {
                self.read(seq).await
            };
            if let Some(lsn) = op.acked_lsn() {
                self.shared.max_acked.fetch_max(lsn, Ordering::Relaxed);
                if let Kind::Insert { id, .. } = op.kind {
                    self.acked_ids.push(id);
                }
            }
            self.ops.push(op);
            let pause = Duration::from_millis(self.rng.gen_range(10..60));
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        self.ops
    }

    fn pick_node(&mut self) -> usize {
        self.rng.gen_range(0..self.writers.len())
    }

    async fn insert(&mut self, seq: u64) -> Op {
        let id = row_id(self.client, seq);
        let v = format!("c{}-{seq}", self.client);
        let pad = if self.shared.heavy.load(Ordering::Relaxed) {
            // Incompressible, so the WAL grows by about this much.
            let bytes: Vec<u8> = (0..24 * 1024).map(|_| self.rng.gen()).collect();
            Some(base64_encode(&bytes))
        } else {
            None
        };
        let wait_all = self.rng.gen_bool(0.2);
        let body = json!({
            "table": "items",
            "values": {"id": id, "v": v, "pad": pad},
            "wait": if wait_all { "all" } else { "quorum" },
        });
        self.write(
            seq,
            Kind::Insert { id, v },
            wait_all,
            WriteKind::Insert,
            body,
        )
        .await
    }

    async fn conflict(&mut self, seq: u64) -> Op {
        let id = self.acked_ids[self.rng.gen_range(0..self.acked_ids.len())];
        let v = format!("c{}-{seq}-dup", self.client);
        let wait_all = self.rng.gen_bool(0.2);
        let body = json!({
            "table": "items",
            "values": {"id": id, "v": v},
            "wait": if wait_all { "all" } else { "quorum" },
        });
        self.write(
            seq,
            Kind::Conflict { id, v },
            wait_all,
            WriteKind::Insert,
            body,
        )
        .await
    }

    async fn append(&mut self, seq: u64) -> Op {
        let row = self.rng.gen_range(1..=HOT_ROWS);
        let token = format!("c{}s{seq}", self.client);
        let wait_all = self.rng.gen_bool(0.2);
        let body = json!({
            "statements": [{"sql": APPEND_SQL, "params": [token, row]}],
            "wait": if wait_all { "all" } else { "quorum" },
        });
        self.write(
            seq,
            Kind::Append { row, token },
            wait_all,
            WriteKind::Sql,
            body,
        )
        .await
    }

    async fn write(
        &mut self,
        seq: u64,
        kind: Kind,
        wait_all: bool,
        route: WriteKind,
        body: serde_json::Value,
    ) -> Op {
        let node = self.pick_node();
        let start = self.t0.elapsed();
        let answer = self.writers[node].write_raw(route, body.to_string()).await;
        let end = self.t0.elapsed();
        Op {
            client: self.client,
            seq,
            node,
            kind,
            wait_all,
            start,
            end,
            outcome: classify_write(answer),
        }
    }

    async fn read(&mut self, seq: u64) -> Op {
        let row = self.rng.gen_range(1..=HOT_ROWS);
        let leader = self.shared.leader.load(Ordering::Relaxed);
        // A follower when one is known, so reads exercise min_lsn waits there.
        let node = loop {
            let n = self.pick_node();
            if n != leader {
                break n;
            }
        };
        let min_lsn = self.shared.max_acked.load(Ordering::Relaxed);
        let request = QueryRequest {
            sql: "SELECT v FROM hot WHERE id = ?".into(),
            params: vec![wolfscale::command::Input::Number(row.to_string())],
            consistency: Default::default(),
            min_lsn: (min_lsn > 0).then_some(min_lsn),
            timeout_ms: Some(2000),
        };
        let start = self.t0.elapsed();
        let answer = self.readers[node].query(&request).await;
        let end = self.t0.elapsed();
        let outcome = match answer {
            Ok(r) => match r.rows.first().and_then(|row| row.first()) {
                Some(wolfscale::command::Input::Text(v)) => Outcome::Read { value: v.clone() },
                other => Outcome::ReadFailed {
                    why: format!("unexpected answer {other:?}"),
                },
            },
            Err(e) => Outcome::ReadFailed { why: short(&e) },
        };
        Op {
            client: self.client,
            seq,
            node,
            kind: Kind::Read { row, min_lsn },
            wait_all: false,
            start,
            end,
            outcome,
        }
    }
}

/// Sorts a write's answer into acknowledged, definitely not applied, or unknown.
///
/// Definite: a 4xx; a 503 (`no_leader`, `not_ready`), which the API answers only when
/// nothing was appended — a forwarded write whose connection to the leader broke is a
/// 504; and a refused connection (nothing was sent). A 504 that carries an `lsn` is a
/// `wait: all` that timed out after the entry committed: acknowledged. Anything else
/// (timeouts, other 504s and 5xx, connections lost mid-request) is unknown.
pub fn classify_write(answer: Result<WriteResult, ClientError>) -> Outcome {
    match answer {
        Err(ClientError::Api { status, body }) if status.as_u16() == 503 => Outcome::Failed {
            status: 503,
            code: body.code,
        },
        Err(ClientError::Connect { reason, .. }) if reason == CONNECT_REFUSED => Outcome::Failed {
            status: 0,
            code: "connect".into(),
        },
        Ok(r) => match r.statements.iter().find_map(|s| s.error.as_ref()) {
            Some(e) => Outcome::Failed {
                status: 200,
                code: e.code.clone(),
            },
            None => Outcome::Ok { lsn: r.lsn },
        },
        Err(ClientError::Api { status, body }) if status.is_client_error() => Outcome::Failed {
            status: status.as_u16(),
            code: body.code,
        },
        Err(ClientError::Api { status, body }) if status.as_u16() == 504 && body.lsn.is_some() => {
            Outcome::Ok {
                lsn: body.lsn.unwrap_or_default(),
            }
        }
        Err(e) => Outcome::Unknown { why: short(&e) },
    }
}

fn short(e: &ClientError) -> String {
    match e {
        ClientError::Api { status, body } => format!("{} {}", status.as_u16(), body.code),
        ClientError::Timeout { .. } => "client timeout".into(),
        ClientError::Connect { reason, .. } => {
            format!("connect: {}", reason.chars().take(60).collect::<String>())
        }
        other => other.to_string().chars().take(80).collect(),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}
