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
//! Each group of cases is its own test, so they fail one by one, on one node started
//! once for the test binary ([`shared`]): the tests that probe it take turns (a refusal
//! is checked by the log not moving, so nothing else may write meanwhile), and each
//! compares MariaDB before and after its own cases. The slow clients (10 s header and
//! body deadlines) do not take a turn: they run beside whatever probes the node, which is
//! also what shows the node stays responsive to other clients.

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

/// The node every test here shares, started by the first test that asks.
pub struct Shared {
    /// Held by a test for all of its probing.
    node: tokio::sync::Mutex<Option<LiveNode>>,
    /// The node's HTTP API address, for the slow clients (which take no turn).
    api: String,
}

static SHARED: tokio::sync::OnceCell<Shared> = tokio::sync::OnceCell::const_new();

/// Stops the shared node (SIGKILL) and removes its files when the test binary exits: a
/// static is never dropped. The processes would die with the binary anyway (they are
/// tied to it); this is for the files.
extern "C" fn stop_shared() {
    if let Some(shared) = SHARED.get() {
        if let Ok(mut node) = shared.node.try_lock() {
            drop(node.take());
        }
    }
}

/// The shared node: bootstrapped on its own MariaDB, with tables `t` (refused writes
/// must leave it empty), `vals` (where injection strings are stored as values) and
/// `canary` (one row).
async fn shared() -> &'static Shared {
    SHARED
        .get_or_init(|| async {
            crate::support::init_tracing();
            let node = LiveNode::start(MAX_BODY).await;
            let client = node.client();
            for table in ["t", "vals"] {
                ddl(
                    &client,
                    &format!(
                        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, \
                         v LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, b LONGBLOB)"
                    ),
                )
                .await;
            }
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
            // SAFETY: registering a plain function with no captured state; it runs once,
            // at exit, after every test has finished.
            if unsafe { libc::atexit(stop_shared) } != 0 {
                tracing::warn!("cannot register the shared node's cleanup; its files stay");
            }
            Shared {
                api: node.api.clone(),
                node: tokio::sync::Mutex::new(Some(node)),
            }
        })
        .await
}

/// Runs `cases` (one group) on the shared node, then checks it appended nothing, changed
/// nothing in MariaDB and is sound.
async fn refused_group(label: &str, cases: Vec<Case>) {
    let shared = shared().await;
    let mut turn = shared.node.lock().await;
    let node = turn.as_mut().expect("the shared node runs until exit");
    let probe = Probe::new(node);
    let start_lsn = probe.quiet_lsn().await;
    let start = Fingerprint::take(node).await;
    let mut probe = Probe::new(node);
    probe.run_all(&cases).await;
    assert!(probe.checked > 0, "{label}: no case ran");
    assert_untouched(node, label, start_lsn, &start).await;
}

