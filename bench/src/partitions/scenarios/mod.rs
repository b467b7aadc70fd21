//! The partitions, each under the market load, and what each must show.

use super::{Load, Report, Setup, Topology, TTL_MS};
use std::time::Duration;

mod deadline;
mod leader;
mod probes;
mod quorum;
mod restart;
pub use deadline::heartbeat_at_the_deadline;
pub use leader::etcd_leader_lost_under_writers;
pub use quorum::etcd_quorum_lost_past_a_lease;
pub use restart::registry_replica_restarted;
use std::{future::Future, pin::Pin};

/// Longest wait for a breaker to open once its instance is unreachable.
const OPENS_WITHIN: Duration = Duration::from_secs(10);
/// "Back in rotation within about a second of the heal", with room for a
/// loaded machine.
const BACK_WITHIN: Duration = Duration::from_secs(3);

/// Two instances running, one registry on its memory store.
const PLAIN: Setup = Setup {
    instances: 2,
    running: 2,
    etcd: false,
};

/// A scenario, ready to run.
pub type Scenario = fn() -> Pin<Box<dyn Future<Output = Result<Report, String>>>>;

/// The three ratings instances, all running.
const THREE: [&str; 3] = ["ratings-1", "ratings-2", "ratings-3"];

/// Three instances running, two registry replicas on a 3-member etcd
/// cluster, every instance in the market's view.
async fn three_on_etcd() -> Result<Topology, String> {
    let topology = Topology::start(Setup {
        instances: 3,
        running: 3,
        etcd: true,
    })
    .await?;
    settled(&topology, &THREE).await?;
    Ok(topology)
}

/// The check that every instance kept its registration: the same ids
/// with the same registration times `before` and `after` a fault.
fn none_registered_again(
    before: &Option<Vec<(String, u64)>>,
    after: &Option<Vec<(String, u64)>>,
) -> (String, bool) {
    let kept = before.as_ref().is_some_and(|b| b.len() == THREE.len()) && before == after;
    ("no instance had to register again".into(), kept)
}

/// `report` with the scenario's own probe registrations counted:
/// `acked` acknowledged, `present` of them listed by every replica.
fn with_probes(mut report: Report, acked: usize, present: usize) -> Report {
    report.registrations += acked;
    report.present += present;
    report
}

/// Every scenario by name, in the order `make faults` runs them.
pub fn all() -> Vec<(&'static str, Scenario)> {
    vec![
        ("market_cut_from_one_instance", || {
            Box::pin(market_cut_from_one_instance())
        }),
        ("answers_lost_one_way", || Box::pin(answers_lost_one_way())),
        ("instance_cut_from_registry", || {
            Box::pin(instance_cut_from_registry())
        }),
        ("market_cut_from_registry", || {
            Box::pin(market_cut_from_registry())
        }),
        ("replica_cut_from_etcd_majority", || {
            Box::pin(replica_cut_from_etcd_majority())
        }),
        ("etcd_quorum_lost_past_a_lease", || {
            Box::pin(etcd_quorum_lost_past_a_lease())
        }),
        ("etcd_leader_lost_under_writers", || {
            Box::pin(etcd_leader_lost_under_writers())
        }),
        ("heartbeat_at_the_deadline", || {
            Box::pin(heartbeat_at_the_deadline())
        }),
        ("registry_replica_restarted", || {
            Box::pin(registry_replica_restarted())
        }),
    ]
}

/// Both running instances in the market's view with closed breakers.
async fn settled(topology: &Topology, ids: &[&str]) -> Result<(), String> {
    topology
        .until(
            Duration::from_secs(15),
            "instances in the market's view",
            || async {
                for id in ids {
                    if topology.breaker(id).await.as_deref() != Some("closed") {
                        return false;
                    }
                }
                true
            },
        )
        .await
        .map(drop)
}

/// Waits (at most `limit`) for the market's panel to show `id`'s breaker
/// `state`; how long it took.
async fn breaker_becomes(
    topology: &Topology,
    id: &str,
    state: &str,
    limit: Duration,
) -> Result<Duration, String> {
    let what = format!("{id}'s breaker to be {state}");
    topology
        .until(limit, &what, || async {
            topology.breaker(id).await.as_deref() == Some(state)
        })
        .await
}

/// Ends the load and reports: `converged` is the time from the heal to the
/// scenario's end state (`fallback` when it never came).
async fn report(
    name: &'static str,
    topology: &Topology,
    load: Load,
    converged: &Result<Duration, String>,
    fallback: Duration,
    checks: Vec<(String, bool)>,
) -> Report {
    let (calls, caller_errors) = load.finish().await;
    Report {
        name,
        calls,
        caller_errors,
        registrations: topology.started(),
        present: topology.registered().await.map_or(0, |r| r.len()),
        converged: converged.clone().unwrap_or(fallback),
        checks,
    }
}

