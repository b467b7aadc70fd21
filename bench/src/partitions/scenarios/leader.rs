//! The etcd leader lost under writers.

use super::{
    none_registered_again,
    probes::{present_everywhere, Writers},
    report, three_on_etcd, with_probes, THREE,
};
use crate::partitions::{Load, Report};
use std::time::Duration;
use tokio::time::Instant;

/// Writers registering through both replicas.
const WRITERS: usize = 4;
/// Acknowledgements that show writes flowing (before the fault, and again
/// after it).
const FLOWING: usize = 20;
/// "Writes back within a couple of seconds" (an election takes one
/// election timeout, 500 ms here), with room for a loaded machine.
const WRITES_BACK_WITHIN: Duration = Duration::from_secs(5);

/// The etcd leader is killed (SIGKILL: no leadership handed over) while
/// four writers register probes through both replicas and the instances
/// heartbeat: writes pause for the election and come back, every acknowledged registration is listed by both replicas
/// after the old leader returns, and no instance had to register again.
pub async fn etcd_leader_lost_under_writers() -> Result<Report, String> {
    let mut topology = three_on_etcd().await?;
    let all = THREE;
    let replicas = topology.replicas.clone();
    let before = topology.registrations(&replicas[0], "ratings").await;
    let load = Load::start(topology.market_url());
    let writers = Writers::start(&replicas, "probes", WRITERS);
    let started = Instant::now();
    topology
        .until(Duration::from_secs(10), "writes to flow", || async {
            writers.acked_since(started) >= FLOWING
        })
        .await?;
    let etcd = topology.etcd.as_mut().ok_or("no etcd cluster")?;
    let leader = etcd.leader().await.ok_or("no etcd leader")?;
    etcd.kill(leader);
    let stopped = Instant::now();
    let resumed = topology
        .until(WRITES_BACK_WITHIN * 2, "writes to flow again", || async {
            writers.acked_since(stopped) >= FLOWING
        })
        .await;
    let (acked, longest_gap) = writers.finish().await;
    let etcd = topology.etcd.as_mut().ok_or("no etcd cluster")?;
    etcd.restart(leader);
    etcd.until_healthy().await;
    let healed = Instant::now();
    let agree = topology
        .until(
            Duration::from_secs(20),
            "both replicas to list every acknowledged probe and all three instances",
            || async {
                let mut ok = present_everywhere(&topology, "probes", &acked).await == acked.len();
                for replica in &replicas {
                    ok &= topology
                        .registered_at(replica)
                        .await
                        .is_some_and(|r| r.len() == all.len());
                }
                ok
            },
        )
        .await
        .map(|_| healed.elapsed());
    let after = topology.registrations(&replicas[1], "ratings").await;
    let present = present_everywhere(&topology, "probes", &acked).await;
    let report = report(
        "etcd leader killed under 4 writers",
        &topology,
        load,
        &agree,
        Duration::from_secs(20),
        vec![
            (
                format!(
                    "writes flowed again within {WRITES_BACK_WITHIN:?} (longest pause {:.2} s)",
                    longest_gap.as_secs_f64()
                ),
                resumed.is_ok() && longest_gap <= WRITES_BACK_WITHIN,
            ),
            (
                "both replicas list every acknowledged registration".into(),
                agree.is_ok(),
            ),
            none_registered_again(&before, &after),
        ],
    )
    .await;
    Ok(with_probes(report, acked.len(), present))
}
