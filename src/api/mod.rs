//! The HTTP API: routes, request parsing, error responses, auth and the server loop.
//!
//! It owns the JSON contract of SPEC.md and issue 5 (`/write/*`, `/query`, `/id`,
//! `/health`, `/status`, `/cluster`, `/cluster/nodes`) and checks every request with the
//! `command` and `sql` rules before the node sees it. It knows nothing of consensus, the
//! WAL or MariaDB: the node implements [`Backend`] over its [`crate::service::Service`],
//! where forwarding to the leader happens; this module translates the service's
//! results and errors into JSON and HTTP statuses. Every answer that is not a success is JSON `{"error": "…", "code": "…"}`,
//! including malformed requests, unknown routes and wrong methods.
//!
//! | route | body → answer |
//! |---|---|
//! | `POST /write/insert\|update\|delete\|ddl\|sql` | `command::request` types → [`WriteResult`] |
//! | `POST /query` | [`QueryRequest`] → [`QueryResult`] |
//! | `GET /id?count=N` | → `{"ids": [...]}` (1 ≤ N ≤ [`MAX_IDS`], default 1) |
//! | `GET /health` | readiness → 200 `{"status": "ok"}`, or 503 `not_ready` with the reason; never needs the token |
//! | `GET /livez` | liveness → 200 `{"status": "alive"}` while HTTP is served; never needs the token |
//! | `GET /status` | → [`NodeStatus`] |
//! | `GET /cluster` | → [`ClusterStatus`] |
//! | `GET /cluster/nodes` | → `{"nodes": [NodeStatus, ...]}` |
//! | `POST /cluster/remove` | [`NodeRequest`] → [`RemoveResult`] |
//! | `POST /cluster/transfer-leader` | [`NodeRequest`] → [`TransferResult`] |
//! | `POST /cluster/promote` | [`NodeRequest`] → [`RoleResult`] (a learner becomes a voter) |
//! | `POST /cluster/demote` | [`NodeRequest`] → [`RoleResult`] (a voter becomes a non-voting learner) |
//! | `POST /snapshot` | optional [`SnapshotRequest`] → [`SnapshotCreated`] (may take minutes) |
//! | `GET /snapshot` | → [`SnapshotList`] |
//! | `GET /metrics` | → Prometheus text format (`observe::metrics`) |
//! | `GET /events` | → `{"events": [...]}`: recent elections, membership changes, snapshots, status changes |
//! | `GET /ui` | → the web dashboard (no token needed for the page; it asks for one) |
//! | `GET /openapi.json` | → the OpenAPI 3 description of these routes (no token needed) |
//! | `POST /check` | → [`CheckReport`]: every member compared at one LSN (may take minutes) |
//! | `POST /resync` | → [`ResyncDone`]: this node's database replaced with a fresh snapshot of the leader's (may take minutes) |
//!
//! Statuses: 400 invalid (codes from `command::Error::code` and `sql::SqlError::code`, or
//! `invalid_json` / `invalid_request` for bodies serde refuses), 401 `unauthorized`, 403
//! `forbidden` (the read-only token on a write or admin route), 404
//! unknown route, table or member (`unknown_node`), 405, 408 body not sent within the
//! deadline, 409 constraint or refused cluster change (`last_voter`, `no_quorum`,
//! `not_voter`, `learner_behind`, `is_leader`, …), 413 body or entry too large, 415 not
//! `application/json`, 503 `no_leader` / `not_ready` / `quorum_lost` (with `retry_after`
//! and `Retry-After`), 504 `timeout` (with
//! `lagging`), 500 `internal`.

mod backend;
pub mod client;
mod handlers;
mod observe;
mod openapi;

pub use backend::{
    error_body, http_status, Backend, ErrorBody, NodeRef, NodeRequest, QueryRequest, QueryResult,
    RemoveResult, RoleResult, SnapshotRequest, StatementResult, TransferResult, WriteResult,
    DEFAULT_QUERY_TIMEOUT, MAX_IDS, MAX_QUERY_TIMEOUT,
};
// The service's types the API answers as they are: its JSON contract, documented in the
// OpenAPI description.
pub use crate::service::{
    check_text, CheckReport, CheckSummary, ClusterStatus, Consistency, NodeProblem, NodeState,
    NodeStatus, RangeDiff, ResyncDone, Role, RowDiff, RowDiffKind, SnapshotCreated, SnapshotInfo,
    SnapshotList, TableCheck,
};

use crate::service::ServiceError;

use crate::config::{ApiConfig, Secrets, TokenHash};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the router treats requests, from `[api]` and the resolved secrets.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Largest request body, in bytes (`api.max_body_bytes`).
    pub max_body_bytes: usize,
    /// Hash of the admin bearer token every route but `/health` and `/livez` requires,
    /// when set.
    pub token: Option<TokenHash>,
    /// Hash of the read-only token: `/query`, `/id` and the status routes only.
    pub read_token: Option<TokenHash>,
    /// Longest a client may take to send a request body: a trickling client is cut off.
    pub body_timeout: Duration,
    /// Most requests handled at once over all connections (`api.max_concurrent_requests`);
    /// further requests wait for a slot.
    pub max_concurrent_requests: usize,
}

