//! Bad input thrown at a live node (issue 6, item 4): one `wolfscale` process, a
//! bootstrapped one-node cluster on its own MariaDB, gets malformed JSON, wrong types,
//! missing fields, oversized and never-ending bodies, invalid UTF-8, unknown routes and
//! methods, wrong content types, injection corpora through every name, value and SQL field
//! of every route, and garbage at its cluster port.
//!
//! Every refusal must be a 4xx with a JSON `{error, code}` body (requests that are not
//! HTTP at all may instead get hyper's bare 400 or a closed connection; the cluster port
//! just closes), never a 5xx. A refusal made before the log writes nothing: the node's
//! `last_log_lsn` does not move. A name that is valid but names nothing is MariaDB's to
//! refuse, so that entry is logged and answered 404/400, and still changes no data. At the
//! end the schema, the row counts and checksums are unchanged, the process is alive, its
//! log never says "panicked", `/health` is 200 and a valid write still works. Injection
//! strings sent as values are stored byte for byte, as data.
//!
//! The slow clients (10 s header and body deadlines) run in the background while the rest
//! runs, which is also what shows the node stays responsive to other clients.

mod cases;
mod cluster_port;
mod corpus;
mod mariadb_refusals;
mod slow;

use crate::support::live_node::{LiveNode, TOKEN};
use crate::support::raw_http::{self, Reply};
use mysql_async::prelude::Queryable;
use std::time::Duration;
use wolfscale::api::client::Client;
use wolfscale::api::NodeState;

/// `api.max_body_bytes` of the node under test: small, so "far over" stays cheap.
const MAX_BODY: usize = 256 * 1024;
/// Longest any single refused request may take to be answered.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// Codes of answers that are MariaDB's result for a logged entry (the name was valid).
const MARIADB_RESULT_CODES: [&str; 3] = ["not_found", "invalid", "conflict"];

/// What a refusal must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this status, with a JSON error body.
    Status(u16),
    /// Any 4xx with a JSON error body.
    Client,
    /// Not valid HTTP: hyper's own 4xx (possibly without a JSON body) or a closed
    /// connection; never a 5xx.
    Protocol,
}

/// One request and what it must get.
#[derive(Debug, Clone)]
pub struct Case {
    /// Shown when it fails.
    pub label: String,
    /// The exact bytes sent.
    pub raw: Vec<u8>,
    /// The expected refusal.
    pub expect: Expect,
}

impl Case {
    /// A case.
    pub fn new(label: impl Into<String>, raw: Vec<u8>, expect: Expect) -> Case {
        Case {
            label: label.into(),
            raw,
            expect,
        }
    }
}

/// The `Authorization` header line for the node's token.
pub fn auth() -> Vec<u8> {
    format!("Authorization: Bearer {TOKEN}").into_bytes()
}

/// An authorised JSON POST of `body` to `path`.
pub fn post_json(path: &str, body: &[u8]) -> Vec<u8> {
    raw_http::request(
        "POST",
        path.as_bytes(),
        &[&auth(), b"Content-Type: application/json"],
        Some(body),
    )
}

/// An authorised GET of `target`.
pub fn get(target: &[u8]) -> Vec<u8> {
    raw_http::request("GET", target, &[&auth()], None)
}

/// The `{error, code}` of a JSON error answer, or why it is not one.
fn error_body(answer: &raw_http::Answer) -> Result<(String, String), String> {
    let ct = answer.header("content-type").unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct:?}, body {:?}", answer.text()));
    }
    let v: serde_json::Value = serde_json::from_slice(&answer.body)
        .map_err(|e| format!("body is not JSON ({e}): {:?}", answer.text()))?;
    match (v["error"].as_str(), v["code"].as_str()) {
        (Some(e), Some(c)) if !e.is_empty() && !c.is_empty() => Ok((e.into(), c.into())),
        _ => Err(format!("body lacks error/code: {v}")),
    }
}

/// Sends refused requests to the live node and checks each answer and that nothing was
/// appended to the log.
pub struct Probe<'a> {
    /// The node.
    pub node: &'a LiveNode,
    client: Client,
    /// Requests checked so far.
    pub checked: usize,
    /// Whether an entry may have been applied since the log was last seen quiet: the
    /// leader then reports its outcome in an entry of its own (outcome agreement), which
    /// must not be taken for a refused request reaching the log.
    pub unsettled: bool,
}

