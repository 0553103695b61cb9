//! Route handlers and the request plumbing around them: JSON bodies read with a size
//! bound and a deadline, validation with the `command`/`sql` rules, bearer auth, one
//! tracing span per request, and JSON answers for unknown routes and methods.

use super::backend::{
    Backend, NodeRef, NodeRequest, QueryRequest, QueryResult, RemoveResult, RoleResult,
    SnapshotRequest, TransferResult, WriteResult, DEFAULT_QUERY_TIMEOUT, MAX_IDS,
    MAX_QUERY_TIMEOUT,
};
use super::{ApiError, ApiOptions};
use crate::command::{
    self, Command, DdlRequest, DeleteRequest, Entry, Input, InsertRequest, SqlRequest,
    SqlStatementRequest, UpdateRequest, Value, Wait, WriteRequest, MAX_ENTRY_BYTES, MAX_PARAMS,
};
use crate::service::{
    ClusterStatus, NodeStatus, ReadRequest, ServiceError, SnapshotCreated, SnapshotList,
};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::limit::GlobalConcurrencyLimitLayer;
use tracing::Instrument;

/// Bodies above this are parsed and validated on a blocking thread: lexing a large batch
/// takes milliseconds that must not stall the runtime's workers.
pub(super) const INLINE_PARSE_BYTES: usize = 64 << 10;
/// Longest client-supplied text echoed back in an error message.
const MAX_ECHO_CHARS: usize = 300;

pub(super) struct AppState<B> {
    backend: Arc<B>,
    options: Arc<ApiOptions>,
}

impl<B> AppState<B> {
    pub(super) fn backend(&self) -> &B {
        &self.backend
    }
}

impl<B> Clone for AppState<B> {
    fn clone(&self) -> Self {
        AppState {
            backend: self.backend.clone(),
            options: self.options.clone(),
        }
    }
}

pub(super) fn router<B: Backend>(backend: Arc<B>, options: Arc<ApiOptions>) -> Router {
    let state = AppState {
        backend,
        options: options.clone(),
    };
    let protected = Router::new()
        .route("/write/insert", post(write_insert::<B>))
        .route("/write/update", post(write_update::<B>))
        .route("/write/delete", post(write_delete::<B>))
        .route("/write/ddl", post(write_ddl::<B>))
        .route("/write/sql", post(write_sql::<B>))
        .route("/query", post(query::<B>))
        .route("/id", get(ids::<B>))
        .route("/status", get(status::<B>))
        .route("/cluster", get(cluster::<B>))
        .route("/cluster/nodes", get(cluster_nodes::<B>))
        .route("/cluster/remove", post(cluster_remove::<B>))
        .route("/cluster/transfer-leader", post(cluster_transfer::<B>))
        .route("/check", post(check::<B>))
        .route("/resync", post(resync::<B>))
        .route("/cluster/promote", post(cluster_promote::<B>))
        .route("/cluster/demote", post(cluster_demote::<B>))
        .route(
            "/snapshot",
            post(snapshot_create::<B>).get(snapshot_list::<B>),
        )
        .route("/metrics", get(super::observe::metrics::<B>))
        .route("/events", get(super::observe::events::<B>))
        .route_layer(middleware::from_fn_with_state(options.clone(), auth))
        // One semaphore for every route: at most this many requests run on the node at
        // once; the rest wait (the connection limit bounds how many can wait). `/health`,
        // `/livez` and the static UI files stay outside so probes answer under load.
        .route_layer(GlobalConcurrencyLimitLayer::new(
            options.max_concurrent_requests.max(1),
        ));
    Router::new()
        .route("/health", get(health::<B>))
        .route("/livez", get(livez))
        .merge(super::observe::public_routes::<B>())
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

/// One span per request with method, route and status; no bodies, no parameters.
async fn trace(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let response = next.run(request).await;
        tracing::Span::current().record("status", response.status().as_u16());
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(elapsed_ms, "request served");
        response
    }
    .instrument(span)
    .await
}

/// Routes the read-only token may call, by method and matched route; every other
/// protected route (writes, cluster changes, new routes by default) needs the admin token.
const READ_ROUTES: &[(Method, &str)] = &[
    (Method::POST, "/query"),
    (Method::GET, "/id"),
    (Method::GET, "/status"),
    (Method::GET, "/cluster"),
    (Method::GET, "/cluster/nodes"),
    (Method::GET, "/snapshot"),
];

