//! Waking many parked watchers with one change: the registry's blocking
//! queries, etcd's gateway watches and etcd's gRPC watch streams.

use super::{
    etcd::{next_change, watch_prefix},
    fetch_text, id, name,
    ops::Tally,
    RegistryResults, Subjects,
};
use beacon::wire::WatchQuery;
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;

/// Waking `sizes.watchers` parked watchers with one change: until the last
/// wakes, each checked to have been woken by the change.
pub(super) async fn fan_out(
    subjects: &Subjects<'_>,
    results: &mut RegistryResults,
) -> Result<(), String> {
    let (client, etcd, registration, value, sizes) = subjects.parts();
    let registry_url = &subjects.registry.url;
    use beacon_registry::store::etcd::WatchMessage;
    let fan = name("fan")?;
    let w = sizes.watchers;
    client
        .register(&fan, &id(0), registration)
        .await
        .map_err(|e| e.to_string())?;
    let index = client.resolve(&fan).await.map_err(|e| e.to_string())?.index;
    let watchers: Vec<_> = (0..w)
        .map(|_| {
            let (client, fan) = (Arc::clone(client), fan.clone());
            tokio::spawn(async move {
                let query = WatchQuery {
                    index,
                    wait: Duration::from_secs(60),
                };
                let woken = client
                    .watch(&fan, query)
                    .await
                    .is_ok_and(|answer| answer.index > index && answer.instances.len() == 2);
                (Instant::now(), woken)
            })
        })
        .collect();
    let metrics_url = format!("{registry_url}/_metrics");
    let waiting = Instant::now();
    loop {
        let text = fetch_text(&metrics_url).await;
        let parked: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("beacon_registry_parked_watchers "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if parked >= w {
            break;
        }
        if waiting.elapsed() > Duration::from_secs(60) {
            return Err(format!("only {parked} of {w} watchers parked"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let changed = Instant::now();
    client
        .register(&fan, &id(1), registration)
        .await
        .map_err(|e| e.to_string())?;
    let registry = wake_all(watchers, changed, "registry watchers", results).await;

    // The gateway: a streaming HTTP request per watcher.
    let mut streams = Vec::with_capacity(w);
    for _ in 0..w {
        let mut stream = etcd
            .gateway
            .watch("/bench/fan/", 0)
            .await
            .map_err(|e| e.to_string())?;
        if !matches!(stream.next().await, Ok(WatchMessage::Created)) {
            return Err("an etcd gateway watch was not created".into());
        }
        streams.push(stream);
    }
    let waiters: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let woken = loop {
                    match stream.next().await {
                        Ok(WatchMessage::Changes(_)) => break true,
                        Ok(_) => {}
                        Err(_) => break false,
                    }
                };
                (Instant::now(), woken)
            })
        })
        .collect();
    let changed = Instant::now();
    etcd.gateway
        .put("/bench/fan/x", value, 0)
        .await
        .map_err(|e| e.to_string())?;
    let gateway = wake_all(waiters, changed, "etcd gateway watchers", results).await;

    // gRPC: a watch stream per watcher on the one connection.
    let mut streams = Vec::with_capacity(w);
    for _ in 0..w {
        streams.push(watch_prefix(&etcd.grpc, "/bench/grpcfan/").await?);
    }
    let waiters: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                // The time after the change arrived, not before waiting.
                let woken = next_change(&mut stream).await;
                (Instant::now(), woken)
            })
        })
        .collect();
    let changed = Instant::now();
    etcd.gateway
        .put("/bench/grpcfan/x", value, 0)
        .await
        .map_err(|e| e.to_string())?;
    let grpc = wake_all(waiters, changed, "etcd gRPC watchers", results).await;
    results.record(
        format!("wake {w} watchers on one change (until the last)"),
        "ms",
        false,
        [Some(registry), Some(gateway), Some(grpc)],
    );
    Ok(())
}

/// Milliseconds from `changed` until the last watcher woke; watchers not
/// woken by the change are counted as failed.
async fn wake_all(
    watchers: Vec<tokio::task::JoinHandle<(Instant, bool)>>,
    changed: Instant,
    what: &str,
    results: &mut RegistryResults,
) -> f64 {
    let (mut last, mut ok, mut failed) = (changed, 0, 0);
    for watcher in watchers {
        match watcher.await {
            Ok((woke, true)) => {
                last = last.max(woke);
                ok += 1;
            }
            _ => failed += 1,
        }
    }
    results.check(
        what,
        Tally {
            ok,
            failed,
            took: last - changed,
        },
    );
    (last - changed).as_secs_f64() * 1000.0
}
