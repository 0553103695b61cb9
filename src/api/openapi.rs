//! The OpenAPI 3 description served at `/openapi.json`. Every request and answer schema
//! is derived from the very types the handlers parse and send (`utoipa::ToSchema`), so it
//! cannot drift from them; the routes and their status codes are listed here, and a test
//! checks that each documented route exists on the router and each route is documented.

use super::backend::{
    ErrorBody, NodeRef, NodeRequest, QueryRequest, QueryResult, RemoveResult, RoleResult,
    SnapshotRequest, StatementResult, TransferResult, WriteResult,
};
use super::handlers::{Health, Ids, Nodes};
use crate::apply::Divergence;
use crate::command::{
    DdlRequest, DeleteRequest, Fields, Input, InsertRequest, SqlRequest, SqlStatementRequest,
    UpdateRequest, Wait,
};
use crate::observe::events::{Event, EventKind, EventList};
use crate::service::{
    CheckReport, CheckSummary, ClusterStatus, Consistency, NodeProblem, NodeState, NodeStatus,
    RangeDiff, ResyncDone, Role, RowDiff, RowDiffKind, SnapshotCreated, SnapshotInfo, SnapshotList,
    TableCheck,
};
use crate::snapshot::{Phase, SyncProgress};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The description as JSON text.
pub(super) fn json() -> String {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"openapi: {e}\",\"code\":\"internal\"}}"))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "WolfScale",
        description = "One node of a WolfScale cluster: replicated writes, reads, cluster \
                       status and administration. Every error is JSON {\"error\", \"code\"}."
    ),
    paths(
        write_insert, write_update, write_delete, write_ddl, write_sql, query, id, health,
        livez, status, cluster, cluster_nodes, cluster_remove, cluster_promote, cluster_demote, cluster_transfer, snapshot_create,
        snapshot_list, metrics, events, ui, openapi_json, check, resync
    ),
    components(schemas(
        ClusterStatus, Consistency, ErrorBody, NodeRef, NodeRequest, NodeState, NodeStatus,
        QueryRequest, QueryResult, RemoveResult, Role, RoleResult, SnapshotCreated, SnapshotInfo,
        SnapshotList, SnapshotRequest, StatementResult, TransferResult, WriteResult, Health,
        Ids, Nodes, DdlRequest, DeleteRequest, Fields, Input, InsertRequest, SqlRequest,
        SqlStatementRequest, UpdateRequest, Wait, Event, EventKind, EventList, Phase,
        SyncProgress, CheckReport, CheckSummary, NodeProblem, TableCheck, RangeDiff, RowDiff,
        RowDiffKind, Divergence, ResyncDone
    )),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`api.token`; required only when the node sets one"))
                    .build(),
            ),
        );
    }
}

// The route list: one documentation anchor per route (the handlers themselves are generic
// over the backend). Status codes are the ones the handlers and `ServiceError` produce.

