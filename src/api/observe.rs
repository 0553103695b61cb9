//! The operator routes: `/metrics` (Prometheus text), `/events` (recent lifecycle events),
//! the dashboard at `/ui` and the API description at `/openapi.json`. The dashboard's
//! assets and the API description carry no data and need no token; the page itself asks
//! for the token and sends it with every call.

use super::handlers::AppState;
use super::{ApiError, Backend};
use crate::observe::{events::EventList, metrics as m, ui};
use crate::service::ServiceError;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

/// The routes anyone may read.
pub(super) fn public_routes<B: Backend>() -> Router<AppState<B>> {
    Router::new()
        .route(
            "/ui",
            get(|| async { page(ui::INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/ui/app.js",
            get(|| async { page(ui::APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/ui/style.css",
            get(|| async { page(ui::STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/openapi.json", get(openapi))
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The page may talk only to the node that served it.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    r
}

/// `GET /metrics`: the Prometheus text exposition format 0.0.4.
pub(super) async fn metrics<B: Backend>(
    State(s): State<AppState<B>>,
) -> Result<Response, ApiError> {
    let obs = s.backend().observe();
    let text =
        m::render(&obs).map_err(|e| ApiError::from(ServiceError::Internal(e.to_string())))?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

/// `GET /events`.
pub(super) async fn events<B: Backend>(State(s): State<AppState<B>>) -> Json<EventList> {
    Json(s.backend().events())
}

/// `GET /openapi.json`.
async fn openapi() -> Response {
    let mut r = super::openapi::json().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
