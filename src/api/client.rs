//! A typed HTTP client for one node's API, used by the CLI (`wolfscale status`) and by the
//! integration tests. It speaks plain HTTP/1.1 over hyper (the stack the server already
//! runs on) and decodes every error answer from its JSON body. It does not retry and does
//! not pick nodes: callers decide where to send what.

use super::backend::{
    ErrorBody, NodeRef, NodeRequest, QueryRequest, QueryResult, RemoveResult, RoleResult,
    SnapshotRequest, TransferResult, WriteResult,
};
use super::handlers::{Health, Ids, Nodes};
use crate::command::{DdlRequest, DeleteRequest, InsertRequest, SqlRequest, UpdateRequest};
use crate::service::{ClusterStatus, NodeStatus, SnapshotCreated, SnapshotList};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{header, Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// How long one call may take when the caller sets nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node answered with an error status and a JSON error body.
    #[error("{status}: {} ({})", body.error, body.code)]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The decoded body.
        body: ErrorBody,
    },
    /// The node could not be reached or the connection broke.
    #[error("cannot reach {address}: {reason}")]
    Connect {
        /// The node's address.
        address: String,
        /// What the HTTP stack said.
        reason: String,
    },
    /// No complete answer within the call's timeout.
    #[error("no answer from {address} within {timeout:?}")]
    Timeout {
        /// The node's address.
        address: String,
        /// The limit.
        timeout: Duration,
    },
    /// The answer is not what the API sends (wrong version or not a WolfScale node).
    #[error("unexpected answer ({status}) from {address}: {reason}")]
    Decode {
        /// The node's address.
        address: String,
        /// The HTTP status of the answer.
        status: StatusCode,
        /// What did not parse.
        reason: String,
    },
    /// The address given to [`Client::new`] is not `host:port` or `http://host:port`.
    #[error("invalid node address {0:?}: expected host:port or http://host:port")]
    Address(String),
    /// The CA file for HTTPS could not be used.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Error {
    /// The HTTP status of an API error, if the node answered one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API error code (`no_leader`, `conflict`, …), if the node answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }
}

/// The write routes, for [`Client::write_raw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// `/write/insert`.
    Insert,
    /// `/write/update`.
    Update,
    /// `/write/delete`.
    Delete,
    /// `/write/ddl`.
    Ddl,
    /// `/write/sql`.
    Sql,
}

impl WriteKind {
    /// The route's path.
    pub fn path(self) -> &'static str {
        match self {
            WriteKind::Insert => "/write/insert",
            WriteKind::Update => "/write/update",
            WriteKind::Delete => "/write/delete",
            WriteKind::Ddl => "/write/ddl",
            WriteKind::Sql => "/write/sql",
        }
    }
}

/// A raw answer, for callers that test the API itself.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status.
    pub status: StatusCode,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

/// A client for one node. Cheap to clone; connections are pooled.
#[derive(Clone)]
pub struct Client {
    address: String,
    token: Option<String>,
    timeout: Duration,
    http: Http,
}

