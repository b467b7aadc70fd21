//! The resolver over the registry's changes feed: after random churn its
//! view equals the registry's list, all of it read on one stream; against
//! a registry that predates streams it reads a blocking changes read at a
//! time, and against one that predates the feed it long-polls the whole
//! list instead.

mod support;

use axum::{extract::Query, routing::get, Json, Router};
use beacon::{
    wire::{Address, InstanceId, Registration, ServiceInstances},
    RegistryClient, Resolver, ResolverConfig, ServiceView,
};
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use support::{cluster::ratings, eventually, TestRegistry};

const PATIENCE: Duration = Duration::from_secs(15);

fn registration(port: u16) -> Registration {
    Registration {
        ttl: Duration::from_secs(60),
        ..Registration::new(Address::new(&format!("http://127.0.0.1:{port}")).expect("address"))
    }
}

#[tokio::test]
async fn after_random_churn_the_view_equals_the_registry() {
    let registry = TestRegistry::start(None).await;
    let client = RegistryClient::from_list(&registry.url, None).expect("client");
    let resolver = Resolver::new(client.clone(), ResolverConfig::default());
    let view = resolver.service(&ratings());
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for step in 0..300u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = seed % 16;
        let id: InstanceId = format!("ratings-{n}").parse().expect("id");
        if seed.is_multiple_of(3) {
            let _ = client.deregister(&ratings(), &id).await;
        } else {
            // An address of its own (the view tracks instances by address),
            // one of two: some registrations move it.
            let port = 8000 + u16::try_from(n * 2 + (seed >> 8) % 2).expect("small");
            client
                .register(&ratings(), &id, &registration(port))
                .await
                .expect("register");
        }
        if step.is_multiple_of(50) {
            // Let the view catch up now and then, so it follows changes
            // rather than one snapshot at the end.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let listed: ServiceInstances = client.resolve(&ratings()).await.expect("resolve");
    let expected: Vec<(String, String)> = listed
        .instances
        .iter()
        .map(|i| (i.id.to_string(), i.address.to_string()))
        .collect();
    eventually(PATIENCE, "the view to equal the registry", || {
        let seen: Vec<(String, String)> = view
            .snapshot()
            .instances
            .iter()
            .map(|i| (i.id.to_string(), i.address.to_string()))
            .collect();
        let mut seen = seen;
        seen.sort();
        let equal = seen == expected;
        async move { equal.then_some(()) }
    })
    .await;
    // It followed changes: two snapshots (the first sync, of a service not
    // there yet, and the one its first instance brings: index 0 asks for
    // one), then deltas.
    let metrics = support::get_text(registry.at("/_metrics"))
        .await
        .expect("metrics");
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("beacon_registry_{name}_total ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(count("change_snapshots"), 2);
    assert!(count("change_deltas") >= 5, "{}", count("change_deltas"));
    // On one stream: a request for all those answers, not one each.
    let changes_requests: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("beacon_registry_http_request_duration_seconds_count{")
                && l.contains(r#"route="/v1/services/{service}/changes""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(changes_requests, 1, "{metrics}");
}

#[tokio::test]
async fn a_registry_without_the_changes_feed_is_long_polled_for_its_list() {
    // An older registry: the list read only; anything else is a 404.
    let listed = ServiceInstances {
        service: ratings(),
        index: 7,
        instances: Vec::new(),
    };
    let old = Router::new()
        .route(
            "/v1/services/{service}",
            get(move || {
                let listed = listed.clone();
                async move { Json(listed) }
            }),
        )
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                Json(
                    serde_json::json!({"error": {"code": "not_found", "message": "no such route"}}),
                ),
            )
        });
    let (_resolver, view) = resolve_from(old).await;
    eventually(PATIENCE, "the view to sync from the list read", || {
        let synced = view.snapshot().registry_reachable;
        async move { synced.then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_registry_that_does_not_stream_is_read_one_answer_at_a_time() {
    // A registry from before streams: a blocking changes read, one JSON
    // answer each (it ignores `stream=true`).
    let answers = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&answers);
    let old = Router::new().route(
        "/v1/services/{service}/changes",
        get(move |Query(query): Query<HashMap<String, String>>| {
            let counted = Arc::clone(&counted);
            async move {
                if query.contains_key("index") {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                counted.fetch_add(1, Ordering::Relaxed);
                let instance = r#"{"service":"ratings","id":"ratings-1","address":"http://127.0.0.1:8001","metadata":{},"ttl_ms":60000,"registered_at":0,"expires_in_ms":60000}"#;
                let body = format!(
                    r#"{{"service":"ratings","index":7,"snapshot":true,"instances":[{instance}],"changes":[]}}"#
                );
                ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    let (_resolver, view) = resolve_from(old).await;
    eventually(
        PATIENCE,
        "the view to hold the old registry's instance",
        || {
            let ids: Vec<String> = view
                .snapshot()
                .instances
                .iter()
                .map(|i| i.id.to_string())
                .collect();
            async move { (ids == ["ratings-1"]).then_some(()) }
        },
    )
    .await;
    // It goes on asking, a blocking read at a time.
    eventually(PATIENCE, "more blocking reads", || {
        let n = answers.load(Ordering::Relaxed);
        async move { (n >= 4).then_some(()) }
    })
    .await;
    assert!(view.snapshot().registry_reachable);
}

/// Serves `registry` on `127.0.0.1:0` and resolves the ratings service
/// from it (the resolver is returned too: it must outlive the view).
async fn resolve_from(registry: Router) -> (Resolver, Arc<ServiceView>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, registry).await });
    let resolver = Resolver::new(
        RegistryClient::from_list(&url, None).expect("client"),
        ResolverConfig::default(),
    );
    let view = resolver.service(&ratings());
    (resolver, view)
}
