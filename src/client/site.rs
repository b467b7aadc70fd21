//! Several sites (data centers): a caller prefers the instances of its
//! own site's registry and fails over to other sites' when its own
//! degrades, as Envoy's priority levels and Consul's prepared-query
//! failover do.
//!
//! A client's own site is the view of the resolver it was built on; each
//! remote site is the view of the same service through that site's
//! registry ([`ServiceClientBuilder::remote_site`]). A call goes:
//!
//! * to its own site while enough of the site's instances would admit a
//!   call: it keeps min(1, [`OVERPROVISIONING`] × healthy share) of the
//!   calls — all of them with 3 of 4 instances up, 93 % with 2 of 3, 47 %
//!   with 1 of 3 — and the rest spill over, instead of piling the site's
//!   whole load on its few survivors;
//! * to the remote sites, nearest first, for the rest, and for every call
//!   its own site can't take (none admits it, all at their cap, or all
//!   tried). Nearest is by the lowest latency estimate among a site's
//!   instances that would admit a call. A site none of whose instances
//!   has answered yet comes first (sites alike in the order given): its
//!   first answer places it. Estimates decay while a site is not called,
//!   so a farther site is tried again now and then, and found far.
//!
//! Back home is automatic: as the own site's breakers close its share
//! grows again, and its instances answer faster than a remote site's.
//!
//! [`ServiceClientBuilder::remote_site`]: super::ServiceClientBuilder::remote_site

use crate::endpoint::Endpoint;
use crate::resolver::ServiceView;
use crate::wire::Address;
use rand::Rng;
use std::sync::Arc;
use tokio::time::Instant;

/// How much more than its healthy share of the calls a site keeps (Envoy's
/// default overprovisioning factor): a site with 72 % of its instances up
/// keeps all its calls.
pub const OVERPROVISIONING: f64 = 1.4;

/// Another site's view of the service.
#[derive(Debug, Clone)]
pub struct RemoteSite {
    /// Its name (its registry's `--dc`).
    pub(crate) name: Arc<str>,
    /// The service's instances there.
    pub(crate) view: Arc<ServiceView>,
}

impl RemoteSite {
    /// The service as `view` (resolved through site `name`'s registry)
    /// lists it.
    pub fn new(name: &str, view: Arc<ServiceView>) -> Self {
        Self {
            name: Arc::from(name),
            view,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The service's instances there.
    pub fn view(&self) -> &Arc<ServiceView> {
        &self.view
    }
}

/// Whether a call should try its own site first, as of `now`: always
/// while [`OVERPROVISIONING`] × the healthy share of `endpoints` reaches
/// 1, with that probability below, never when the site has none.
pub(super) fn keeps_local(endpoints: &[Arc<Endpoint>], now: Instant) -> bool {
    if endpoints.is_empty() {
        return false;
    }
    let healthy = endpoints.iter().filter(|e| e.admissible(now)).count();
    // Counts of instances: far below 2^52, exact as f64.
    let share = OVERPROVISIONING * healthy as f64 / endpoints.len() as f64;
    share >= 1.0 || rand::rng().random_bool(share)
}

/// The remote sites, nearest first (see the module's documentation).
pub(super) fn nearest_first(sites: &[RemoteSite], now: Instant) -> Vec<&RemoteSite> {
    let mut by_distance: Vec<(Option<f64>, &RemoteSite)> = sites
        .iter()
        .map(|site| (round_trip_ns(site, now), site))
        .collect();
    // Stable: sites alike keep the order they were given in.
    by_distance.sort_by(|(a, _), (b, _)| match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(b),
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (None, None) => std::cmp::Ordering::Equal,
    });
    by_distance.into_iter().map(|(_, site)| site).collect()
}

/// The lowest latency estimate among `site`'s instances that would admit
/// a call; `None` if none has one.
fn round_trip_ns(site: &RemoteSite, now: Instant) -> Option<f64> {
    site.view
        .endpoints()
        .iter()
        .filter_map(|e| e.load(now)?.latency_ns)
        .min_by(f64::total_cmp)
}

/// Waits until `own` or one of the `remote` sites' views has its first
/// registry answer, at most until `deadline`; says whether one has. A
/// client whose own registry has not answered yet (its site is down) goes
/// on with another site's list.
pub(crate) async fn wait_any_synced(
    own: &ServiceView,
    remote: &[RemoteSite],
    deadline: Instant,
) -> bool {
    if remote.is_empty() {
        return own.wait_synced(deadline).await;
    }
    if any_synced(own, remote) {
        return true;
    }
    let waits = std::iter::once(own)
        .chain(remote.iter().map(|site| site.view.as_ref()))
        .map(|view| Box::pin(view.wait_synced(deadline)));
    // Each wait ends when its view syncs (true) or at the deadline (false):
    // the first true, or false once all have ended.
    let mut pending: Vec<_> = waits.collect();
    while !pending.is_empty() {
        let (synced, _, rest) = futures_util::future::select_all(pending).await;
        if synced {
            return true;
        }
        pending = rest;
    }
    false
}

/// Whether any of `own` and the `remote` sites' views has had its first
/// registry answer.
pub(super) fn any_synced(own: &ServiceView, remote: &[RemoteSite]) -> bool {
    own.is_synced() || remote.iter().any(|site| site.view.is_synced())
}

/// Whether any remote site has an instance not in `tried` that would
/// admit a call.
pub(crate) fn has_remote_candidate(sites: &[RemoteSite], tried: &[Address]) -> bool {
    sites
        .iter()
        .any(|site| super::balance::has_candidate(&site.view, tried))
}
