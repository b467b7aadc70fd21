//! The fleet measurement of `make bench` at a small size: a registry
//! process, watchers on the changes feed beside watchers of the whole list,
//! every one checked to have seen every change, and etcd's gRPC watchers
//! of the same fleet beside them.

use beacon_bench::registry_bench::{fleet, leases, subsets, FleetSizes, LeaseSizes, SubsetSizes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watcher_sees_every_change_and_the_feed_carries_far_less() {
    let sizes = FleetSizes {
        instances: 300,
        changes_watchers: 20,
        list_watchers: 5,
        changes: 2,
    };
    let binary = beacon_testkit::binary("beacon-registry");
    let (results, failed) = fleet::run(&binary, sizes).await.expect("the fleet runs");
    assert!(failed.is_empty(), "{failed:?}");
    let bytes = results
        .table
        .row("bytes per change per watcher")
        .expect("a bytes row");
    // Columns: the feed streamed a connection each, etcd so, streamed
    // over shared HTTP/2 connections, etcd so; long-polled; the list.
    let (stream, shared, changes, lists) = (
        bytes.columns[0][0],
        bytes.columns[2][0],
        bytes.columns[4][0],
        bytes.columns[5][0],
    );
    assert_eq!(stream, shared, "the same lines over either protocol");
    // A line is the long-poll's answer and its newline.
    let newline = 1.0 / 1024.0;
    assert!(
        (stream - changes - newline).abs() < 1e-9,
        "{stream} KiB vs {changes} KiB"
    );
    // etcd's gRPC watch beside them both ways, every watcher checked there
    // too.
    assert!(
        results.table.rows.iter().all(|r| [1, 3]
            .iter()
            .all(|&c| r.columns.get(c).is_some_and(|etcd| etcd.len() == 1))),
        "{:?}",
        results.table.rows
    );
    // One put (~0.26 KiB) against 300 instances (~45 KiB).
    assert!(
        changes < 1.0 && lists > 20.0 * changes,
        "{changes} KiB vs {lists} KiB"
    );
}

/// The shared-lease measurement at a small size: every registration and
/// keepalive succeeds on both sides, and a lease's end reaches the watcher
/// as all of its instances gone in one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_s_end_reaches_a_watcher_as_all_its_instances_gone() {
    let sizes = LeaseSizes {
        instances: 2_000,
        leases: 10,
    };
    let binary = beacon_testkit::binary("beacon-registry");
    let mut results = leases::LeaseResults::default();
    let failed = leases::run(&binary, sizes, &mut results)
        .await
        .expect("the lease measurement runs");
    assert!(failed.is_empty(), "{failed:?}");
    let ended = results.table.row("lease ended").expect("a lease-end row");
    assert!(
        ended.columns[0][0].is_finite() && ended.columns[1][0].is_finite(),
        "{ended:?}"
    );
    assert!(results.markdown().contains("one lease per process"));
}

/// The subset measurement at a small size: real callers settle on the
/// registry's subsets, which load instances evenly where random subsets
/// don't.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_s_subsets_load_instances_evenly() {
    let sizes = SubsetSizes {
        callers: 16,
        instances: 8,
        size: 4,
        requests: 40,
    };
    let binary = beacon_testkit::binary("beacon-registry");
    let mut results = subsets::SubsetResults::default();
    let failed = subsets::run(&binary, sizes, &mut results)
        .await
        .expect("the subset measurement runs");
    assert!(failed.is_empty(), "{failed:?}");
    let connections = results
        .table
        .row("connections per instance, max/mean")
        .expect("a connections row");
    // 16 callers × 4 over 8 instances: exactly 8 each.
    assert_eq!(connections.columns[0][0], 1.0, "{connections:?}");
    let joined = results
        .table
        .row("subset entries changed when one instance joins")
        .expect("a churn row");
    assert!(joined.columns[0][0] <= 2.0, "{joined:?}");
    assert!(results.markdown().contains("random subsets"));
}
