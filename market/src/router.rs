//! The market's routes: the page and its forms, the JSON API, the live
//! panel's events, the static files and operations (`/_health`,
//! `/_metrics`), with the middleware every request goes through.

use crate::{api, app::App, csrf, page, panel::live, session};
use axum::http::HeaderValue;
use axum::{
    http::header,
    middleware,
    routing::{get, post},
    Router,
};
use beacon_kit::{
    error::{json_errors, JsonError},
    metrics::record_latency,
};
use prometheus_client::encoding::text::encode;
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

/// The whole market: page, forms, JSON API, live events, operations.
pub fn router(app: App) -> Router {
    let requests = Arc::clone(&app.requests);
    let deadlines = app.deadlines.clone();
    let session_keys = app.session_keys.clone();
    let overload = app.overload.clone();
    Router::new()
        .route("/", get(page::index))
        .route("/cart/add", post(page::add))
        .route("/cart/remove", post(page::remove))
        .route("/checkout", post(page::checkout))
        .route("/static/market.css", get(css))
        .route("/static/market.js", get(js))
        .route("/static/details.js", get(details_js))
        .route("/api/things", get(api::things))
        .route("/api/status", get(api::status))
        .route("/api/events", get(live::events))
        .route("/api/cart", get(api::cart))
        .route(
            "/api/cart/items/{thing}",
            post(api::add).delete(api::remove),
        )
        .route("/api/checkout", post(api::checkout))
        .route("/api/customers", get(api::find_customers))
        .route(
            "/api/customers/{id}",
            get(api::get_customer).put(api::put_customer),
        )
        // Operations stay answerable however busy the pages are.
        .route_layer(overload)
        .route("/_health", get(health))
        .route("/_metrics", get(metrics))
        .fallback(|| async { JsonError::not_found() })
        .method_not_allowed_fallback(|| async {
            JsonError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(deadlines)
        .layer(middleware::from_fn(csrf::guard))
        .layer(middleware::from_fn_with_state(
            session_keys,
            session::ensure_session,
        ))
        .layer(middleware::from_fn(json_errors))
        // Against script injection, MIME sniffing, framing, referrer leaks.
        .layer(always(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(always(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(always(header::X_FRAME_OPTIONS, "DENY"))
        .layer(always(header::REFERRER_POLICY, "same-origin"))
        .layer(middleware::from_fn_with_state(requests, record_latency))
        .with_state(app)
}

/// The content security policy of every answer: scripts, styles and
/// connections from the market itself only (no inline script anywhere),
/// never framed, forms posting back here only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A header set on every answer that has none of its own.
fn always(name: header::HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// Query of `/_health`.
#[derive(Debug, serde::Deserialize)]
struct HealthQuery {
    #[serde(default)]
    deep: bool,
}

/// `GET /_health`: 200 while serving; with `?deep=true` also has the
/// store commit a write, and answers 503 with the reason (code
/// `store_unavailable`, or `insufficient_storage` for a full disk) when it
/// can't.
async fn health(
    axum::extract::State(app): axum::extract::State<App>,
    query: Result<axum::extract::Query<HealthQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<serde_json::Value>, api::AppError> {
    let axum::extract::Query(query) = query.map_err(|e| {
        api::AppError::bad_request("invalid_query", format!("deep must be true or false: {e}"))
    })?;
    if !query.deep {
        return Ok(axum::Json(serde_json::json!({"status": "ok"})));
    }
    if let Err(e) = app.store.check().await {
        tracing::warn!("deep health: the store can't take a write: {e}");
        let status = axum::http::StatusCode::SERVICE_UNAVAILABLE;
        return Err(api::AppError::Plain(JsonError::new(
            status,
            e.code(),
            e.to_string(),
        )));
    }
    let engine = match app.store.engine() {
        crate::store::Engine::Sqlite => "sqlite",
        crate::store::Engine::Postgres => "postgres",
    };
    Ok(axum::Json(
        serde_json::json!({"status": "ok", "store": engine}),
    ))
}

async fn css() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/market.css"),
    )
}

async fn js() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/market.js"),
    )
}

async fn details_js() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/details.js"),
    )
}

async fn metrics(axum::extract::State(app): axum::extract::State<App>) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &app.metrics);
    out
}