impl ApiOptions {
    /// Options from the `[api]` section and the resolved token hashes.
    pub fn from_config(api: &ApiConfig, secrets: &Secrets) -> ApiOptions {
        ApiOptions {
            max_body_bytes: usize::try_from(api.max_body_bytes).unwrap_or(usize::MAX),
            token: secrets.api_admin_hash,
            read_token: secrets.api_read_hash,
            body_timeout: Duration::from_secs(10),
            max_concurrent_requests: usize::try_from(api.max_concurrent_requests)
                .unwrap_or(usize::MAX),
        }
    }
}

/// The router over `backend`; serve it with [`serve`], or call it directly in tests.
pub fn router<B: Backend>(backend: Arc<B>, options: ApiOptions) -> Router {
    // `/metrics` counts from now on even when the process installed no recorder yet.
    let _ = crate::observe::metrics::handle();
    handlers::router(backend, Arc::new(options))
}

/// An error answered to the client: status, and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
    /// Close the connection after answering (the request body was not read to its end).
    pub close: bool,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
            close: false,
        }
    }

    /// The same error, answered with `Connection: close`.
    pub fn closing(mut self) -> ApiError {
        self.close = true;
        self
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        if let ServiceError::Internal(detail) = &e {
            // Logged here, once; the client sees only a generic body.
            tracing::error!(error = %detail, "internal error serving request");
        }
        ApiError {
            status: StatusCode::from_u16(http_status(&e))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: error_body(&e),
            close: false,
        }
    }
}

impl From<crate::command::Error> for ApiError {
    fn from(e: crate::command::Error) -> Self {
        ApiError::from(ServiceError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.body.retry_after;
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // The request body is partly unread: the client must not send another request on
        // this connection, which is about to close.
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// How long a client may take to send a request's headers before its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections the API serves at once; past it the server stops accepting until one
/// closes, so further clients wait in the kernel's backlog instead of costing a task each.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long in-flight requests get to finish once shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Errors of the server loop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener's address could not be read.
    #[error("api listener: {0}")]
    Listener(#[from] std::io::Error),
}

/// Serves `router` on `listener` (HTTP/1.1) until `shutdown` is cancelled, then stops
/// accepting and gives open requests [`SHUTDOWN_GRACE`] to finish. Connections that do not
/// send their headers within [`HEADER_READ_TIMEOUT`] are closed (slow-loris).
///
/// # Errors
/// Only if the listener is unusable; accept errors (e.g. too many open files) are logged
/// and retried.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    serve_with(listener, router, HEADER_READ_TIMEOUT, shutdown).await
}

/// [`serve`] with another header-read timeout (tests use a short one).
///
/// # Errors
/// As [`serve`].
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    serve_limited(listener, router, header_timeout, MAX_CONNECTIONS, shutdown).await
}

/// [`serve_with`] serving at most `max_connections` connections at once.
///
/// # Errors
/// As [`serve`].
pub async fn serve_limited(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let limits = (header_timeout, max_connections);
    serve_inner(listener, router, limits, None, shutdown).await
}

/// [`serve_limited`] over HTTPS only: each connection is a TLS session using the certificate
/// current in `tls` when it was accepted (so a reloaded certificate reaches new
/// connections). A client that does not complete the TLS handshake within the
/// header-read timeout is closed.
///
/// # Errors
/// As [`serve`].
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    tls: Arc<crate::tls::Tls>,
    max_connections: usize,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let limits = (HEADER_READ_TIMEOUT, max_connections);
    serve_inner(listener, router, limits, Some(tls), shutdown).await
}

async fn serve_inner(
    listener: TcpListener,
    router: Router,
    (header_timeout, max_connections): (Duration, usize),
    tls: Option<Arc<crate::tls::Tls>>,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let local = listener.local_addr()?;
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    tracing::info!(address = %local, "api listening");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let tasks = TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                // The semaphore lives as long as this loop and is never closed.
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "api accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.as_ref().map(|t| t.current().api_server.clone());
        tasks.spawn(async move {
            let _slot = slot;
            let stream: Box<dyn crate::transport::Stream> = match tls {
                None => Box::new(stream),
                Some(cfg) => {
                    let accept = tokio_rustls::TlsAcceptor::from(cfg).accept(stream);
                    match tokio::time::timeout(header_timeout, accept).await {
                        Ok(Ok(s)) => Box::new(s),
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "api TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "api TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(peer = %peer, error = %e, "api connection ended with an error");
            }
        });
    }
    drop(listener);
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "api connections still open after the grace period"
        );
    }
    tracing::info!(address = %local, "api stopped");
    Ok(())
}

#[cfg(test)]
pub(super) mod tests;
