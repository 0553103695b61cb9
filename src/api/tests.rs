//! Router tests: every route against a fake backend, called directly (no socket).

use super::*;
use crate::command::{Input, Value, WriteRequest};
use crate::service::{ReadRequest, ReadResult, ServiceError, WriteOutcome};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::channel::Channel;
use proptest::prelude::*;
use serde_json::{json, Value as Json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tower::ServiceExt;

/// A backend that records what reaches it and answers what the test set.
#[derive(Default)]
pub(super) struct Fake {
    pub(super) writes: Mutex<Vec<WriteRequest>>,
    pub(super) queries: Mutex<Vec<ReadRequest>>,
    pub(super) fail: Mutex<Option<ServiceError>>,
    pub(super) not_ready: AtomicBool,
    /// What `status` answers, when the test sets it.
    pub(super) state: Mutex<Option<NodeStatus>>,
    /// Members named in cluster operations, with the operation.
    pub(super) cluster_ops: Mutex<Vec<(&'static str, String)>>,
}

impl Fake {
    fn failure(&self) -> Option<ServiceError> {
        self.fail.lock().expect("test lock").clone()
    }

    pub(super) fn fail_with(&self, e: ServiceError) {
        *self.fail.lock().expect("test lock") = Some(e);
    }
}

pub(super) fn node(name: &str, number: u64, role: Role) -> NodeStatus {
    NodeStatus {
        node_id: name.into(),
        node_number: number,
        role,
        status: NodeState::Active,
        term: 3,
        leader_id: Some("n1".into()),
        last_log_lsn: 42,
        commit_lsn: 41,
        applied_lsn: 40,
        address: format!("127.0.0.1:{}", 7000 + number),
        api_address: format!("127.0.0.1:{}", 8000 + number),
        lag: 1,
        divergence: None,
        apply_error: None,
        sync: None,
        resyncs: 0,
        resync_error: None,
        last_quorum_contact_ms: Some(120),
        disagrees_on_leader: false,
        last_check: None,
    }
}

impl Backend for Fake {
    async fn write(&self, request: WriteRequest) -> Result<WriteOutcome, ServiceError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        let ids = match &request {
            WriteRequest::Insert(r) if r.snowflake.is_some() => vec![7],
            _ => Vec::new(),
        };
        self.writes.lock().expect("test lock").push(request);
        Ok(WriteOutcome {
            lsn: 17,
            affected_rows: 1,
            last_insert_id: 5,
            ids,
            warnings: 0,
            statements: Vec::new(),
        })
    }

    async fn query(&self, query: ReadRequest) -> Result<ReadResult, ServiceError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.queries.lock().expect("test lock").push(query);
        Ok(ReadResult {
            columns: vec!["id".into(), "name".into()],
            rows: vec![vec![
                Input::from(18446744073709551615u64),
                Input::from("a\"b"),
            ]],
        })
    }

    async fn ids(&self, count: usize) -> Result<Vec<u64>, ServiceError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        Ok((1..=count as u64).collect())
    }

    fn status(&self) -> NodeStatus {
        self.state
            .lock()
            .expect("test lock")
            .clone()
            .unwrap_or_else(|| node("n1", 1, Role::Leader))
    }

    async fn cluster(&self) -> ClusterStatus {
        ClusterStatus {
            leader_id: Some("n1".into()),
            term: 3,
            nodes: vec![node("n1", 1, Role::Leader), node("n2", 2, Role::Follower)],
        }
    }

    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }

    async fn remove_node(&self, node: String) -> Result<RemoveResult, ServiceError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.cluster_ops
            .lock()
            .expect("test lock")
            .push(("remove", node.clone()));
        Ok(RemoveResult {
            removed: node,
            node_number: 2,
            lsn: 50,
            voters: vec!["n1".into()],
            learners: Vec::new(),
        })
    }

    async fn transfer_leader(&self, node: String) -> Result<TransferResult, ServiceError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.cluster_ops
            .lock()
            .expect("test lock")
            .push(("transfer", node.clone()));
        Ok(TransferResult {
            leader_id: node,
            node_number: 2,
            term: 4,
            previous_leader: "n1".into(),
            previous_term: 3,
        })
    }

    async fn promote_node(&self, node: String) -> Result<RoleResult, ServiceError> {
        self.role_op("promote", node, true)
    }

    async fn demote_node(&self, node: String) -> Result<RoleResult, ServiceError> {
        self.role_op("demote", node, false)
    }
}

impl Fake {
    fn role_op(
        &self,
        op: &'static str,
        node: String,
        voter: bool,
    ) -> Result<RoleResult, ServiceError> {
        if let Some(e) = self.failure() {
            return Err(e);
        }
        self.cluster_ops
            .lock()
            .expect("test lock")
            .push((op, node.clone()));
        let (voters, learners) = if voter {
            (vec!["n1".into(), node.clone()], Vec::new())
        } else {
            (vec!["n1".into()], vec![node.clone()])
        };
        Ok(RoleResult {
            node_id: node,
            node_number: 2,
            voter,
            lsn: 60,
            voters,
            learners,
        })
    }
}

pub(super) fn options(token: Option<&str>) -> ApiOptions {
    ApiOptions {
        max_body_bytes: 4096,
        token: token.map(crate::config::TokenHash::of),
        read_token: None,
        body_timeout: Duration::from_millis(300),
        max_concurrent_requests: 64,
    }
}

fn setup(token: Option<&str>) -> (Arc<Fake>, Router) {
    let fake = Arc::new(Fake::default());
    let r = router(fake.clone(), options(token));
    (fake, r)
}