impl<'a> Probe<'a> {
    fn new(node: &'a LiveNode) -> Probe<'a> {
        Probe {
            node,
            client: node.client(),
            checked: 0,
            unsettled: true,
        }
    }

    /// The last LSN once it stayed put for a few outcome-report intervals.
    pub async fn quiet_lsn(&self) -> u64 {
        let mut last = self.lsn().await;
        loop {
            tokio::time::sleep(wolfscale::node::OUTCOME_REPORT_INTERVAL * 4).await;
            let now = self.lsn().await;
            if now == last {
                return now;
            }
            last = now;
        }
    }

    async fn lsn(&self) -> u64 {
        self.client
            .status()
            .await
            .expect("GET /status while probing")
            .last_log_lsn
    }

    /// Sends `case` and checks it; returns the JSON error code when there is one.
    pub async fn run(&mut self, case: &Case) -> Option<String> {
        let before = if self.unsettled {
            self.quiet_lsn().await
        } else {
            self.lsn().await
        };
        let reply = raw_http::exchange(&self.node.api, &case.raw, ANSWER_LIMIT).await;
        let code = check(&case.label, &reply, case.expect);
        let after = self.lsn().await;
        let from_mariadb = code
            .as_deref()
            .is_some_and(|c| MARIADB_RESULT_CODES.contains(&c));
        assert!(
            after == before || from_mariadb,
            "{}: refused ({code:?}) but the log moved from {before} to {after}",
            case.label
        );
        self.unsettled = from_mariadb || after != before;
        self.checked += 1;
        code
    }

    /// Runs every case.
    pub async fn run_all(&mut self, cases: &[Case]) {
        for case in cases {
            self.run(case).await;
        }
    }
}

/// Checks `reply` against `expect`; returns the JSON error code when there is one.
pub fn check(label: &str, reply: &Reply, expect: Expect) -> Option<String> {
    match (reply, expect) {
        (Reply::Closed { .. }, Expect::Protocol) => None,
        (Reply::Closed { partial }, _) => panic!(
            "{label}: connection closed without an answer (got {:?})",
            String::from_utf8_lossy(partial)
        ),
        (Reply::Answer(a), _) => {
            assert!(
                (400..500).contains(&a.status),
                "{label}: status {} (want 4xx), body {:?}",
                a.status,
                a.text()
            );
            if let Expect::Status(s) = expect {
                assert_eq!(a.status, s, "{label}: body {:?}", a.text());
            }
            match (error_body(a), expect) {
                (Ok((_, code)), _) => Some(code),
                (Err(why), Expect::Protocol) => {
                    tracing::info!(label, status = a.status, why, "refused by hyper itself");
                    None
                }
                (Err(why), _) => panic!("{label}: status {}: {why}", a.status),
            }
        }
    }
}

/// Schema, data and accounts of the node's MariaDB, to show nothing changed.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    databases: Vec<String>,
    columns: Vec<(String, String, String, String)>,
    objects: Vec<(String, String, String)>,
    users: i64,
    data: Vec<(String, i64, Option<i64>)>,
}

const USER_SCHEMAS: &str = "NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')";

impl Fingerprint {
    async fn take(node: &LiveNode) -> Fingerprint {
        let mut c = node.db.conn().await.expect("mariadb connection");
        let databases = c
            .query("SELECT schema_name FROM information_schema.schemata ORDER BY 1")
            .await
            .expect("schemata");
        let columns = c
            .query(format!(
                "SELECT table_schema, table_name, column_name, column_type \
                 FROM information_schema.columns WHERE table_schema {USER_SCHEMAS} ORDER BY 1, 2, 3"
            ))
            .await
            .expect("columns");
        let objects = c
            .query(format!(
                "SELECT 'routine', routine_schema, routine_name FROM information_schema.routines \
                 WHERE routine_schema {USER_SCHEMAS} \
                 UNION ALL SELECT 'trigger', trigger_schema, trigger_name FROM information_schema.triggers \
                 UNION ALL SELECT 'event', event_schema, event_name FROM information_schema.events \
                 ORDER BY 1, 2, 3"
            ))
            .await
            .expect("routines");
        let users: Option<i64> = c
            .query_first("SELECT COUNT(*) FROM mysql.user")
            .await
            .expect("users");
        let mut data = Vec::new();
        for table in ["t", "canary"] {
            let count: Option<i64> = c
                .query_first(format!("SELECT COUNT(*) FROM app.{table}"))
                .await
                .expect("count");
            let sum: Option<(String, Option<i64>)> = c
                .query_first(format!("CHECKSUM TABLE app.{table}"))
                .await
                .expect("checksum");
            data.push((
                table.to_string(),
                count.unwrap_or(-1),
                sum.and_then(|s| s.1),
            ));
        }
        Fingerprint {
            databases,
            columns,
            objects,
            users: users.unwrap_or(-1),
            data,
        }
    }
}

