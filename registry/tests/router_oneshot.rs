//! The registry's router driven in memory with `tower::ServiceExt::oneshot`:
//! no socket, no process, the paused clock — the contract's core rows,
//! deterministic and fast. (`registry_api.rs` runs the whole contract over
//! real TCP, against both stores.)

use axum::{body::Body, Router};
use beacon_registry::{
    http::{auth::WriteAuth, router, AppState},
    metrics::Metrics,
    store::MemoryStore,
};
use beacon_wire::{ErrorBody, ErrorCode, Instance, ServiceInstances};
use http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

fn app(token: Option<&str>) -> Router {
    let metrics = Arc::new(Metrics::new());
    let state = AppState {
        store: Arc::new(MemoryStore::new(Arc::clone(&metrics))),
        metrics,
        shutdown: CancellationToken::new(),
        dc: None,
    };
    router(
        state,
        token.map_or(WriteAuth::Open, |t| WriteAuth::Token(Arc::from(t))),
    )
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    call_as(app, method, uri, body, None).await
}

async fn call_as(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("the router is infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("every answer is JSON")
    };
    (status, value)
}

fn code(body: &Value) -> ErrorCode {
    serde_json::from_value::<ErrorBody>(body.clone())
        .expect("an error body")
        .error
        .code
}

const INSTANCE: &str = "/v1/services/ratings/instances/ratings-1";

#[tokio::test(start_paused = true)]
async fn register_replace_heartbeat_resolve_and_expire() {
    let app = app(None);
    let body = json!({"address": "http://127.0.0.1:8001", "ttl_ms": 1000});
    let (status, created) = call(&app, Method::PUT, INSTANCE, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    let created: Instance = serde_json::from_value(created).expect("an instance");
    assert_eq!(created.address.as_str(), "http://127.0.0.1:8001");
    assert_eq!(
        call(&app, Method::PUT, INSTANCE, Some(body)).await.0,
        StatusCode::OK
    );

    let heartbeat = format!("{INSTANCE}/heartbeat");
    assert_eq!(
        call(&app, Method::PUT, &heartbeat, None).await.0,
        StatusCode::OK
    );
    let (status, listed) = call(&app, Method::GET, "/v1/services/ratings", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed: ServiceInstances = serde_json::from_value(listed).expect("instances");
    assert_eq!(listed.instances.len(), 1);

    // The lease runs out exactly at its TTL on the paused clock.
    tokio::time::sleep(Duration::from_millis(1001)).await;
    let (status, gone) = call(&app, Method::PUT, &heartbeat, None).await;
    assert_eq!(
        (status, code(&gone)),
        (StatusCode::NOT_FOUND, ErrorCode::UnknownInstance)
    );
    let (_, listed) = call(&app, Method::GET, "/v1/services/ratings", None).await;
    let listed: ServiceInstances = serde_json::from_value(listed).expect("instances");
    assert!(listed.instances.is_empty());
}

#[tokio::test(start_paused = true)]
async fn bad_input_is_a_4xx_with_its_code_and_writes_nothing() {
    let app = app(None);
    let cases = [
        (
            "/v1/services/Bad_Name/instances/x",
            Some(json!({"address": "http://127.0.0.1:1"})),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidName,
        ),
        (
            INSTANCE,
            Some(json!({"address": "ftp://127.0.0.1:1"})),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidAddress,
        ),
        (
            INSTANCE,
            Some(json!({"address": "http://127.0.0.1:1", "ttl_ms": 5})),
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidTtl,
        ),
        (
            INSTANCE,
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
        ),
    ];
    for (uri, body, status, expected) in cases {
        let (got, answer) = call(&app, Method::PUT, uri, body).await;
        assert_eq!((got, code(&answer)), (status, expected), "PUT {uri}");
    }
    let (status, answer) = call(&app, Method::GET, "/v1/services/ratings?index=x", None).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery)
    );
    let (_, listed) = call(&app, Method::GET, "/v1/services", None).await;
    assert_eq!(listed["services"], json!([]), "nothing was written");
}

#[tokio::test(start_paused = true)]
async fn writes_need_the_token_reads_do_not() {
    let app = app(Some("s3cret"));
    let body = json!({"address": "http://127.0.0.1:8001"});
    let (status, answer) = call(&app, Method::PUT, INSTANCE, Some(body.clone())).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized)
    );
    let (status, _) = call_as(
        &app,
        Method::PUT,
        INSTANCE,
        Some(body.clone()),
        Some("nope"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call_as(&app, Method::PUT, INSTANCE, Some(body), Some("s3cret")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        call(&app, Method::GET, "/v1/services/ratings", None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = call(&app, Method::DELETE, INSTANCE, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