async fn auth(State(options): State<Arc<ApiOptions>>, request: Request, next: Next) -> Response {
    let Some(admin) = &options.token else {
        return next.run(request).await;
    };
    let given = bearer(request.headers());
    if given.is_some_and(|g| admin.matches(g)) {
        return next.run(request).await;
    }
    let reader = given.is_some_and(|g| options.read_token.is_some_and(|r| r.matches(g)));
    if !reader {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this node requires `Authorization: Bearer <api token>`",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", |p| p.as_str());
    if READ_ROUTES
        .iter()
        .any(|(m, r)| m == request.method() && *r == route)
    {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "the read-only token may not call {} {}; use the admin token",
            request.method(),
            echo(request.uri().path())
        ),
    )
    .into_response()
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let (scheme, given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(given.trim())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {}", echo(uri.path())),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            echo(method.as_str()),
            echo(uri.path())
        ),
    )
}

/// Client text cut to [`MAX_ECHO_CHARS`] for an error message.
fn echo(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_ECHO_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The body of a JSON request: content type checked, at most `max_body_bytes` read (a
/// declared length over the bound is refused before reading anything), within the body
/// deadline.
async fn read_body(options: &ApiOptions, request: Request) -> Result<bytes::Bytes, ApiError> {
    let (parts, body) = request.into_parts();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let limit = options.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the request body is larger than the limit of {limit} bytes (api.max_body_bytes)"
            ),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        // A client that sent a somewhat-too-large body usually reads the answer only once
        // it has sent everything: read the rest and drop it, so it gets a clean 413 and
        // may keep the connection. Far over the limit, answer at once and close.
        if n - limit as u64 <= OVER_LIMIT_DRAIN_BYTES {
            let drained = tokio::time::timeout(options.body_timeout, drain(body, n)).await;
            if matches!(drained, Ok(true)) {
                return Err(too_large());
            }
        }
        return Err(too_large().closing());
    }
    let read = tokio::time::timeout(options.body_timeout, Limited::new(body, limit).collect());
    match read.await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s",
                options.body_timeout.as_secs()
            ),
        )
        .closing()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large().closing()),
        Ok(Err(_)) => {
            Err(ApiError::bad_request("bad_body", "the request body could not be read").closing())
        }
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// How far over `api.max_body_bytes` a declared body is still read (and dropped) before
/// the 413, rather than answered at once with the connection closed.
const OVER_LIMIT_DRAIN_BYTES: u64 = 16 << 20;

/// Reads and drops `body`; whether it ended cleanly within `declared` bytes.
async fn drain(mut body: axum::body::Body, declared: u64) -> bool {
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(data) = f.data_ref() {
                    seen += data.len() as u64;
                    if seen > declared {
                        return false;
                    }
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Parses `bytes` as `T`, with serde's reason in a 400.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => "invalid_request",
            _ => "invalid_json",
        };
        ApiError::bad_request(
            code,
            format!("invalid request body: {}", echo(&e.to_string())),
        )
    })
}

/// Runs `work` inline for small bodies, on a blocking thread for large ones.
async fn cpu<T: Send + 'static>(
    size: usize,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if size <= INLINE_PARSE_BYTES {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::from(ServiceError::Internal(format!("parse task: {e}"))))?
}

/// Parses a write body and validates it with [`crate::service::check_write`] (leader
/// clock and IDs are the backend's; only the refusals matter here).
fn parse_write<T: DeserializeOwned>(
    bytes: &[u8],
    wrap: fn(T) -> WriteRequest,
) -> Result<WriteRequest, ApiError> {
    let request = wrap(parse::<T>(bytes)?);
    crate::service::check_write(&request)?;
    Ok(request)
}

async fn write<B: Backend, T: DeserializeOwned + 'static>(
    state: AppState<B>,
    request: Request,
    wrap: fn(T) -> WriteRequest,
) -> Result<Json<WriteResult>, ApiError> {
    let started = Instant::now();
    // The router's own path, so the label takes one of five values.
    let route = request
        .uri()
        .path()
        .trim_start_matches("/write/")
        .to_string();
    let answer: Result<_, ApiError> = async {
        let bytes = read_body(&state.options, request).await?;
        let write = cpu(bytes.len(), move || parse_write(&bytes, wrap)).await?;
        tracing::debug!(wait = ?write.wait(), "write accepted");
        crate::observe::metrics::write_stage("parse", started.elapsed());
        Ok(Json(WriteResult::from(state.backend.write(write).await?)))
    }
    .await;
    let outcome = answer
        .as_ref()
        .map(|_| ())
        .map_err(|e| e.body.code.as_str());
    crate::observe::metrics::write_done(&route, outcome, started.elapsed());
    answer
}