/// The market can't reach ratings-2; the registry still hears it: no
/// caller error, its breaker opens and stays open while the partition
/// lasts (past its lease), and it is back within about a second of the heal.
pub async fn market_cut_from_one_instance() -> Result<Report, String> {
    let topology = Topology::start(PLAIN).await?;
    settled(&topology, &["ratings-1", "ratings-2"]).await?;
    let load = Load::start(topology.market_url());
    topology.net.cut("market", "ratings-2")?;
    let opened = breaker_becomes(&topology, "ratings-2", "open", OPENS_WITHIN).await;
    let mut stayed_open = true;
    let mut still_registered = true;
    // Sampled for 4 s on purpose: the breaker must stay open (and the
    // registry keep the instance) for as long as the partition lasts.
    for _ in 0..16 {
        stayed_open &= topology.breaker("ratings-2").await.as_deref() == Some("open");
        still_registered &= topology
            .registered()
            .await
            .is_some_and(|r| r.iter().any(|i| i == "ratings-2"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    topology.net.heal()?;
    let back = breaker_becomes(&topology, "ratings-2", "closed", BACK_WITHIN * 2).await;
    Ok(report(
        "market cut off from one ratings instance",
        &topology,
        load,
        &back,
        BACK_WITHIN * 2,
        vec![
            ("its breaker opened".into(), opened.is_ok()),
            (
                "it stayed open for 4 s, past its 3 s lease".into(),
                stayed_open,
            ),
            ("the registry heard it all along".into(), still_registered),
            (
                format!("back in rotation within {BACK_WITHIN:?}"),
                back.as_ref().is_ok_and(|t| *t <= BACK_WITHIN),
            ),
        ],
    )
    .await)
}

/// Requests reach ratings-2 but its answers never come back: handled like
/// a hang (no caller error, its breaker opens), back after the heal.
pub async fn answers_lost_one_way() -> Result<Report, String> {
    let topology = Topology::start(PLAIN).await?;
    settled(&topology, &["ratings-1", "ratings-2"]).await?;
    let load = Load::start(topology.market_url());
    topology.net.cut_one_way("ratings-2", "market")?;
    let opened = breaker_becomes(&topology, "ratings-2", "open", OPENS_WITHIN).await;
    // The partition lasts on purpose, with the load running: callers must
    // keep getting answers while it does.
    tokio::time::sleep(Duration::from_secs(2)).await;
    topology.net.heal()?;
    let back = breaker_becomes(&topology, "ratings-2", "closed", BACK_WITHIN * 2).await;
    Ok(report(
        "one way: ratings-2's answers lost",
        &topology,
        load,
        &back,
        BACK_WITHIN * 2,
        vec![
            ("its breaker opened, as for a hang".into(), opened.is_ok()),
            (
                format!("back in rotation within {BACK_WITHIN:?}"),
                back.as_ref().is_ok_and(|t| *t <= BACK_WITHIN),
            ),
        ],
    )
    .await)
}

/// ratings-1 can't reach the registry (callers still reach it): it drops
/// out when its lease lapses, registers again within a heartbeat of the
/// heal, and no caller sees an error.
pub async fn instance_cut_from_registry() -> Result<Report, String> {
    let topology = Topology::start(PLAIN).await?;
    settled(&topology, &["ratings-1", "ratings-2"]).await?;
    let load = Load::start(topology.market_url());
    topology.net.cut("ratings-1", "registry")?;
    let lease = Duration::from_millis(TTL_MS);
    let dropped = topology
        .until(
            lease * 3,
            "ratings-1 to drop out of the registry",
            || async {
                topology
                    .registered()
                    .await
                    .is_some_and(|r| !r.iter().any(|i| i == "ratings-1"))
            },
        )
        .await;
    topology.net.heal()?;
    let heartbeat = lease / 3;
    let back = topology
        .until(lease * 3, "ratings-1 registered again", || async {
            topology
                .registered()
                .await
                .is_some_and(|r| r.iter().any(|i| i == "ratings-1"))
        })
        .await;
    Ok(report(
        "ratings-1 cut off from the registry",
        &topology,
        load,
        &back,
        lease * 3,
        vec![
            (
                "it dropped out once its lease lapsed".into(),
                dropped.is_ok(),
            ),
            (
                format!("registered again within a heartbeat ({heartbeat:?}, and 1 s of slack)"),
                back.as_ref()
                    .is_ok_and(|t| *t <= heartbeat + Duration::from_secs(1)),
            ),
        ],
    )
    .await)
}

/// The market can't reach the registry: its last-known view serves every
/// call; an instance started meanwhile is not seen until the heal, and is
/// used within one long poll (30 s) of it.
pub async fn market_cut_from_registry() -> Result<Report, String> {
    let mut topology = Topology::start(Setup {
        instances: 3,
        ..PLAIN
    })
    .await?;
    settled(&topology, &["ratings-1", "ratings-2"]).await?;
    let load = Load::start(topology.market_url());
    topology.net.cut("market", "registry")?;
    topology.start_ratings(3)?;
    let registered = topology
        .until(
            Duration::from_secs(5),
            "ratings-3 in the registry",
            || async {
                topology
                    .registered()
                    .await
                    .is_some_and(|r| r.iter().any(|i| i == "ratings-3"))
            },
        )
        .await;
    // On purpose: what must not happen (the market learning of ratings-3
    // through the cut) gets two seconds to happen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unseen = topology.breaker("ratings-3").await.is_none();
    topology.net.heal()?;
    let long_poll = Duration::from_secs(30);
    let used = topology
        .until(
            long_poll + Duration::from_secs(10),
            "ratings-3 in the market's view",
            || async { topology.breaker("ratings-3").await.as_deref() == Some("closed") },
        )
        .await;
    Ok(report(
        "market cut off from the registry",
        &topology,
        load,
        &used,
        long_poll,
        vec![
            (
                "ratings-3 registered during the partition".into(),
                registered.is_ok(),
            ),
            ("the market did not see it while cut off".into(), unseen),
            (
                format!("the market used it within one long poll ({long_poll:?}) of the heal"),
                used.as_ref()
                    .is_ok_and(|t| *t <= long_poll + Duration::from_secs(5)),
            ),
        ],
    )
    .await)
}

/// Registry replica 1 and etcd member 1 end up on the minority side of a
/// partition (3 etcd members and 2 replicas on hosts of their own):
/// replica 1's writes answer 503 `store_unavailable`, instances and the
/// market move to replica 2, an instance registered meanwhile is kept, and
/// after the heal both replicas list every acknowledged registration.
pub async fn replica_cut_from_etcd_majority() -> Result<Report, String> {
    let mut topology = Topology::start(Setup {
        instances: 3,
        running: 2,
        etcd: true,
    })
    .await?;
    settled(&topology, &["ratings-1", "ratings-2"]).await?;
    let load = Load::start(topology.market_url());
    for minority in ["registry-1", "etcd-1"] {
        for majority in ["etcd-2", "etcd-3"] {
            topology.net.cut(minority, majority)?;
        }
    }
    let replica_1 = topology.replicas[0].clone();
    let probe = serde_json::json!({"address": "http://10.0.0.1:1", "ttl_ms": 60_000});
    let probe_url = format!("{replica_1}/v1/services/probe/instances/probe-1");
    let refused = topology
        .until(
            Duration::from_secs(15),
            "replica 1 to refuse writes",
            || async {
                topology
                    .put(&probe_url, &probe)
                    .await
                    .is_some_and(|(status, code)| status == 503 && code == "store_unavailable")
            },
        )
        .await;
    topology.start_ratings(3)?;
    let replica_2 = topology.replicas[1].clone();
    let registered = topology
        .until(
            Duration::from_secs(10),
            "ratings-3 registered through replica 2",
            || async {
                topology
                    .registered_at(&replica_2)
                    .await
                    .is_some_and(|r| r.iter().any(|i| i == "ratings-3"))
            },
        )
        .await;
    // The partition lasts on purpose, with the load running.
    tokio::time::sleep(Duration::from_secs(2)).await;
    topology.net.heal()?;
    let agree = topology
        .until(
            Duration::from_secs(20),
            "both replicas to list all three",
            || async {
                let one = topology.registered_at(&replica_1).await;
                let two = topology.registered_at(&replica_2).await;
                one.is_some_and(|r| r.len() == 3) && two.is_some_and(|r| r.len() == 3)
            },
        )
        .await;
    let writes_again = topology
        .until(
            Duration::from_secs(10),
            "replica 1 to take writes again",
            || async {
                topology
                    .put(&probe_url, &probe)
                    .await
                    .is_some_and(|(status, _)| status == 200 || status == 201)
            },
        )
        .await;
    Ok(report(
        "registry replica + etcd member on the minority side",
        &topology,
        load,
        &agree,
        Duration::from_secs(20),
        vec![
            (
                "replica 1 answered writes 503 store_unavailable".into(),
                refused.is_ok(),
            ),
            (
                "ratings-3 registered meanwhile, through replica 2".into(),
                registered.is_ok(),
            ),
            (
                "after the heal both replicas list all three".into(),
                agree.is_ok(),
            ),
            ("replica 1 takes writes again".into(), writes_again.is_ok()),
        ],
    )
    .await)
}