/// Plain HTTP, or HTTPS trusting only the cluster's CA.
#[derive(Clone)]
enum Http {
    Plain(hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>),
    Tls(hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl Http {
    fn scheme(&self) -> &'static str {
        match self {
            Http::Plain(_) => "http",
            Http::Tls(_) => "https",
        }
    }

    fn request(&self, request: Request<Full<Bytes>>) -> hyper_util::client::legacy::ResponseFuture {
        match self {
            Http::Plain(c) => c.request(request),
            Http::Tls(c) => c.request(request),
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("has_token", &self.token.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    /// A client for the node at `address` (`host:port` or `http://host:port`).
    ///
    /// # Errors
    /// [`Error::Address`] when the address is not of that shape.
    pub fn new(address: &str) -> Result<Client, Error> {
        let bare = address.strip_prefix("http://").unwrap_or(address);
        let bare = bare.strip_suffix('/').unwrap_or(bare);
        let valid = !bare.is_empty()
            && !bare.contains('/')
            && format!("http://{bare}/")
                .parse::<Uri>()
                .is_ok_and(|u| u.port().is_some());
        if !valid {
            return Err(Error::Address(address.to_string()));
        }
        Ok(Client {
            address: bare.to_string(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            http: Http::Plain(
                hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
            ),
        })
    }

    /// Speaks HTTPS only, trusting the CA certificate(s) in `ca_file` (the `[tls]`
    /// `ca_file` of the cluster).
    ///
    /// # Errors
    /// [`Error::Tls`] when the file cannot be read or holds no usable certificate.
    pub fn with_ca_file(mut self, ca_file: &std::path::Path) -> Result<Client, Error> {
        let config = crate::tls::https_client_config(ca_file)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        self.http = Http::Tls(
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector),
        );
        Ok(self)
    }

    /// Sends `Authorization: Bearer <token>` on every call.
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.token = Some(token.into());
        self
    }

    /// Limits each call to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The node's `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `GET /health`: `Ok` only when the node can serve.
    ///
    /// # Errors
    /// Every method: [`Error::Api`] with the node's answer, or a connection, timeout or
    /// decoding error.
    pub async fn health(&self) -> Result<(), Error> {
        self.get::<Health>("/health").await.map(|_| ())
    }

    /// `GET /livez`: whether the process serves HTTP at all (200 whatever its state).
    pub async fn livez(&self) -> Result<(), Error> {
        self.get::<Health>("/livez").await.map(|_| ())
    }

    /// `GET /status`: this node.
    pub async fn status(&self) -> Result<NodeStatus, Error> {
        self.get("/status").await
    }

    /// `GET /cluster`: leader, term and every member.
    pub async fn cluster(&self) -> Result<ClusterStatus, Error> {
        self.get("/cluster").await
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, Error> {
        let raw = self
            .raw(Method::GET, "/metrics", None, Bytes::new())
            .await?;
        if raw.status.is_success() {
            return Ok(String::from_utf8_lossy(&raw.body).into_owned());
        }
        self.decode::<serde_json::Value>(raw).map(|_| String::new())
    }

    /// `GET /events`: this node's recent lifecycle events, oldest first.
    pub async fn events(&self) -> Result<Vec<crate::observe::events::Event>, Error> {
        self.get::<crate::observe::events::EventList>("/events")
            .await
            .map(|l| l.events)
    }

    /// `GET /cluster/nodes`: every member.
    pub async fn nodes(&self) -> Result<Vec<NodeStatus>, Error> {
        self.get::<Nodes>("/cluster/nodes").await.map(|n| n.nodes)
    }

    /// `POST /cluster/remove`: removes the member named or numbered `node`.
    pub async fn remove_node(&self, node: &str) -> Result<RemoveResult, Error> {
        let body = NodeRequest {
            node: NodeRef::Name(node.to_string()),
        };
        self.post("/cluster/remove", &body).await
    }

    /// `POST /cluster/transfer-leader`: makes the voter named or numbered `node` the leader.
    pub async fn transfer_leader(&self, node: &str) -> Result<TransferResult, Error> {
        let body = NodeRequest {
            node: NodeRef::Name(node.to_string()),
        };
        self.post("/cluster/transfer-leader", &body).await
    }

    /// `POST /cluster/promote`: makes the learner named or numbered `node` a voter.
    pub async fn promote(&self, node: &str) -> Result<RoleResult, Error> {
        let body = NodeRequest {
            node: NodeRef::Name(node.to_string()),
        };
        self.post("/cluster/promote", &body).await
    }

    /// `POST /cluster/demote`: makes the voter named or numbered `node` a non-voting
    /// learner.
    pub async fn demote(&self, node: &str) -> Result<RoleResult, Error> {
        let body = NodeRequest {
            node: NodeRef::Name(node.to_string()),
        };
        self.post("/cluster/demote", &body).await
    }

    /// `GET /id?count=N`: fresh Snowflake IDs from this node.
    pub async fn ids(&self, count: usize) -> Result<Vec<u64>, Error> {
        self.get::<Ids>(&format!("/id?count={count}"))
            .await
            .map(|i| i.ids)
    }

    /// `POST /snapshot`: takes a snapshot on this node (give the client a timeout long
    /// enough for the database's size).
    pub async fn snapshot_create(&self, purge: bool) -> Result<SnapshotCreated, Error> {
        self.post("/snapshot", &SnapshotRequest { purge }).await
    }

    /// `POST /check`: compares every member at one LSN (give the client a long timeout).
    pub async fn check(&self) -> Result<crate::service::CheckReport, Error> {
        self.post("/check", &serde_json::json!({})).await
    }

    /// `POST /resync`: replaces the node's replicated database with a fresh snapshot of
    /// the leader's (give the client a long timeout).
    pub async fn resync(&self) -> Result<crate::service::ResyncDone, Error> {
        self.post("/resync", &serde_json::json!({})).await
    }

    /// `GET /snapshot`: this node's snapshots and any transfer under way.
    pub async fn snapshot_list(&self) -> Result<SnapshotList, Error> {
        self.get("/snapshot").await
    }

    /// `POST /write/insert`.
    pub async fn insert(&self, request: &InsertRequest) -> Result<WriteResult, Error> {
        self.post(WriteKind::Insert.path(), request).await
    }

    /// `POST /write/update`.
    pub async fn update(&self, request: &UpdateRequest) -> Result<WriteResult, Error> {
        self.post(WriteKind::Update.path(), request).await
    }

    /// `POST /write/delete`.
    pub async fn delete(&self, request: &DeleteRequest) -> Result<WriteResult, Error> {
        self.post(WriteKind::Delete.path(), request).await
    }

    /// `POST /write/ddl`.
    pub async fn ddl(&self, request: &DdlRequest) -> Result<WriteResult, Error> {
        self.post(WriteKind::Ddl.path(), request).await
    }

    /// `POST /write/sql`.
    pub async fn sql(&self, request: &SqlRequest) -> Result<WriteResult, Error> {
        self.post(WriteKind::Sql.path(), request).await
    }

    /// A write whose JSON body the caller made (e.g. with `serde_json::json!`).
    pub async fn write_raw(
        &self,
        kind: WriteKind,
        json: impl Into<Bytes>,
    ) -> Result<WriteResult, Error> {
        let raw = self
            .raw(
                Method::POST,
                kind.path(),
                Some("application/json"),
                json.into(),
            )
            .await?;
        self.decode(raw)
    }

    /// `POST /query`.
    pub async fn query(&self, request: &QueryRequest) -> Result<QueryResult, Error> {
        self.post("/query", request).await
    }

    /// Any request, answered as it came: for tests of the API's own behaviour.
    ///
    /// # Errors
    /// Connection and timeout errors only; every status is returned as a response.
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<RawResponse, Error> {
        let uri = format!("{}://{}{path_and_query}", self.http.scheme(), self.address);
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        if let Some(token) = &self.token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = builder.body(Full::new(body)).map_err(|e| Error::Connect {
            address: self.address.clone(),
            reason: format!("invalid request: {e}"),
        })?;
        let connect = |e: &dyn fmt::Display| Error::Connect {
            address: self.address.clone(),
            reason: e.to_string(),
        };
        let call = async {
            let response = self.http.request(request).await.map_err(|e| connect(&e))?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| connect(&e))?
                .to_bytes();
            Ok(RawResponse {
                status,
                content_type,
                body,
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| Error::Timeout {
                address: self.address.clone(),
                timeout: self.timeout,
            })?
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let raw = self.raw(Method::GET, path, None, Bytes::new()).await?;
        self.decode(raw)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let json = serde_json::to_vec(body).map_err(|e| Error::Decode {
            address: self.address.clone(),
            status: StatusCode::OK,
            reason: format!("request not encodable: {e}"),
        })?;
        let raw = self
            .raw(Method::POST, path, Some("application/json"), json.into())
            .await?;
        self.decode(raw)
    }

    fn decode<T: DeserializeOwned>(&self, raw: RawResponse) -> Result<T, Error> {
        let bad = |reason: String| Error::Decode {
            address: self.address.clone(),
            status: raw.status,
            reason,
        };
        if raw.status.is_success() {
            return serde_json::from_slice(&raw.body).map_err(|e| bad(e.to_string()));
        }
        match serde_json::from_slice::<ErrorBody>(&raw.body) {
            Ok(body) => Err(Error::Api {
                status: raw.status,
                body,
            }),
            Err(e) => Err(bad(format!("error body is not JSON: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tests::{options, Fake};
    use crate::api::{router, serve_with, Consistency, Role};
    use crate::command::{Fields, Input, Wait};
    use crate::service::ServiceError;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    struct Server {
        address: String,
        fake: Arc<Fake>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), crate::api::ServeError>>,
    }

    async fn start(token: Option<&str>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let fake = Arc::new(Fake::default());
        let stop = CancellationToken::new();
        let app = router(fake.clone(), options(token));
        let task = tokio::spawn(serve_with(
            listener,
            app,
            Duration::from_millis(300),
            stop.clone(),
        ));
        Server {
            address,
            fake,
            stop,
            task,
        }
    }

    impl Server {
        async fn shut(self) {
            self.stop.cancel();
            tokio::time::timeout(Duration::from_secs(5), self.task)
                .await
                .expect("serve stops")
                .expect("serve task")
                .expect("serve result");
        }
    }

    #[tokio::test]
    async fn every_call_round_trips() {
        let s = start(None).await;
        let c = Client::new(&format!("http://{}/", s.address)).expect("client");
        c.health().await.expect("health");
        let st = c.status().await.expect("status");
        assert_eq!((st.node_id.as_str(), st.role), ("n1", Role::Leader));
        assert_eq!(c.cluster().await.expect("cluster").nodes.len(), 2);
        assert_eq!(c.nodes().await.expect("nodes")[1].node_id, "n2");
        assert_eq!(c.ids(3).await.expect("ids"), [1, 2, 3]);
        let ins = InsertRequest {
            table: "users".into(),
            values: Fields(vec![("name".into(), Input::from("O'Brien"))]),
            snowflake: Some("id".into()),
            wait: Wait::All,
        };
        let r = c.insert(&ins).await.expect("insert");
        assert_eq!((r.lsn, r.ids.as_slice()), (17, &[7][..]));
        let r = c
            .write_raw(WriteKind::Delete, r#"{"table":"t","where_key":{"id":1}}"#)
            .await
            .expect("delete");
        assert_eq!(r.affected_rows, 1);
        let q = c
            .query(&QueryRequest {
                sql: "SELECT id, name FROM users WHERE id = ?".into(),
                params: vec![Input::from(1i64)],
                consistency: Consistency::Weak,
                min_lsn: Some(r.lsn),
                timeout_ms: None,
            })
            .await
            .expect("query");
        assert_eq!(q.rows[0][0], Input::from(u64::MAX));
        assert_eq!(s.fake.writes.lock().expect("lock").len(), 2);
        assert_eq!(s.fake.queries.lock().expect("lock")[0].min_lsn, Some(17));
        s.shut().await;
    }

    #[tokio::test]
    async fn errors_are_decoded_from_the_json_body() {
        let s = start(None).await;
        let c = Client::new(&s.address).expect("client");
        let e = c
            .write_raw(WriteKind::Insert, r#"{"table":"","values":{"a":1}}"#)
            .await
            .expect_err("refused");
        assert_eq!(
            (e.status(), e.code()),
            (Some(StatusCode::BAD_REQUEST), Some("invalid_identifier"))
        );
        s.fake.fail_with(ServiceError::NoLeader { retry_after: 3 });
        match c.ids(1).await {
            Err(Error::Api { status, body }) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(
                    (body.code.as_str(), body.retry_after),
                    ("no_leader", Some(3))
                );
            }
            other => panic!("expected a 503: {other:?}"),
        }
        let raw = c
            .raw(Method::GET, "/nope", None, Bytes::new())
            .await
            .expect("raw");
        assert_eq!(raw.status, StatusCode::NOT_FOUND);
        assert_eq!(raw.content_type.as_deref(), Some("application/json"));
        s.shut().await;
    }

    #[tokio::test]
    async fn token_is_sent_when_set() {
        let s = start(Some("tok")).await;
        let anonymous = Client::new(&s.address).expect("client");
        assert_eq!(
            anonymous.status().await.expect_err("401").code(),
            Some("unauthorized")
        );
        anonymous.health().await.expect("health needs no token");
        let c = anonymous.clone().with_token("tok");
        c.status().await.expect("status with token");
        assert!(!format!("{c:?}").contains("tok\""), "{c:?}");
        s.shut().await;
    }

    #[tokio::test]
    async fn unreachable_node_and_bad_addresses() {
        for bad in ["", "http://", "host", "http://h:1/path", "ftp://h:1"] {
            assert!(matches!(Client::new(bad), Err(Error::Address(_))), "{bad}");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let c = Client::new(&address).expect("client");
        assert!(matches!(c.status().await, Err(Error::Connect { .. })));
        // A listener that never answers: the call times out.
        let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let c = Client::new(&silent.local_addr().expect("addr").to_string())
            .expect("client")
            .with_timeout(Duration::from_millis(200));
        assert!(matches!(c.status().await, Err(Error::Timeout { .. })));
    }

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out));
        let _ = read.await.expect("server closes the connection");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn connections_past_the_limit_wait_for_a_free_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let stop = CancellationToken::new();
        let app = router(Arc::new(Fake::default()), options(None));
        let task = tokio::spawn(crate::api::serve_limited(
            listener,
            app,
            Duration::from_secs(5),
            2,
            stop.clone(),
        ));
        async fn ask(stream: &mut TcpStream) -> String {
            let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
            stream.write_all(req).await.expect("write");
            let mut buf = [0u8; 12];
            tokio::io::AsyncReadExt::read_exact(stream, &mut buf)
                .await
                .expect("read");
            String::from_utf8_lossy(&buf).into_owned()
        }
        let mut a = TcpStream::connect(&address).await.expect("connect");
        let mut b = TcpStream::connect(&address).await.expect("connect");
        assert_eq!(ask(&mut a).await, "HTTP/1.1 200");
        assert_eq!(ask(&mut b).await, "HTTP/1.1 200");
        // Two connections are open: a third is not served while they stay.
        let mut c = TcpStream::connect(&address).await.expect("kernel accepts");
        let third = tokio::time::timeout(Duration::from_millis(300), ask(&mut c)).await;
        assert!(third.is_err(), "a third connection was served: {third:?}");
        drop(a);
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 12];
            tokio::io::AsyncReadExt::read_exact(&mut c, &mut buf)
                .await
                .expect("read");
            String::from_utf8_lossy(&buf).into_owned()
        })
        .await
        .expect("served once a slot is free");
        assert_eq!(answer, "HTTP/1.1 200");
        stop.cancel();
        drop((b, c));
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    #[tokio::test]
    async fn slow_headers_are_cut_off() {
        let s = start(None).await;
        let mut stream = TcpStream::connect(&s.address).await.expect("connect");
        stream
            .write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        // The header-read timeout is 300 ms here; the server closes without an answer
        // (hyper may send a 408 first).
        let answer = read_all(&mut stream).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
        s.shut().await;
    }

    #[tokio::test]
    async fn far_over_body_is_refused_without_reading_it() {
        let s = start(None).await;
        let mut stream = TcpStream::connect(&s.address).await.expect("connect");
        let head = "POST /write/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n";
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(&[b'x'; 8192]).await.expect("write");
        let answer = read_all(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains(r#""code":"too_large""#), "{answer}");
        s.shut().await;
    }

    #[tokio::test]
    async fn trickling_body_gets_408_and_nothing_is_written() {
        let s = start(None).await;
        let mut stream = TcpStream::connect(&s.address).await.expect("connect");
        let head = "POST /write/insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
        stream.write_all(head.as_bytes()).await.expect("write");
        let started = std::time::Instant::now();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("answer within the body deadline")
            .expect("read");
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(s.fake.writes.lock().expect("lock").is_empty());
        s.shut().await;
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let s = start(None).await;
        let address = s.address.clone();
        s.shut().await;
        let c = Client::new(&address).expect("client");
        assert!(matches!(c.status().await, Err(Error::Connect { .. })));
    }

    #[tokio::test]
    async fn random_bytes_get_an_answer_or_a_close() {
        let s = start(None).await;
        for seed in 0u8..8 {
            let mut stream = TcpStream::connect(&s.address).await.expect("connect");
            let junk: Vec<u8> = (0..512u32)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect();
            let _ = stream.write_all(&junk).await;
            let answer = read_all(&mut stream).await;
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
                "{answer}"
            );
        }
        Client::new(&s.address)
            .expect("client")
            .health()
            .await
            .expect("still healthy");
        s.shut().await;
    }
}