async fn write_insert<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<WriteResult>, ApiError> {
    write::<B, InsertRequest>(s, r, WriteRequest::Insert).await
}

async fn write_update<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<WriteResult>, ApiError> {
    write::<B, UpdateRequest>(s, r, WriteRequest::Update).await
}

async fn write_delete<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<WriteResult>, ApiError> {
    write::<B, DeleteRequest>(s, r, WriteRequest::Delete).await
}

async fn write_ddl<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<WriteResult>, ApiError> {
    write::<B, DdlRequest>(s, r, WriteRequest::Ddl).await
}

async fn write_sql<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<WriteResult>, ApiError> {
    write::<B, SqlRequest>(s, r, WriteRequest::Sql).await
}

async fn query<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<QueryResult>, ApiError> {
    let mut consistency = "invalid";
    let answer: Result<_, ApiError> = async {
        let bytes = read_body(&s.options, r).await?;
        let query = cpu(bytes.len(), move || {
            check_query(parse::<QueryRequest>(&bytes)?)
        })
        .await?;
        consistency = query.consistency.as_str();
        Ok(Json(QueryResult::from(s.backend.query(query).await?)))
    }
    .await;
    let outcome = answer
        .as_ref()
        .map(|_| ())
        .map_err(|e| e.body.code.as_str());
    crate::observe::metrics::read_done(consistency, outcome);
    answer
}

/// Validates a read: one read statement, placeholders matching `params`, every value
/// bindable, a sane timeout.
pub(super) fn check_query(request: QueryRequest) -> Result<ReadRequest, ApiError> {
    if request.sql.len() > MAX_ENTRY_BYTES {
        return Err(command::Error::TooLarge {
            what: "the SQL text (bytes)",
            limit: MAX_ENTRY_BYTES,
            actual: request.sql.len(),
        }
        .into());
    }
    if request.params.len() > MAX_PARAMS {
        return Err(command::Error::TooLarge {
            what: "parameters of one statement",
            limit: MAX_PARAMS,
            actual: request.params.len(),
        }
        .into());
    }
    let sql = crate::sql::check_read(&request.sql, request.params.len())
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?
        .to_string();
    let timeout = match request.timeout_ms {
        None => DEFAULT_QUERY_TIMEOUT,
        Some(ms) if Duration::from_millis(ms) <= MAX_QUERY_TIMEOUT => Duration::from_millis(ms),
        Some(ms) => {
            return Err(ApiError::bad_request(
                "invalid_timeout",
                format!(
                    "`timeout_ms` {ms} exceeds the limit of {}",
                    MAX_QUERY_TIMEOUT.as_millis()
                ),
            ))
        }
    };
    Ok(ReadRequest {
        sql_mode: None,
        sql,
        params: bind(request.params)?,
        consistency: request.consistency,
        min_lsn: request.min_lsn,
        timeout,
    })
}

/// Binds query values with the exact rules writes use. `command::request` keeps its value
/// conversion private, so the values go through a dry-run batch statement whose
/// placeholders match them; only the converted values are kept.
fn bind(params: Vec<Input>) -> Result<Vec<Value>, ApiError> {
    if params.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; params.len()].join(",");
    let carrier = WriteRequest::Sql(SqlRequest {
        statements: vec![SqlStatementRequest {
            sql: format!("INSERT INTO t VALUES ({marks})"),
            params,
        }],
        transaction: false,
        wait: Wait::Quorum,
    });
    match command::prepare(carrier, 0, &mut || 0) {
        Ok(Entry {
            command: Command::Sql { mut statements, .. },
            ..
        }) if statements.len() == 1 => Ok(statements.remove(0).params),
        Ok(_) => Err(ServiceError::Internal(
            "binding query values built an unexpected command".into(),
        )
        .into()),
        Err(command::Error::InvalidValue { at, reason }) => Err(ApiError::bad_request(
            "invalid_value",
            format!(
                "invalid value for {}: {reason}",
                at.replace("statement 0 parameter", "`params` element")
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdParams {
    count: Option<String>,
}

/// `GET /id` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct Ids {
    pub(super) ids: Vec<u64>,
}

async fn ids<B: Backend>(State(s): State<AppState<B>>, uri: Uri) -> Result<Json<Ids>, ApiError> {
    let params = axum::extract::Query::<IdParams>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request("invalid_query", echo(&e.body_text())))?;
    let count = match params.0.count {
        None => 1,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_IDS).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_count",
                    format!("`count` must be an integer from 1 to {MAX_IDS}"),
                )
            })?,
    };
    Ok(Json(Ids {
        ids: s.backend.ids(count).await?,
    }))
}

