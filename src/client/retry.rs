//! When a failed attempt is tried again, in tower's `retry::Policy` shape.
//!
//! An idempotent call that failed on an instance (timeout, connect error,
//! 5xx) goes again to an instance it has not tried, after a short jittered
//! backoff, while attempts, the deadline and the retry budget allow and an
//! untried instance would admit it. The budget ([`WindowBudget`]) allows
//! retries up to a fraction of recent calls plus a small floor, so retries
//! can't multiply the load on a struggling service. A call an instance
//! shed (busy: it is full) is retried the same way — unless sheds number
//! half the recent calls: then most instances are full, and a retry only
//! adds to their load.

use super::{
    balance::has_candidate, budget::WindowBudget, site, Call, ClientError, RemoteSite,
    ResponseBody, Retries,
};
use crate::net::backoff::Backoff;
use crate::resolver::ServiceView;
use http::Response;
use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};
use tokio::time::{Instant, Sleep};

/// Retries on another instance, within limits. Cloned per call by tower's
/// `Retry`, so the backoff is each call's own; clones share the rest.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// One pointer for every clone to copy: tower's `Retry` clones the
    /// policy on each call.
    shared: Arc<Shared>,
    backoff: Backoff,
}

#[derive(Debug)]
struct Shared {
    view: Arc<ServiceView>,
    /// Other sites a retry may go to.
    remote: Arc<[RemoteSite]>,
    budget: WindowBudget,
    max_attempts: u32,
    /// What the policy did.
    counts: Counts,
}

#[derive(Debug, Default)]
struct Counts {
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    held_back: AtomicU64,
}

/// Retries made, and retries the budget refused, so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryCounts {
    /// Attempts sent again on another instance.
    pub retries: u64,
    /// Retries that would have gone but for the budget.
    pub budget_exhausted: u64,
    /// Busy calls not retried because most calls met a busy instance
    /// (see [`overload`](crate::overload)).
    pub held_back: u64,
}

impl RetryPolicy {
    /// A policy for calls to `view`'s service.
    pub fn new(view: Arc<ServiceView>, limits: Retries) -> Self {
        Self {
            shared: Arc::new(Shared {
                view,
                remote: Arc::from(Vec::new()),
                budget: WindowBudget::new(limits.ratio, limits.floor_per_sec),
                max_attempts: limits.max_attempts.max(1),
                counts: Counts::default(),
            }),
            backoff: Backoff::new(limits.backoff, limits.backoff_cap),
        }
    }

    /// The same, retrying on the `remote` sites' instances too (see
    /// [`site`](super::site)). Set it before the policy is cloned: clones
    /// share their settings, and a shared policy keeps the ones it has.
    pub fn remote_sites(mut self, remote: Arc<[RemoteSite]>) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.remote = remote;
        }
        self
    }

    /// Retries made and refused so far, by this policy and its clones.
    pub fn counts(&self) -> RetryCounts {
        RetryCounts {
            retries: self.shared.counts.retries.load(Ordering::Relaxed),
            budget_exhausted: self.shared.counts.budget_exhausted.load(Ordering::Relaxed),
            held_back: self.shared.counts.held_back.load(Ordering::Relaxed),
        }
    }
}

impl tower::retry::Policy<Call, Response<ResponseBody>, ClientError> for RetryPolicy {
    /// Boxed: a retry is the rare path, and an unboxed `Sleep` would
    /// make every call's future larger.
    type Future = Pin<Box<Sleep>>;

    fn retry(
        &mut self,
        call: &mut Call,
        result: &mut Result<Response<ResponseBody>, ClientError>,
    ) -> Option<Pin<Box<Sleep>>> {
        let Err(error) = result else {
            return None;
        };
        if error.address().is_none() {
            // No instance was tried this time (none admitted it, or time
            // ran out): the call's answer is why the last one failed.
            if let Some(last) = call.last_error.take() {
                *result = Err(last);
            }
            return None;
        }
        tracing::debug!(
            "{} attempt {} failed: {error}",
            self.shared.view.service(),
            call.attempt
        );
        call.tried.extend(error.address().cloned());
        let now = Instant::now();
        let eligible = call.attempt < self.shared.max_attempts
            && now < call.deadline
            && (has_candidate(&self.shared.view, &call.tried)
                || site::has_remote_candidate(&self.shared.remote, &call.tried));
        if !eligible {
            call.last_error = Some(error.clone());
            return None;
        }
        // It would be retried, but for its body: say so.
        if let Some(limit) = call.replay_limit_passed() {
            let error = Box::new(error.clone());
            *result = Err(ClientError::NotRetried { error, limit });
            return None;
        }
        call.last_error = Some(error.clone());
        // Busy, and so are most: a retry would add to the load of
        // instances that are all full.
        if matches!(error, ClientError::Overloaded { .. }) && self.shared.budget.mostly_shed(now) {
            self.shared.counts.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if !self.shared.budget.withdraw_at(now) {
            self.shared
                .counts
                .budget_exhausted
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.shared.counts.retries.fetch_add(1, Ordering::Relaxed);
        call.attempt += 1;
        let pause = self
            .backoff
            .next_delay()
            .min(call.deadline.saturating_duration_since(now));
        Some(Box::pin(tokio::time::sleep(pause)))
    }

    /// Every call counts toward the budget once; only idempotent calls are
    /// kept for a retry (one whose body could not be kept is still cloned,
    /// a pointer copy, so that its error can say why it was not retried).
    fn clone_request(&mut self, call: &Call) -> Option<Call> {
        if call.attempt == 1 {
            self.shared.budget.deposit_at(call.started());
        }
        call.is_idempotent().then(|| call.clone())
    }
}