/// Asserts that the log stayed at `start_lsn`, MariaDB still matches `start` and the
/// node is sound.
async fn assert_untouched(node: &mut LiveNode, label: &str, start_lsn: u64, start: &Fingerprint) {
    node.assert_sound(label);
    assert_eq!(
        node.status().await.last_log_lsn,
        start_lsn,
        "{label}: refused requests appended to the log"
    );
    assert_eq!(
        &Fingerprint::take(node).await,
        start,
        "{label}: refused requests changed MariaDB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_refused() {
    refused_group("malformed JSON", cases::malformed_json()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_refused() {
    refused_group("invalid UTF-8", cases::invalid_utf8()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_types_are_refused() {
    refused_group("wrong types", cases::wrong_types()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_fields_are_refused() {
    refused_group("missing fields", cases::missing_fields()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    refused_group("oversized bodies", cases::oversized(MAX_BODY)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_are_refused() {
    refused_group("routes and methods", cases::routes_and_methods()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_types_are_refused() {
    refused_group("content types", cases::content_types()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused() {
    refused_group("credentials", cases::credentials()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_http_are_refused() {
    refused_group("not HTTP", cases::not_http()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_streamed_far_over_the_limit_is_cut_off() {
    let shared = shared().await;
    let mut turn = shared.node.lock().await;
    let node = turn.as_mut().expect("the shared node runs until exit");
    let start_lsn = Probe::new(node).quiet_lsn().await;
    let start = Fingerprint::take(node).await;
    cases::streamed_far_over(node, MAX_BODY).await;
    assert_untouched(node, "a body streamed far over", start_lsn, &start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_the_cluster_port_is_dropped() {
    let shared = shared().await;
    let mut turn = shared.node.lock().await;
    let node = turn.as_mut().expect("the shared node runs until exit");
    let start_lsn = Probe::new(node).quiet_lsn().await;
    let start = Fingerprint::take(node).await;
    cluster_port::garbage(node).await;
    assert_untouched(node, "garbage at the cluster port", start_lsn, &start).await;
}

/// Runs `group` with a probe on the shared node; MariaDB must be unchanged afterwards
/// (refusals MariaDB makes are logged, so the log may move).
async fn probed<F>(label: &str, group: F)
where
    F: for<'a, 'b> FnOnce(&'a mut Probe<'b>) -> futures::future::BoxFuture<'a, ()>,
{
    let shared = shared().await;
    let mut turn = shared.node.lock().await;
    let node = turn.as_mut().expect("the shared node runs until exit");
    let start = Fingerprint::take(node).await;
    let checked = {
        let mut probe = Probe::new(node);
        group(&mut probe).await;
        probe.checked
    };
    assert!(checked > 0, "{label}: no case ran");
    node.assert_sound(label);
    assert_eq!(
        Fingerprint::take(node).await,
        start,
        "{label}: changed MariaDB"
    );
    tracing::info!(label, checked, "bad input refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_through_names_changes_nothing() {
    probed("injection through names", |p| {
        Box::pin(corpus::through_names(p))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_through_sql_text_changes_nothing() {
    probed("injection through SQL text", |p| {
        Box::pin(corpus::through_sql_text(p))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_mariadb_refuses_are_answered_4xx() {
    probed("statements MariaDB refuses", |p| {
        Box::pin(mariadb_refusals::deterministic_errors(p))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_route_touches_the_position_table() {
    probed("the position table", |p| {
        Box::pin(mariadb_refusals::bookkeeping(p))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_strings_as_values_are_stored_as_data() {
    let shared = shared().await;
    let mut turn = shared.node.lock().await;
    let node = turn.as_mut().expect("the shared node runs until exit");
    let stored = corpus::through_values(node, "vals").await;
    node.assert_sound("injection through values");
    tracing::info!(stored_values = stored, "injection strings stored as data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_others_are_served() {
    // No turn taken: the slow clients run beside whichever test probes the node.
    let shared = shared().await;
    let results = slow::run(shared.api.clone()).await;
    slow::check(&results);
    // A quick request is answered while they were held (they are done now; the others'
    // tests checked it during).
    let mut turn = shared.node.lock().await;
    let node = turn.as_mut().expect("the shared node runs until exit");
    node.client()
        .health()
        .await
        .expect("GET /health after slow clients");
    node.assert_sound("slow clients");
    tracing::info!(slow_clients = results.len(), "slow clients cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_write_still_works_and_the_node_stays_active() {
    let shared = shared().await;
    let mut turn = shared.node.lock().await;
    let node = turn.as_mut().expect("the shared node runs until exit");
    let start = Fingerprint::take(node).await;
    let client = node.client();
    client.health().await.expect("GET /health");
    let after = client
        .write_raw(
            wolfscale::api::client::WriteKind::Insert,
            r#"{"table": "canary", "values": {"id": 2, "v": "still writes"}}"#,
        )
        .await
        .expect("a valid write");
    let status = node.status().await;
    assert_eq!(status.status, NodeState::Active, "{status:?}");
    assert!(status.applied_lsn >= after.lsn, "{status:?}");
    let end = Fingerprint::take(node).await;
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
    node.assert_sound("a valid write");
}