async fn ddl(client: &Client, statement: &str) {
    client
        .write_raw(
            wolfscale::api::client::WriteKind::Ddl,
            serde_json::json!({ "ddl": statement }).to_string(),
        )
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_node_refuses_bad_input_writes_nothing_and_stays_healthy() {
    crate::support::init_tracing();
    let mut node = LiveNode::start(MAX_BODY).await;
    let client = node.client();
    ddl(
        &client,
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, b LONGBLOB)",
    )
    .await;
    ddl(
        &client,
        "CREATE TABLE canary (id INT PRIMARY KEY, v VARCHAR(20))",
    )
    .await;
    client
        .write_raw(
            wolfscale::api::client::WriteKind::Insert,
            r#"{"table": "canary", "values": {"id": 1, "v": "alive"}}"#,
        )
        .await
        .expect("canary row");
    let mut probe = Probe::new(&node);
    // The leader reports the canary's outcome in an entry of its own: start after it.
    let start_lsn = probe.quiet_lsn().await;
    let start = Fingerprint::take(&node).await;

    // Slow clients first: they hold connections open during everything below.
    let slow = tokio::spawn(slow::run(node.api.clone()));

    probe.run_all(&cases::malformed_json()).await;
    probe.run_all(&cases::invalid_utf8()).await;
    probe.run_all(&cases::wrong_types()).await;
    probe.run_all(&cases::missing_fields()).await;
    probe.run_all(&cases::oversized(MAX_BODY)).await;
    probe.run_all(&cases::routes_and_methods()).await;
    probe.run_all(&cases::content_types()).await;
    probe.run_all(&cases::credentials()).await;
    probe.run_all(&cases::not_http()).await;
    let http_cases = probe.checked;
    cases::streamed_far_over(&node, MAX_BODY).await;
    node.assert_sound("malformed HTTP requests");
    cluster_port::garbage(&node).await;
    node.assert_sound("garbage at the cluster port");
    assert_eq!(
        node.status().await.last_log_lsn,
        start_lsn,
        "refused requests appended to the log"
    );
    assert_eq!(
        Fingerprint::take(&node).await,
        start,
        "refused requests changed MariaDB"
    );

    let mut probe = Probe::new(&node);
    corpus::through_names(&mut probe).await;
    corpus::through_sql_text(&mut probe).await;
    mariadb_refusals::deterministic_errors(&mut probe).await;
    mariadb_refusals::bookkeeping(&mut probe).await;
    let injection_cases = probe.checked;
    node.assert_sound("injection through names and SQL text");
    assert_eq!(
        Fingerprint::take(&node).await,
        start,
        "injection through names or SQL text changed MariaDB"
    );
    let stored = corpus::through_values(&node).await;
    node.assert_sound("injection through values");

    let slow_results = slow.await.expect("slow clients task");
    slow::check(&slow_results);
    node.assert_sound("slow clients");

    // Still healthy and still writing; the canary and the schema are untouched.
    client.health().await.expect("GET /health after bad input");
    let after = client
        .write_raw(
            wolfscale::api::client::WriteKind::Insert,
            r#"{"table": "canary", "values": {"id": 2, "v": "still writes"}}"#,
        )
        .await
        .expect("a valid write after bad input");
    let status = node.status().await;
    assert_eq!(status.status, NodeState::Active, "{status:?}");
    assert!(status.applied_lsn >= after.lsn, "{status:?}");
    let end = Fingerprint::take(&node).await;
    assert_eq!(end.databases, start.databases);
    assert_eq!(end.columns, start.columns);
    assert_eq!(end.objects, start.objects);
    assert_eq!(end.users, start.users);
    let mut c = node.db.conn_to("app").await.expect("conn");
    let canary: Vec<(i32, String)> = c
        .query("SELECT id, v FROM canary ORDER BY id")
        .await
        .expect("canary");
    assert_eq!(
        canary,
        vec![(1, "alive".to_string()), (2, "still writes".to_string())]
    );
    node.assert_sound("the final write");
    tracing::info!(
        http_cases,
        injection_cases,
        stored_values = stored,
        slow_clients = slow_results.len(),
        "bad input refused"
    );
}