/// Sends `request`; asserts the answer is JSON (every answer must be) and returns it.
async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Json) {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{status}: content-type {ct:?}, body {:?}",
        String::from_utf8_lossy(&bytes)
    );
    let body: Json = serde_json::from_slice(&bytes).expect("JSON body");
    if !status.is_success() {
        assert!(
            body["error"].is_string() && body["code"].is_string(),
            "{body}"
        );
    }
    (status, headers, body)
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request")
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

async fn post_json(router: &Router, path: &str, body: Json) -> (StatusCode, Json) {
    let (s, _, b) = send(router, post(path, body.to_string())).await;
    (s, b)
}

#[tokio::test]
async fn insert_reaches_backend_and_answers_write_result() {
    let (fake, r) = setup(None);
    let (s, b) = post_json(
        &r,
        "/write/insert",
        json!({"table": "users", "values": {"id": 1, "name": "Alice"}, "snowflake": "sid", "wait": "all"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"lsn": 17, "affected_rows": 1, "last_insert_id": 5, "ids": [7]})
    );
    let writes = fake.writes.lock().expect("lock");
    let WriteRequest::Insert(ins) = &writes[0] else {
        panic!("not an insert: {writes:?}")
    };
    assert_eq!(ins.table, "users");
    assert_eq!(ins.wait, crate::command::Wait::All);
    assert_eq!(ins.values.0[1], ("name".to_string(), Input::from("Alice")));
}

#[tokio::test]
async fn every_write_route_succeeds() {
    let (fake, r) = setup(None);
    let cases = [
        (
            "/write/update",
            json!({"table": "t", "set": {"a": 1}, "where_key": {"id": 1}}),
        ),
        (
            "/write/delete",
            json!({"table": "t", "where_key": {"id": 1}, "wait": "quorum"}),
        ),
        (
            "/write/ddl",
            json!({"ddl": "ALTER TABLE users ADD COLUMN email VARCHAR(255)"}),
        ),
        (
            "/write/sql",
            json!({"statements": [{"sql": "INSERT INTO t (a) VALUES (?)", "params": [1]}], "transaction": true}),
        ),
    ];
    for (path, body) in cases {
        let (s, b) = post_json(&r, path, body).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        assert_eq!(b["lsn"], 17);
    }
    let kinds: Vec<_> = fake
        .writes
        .lock()
        .expect("lock")
        .iter()
        .map(|w| match w {
            WriteRequest::Insert(_) => "insert",
            WriteRequest::Update(_) => "update",
            WriteRequest::Delete(_) => "delete",
            WriteRequest::Ddl(_) => "ddl",
            WriteRequest::Sql(_) => "sql",
            WriteRequest::Certified(_) => "certified",
        })
        .collect();
    assert_eq!(kinds, ["update", "delete", "ddl", "sql"]);
}

