//! A registry replica killed and started again.

use super::{
    none_registered_again,
    probes::{index_at, long_poll, present_everywhere, register},
    report, three_on_etcd, with_probes, THREE,
};
use crate::partitions::{Load, Report, TTL_MS};
use std::time::Duration;
use tokio::time::Instant;

/// How soon a change must wake a long-poll on the restarted replica.
const WAKES_WITHIN: Duration = Duration::from_secs(1);

/// Replica 2 is killed (SIGKILL) and started again while the instances
/// heartbeat and the market calls: from its first answer it gives every
/// service the index replica 1 gives, a long-poll on it wakes on the next
/// change, no instance had to register again, and every registration made
/// before the restart is still listed.
pub async fn registry_replica_restarted() -> Result<Report, String> {
    let mut topology = three_on_etcd().await?;
    let all = THREE;
    let replicas = topology.replicas.clone();
    let http = beacon::net::http::http_client(Duration::from_millis(500));
    // Probes through replica 2, one of them deregistered: "probes" last
    // changed by a deregistration, "ratings" by registrations.
    let mut acked = Vec::new();
    for n in 0..5 {
        let id = format!("probe-{n}");
        if register(&http, &replicas[1], "probes", &id).await {
            acked.push(id);
        }
    }
    let gone = acked.pop().ok_or("no probe registered")?;
    let deregistered = topology
        .delete(&format!(
            "{}/v1/services/probes/instances/{gone}",
            replicas[1]
        ))
        .await
        .is_some_and(|status| (200..300).contains(&status));
    let before = topology.registrations(&replicas[0], "ratings").await;
    let load = Load::start(topology.market_url());
    topology.restart_registry(1)?;
    let restarted = Instant::now();
    let mut same_index = true;
    for service in ["ratings", "probes"] {
        let restarted = index_at(&topology, &replicas[1], service).await;
        let running = index_at(&topology, &replicas[0], service).await;
        same_index &= restarted.is_some() && restarted == running;
    }
    let back = topology
        .until(
            Duration::from_secs(10),
            "the restarted replica to list all three",
            || async {
                topology
                    .registered_at(&replicas[1])
                    .await
                    .is_some_and(|r| r.len() == all.len())
            },
        )
        .await
        .map(|_| restarted.elapsed());
    let index = index_at(&topology, &replicas[1], "probes")
        .await
        .unwrap_or(0);
    let poll = long_poll(&replicas[1], "probes", index, Duration::from_secs(5));
    let changed = Instant::now();
    if register(&http, &replicas[0], "probes", "probe-after").await {
        acked.push("probe-after".into());
    }
    let woke = matches!(
        poll.await.ok().flatten(),
        Some((at, answered)) if answered > index && at - changed <= WAKES_WITHIN
    );
    // A lease of heartbeats (through either replica) after the restart,
    // with the load running, then the same registrations.
    tokio::time::sleep_until(restarted + Duration::from_millis(TTL_MS)).await;
    let after = topology.registrations(&replicas[1], "ratings").await;
    let present = present_everywhere(&topology, "probes", &acked).await;
    let report = report(
        "registry replica killed and restarted",
        &topology,
        load,
        &back,
        Duration::from_secs(10),
        vec![
            (
                "a probe was deregistered before the restart".into(),
                deregistered,
            ),
            (
                "from its first answer the restarted replica gives every service replica 1's index"
                    .into(),
                same_index,
            ),
            (
                format!("a long-poll on it woke within {WAKES_WITHIN:?} of the next change"),
                woke,
            ),
            none_registered_again(&before, &after),
        ],
    )
    .await;
    Ok(with_probes(report, acked.len(), present))
}
