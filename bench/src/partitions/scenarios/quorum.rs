//! The etcd cluster losing its quorum for longer than a lease.

use super::{report, three_on_etcd, THREE};
use crate::partitions::{Load, Report, TTL_MS};
use std::time::Duration;

/// Two of the three etcd members stop for twice a lease (no quorum), then
/// come back: both replicas say so in `/_health?deep=true` (503), keep
/// listing every instance although no lease could be renewed (lease time
/// stands still, as in etcd), the market serves throughout, and after
/// quorum returns no instance had to register again (their registration
/// times are unchanged) and both replicas list all three.
pub async fn etcd_quorum_lost_past_a_lease() -> Result<Report, String> {
    let mut topology = three_on_etcd().await?;
    let all = THREE;
    let replicas = topology.replicas.clone();
    let before = topology
        .registrations(&replicas[0], "ratings")
        .await
        .unwrap_or_default();
    let load = Load::start(topology.market_url());
    let etcd = topology.etcd.as_mut().ok_or("no etcd cluster")?;
    etcd.stop(1);
    etcd.stop(2);
    let outage = tokio::time::Instant::now();
    let unhealthy = topology
        .until(
            Duration::from_secs(15),
            "both replicas' deep health to say 503",
            || async {
                let mut all_503 = true;
                for replica in &replicas {
                    let health = topology.json(&format!("{replica}/_health?deep=true")).await;
                    all_503 &= health.is_some_and(|h| h["status"] == "unavailable");
                }
                all_503
            },
        )
        .await;
    // Twice a lease with nobody able to renew one.
    tokio::time::sleep_until(outage + Duration::from_millis(2 * TTL_MS)).await;
    let mut kept = true;
    for replica in &replicas {
        kept &= topology
            .registered_at(replica)
            .await
            .is_some_and(|r| r.len() == all.len());
    }
    let etcd = topology.etcd.as_mut().ok_or("no etcd cluster")?;
    etcd.restart(1);
    etcd.restart(2);
    etcd.until_healthy().await;
    let agree = topology
        .until(
            Duration::from_secs(20),
            "both replicas healthy, listing all three",
            || async {
                let mut ok = true;
                for replica in &replicas {
                    let health = topology.json(&format!("{replica}/_health?deep=true")).await;
                    ok &= health.is_some_and(|h| h["status"] == "ok");
                    ok &= topology
                        .registered_at(replica)
                        .await
                        .is_some_and(|r| r.len() == all.len());
                }
                ok
            },
        )
        .await;
    // A lease period of heartbeats after the heal, then the same
    // registrations: nobody was told "unknown instance".
    tokio::time::sleep(Duration::from_millis(TTL_MS)).await;
    let after = topology
        .registrations(&replicas[1], "ratings")
        .await
        .unwrap_or_default();
    Ok(report(
        "etcd quorum lost for two leases (2 of 3 members stopped)",
        &topology,
        load,
        &agree,
        Duration::from_secs(20),
        vec![
            (
                "both replicas' deep health said 503 during the outage".into(),
                unhealthy.is_ok(),
            ),
            (
                "both replicas listed all three past their leases".into(),
                kept,
            ),
            (
                "after quorum returned both are healthy and list all three".into(),
                agree.is_ok(),
            ),
            (
                "no instance had to register again".into(),
                before.len() == all.len() && before == after,
            ),
        ],
    )
    .await)
}