/// `GET /health` answer when the node can serve.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct Health {
    pub(super) status: String,
}

/// Readiness, for load balancers: 200 only while the node serves reads and writes; 503
/// with the reason otherwise (NO_QUORUM, no known leader, SYNCING, DEGRADED, …).
async fn health<B: Backend>(State(s): State<AppState<B>>) -> Result<Json<Health>, ApiError> {
    match s.backend.status().not_ready_reason(s.backend.ready()) {
        None => Ok(Json(Health {
            status: "ok".into(),
        })),
        Some(reason) => Err(ServiceError::NotReady {
            reason,
            retry_after: 1,
        }
        .into()),
    }
}

/// Liveness: 200 while the process serves HTTP, whatever the cluster's state.
async fn livez() -> Json<Health> {
    Json(Health {
        status: "alive".into(),
    })
}

async fn status<B: Backend>(State(s): State<AppState<B>>) -> Json<NodeStatus> {
    Json(s.backend.status())
}

async fn cluster<B: Backend>(State(s): State<AppState<B>>) -> Json<ClusterStatus> {
    Json(s.backend.cluster().await)
}

/// `GET /cluster/nodes` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub(super) struct Nodes {
    pub(super) nodes: Vec<NodeStatus>,
}

async fn cluster_nodes<B: Backend>(State(s): State<AppState<B>>) -> Json<Nodes> {
    Json(Nodes {
        nodes: s.backend.cluster().await.nodes,
    })
}

/// Reads `{"node": name or number}`.
async fn node_request(options: &ApiOptions, request: Request) -> Result<String, ApiError> {
    let bytes = read_body(options, request).await?;
    let node = match parse::<NodeRequest>(&bytes)?.node {
        NodeRef::Number(n) => n.to_string(),
        NodeRef::Name(name) => name.trim().to_string(),
    };
    if node.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_node",
            "`node` must name a member (its name or number)",
        ));
    }
    if node.chars().count() > MAX_ECHO_CHARS {
        return Err(ApiError::bad_request(
            "invalid_node",
            format!("`node` is longer than {MAX_ECHO_CHARS} characters"),
        ));
    }
    Ok(node)
}

async fn cluster_remove<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<RemoveResult>, ApiError> {
    let node = node_request(&s.options, r).await?;
    tracing::info!(node = %node, "cluster remove requested");
    Ok(Json(s.backend.remove_node(node).await?))
}

async fn cluster_transfer<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<TransferResult>, ApiError> {
    let node = node_request(&s.options, r).await?;
    tracing::info!(node = %node, "leadership transfer requested");
    Ok(Json(s.backend.transfer_leader(node).await?))
}

async fn cluster_promote<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<RoleResult>, ApiError> {
    let node = node_request(&s.options, r).await?;
    tracing::info!(node = %node, "promotion requested");
    Ok(Json(s.backend.promote_node(node).await?))
}

async fn cluster_demote<B: Backend>(
    State(s): State<AppState<B>>,
    r: Request,
) -> Result<Json<RoleResult>, ApiError> {
    let node = node_request(&s.options, r).await?;
    tracing::info!(node = %node, "demotion requested");
    Ok(Json(s.backend.demote_node(node).await?))
}

/// `POST /snapshot`: an empty body or `{"purge": bool}`.
async fn snapshot_create<B: Backend>(
    State(s): State<AppState<B>>,
    request: Request,
) -> Result<Json<SnapshotCreated>, ApiError> {
    let empty = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    let ask = if empty {
        SnapshotRequest::default()
    } else {
        let bytes = read_body(&s.options, request).await?;
        if bytes.is_empty() {
            SnapshotRequest::default()
        } else {
            parse::<SnapshotRequest>(&bytes)?
        }
    };
    Ok(Json(s.backend.snapshot_create(ask.purge).await?))
}

/// `GET /snapshot`.
async fn snapshot_list<B: Backend>(
    State(s): State<AppState<B>>,
) -> Result<Json<SnapshotList>, ApiError> {
    Ok(Json(s.backend.snapshot_list().await?))
}

/// `POST /resync`: any body is ignored; admin token (not a read route).
async fn resync<B: Backend>(
    State(s): State<AppState<B>>,
) -> Result<Json<super::ResyncDone>, ApiError> {
    tracing::info!("resync requested");
    Ok(Json(s.backend.resync().await?))
}

/// `POST /check`: any body is ignored.
async fn check<B: Backend>(
    State(s): State<AppState<B>>,
) -> Result<Json<super::CheckReport>, ApiError> {
    Ok(Json(s.backend.check().await?))
}