#[utoipa::path(post, path = "/write/insert", tag = "writes", request_body = InsertRequest,
    responses(
        (status = 200, description = "committed and applied on the leader", body = WriteResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "unknown table or column", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "duplicate key or another constraint", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader or not ready; see Retry-After", body = ErrorBody),
        (status = 504, description = "`wait: all` timed out; the entry is committed", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn write_insert() {}

#[utoipa::path(post, path = "/write/update", tag = "writes", request_body = UpdateRequest,
    responses(
        (status = 200, description = "committed and applied on the leader", body = WriteResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "unknown table or column", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "duplicate key or another constraint", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader or not ready; see Retry-After", body = ErrorBody),
        (status = 504, description = "`wait: all` timed out; the entry is committed", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn write_update() {}

#[utoipa::path(post, path = "/write/delete", tag = "writes", request_body = DeleteRequest,
    responses(
        (status = 200, description = "committed and applied on the leader", body = WriteResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "unknown table or column", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "a constraint refused it", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader or not ready; see Retry-After", body = ErrorBody),
        (status = 504, description = "`wait: all` timed out; the entry is committed", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn write_delete() {}

#[utoipa::path(post, path = "/write/ddl", tag = "writes", request_body = DdlRequest,
    responses(
        (status = 200, description = "committed and applied on the leader", body = WriteResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "unknown table", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "the table exists or another conflict", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader or not ready; see Retry-After", body = ErrorBody),
        (status = 504, description = "`wait: all` timed out; the entry is committed", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn write_ddl() {}

#[utoipa::path(post, path = "/write/sql", tag = "writes", request_body = SqlRequest,
    responses(
        (status = 200, description = "committed and applied on the leader", body = WriteResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "unknown table or column", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "duplicate key or another constraint", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader or not ready; see Retry-After", body = ErrorBody),
        (status = 504, description = "`wait: all` timed out; the entry is committed", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn write_sql() {}

#[utoipa::path(post, path = "/query", tag = "reads", request_body = QueryRequest,
    responses(
        (status = 200, description = "the rows", body = QueryResult),
        (status = 400, description = "invalid request or statement", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "unknown table or column", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "MariaDB refused the statement", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader or not ready; see Retry-After", body = ErrorBody),
        (status = 504, description = "`min_lsn` or the consistency wait timed out", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn query() {}

#[utoipa::path(get, path = "/id", tag = "reads",
    params(("count" = Option<u32>, Query, description = "how many IDs, 1 to 10000; default 1",
            minimum = 1, maximum = 10000)),
    responses(
        (status = 200, description = "fresh Snowflake IDs", body = Ids),
        (status = 400, description = "invalid count", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 503, description = "the node cannot generate IDs now", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn id() {}

#[utoipa::path(get, path = "/health", tag = "status", security(()),
    responses(
        (status = 200, description = "the node serves reads and writes", body = Health),
        (status = 503, description = "not ready; see Retry-After", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn health() {}

#[utoipa::path(post, path = "/check", tag = "cluster",
    responses(
        (status = 200, description = "every member compared at one LSN (may take minutes)", body = CheckReport),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 403, description = "the read-only token cannot start a check", body = ErrorBody),
        (status = 503, description = "no leader to order the check barrier; retry", body = ErrorBody),
        (status = 504, description = "the barrier or a member did not answer in time", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn check() {}

#[utoipa::path(post, path = "/resync", tag = "cluster",
    responses(
        (status = 200, description = "this node's replicated database was replaced with a fresh snapshot of the leader's; it is ACTIVE and applies the log again (may take minutes; the node is SYNCING meanwhile)", body = ResyncDone),
        (status = 400, description = "this node cannot take part in state transfer", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 403, description = "the read-only token cannot resync a node", body = ErrorBody),
        (status = 409, description = "this node leads (code `leader`; transfer leadership first) or a resync is already running (`busy`)", body = ErrorBody),
        (status = 503, description = "no leader, or the transfer or load failed (the reason is in the body); retry", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn resync() {}

#[utoipa::path(get, path = "/livez", tag = "status", security(()),
    responses((status = 200, description = "the process serves HTTP (whatever the cluster's state)",
               body = Health)))]
#[allow(dead_code)]
fn livez() {}

#[utoipa::path(get, path = "/status", tag = "status",
    responses(
        (status = 200, description = "this node", body = NodeStatus),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn status() {}

#[utoipa::path(get, path = "/cluster", tag = "status",
    responses(
        (status = 200, description = "the leader and every member", body = ClusterStatus),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn cluster() {}

#[utoipa::path(get, path = "/cluster/nodes", tag = "status",
    responses(
        (status = 200, description = "every member", body = Nodes),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn cluster_nodes() {}

#[utoipa::path(post, path = "/cluster/promote", tag = "admin", request_body = NodeRequest,
    responses(
        (status = 200, description = "the learner is a voter now", body = RoleResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 403, description = "the read-only token cannot change the membership", body = ErrorBody),
        (status = 404, description = "no such member", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "refused (learner_behind, not a learner, …)", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader; see Retry-After", body = ErrorBody),
        (status = 504, description = "the change did not complete in time", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn cluster_promote() {}

#[utoipa::path(post, path = "/cluster/demote", tag = "admin", request_body = NodeRequest,
    responses(
        (status = 200, description = "the voter is a learner now", body = RoleResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 403, description = "the read-only token cannot change the membership", body = ErrorBody),
        (status = 404, description = "no such member", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "refused (is_leader, last voter, no quorum, …)", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader; see Retry-After", body = ErrorBody),
        (status = 504, description = "the change did not complete in time", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn cluster_demote() {}

#[utoipa::path(post, path = "/cluster/remove", tag = "admin", request_body = NodeRequest,
    responses(
        (status = 200, description = "the membership without it is committed", body = RemoveResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such member", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "refused (last voter, no quorum, …)", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader; see Retry-After", body = ErrorBody),
        (status = 504, description = "the change did not complete in time", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn cluster_remove() {}

#[utoipa::path(post, path = "/cluster/transfer-leader", tag = "admin", request_body = NodeRequest,
    responses(
        (status = 200, description = "it leads now", body = TransferResult),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no such member", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "refused (not a voter, …)", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "no leader; see Retry-After", body = ErrorBody),
        (status = 504, description = "the transfer did not complete in time", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn cluster_transfer() {}

#[utoipa::path(post, path = "/snapshot", tag = "admin", request_body(content = Option<SnapshotRequest>),
    responses(
        (status = 200, description = "the snapshot taken", body = SnapshotCreated),
        (status = 400, description = "invalid request", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 408, description = "body not sent in time", body = ErrorBody),
        (status = 409, description = "another snapshot is being taken", body = ErrorBody),
        (status = 413, description = "too large", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 503, description = "not ready; see Retry-After", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn snapshot_create() {}

#[utoipa::path(get, path = "/snapshot", tag = "admin",
    responses(
        (status = 200, description = "snapshots held and any transfer", body = SnapshotList),
        (status = 400, description = "this node keeps no snapshots", body = ErrorBody),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn snapshot_list() {}

#[utoipa::path(get, path = "/metrics", tag = "observability",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
         content_type = "text/plain"),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn metrics() {}

#[utoipa::path(get, path = "/events", tag = "observability",
    responses(
        (status = 200, description = "recent lifecycle events, oldest first", body = EventList),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
    ))]
#[allow(dead_code)]
fn events() {}

#[utoipa::path(get, path = "/ui", tag = "observability", security(()),
    responses((status = 200, description = "the web dashboard", body = String,
               content_type = "text/html")))]
#[allow(dead_code)]
fn ui() {}

#[utoipa::path(get, path = "/openapi.json", tag = "observability", security(()),
    responses((status = 200, description = "this description", body = Object,
               content_type = "application/json")))]
#[allow(dead_code)]
fn openapi_json() {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::router;
    use crate::api::tests::{options, Fake};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use std::sync::Arc;
    use tower::ServiceExt;

    /// Every documented route and method is served (none answers 404 or 405), and the
    /// description is valid JSON naming every schema it references.
    #[tokio::test]
    async fn every_documented_route_exists() {
        let doc: serde_json::Value = serde_json::from_str(&json()).expect("description is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let r = router(Arc::new(Fake::default()), options(None));
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 19, "{}", paths.len());
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                let request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(path.as_str())
                    .body(Body::empty())
                    .expect("request");
                let status = r.clone().oneshot(request).await.expect("answer").status();
                assert!(
                    status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is documented but answers {status}"
                );
            }
        }
        let text = json();
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for (i, _) in text.match_indices("#/components/schemas/") {
            let name: String = text[i + 21..].chars().take_while(|c| *c != '"').collect();
            assert!(
                schemas.contains_key(&name),
                "{name} is referenced but not described"
            );
        }
    }
}
