//! A typed HTTP client for one node's API, used by the CLI (`wolfscale status`) and by the
//! integration tests. It speaks plain HTTP/1.1 over hyper (the stack the server already
//! runs on) and decodes every error answer from its JSON body. It does not retry and does
//! not pick nodes: callers decide where to send what.

use super::backend::{
    ClusterStatus, ErrorBody, NodeStatus, QueryRequest, QueryResult, WriteResult,
};
use super::handlers::{Health, Ids, Nodes};
use crate::command::{DdlRequest, DeleteRequest, InsertRequest, SqlRequest, UpdateRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{header, Method, Request, StatusCode, Uri};
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
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
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
            http: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        })
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

    /// `GET /status`: this node.
    pub async fn status(&self) -> Result<NodeStatus, Error> {
        self.get("/status").await
    }

    /// `GET /cluster`: leader, term and every member.
    pub async fn cluster(&self) -> Result<ClusterStatus, Error> {
        self.get("/cluster").await
    }

    /// `GET /cluster/nodes`: every member.
    pub async fn nodes(&self) -> Result<Vec<NodeStatus>, Error> {
        self.get::<Nodes>("/cluster/nodes").await.map(|n| n.nodes)
    }

    /// `GET /id?count=N`: fresh Snowflake IDs from this node.
    pub async fn ids(&self, count: usize) -> Result<Vec<u64>, Error> {
        self.get::<Ids>(&format!("/id?count={count}"))
            .await
            .map(|i| i.ids)
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
        let uri = format!("http://{}{path_and_query}", self.address);
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
