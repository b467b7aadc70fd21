//! Heartbeats that race their lease's deadline, across two replicas.

use super::{
    probes::{index_at, long_poll, present_everywhere, register, register_for},
    report, three_on_etcd, with_probes,
};
use crate::partitions::{put_json, Load, Report};
use std::time::Duration;
use tokio::time::Instant;

/// Trials, each a heartbeat at a different distance from the deadline.
const TRIALS: u32 = 12;
/// The racing instances' lease.
const EDGE_TTL: Duration = Duration::from_millis(1_000);
/// How soon a later change must wake a long-poll on either replica.
const WAKES_WITHIN: Duration = Duration::from_secs(1);

/// Over 12 trials an instance registered through one replica heartbeats
/// through the other from 30 ms before its deadline to 10 ms after: each
/// heartbeat gets a clean 200 or 404, and after each, a later change wakes
/// a long-poll on both replicas within a second (no index frozen). Every
/// later change is listed by both replicas at the end.
pub async fn heartbeat_at_the_deadline() -> Result<Report, String> {
    let topology = three_on_etcd().await?;
    let replicas = topology.replicas.clone();
    let http = beacon::net::http::http_client(Duration::from_millis(500));
    let load = Load::start(topology.market_url());
    let (mut ok, mut not_found, mut unclean) = (0, 0, Vec::new());
    let mut slow_wakes = Vec::new();
    let mut acked = Vec::new();
    for trial in 0..TRIALS {
        let first = &replicas[trial as usize % 2];
        let second = &replicas[(trial as usize + 1) % 2];
        let edge = format!("edge-{trial}");
        if !register_for(&http, first, "edges", &edge, EDGE_TTL.as_millis() as u64).await {
            return Err(format!("{edge} was not registered"));
        }
        let registered = Instant::now();
        // From 30 ms before the deadline to 10 ms after it.
        let early_ms = 30 - i64::from(40 * trial / (TRIALS - 1));
        let at = registered + EDGE_TTL;
        let at = if early_ms >= 0 {
            at - Duration::from_millis(early_ms.unsigned_abs())
        } else {
            at + Duration::from_millis(early_ms.unsigned_abs())
        };
        tokio::time::sleep_until(at).await;
        let beat = format!("{second}/v1/services/edges/instances/{edge}/heartbeat");
        match put_json(&http, &beat, &serde_json::json!({})).await {
            Some((200, _)) => ok += 1,
            Some((404, code)) if code == "unknown_instance" => not_found += 1,
            other => unclean.push(format!("{edge} {early_ms} ms early: {other:?}")),
        }
        // A later change wakes a long-poll on both replicas.
        let mut polls = Vec::new();
        for replica in &replicas {
            let index = index_at(&topology, replica, "edges")
                .await
                .ok_or("a replica did not answer")?;
            polls.push((
                index,
                long_poll(replica, "edges", index, Duration::from_secs(5)),
            ));
        }
        let later = format!("later-{trial}");
        let changed = Instant::now();
        if register(&http, first, "edges", &later).await {
            acked.push(later);
        }
        for (replica, (index, poll)) in replicas.iter().zip(polls) {
            match poll.await.ok().flatten() {
                Some((woke, answered)) if answered > index && woke - changed <= WAKES_WITHIN => {}
                other => slow_wakes.push(format!("{replica} after {edge}: {other:?}")),
            }
        }
    }
    let agree = topology
        .until(
            Duration::from_secs(10),
            "both replicas to list every later change at one index",
            || async {
                let one = index_at(&topology, &replicas[0], "edges").await;
                let two = index_at(&topology, &replicas[1], "edges").await;
                one.is_some()
                    && one == two
                    && present_everywhere(&topology, "edges", &acked).await == acked.len()
            },
        )
        .await;
    let present = present_everywhere(&topology, "edges", &acked).await;
    let report = report(
        "heartbeats racing their deadline (12 trials, 2 replicas)",
        &topology,
        load,
        &agree,
        Duration::from_secs(10),
        vec![
            (
                format!(
                    "every heartbeat answered 200 ({ok}) or 404 ({not_found}){}",
                    failures(&unclean)
                ),
                unclean.is_empty(),
            ),
            (
                format!(
                    "a later change woke both replicas' long-polls within {WAKES_WITHIN:?}{}",
                    failures(&slow_wakes)
                ),
                slow_wakes.is_empty(),
            ),
            ("both replicas agree on the index".into(), agree.is_ok()),
        ],
    )
    .await;
    Ok(with_probes(report, acked.len(), present))
}

/// The first few failures, for the report.
fn failures(list: &[String]) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!(
            ": {}",
            list.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        )
    }
}
