//! A hostile client for chaos runs: while the nemesis runs, it sends statements the
//! admission must refuse (non-deterministic functions in every quoting, executable
//! comments, INSERT … SELECT, DELETE … LIMIT, another database, MyISAM, a trigger that sets
//! the session) and statements that fail deterministically on every node (a duplicate key
//! after an acknowledged insert, a SIGNAL in a trigger, MariaDB's 1235), to random nodes.
//! None of them may ever succeed; everything else (4xx refusals, 503 while a node is cut
//! off, timeouts while it is paused) is allowed. It writes only to table `guarded`, which
//! the checker compares on every node with the workload's tables.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use wolfscale::api::client::{Client, Error as ClientError, WriteKind};
use wolfscale::api::WriteResult;

/// The hostile client's tables and trigger, created with the workload's schema.
pub const SCHEMA: [&str; 2] = [
    "CREATE TABLE guarded (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64) NOT NULL, \
     n INT NOT NULL DEFAULT 0) ENGINE=InnoDB",
    "CREATE TRIGGER guarded_check BEFORE INSERT ON guarded FOR EACH ROW \
     IF NEW.n < 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'negative n'; END IF",
];

/// Statements (through `/write/sql`, with the row id as their one parameter where they
/// take one) that must never succeed.
const SQL: [&str; 11] = [
    "INSERT INTO guarded (id, v) VALUES (?, `UUID`())",
    "INSERT INTO guarded (id, v) VALUES (?, RAND())",
    "INSERT INTO guarded (id, v) VALUES (?, ENCRYPT('pw'))",
    "INSERT INTO guarded (id, v) VALUES (?, `SYSDATE`(6))",
    "INSERT INTO guarded (id, v) VALUES (?, /*!99999 'new' */ 'old')",
    "INSERT INTO guarded (id, v) SELECT ?, v FROM guarded ORDER BY id LIMIT 1",
    "DELETE FROM guarded WHERE id = ? LIMIT 1",
    "UPDATE mysql.user SET host = 'x' WHERE user = ?",
    "DELETE FROM guarded WHERE id IN (SELECT id FROM guarded ORDER BY id LIMIT 1) AND id <> ?",
    "INSERT INTO guarded (id, v, n) VALUES (?, 'signal', -1)",
    "INSERT INTO guarded (id, v) VALUES (?, SYSDATE())",
];

/// DDL that must never succeed.
const DDL: [&str; 3] = [
    "CREATE TABLE hostile_myisam (id INT PRIMARY KEY) ENGINE=MyISAM",
    "CREATE TRIGGER hostile_tz BEFORE INSERT ON guarded FOR EACH ROW SET time_zone = '+05:00'",
    "CREATE TABLE hostile_copy AS SELECT * FROM guarded",
];

/// What the hostile client saw.
#[derive(Debug, Default)]
pub struct HostileReport {
    /// Requests sent.
    pub sent: usize,
    /// Answered with a 4xx (refused, or MariaDB's deterministic error).
    pub refused: usize,
    /// Not answered definitely (503, 504, a timeout, a connection refused).
    pub unavailable: usize,
    /// Rows inserted and acknowledged (then re-inserted to provoke a duplicate key).
    pub inserted: usize,
    /// Duplicate-key attempts after an acknowledged insert.
    pub duplicates: usize,
    /// Statements that succeeded although they must not, with when.
    pub problems: Vec<(Duration, String)>,
}

/// Whether `answer` is a success the client would believe: 2xx without a statement error.
fn succeeded(answer: &Result<WriteResult, ClientError>) -> bool {
    matches!(answer, Ok(r) if r.statements.iter().all(|s| s.error.is_none()))
}

fn tally(report: &mut HostileReport, answer: &Result<WriteResult, ClientError>) {
    match answer {
        Ok(_) => {}
        Err(ClientError::Api { status, .. }) if status.is_client_error() => report.refused += 1,
        Err(_) => report.unavailable += 1,
    }
}

/// Sends the hostile corpus to random nodes of `apis` until `stop`.
pub async fn run(
    seed: u64,
    apis: Vec<String>,
    t0: Instant,
    stop: CancellationToken,
) -> HostileReport {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4057_11E5);
    let clients: Vec<Client> = apis
        .iter()
        .map(|a| {
            Client::new(a)
                .expect("client")
                .with_timeout(super::workload::WRITE_TIMEOUT)
        })
        .collect();
    let mut report = HostileReport::default();
    let mut seq = 0u64;
    while !stop.is_cancelled() {
        seq += 1;
        let id = super::workload::row_id(HOSTILE_CLIENT, seq);
        let node = rng.gen_range(0..clients.len());
        let c = &clients[node];
        let roll = rng.gen_range(0..100);
        let (what, answer) = if roll < 60 {
            let sql = SQL[rng.gen_range(0..SQL.len())];
            let body = json!({"statements": [{"sql": sql, "params": [id]}], "transaction": true});
            (
                sql.to_string(),
                c.write_raw(WriteKind::Sql, body.to_string()).await,
            )
        } else if roll < 75 {
            let ddl = DDL[rng.gen_range(0..DDL.len())];
            let body = json!({ "ddl": ddl });
            (
                ddl.to_string(),
                c.write_raw(WriteKind::Ddl, body.to_string()).await,
            )
        } else {
            // A valid insert; once acknowledged, the same key again must fail everywhere.
            let body = json!({"table": "guarded", "values": {"id": id, "v": format!("h{seq}")}});
            let first = c.write_raw(WriteKind::Insert, body.to_string()).await;
            report.sent += 1;
            if !succeeded(&first) {
                tally(&mut report, &first);
                continue;
            }
            report.inserted += 1;
            report.duplicates += 1;
            let again = rng.gen_range(0..clients.len());
            let dup = json!({"table": "guarded", "values": {"id": id, "v": "duplicate"}});
            (
                format!("duplicate insert of acknowledged id {id}"),
                clients[again]
                    .write_raw(WriteKind::Insert, dup.to_string())
                    .await,
            )
        };
        report.sent += 1;
        if succeeded(&answer) {
            report.problems.push((
                t0.elapsed(),
                format!(
                    "node-{} accepted a statement that must fail: {what} → {answer:?}",
                    node + 1
                ),
            ));
        }
        tally(&mut report, &answer);
        let pause = Duration::from_millis(rng.gen_range(20..80));
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    report
}

/// Client number of the hostile client's row ids (workload clients are `0..CLIENTS`).
const HOSTILE_CLIENT: usize = 500;