#[tokio::test]
async fn backend_errors_map_to_statuses_and_json() {
    let cases = [
        (
            ServiceError::Invalid {
                code: "invalid".into(),
                message: "bad".into(),
            },
            400,
            "invalid",
        ),
        (
            ServiceError::from_mariadb(
                crate::sql::ErrorClass::NotFound,
                1146,
                "Table 'd.x' doesn't exist",
            ),
            404,
            "not_found",
        ),
        (
            ServiceError::from_mariadb(
                crate::sql::ErrorClass::Conflict,
                1062,
                "Duplicate entry '1'",
            ),
            409,
            "conflict",
        ),
        (
            ServiceError::TooLarge {
                message: "big".into(),
            },
            413,
            "too_large",
        ),
        (ServiceError::NoLeader { retry_after: 2 }, 503, "no_leader"),
        (
            ServiceError::NotReady {
                reason: "syncing".into(),
                retry_after: 0,
            },
            503,
            "not_ready",
        ),
        (
            ServiceError::Timeout {
                message: "wait all".into(),
                lsn: Some(9),
                lagging: vec!["n3".into()],
            },
            504,
            "timeout",
        ),
        (
            ServiceError::Internal("secret detail /var/lib".into()),
            500,
            "internal",
        ),
    ];
    for (err, status, code) in cases {
        let (fake, r) = setup(None);
        fake.fail_with(err.clone());
        let (s, h, b) = send(
            &r,
            post("/write/delete", r#"{"table":"t","where_key":{"id":1}}"#),
        )
        .await;
        assert_eq!(s.as_u16(), status, "{err:?}: {b}");
        assert_eq!(b["code"], code, "{b}");
        match err {
            ServiceError::NoLeader { .. } | ServiceError::NotReady { .. } => {
                let secs = b["retry_after"].as_u64().expect("retry_after");
                assert!(secs >= 1);
                assert_eq!(h["retry-after"].to_str().expect("ascii"), secs.to_string());
            }
            ServiceError::Timeout { .. } => {
                assert_eq!(b["lagging"], json!(["n3"]));
                assert_eq!(b["lsn"], 9);
            }
            ServiceError::Internal(_) => {
                assert!(!b.to_string().contains("secret detail"), "{b}");
            }
            _ => assert!(b.get("retry_after").is_none()),
        }
        // The same error through /query and /id.
        let (s, _, _) = send(&r, post("/query", r#"{"sql":"SELECT 1"}"#)).await;
        assert_eq!(s.as_u16(), status);
        let (s, _, _) = send(&r, get("/id?count=2")).await;
        assert_eq!(s.as_u16(), status);
    }
}

#[tokio::test]
async fn validation_refusals_are_400_or_413_and_reach_nothing() {
    let (fake, r) = setup(None);
    let long = "x".repeat(1_000);
    let cases = [
        (
            json!({"table": "", "values": {"a": 1}}),
            "invalid_identifier",
        ),
        (
            json!({"table": "a\u{0}b", "values": {"a": 1}}),
            "invalid_identifier",
        ),
        (
            json!({"table": long, "values": {"a": 1}}),
            "invalid_identifier",
        ),
        (
            json!({"table": "db.t", "values": {"a": 1}}),
            "invalid_identifier",
        ),
        (json!({"table": "t", "values": {}}), "empty_values"),
        (
            json!({"table": "t", "values": {"a": 1, "A": 2}}),
            "duplicate_column",
        ),
        (
            json!({"table": "t", "values": {"a": [1, 2]}}),
            "invalid_value",
        ),
        (
            json!({"table": "t", "values": {"a": {"$base64": "%%%"}}}),
            "invalid_value",
        ),
    ];
    for (body, code) in cases {
        let (s, b) = post_json(&r, "/write/insert", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert_eq!(b["code"], code, "{body}: {b}");
    }
    let (s, b) = post_json(&r, "/write/delete", json!({"table": "t", "where_key": {}})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty_where"))
    );
    for ddl in [
        "DROP TABLE a; DROP TABLE b",
        "SELECT 1",
        "INSERT INTO t VALUES (1)",
        "CREATE TABLE t (u VARCHAR(36) DEFAULT (UUID()))",
    ] {
        let (s, b) = post_json(&r, "/write/ddl", json!({"ddl": ddl})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{ddl}: {b}");
    }
    for sql in [
        "UPDATE t SET a = RAND()",
        "SELECT * FROM t",
        "INSERT INTO t VALUES (?)",
        "DELETE FROM t LIMIT 1",
    ] {
        let (s, b) = post_json(&r, "/write/sql", json!({"statements": [{"sql": sql}]})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{sql}: {b}");
    }
    let (s, b) = post_json(&r, "/write/sql", json!({"statements": []})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty_batch"))
    );
    assert!(fake.writes.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn hostile_names_and_values_reach_the_backend_only_as_data() {
    let (fake, r) = setup(None);
    let table = "users`; DROP TABLE x; -- '\"\\ é";
    let value = "'); DROP TABLE users; --\u{0}\\\"";
    let (s, b) = post_json(
        &r,
        "/write/insert",
        json!({"table": table, "values": {"na`me": value, "big": 123456789012345678901234567890u128.to_string()}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let raw = r#"{"table":"t","values":{"n":123456789012345678901234567890.5e3}}"#;
    let (s, _, b) = send(&r, post("/write/insert", raw)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let writes = fake.writes.lock().expect("lock");
    let WriteRequest::Insert(first) = &writes[0] else {
        panic!("{writes:?}")
    };
    assert_eq!(first.table, table);
    assert!(
        first
            .values
            .0
            .contains(&("na`me".to_string(), Input::from(value))),
        "{first:?}"
    );
    let WriteRequest::Insert(second) = &writes[1] else {
        panic!("{writes:?}")
    };
    // Big numbers keep their exact text.
    assert_eq!(
        second.values.0[0].1,
        Input::Number("123456789012345678901234567890.5e3".into())
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_json() {
    let (fake, r) = setup(None);
    let bodies: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/write/insert", b"{".to_vec(), "invalid_json"),
        ("/write/insert", b"".to_vec(), "invalid_json"),
        ("/write/insert", b"null".to_vec(), "invalid_request"),
        ("/write/insert", b"[1,2]".to_vec(), "invalid_request"),
        (
            "/write/insert",
            br#"{"values":{"a":1}}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/write/insert",
            br#"{"table":5,"values":{"a":1}}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/write/insert",
            br#"{"table":"t","values":{"a":1},"extra":1}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/write/insert",
            br#"{"table":"t","values":{"a":1},"wait":"sometimes"}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/write/insert",
            b"{\"table\":\"t\xff\xfe\",\"values\":{\"a\":1}}".to_vec(),
            "invalid_json",
        ),
        ("/write/insert", b"\xef\xbb\xbf{}".to_vec(), "invalid_json"),
        (
            "/write/update",
            br#"{"table":"t","set":{"a":1}}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/write/sql",
            br#"{"statements":[{"sql":"INSERT INTO t VALUES (1)","params":{}}]}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/write/sql",
            br#"{"statements":[],"transaction":"yes"}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/write/ddl",
            format!("{}1{}", "[".repeat(2000), "]".repeat(2000)).into_bytes(),
            "invalid_request",
        ),
        (
            "/write/insert",
            format!(
                r#"{{"table":"t","values":{{"a":{}1{}}}}}"#,
                "[".repeat(2000),
                "]".repeat(2000)
            )
            .into_bytes(),
            "invalid_request",
        ),
        (
            "/query",
            br#"{"sql":"SELECT 1","min_lsn":184467440737095516150}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/query",
            br#"{"sql":"SELECT 1","min_lsn":-1}"#.to_vec(),
            "invalid_request",
        ),
        (
            "/query",
            br#"{"sql":"SELECT 1","consistency":"strong"}"#.to_vec(),
            "invalid_request",
        ),
    ];
    for (path, body, code) in bodies {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(80)
            .collect::<String>();
        let (s, _, b) = send(&r, post(path, body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {shown}: {b}");
        assert_eq!(b["code"], code, "{path} {shown}: {b}");
        assert!(b["error"].as_str().expect("str").chars().count() < 400);
    }
    assert!(fake.writes.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn content_type_must_be_json() {
    let (_, r) = setup(None);
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
    ] {
        let mut req = Request::post("/write/insert");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let req = req
            .body(Body::from(r#"{"table":"t","values":{"a":1}}"#))
            .expect("request");
        let (s, _, b) = send(&r, req).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(b["code"], "unsupported_media_type");
    }
    let req = Request::post("/write/insert")
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Body::from(r#"{"table":"t","values":{"a":1}}"#))
        .expect("request");
    assert_eq!(send(&r, req).await.0, StatusCode::OK);
}

fn insert_of_size(size: usize) -> String {
    let head = r#"{"table":"t","values":{"a":""#;
    let tail = r#""}}"#;
    format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()))
}

#[tokio::test]
async fn body_limit_just_under_just_over_and_far_over() {
    let (fake, r) = setup(None);
    let (s, h, b) = send(&r, post("/write/insert", insert_of_size(4096))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(h.get("connection").is_none(), "{h:?}");
    // Just over, length declared: the body is read to its end and dropped, so the client
    // reads a clean answer and the connection stays usable.
    let over = insert_of_size(4097);
    let req = Request::post("/write/insert")
        .header("content-type", "application/json")
        .header("content-length", over.len().to_string())
        .body(Body::from(over))
        .expect("request");
    let (s, h, b) = send(&r, req).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    assert!(h.get("connection").is_none(), "{h:?}");
    // Just over, length not declared: cut at the limit, the connection closes.
    let (s, h, b) = send(&r, post("/write/insert", insert_of_size(4097))).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    assert_eq!(
        h.get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
    // Declared far over: refused on the header alone.
    let req = Request::post("/write/insert")
        .header("content-type", "application/json")
        .header("content-length", "1099511627776")
        .body(Body::from("{}"))
        .expect("request");
    let (s, h, _) = send(&r, req).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Unread: the client must not reuse the connection.
    assert_eq!(
        h.get("connection").and_then(|v| v.to_str().ok()),
        Some("close")
    );
    // Undeclared and endless: refused after the limit, so it is never buffered whole.
    let (mut tx, endless) = Channel::<bytes::Bytes, std::io::Error>::new(4);
    let feeder = tokio::spawn(async move {
        let mut sent = 0usize;
        while tx
            .send_data(bytes::Bytes::from_static(&[b'x'; 1024]))
            .await
            .is_ok()
        {
            sent += 1024;
        }
        sent
    });
    let req = Request::post("/write/insert")
        .header("content-type", "application/json")
        .body(Body::new(endless))
        .expect("request");
    assert_eq!(send(&r, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let sent = feeder.await.expect("feeder");
    assert!(sent < 64 * 1024, "{sent} bytes were read");
    assert_eq!(fake.writes.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn trickling_body_is_cut_off() {
    let (fake, r) = setup(None);
    // One byte, then nothing: the deadline (300 ms in these options) ends the wait.
    let (mut tx, trickle) = Channel::<bytes::Bytes, std::io::Error>::new(1);
    tx.send_data(bytes::Bytes::from_static(b"{"))
        .await
        .expect("send");
    let req = Request::post("/write/insert")
        .header("content-type", "application/json")
        .body(Body::new(trickle))
        .expect("request");
    let started = std::time::Instant::now();
    let (s, _, b) = send(&r, req).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::REQUEST_TIMEOUT, Some("request_timeout"))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(fake.writes.lock().expect("lock").is_empty());
    drop(tx);
}

/// `api.max_concurrent_requests` is one limit over every route: with one slot, a request
/// still reading its body holds it, the next request waits until it ends, and the
/// probes are not counted.
#[tokio::test]
async fn concurrent_requests_share_one_node_wide_limit() {
    let fake = Arc::new(Fake::default());
    let mut o = options(None);
    o.max_concurrent_requests = 1;
    o.body_timeout = Duration::from_secs(600);
    let r = router(fake.clone(), o);
    // A write whose body never ends while `tx` lives: it holds the only slot.
    let (mut tx, held) = Channel::<bytes::Bytes, std::io::Error>::new(1);
    tx.send_data(bytes::Bytes::from_static(b"{"))
        .await
        .expect("send");
    let req = Request::post("/write/insert")
        .header("content-type", "application/json")
        .body(Body::new(held))
        .expect("request");
    let first = tokio::spawn(r.clone().oneshot(req));
    // This test's runtime has one thread: yielding lets the first request take the slot
    // and block on its body before the second exists.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // Once the first request holds the slot, /status cannot start; /livez still answers.
    let mut second = tokio::spawn(r.clone().oneshot(get("/status")));
    let waited = tokio::time::timeout(Duration::from_millis(500), &mut second).await;
    assert!(waited.is_err(), "a second request ran beside the first");
    assert_eq!(send(&r, get("/livez")).await.0, StatusCode::OK);
    // The first ends (its body closes early: 400), and the second gets the slot.
    drop(tx);
    let first = first.await.expect("first task").expect("infallible");
    assert!(first.status().is_client_error(), "{}", first.status());
    let second = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("second request ran once the slot was free")
        .expect("second task")
        .expect("infallible");
    assert_eq!(second.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let (_, r) = setup(None);
    for path in [
        "/",
        "/write",
        "/write/upsert",
        "/status/",
        "/cluster/nodes/1",
        "/%00",
        "/a%2F..%2Fb",
    ] {
        let (s, _, b) = send(&r, get(path)).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    for (method, path) in [
        (Method::GET, "/write/insert"),
        (Method::DELETE, "/status"),
        (Method::POST, "/health"),
        (Method::PUT, "/query"),
        (Method::PATCH, "/id"),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let (s, _, b) = send(&r, req).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {b}");
        assert_eq!(b["code"], "method_not_allowed");
    }
}

/// Every protected route with a body it accepts: (method, path, body, open to the
/// read-only token).
const ROUTES: &[(&str, &str, &str, bool)] = &[
    (
        "POST",
        "/write/insert",
        r#"{"table":"t","values":{"a":1}}"#,
        false,
    ),
    (
        "POST",
        "/write/update",
        r#"{"table":"t","set":{"a":1},"where_key":{"id":1}}"#,
        false,
    ),
    (
        "POST",
        "/write/delete",
        r#"{"table":"t","where_key":{"id":1}}"#,
        false,
    ),
    (
        "POST",
        "/write/ddl",
        r#"{"ddl":"CREATE TABLE t (id INT PRIMARY KEY)"}"#,
        false,
    ),
    (
        "POST",
        "/write/sql",
        r#"{"statements":[{"sql":"DELETE FROM t WHERE id = 1"}]}"#,
        false,
    ),
    ("POST", "/cluster/remove", r#"{"node":"n2"}"#, false),
    (
        "POST",
        "/cluster/transfer-leader",
        r#"{"node":"n2"}"#,
        false,
    ),
    ("POST", "/snapshot", "{}", false),
    ("POST", "/query", r#"{"sql":"SELECT 1"}"#, true),
    ("GET", "/id", "", true),
    ("GET", "/status", "", true),
    ("GET", "/cluster", "", true),
    ("GET", "/cluster/nodes", "", true),
    ("GET", "/snapshot", "", true),
];

fn route_request(method: &str, path: &str, body: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::from(body.to_string())).expect("request")
}

#[tokio::test]
async fn every_route_needs_a_right_token_and_the_read_token_only_reads() {
    let fake = Arc::new(Fake::default());
    let mut opts = options(Some("admin-token"));
    opts.read_token = Some(crate::config::TokenHash::of("read-token"));
    let r = router(fake.clone(), opts);
    for &(method, path, body, readable) in ROUTES {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer admin-token2"),
            Some("Basic admin-token"),
            Some("Bearer "),
        ] {
            let (s, h, b) = send(&r, route_request(method, path, body, auth)).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} {auth:?}: {b}");
            assert_eq!(b["code"], "unauthorized");
            assert_eq!(h["www-authenticate"], "Bearer");
        }
        let (s, _, b) = send(
            &r,
            route_request(method, path, body, Some("Bearer read-token")),
        )
        .await;
        if readable {
            assert!(
                s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN && !s.is_server_error(),
                "{method} {path} with the read token: {s} {b}"
            );
        } else {
            assert_eq!(
                (s, b["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{method} {path} with the read token: {b}"
            );
        }
        let (s, _, b) = send(
            &r,
            route_request(method, path, body, Some("Bearer admin-token")),
        )
        .await;
        // The fake takes no snapshots (400 `not_supported`): past auth is what counts.
        assert!(
            s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN && !s.is_server_error(),
            "{method} {path} with the admin token: {s} {b}"
        );
    }
    // Only the admin's five writes reached the backend.
    assert_eq!(fake.writes.lock().expect("lock").len(), 5);
    assert_eq!(send(&r, get("/health")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bearer_token_guards_every_route_but_health() {
    let (fake, r) = setup(Some("s3cret-token"));
    let (s, h, b) = send(&r, get("/status")).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert_eq!(h["www-authenticate"], "Bearer");
    for auth in [
        "Bearer wrong",
        "Bearer s3cret-token2",
        "Basic s3cret-token",
        "s3cret-token",
        "Bearer ",
        "Bearer s3cret-tok",
    ] {
        let req = Request::get("/status")
            .header("authorization", auth)
            .body(Body::empty())
            .expect("request");
        assert_eq!(send(&r, req).await.0, StatusCode::UNAUTHORIZED, "{auth}");
    }
    let req = Request::post("/write/insert")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"table":"t","values":{"a":1}}"#))
        .expect("request");
    assert_eq!(send(&r, req).await.0, StatusCode::UNAUTHORIZED);
    assert!(fake.writes.lock().expect("lock").is_empty());
    for auth in ["Bearer s3cret-token", "bearer s3cret-token"] {
        let req = Request::get("/status")
            .header("authorization", auth)
            .body(Body::empty())
            .expect("request");
        assert_eq!(send(&r, req).await.0, StatusCode::OK, "{auth}");
    }
    assert_eq!(send(&r, get("/health")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn status_has_the_documented_field_names() {
    let (_, r) = setup(None);
    let (s, _, b) = send(&r, get("/status")).await;
    assert_eq!(s, StatusCode::OK);
    let mut keys: Vec<_> = b.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "address",
            "api_address",
            "applied_lsn",
            "commit_lsn",
            "lag",
            "last_log_lsn",
            "last_quorum_contact_ms",
            "leader_id",
            "node_id",
            "node_number",
            "role",
            "status",
            "term"
        ]
    );
    assert_eq!(b["role"], "leader");
    assert_eq!(b["status"], "ACTIVE");
    assert_eq!(b["node_id"], "n1");
    for (state, text) in [
        (NodeState::Joining, "JOINING"),
        (NodeState::Syncing, "SYNCING"),
        (NodeState::Lagging, "LAGGING"),
        (NodeState::Degraded, "DEGRADED"),
        (NodeState::Offline, "OFFLINE"),
        (NodeState::NoQuorum, "NO_QUORUM"),
    ] {
        assert_eq!(serde_json::to_value(state).expect("json"), text);
    }
    assert_eq!(
        serde_json::to_value(Role::Follower).expect("json"),
        "follower"
    );
    assert_eq!(
        serde_json::to_value(Role::Learner).expect("json"),
        "learner"
    );
}

#[tokio::test]
async fn cluster_and_nodes_list_every_member() {
    let (_, r) = setup(None);
    let (s, _, b) = send(&r, get("/cluster")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["leader_id"], "n1");
    assert_eq!(b["term"], 3);
    assert_eq!(b["nodes"].as_array().expect("array").len(), 2);
    let (s, _, b) = send(&r, get("/cluster/nodes")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["nodes"][1]["node_id"], "n2");
    assert_eq!(b["nodes"][1]["role"], "follower");
}

#[tokio::test]
async fn cluster_operations_take_a_node_by_name_or_number() {
    let (fake, r) = setup(None);
    let (s, b) = post_json(&r, "/cluster/remove", json!({"node": "n2"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"removed": "n2", "node_number": 2, "lsn": 50, "voters": ["n1"], "learners": []})
    );
    let (s, b) = post_json(&r, "/cluster/transfer-leader", json!({"node": 2})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"leader_id": "2", "node_number": 2, "term": 4, "previous_leader": "n1", "previous_term": 3})
    );
    let (s, _) = post_json(&r, "/cluster/transfer-leader", json!({"node": " n3 "})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        *fake.cluster_ops.lock().expect("lock"),
        [
            ("remove", "n2".to_string()),
            ("transfer", "2".to_string()),
            ("transfer", "n3".to_string())
        ]
    );
    // Bad bodies never reach the backend.
    for (path, body) in [
        ("/cluster/remove", json!({})),
        ("/cluster/remove", json!({"node": ""})),
        ("/cluster/remove", json!({"node": "  "})),
        ("/cluster/remove", json!({"node": null})),
        ("/cluster/remove", json!({"node": "n2", "force": true})),
        ("/cluster/transfer-leader", json!({"node": -1})),
        ("/cluster/transfer-leader", json!({"node": ["n2"]})),
        ("/cluster/transfer-leader", json!({"node": "x".repeat(400)})),
    ] {
        let (s, b) = post_json(&r, path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}: {b}");
    }
    let (s, _, b) = send(&r, get("/cluster/remove")).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{b}");
    assert_eq!(fake.cluster_ops.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn promote_and_demote_take_a_node_and_answer_its_role() {
    let (fake, r) = setup(None);
    let (s, b) = post_json(&r, "/cluster/demote", json!({"node": "n2"})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"node_id": "n2", "node_number": 2, "voter": false, "lsn": 60, "voters": ["n1"], "learners": ["n2"]})
    );
    let (s, b) = post_json(&r, "/cluster/promote", json!({"node": 2})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["voter"], true);
    assert_eq!(b["voters"], json!(["n1", "2"]));
    for (path, body) in [
        ("/cluster/promote", json!({})),
        ("/cluster/demote", json!({"node": " "})),
        ("/cluster/demote", json!({"node": "n2", "voter": true})),
    ] {
        let (s, b) = post_json(&r, path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body}: {b}");
    }
    let (s, _, b) = send(&r, get("/cluster/promote")).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{b}");
    assert_eq!(
        *fake.cluster_ops.lock().expect("lock"),
        [("demote", "n2".to_string()), ("promote", "2".to_string())]
    );
    // A refusal keeps its status and code.
    fake.fail_with(ServiceError::Conflict {
        code: "learner_behind".into(),
        message: "n2 is 900 entries behind the leader".into(),
    });
    let (s, b) = post_json(&r, "/cluster/promote", json!({"node": "n2"})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["code"], "learner_behind");
}

#[tokio::test]
async fn cluster_operation_errors_keep_their_status_and_code() {
    let (fake, r) = setup(Some("tok"));
    // The token guards them like every other route.
    let (s, _, _) = send(&r, post("/cluster/remove", r#"{"node":"n2"}"#)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let cases = [
        (
            ServiceError::NotFound {
                code: "unknown_node".into(),
                message: "no member is named n9".into(),
            },
            StatusCode::NOT_FOUND,
            "unknown_node",
        ),
        (
            ServiceError::Conflict {
                code: "last_voter".into(),
                message: "n1 is the last voter".into(),
            },
            StatusCode::CONFLICT,
            "last_voter",
        ),
        (
            ServiceError::NoLeader { retry_after: 1 },
            StatusCode::SERVICE_UNAVAILABLE,
            "no_leader",
        ),
    ];
    for (err, status, code) in cases {
        fake.fail_with(err);
        for path in ["/cluster/remove", "/cluster/transfer-leader"] {
            let req = Request::post(path)
                .header("content-type", "application/json")
                .header("authorization", "Bearer tok")
                .body(Body::from(r#"{"node":"n9"}"#))
                .expect("request");
            let (s, h, b) = send(&r, req).await;
            assert_eq!((s, b["code"].as_str()), (status, Some(code)), "{path}: {b}");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(b["retry_after"], 1);
                assert_eq!(h["retry-after"], "1");
            }
        }
    }
}

#[tokio::test]
async fn health_follows_readiness() {
    let (fake, r) = setup(None);
    let (s, _, b) = send(&r, get("/health")).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    fake.not_ready.store(true, Ordering::SeqCst);
    let (s, h, b) = send(&r, get("/health")).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready"))
    );
    assert_eq!(h["retry-after"], "1");
}

#[tokio::test]
async fn health_is_not_ready_with_the_reason_for_every_status_but_active_and_lagging() {
    let (fake, r) = setup(Some("tok"));
    let set = |state: NodeState, leader: Option<&str>| {
        let mut n = node("n1", 1, Role::Follower);
        n.status = state;
        n.leader_id = leader.map(String::from);
        n.last_quorum_contact_ms = Some(2345);
        *fake.state.lock().expect("test lock") = Some(n);
    };
    set(NodeState::Lagging, Some("n2"));
    assert_eq!(send(&r, get("/health")).await.0, StatusCode::OK);
    for (state, leader, reason) in [
        (
            NodeState::NoQuorum,
            None,
            "NO_QUORUM: no contact with the cluster's majority for 2345 ms",
        ),
        (NodeState::Syncing, None, "SYNCING: no known leader"),
        (NodeState::Syncing, Some("n2"), "SYNCING"),
        (NodeState::Degraded, Some("n2"), "DEGRADED"),
        (NodeState::Joining, Some("n2"), "JOINING"),
        (NodeState::Removed, None, "REMOVED: no known leader"),
    ] {
        set(state, leader);
        let (s, h, b) = send(&r, get("/health")).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready")),
            "{state:?}"
        );
        let error = b["error"].as_str().expect("message");
        assert!(error.contains(reason), "{state:?}: {error}");
        assert_eq!(h["retry-after"], "1");
        // Liveness stays up, and needs no token either.
        let (s, _, b) = send(&r, get("/livez")).await;
        assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("alive")));
    }
}

#[tokio::test]
async fn a_node_without_quorum_refuses_at_once_with_retry_after() {
    let (fake, r) = setup(None);
    fake.fail_with(ServiceError::NoQuorum {
        reason: "no round trip with a majority for 2100 ms".into(),
        retry_after: 2,
    });
    let (s, b) = post_json(
        &r,
        "/write/insert",
        json!({"table": "t", "values": {"a": 1}}),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str(), b["retry_after"].as_u64()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("quorum_lost"),
            Some(2)
        ),
        "{b}"
    );
    assert!(
        b["error"].as_str().expect("message").contains("2100 ms"),
        "{b}"
    );
}

#[tokio::test]
async fn id_counts_are_bounded() {
    let (_, r) = setup(None);
    let (s, _, b) = send(&r, get("/id")).await;
    assert_eq!((s, b["ids"].clone()), (StatusCode::OK, json!([1])));
    let (s, _, b) = send(&r, get("/id?count=10000")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["ids"].as_array().expect("array").len(), 10_000);
    for q in [
        "count=0",
        "count=10001",
        "count=-1",
        "count=abc",
        "count=99999999999999999999999",
        "count=1.5",
        "count=",
    ] {
        let (s, _, b) = send(&r, get(&format!("/id?{q}"))).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_count")),
            "{q}"
        );
    }
    for q in ["other=1", "count=1&count=2", "count=%ff"] {
        let (s, _, b) = send(&r, get(&format!("/id?{q}"))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {b}");
    }
}

#[tokio::test]
async fn query_binds_values_and_validates() {
    let (fake, r) = setup(None);
    let (s, b) = post_json(
        &r,
        "/query",
        json!({"sql": "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?;", "params": [18446744073709551615u64, "x'y", null],
               "consistency": "linearizable", "min_lsn": 12, "timeout_ms": 250}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        b,
        json!({"columns": ["id", "name"], "rows": [[18446744073709551615u64, "a\"b"]]})
    );
    let q = fake.queries.lock().expect("lock")[0].clone();
    assert_eq!(q.sql, "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?");
    assert_eq!(
        q.params,
        vec![
            Value::UInt(u64::MAX),
            Value::Text("x'y".into()),
            Value::Null
        ]
    );
    assert_eq!(q.consistency, Consistency::Linearizable);
    assert_eq!(
        (q.min_lsn, q.timeout),
        (Some(12), Duration::from_millis(250))
    );
    let (s, _) = post_json(&r, "/query", json!({"sql": "SHOW TABLES"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        fake.queries.lock().expect("lock")[1].timeout,
        DEFAULT_QUERY_TIMEOUT
    );
    let refused = [
        (json!({"sql": "DELETE FROM t WHERE id = 1"}), "not_read"),
        (
            json!({"sql": "SELECT 1; DROP TABLE t"}),
            "multiple_statements",
        ),
        (
            json!({"sql": "SELECT * FROM t INTO OUTFILE '/tmp/x'"}),
            "not_read",
        ),
        (json!({"sql": "SELECT ?", "params": []}), "param_count"),
        (json!({"sql": "SELECT ?", "params": [[1]]}), "invalid_value"),
        (
            json!({"sql": "SELECT 1", "timeout_ms": 60001}),
            "invalid_timeout",
        ),
        (json!({"sql": ""}), "invalid_sql"),
    ];
    for (body, code) in refused {
        let (s, b) = post_json(&r, "/query", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert_eq!(b["code"], code, "{body}: {b}");
    }
    let (_, b) = post_json(
        &r,
        "/query",
        json!({"sql": "SELECT ?, ?", "params": [1, {"x": 1}]}),
    )
    .await;
    assert!(
        b["error"]
            .as_str()
            .expect("str")
            .contains("`params` element 1"),
        "{b}"
    );
    assert_eq!(fake.queries.lock().expect("lock").len(), 2);
}

#[test]
fn mariadb_transient_errors_are_503_not_results() {
    let e = ServiceError::from_mariadb(crate::sql::ErrorClass::Transient, 2013, "Lost connection");
    assert_eq!(http_status(&e), 503);
    assert_eq!(error_body(&e).retry_after, Some(1));
    let e = ServiceError::from_mariadb(crate::sql::ErrorClass::Invalid, 1054, "Unknown column 'x'");
    assert_eq!(
        (http_status(&e), error_body(&e).code.as_str()),
        (400, "invalid")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes at any POST route: a 2xx or a 4xx JSON answer, never a 5xx.
    #[test]
    fn random_bodies_never_5xx(body in proptest::collection::vec(any::<u8>(), 0..300), route in 0usize..6) {
        let path = ["/write/insert", "/write/update", "/write/delete", "/write/ddl", "/write/sql", "/query"][route];
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (s, _, b) = rt.block_on(async {
            let (_, r) = setup(None);
            send(&r, post(path, body)).await
        });
        prop_assert!(s.is_success() || s.is_client_error(), "{}: {}", s, b);
    }

    /// Structurally valid inserts with arbitrary names and values: 200 or 400, never 5xx.
    #[test]
    fn random_inserts_never_5xx(table in "\\PC{0,80}", col in "\\PC{0,80}", value in any::<String>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let body = json!({"table": table, "values": {col: value}});
        let (s, _, b) = rt.block_on(async {
            let (_, r) = setup(None);
            send(&r, post("/write/insert", body.to_string())).await
        });
        prop_assert!(s == StatusCode::OK || s == StatusCode::BAD_REQUEST, "{}: {}", s, b);
    }
}

/// Collects formatted log lines for assertions.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("test lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("test lock")).into_owned()
    }
}

fn capture(level: tracing::Level) -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let buf = LogBuffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Other tests in this binary install a global subscriber (the CLI's logging::init)
    // at INFO; a callsite whose interest was cached while only that one existed would
    // stay silent here. Recompute every callsite's interest and the max level with this
    // scoped TRACE subscriber registered.
    tracing::callsite::rebuild_interest_cache();
    (buf, guard)
}

#[tokio::test]
async fn logs_carry_route_and_status_but_never_row_data() {
    let body = json!({"table": "t", "values": {"secret_col": "SECRET-VALUE"}});
    // Register the request log's callsites before the scoped subscriber exists (tests on
    // other threads may be registering them right now, and a callsite whose first
    // registration races a dispatcher's can keep a stale interest).
    {
        let (warm, r) = setup(None);
        post_json(&r, "/write/insert", body.clone()).await;
        warm.fail_with(ServiceError::Internal("warm-up".into()));
        post_json(&r, "/write/insert", body.clone()).await;
    }
    let (logs, _guard) = capture(tracing::Level::TRACE);
    let (fake, r) = setup(None);
    assert_eq!(
        post_json(&r, "/write/insert", body.clone()).await.0,
        StatusCode::OK
    );
    let (s, _) = post_json(
        &r,
        "/query",
        json!({"sql": "SELECT ?", "params": ["SECRET-PARAM"]}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    fake.fail_with(ServiceError::Internal("disk on fire".into()));
    assert_eq!(
        post_json(&r, "/write/insert", body).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let text = logs.text();
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("route=/write/insert status=200"), "{text}");
    assert!(text.contains("route=/query status=200"), "{text}");
    assert_eq!(
        text.matches("internal error serving request").count(),
        1,
        "{text}"
    );
    assert!(text.contains("disk on fire"), "{text}");
}

#[test]
fn options_follow_the_api_section() {
    let api = crate::config::ApiConfig {
        max_body_bytes: 2048,
        ..Default::default()
    };
    let text = "[node]\nid = \"n1\"\n[cluster]\nsecret = \"0123456789abcdef\"\n\
                [api]\ntoken = \"t\"\nread_token = \"r\"\n";
    let loaded =
        crate::config::parse(text, &crate::config::EnvOverrides::default()).expect("valid config");
    let o = ApiOptions::from_config(&api, &loaded.secrets);
    assert_eq!(o.max_body_bytes, 2048);
    assert!(o.token.is_some_and(|t| t.matches("t")));
    assert!(o.read_token.is_some_and(|t| t.matches("r")));
    assert_eq!(o.body_timeout, Duration::from_secs(10));
}

#[tokio::test]
async fn large_bodies_are_validated_off_the_runtime_workers() {
    let fake = Arc::new(Fake::default());
    let mut opts = options(None);
    opts.max_body_bytes = 1 << 20;
    let r = router(fake.clone(), opts);
    let statements: Vec<Json> = (0..1000)
        .map(
            |i| json!({"sql": "INSERT INTO t (a, b) VALUES (?, ?)", "params": [i, "v".repeat(60)]}),
        )
        .collect();
    let body = json!({"statements": statements, "transaction": true}).to_string();
    assert!(
        body.len() > super::handlers::INLINE_PARSE_BYTES,
        "{}",
        body.len()
    );
    let (s, b) = post_json(&r, "/write/sql", serde_json::from_str(&body).expect("json")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The same size with one bad statement at the end is refused naming it.
    let mut bad: Json = serde_json::from_str(&body).expect("json");
    bad["statements"][999]["sql"] = json!("UPDATE t SET a = UUID()");
    let (s, b) = post_json(&r, "/write/sql", bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert!(
        b["error"].as_str().expect("str").contains("statement 999"),
        "{b}"
    );
    assert_eq!(fake.writes.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn overlong_numbers_are_refused() {
    let (fake, r) = setup(None);
    let long = format!("1{}", "0".repeat(150));
    let body = format!(r#"{{"table":"t","values":{{"a":{long}}}}}"#);
    let (s, _, b) = send(&r, post("/write/insert", body)).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_value"))
    );
    let body = format!(r#"{{"sql":"SELECT ?","params":[{long}]}}"#);
    let (s, _, b) = send(&r, post("/query", body)).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_value"))
    );
    let ok = r#"{"table":"t","values":{"a":-9223372036854775808,"b":1e308,"c":0.1}}"#;
    assert_eq!(send(&r, post("/write/insert", ok)).await.0, StatusCode::OK);
    assert_eq!(fake.writes.lock().expect("lock").len(), 1);
}
