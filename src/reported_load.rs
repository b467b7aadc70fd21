//! The load an instance reports of itself, as the balancer believes it.
//!
//! Servers behind [`OverloadLayer`](crate::overload::OverloadLayer) (and
//! any that speak ORCA) put their utilization on every answer. The
//! latency-aware balancer sees only its own client's calls: how long they
//! took, how many are in flight. A report sees every caller's: an instance
//! that other clients keep busy says so before this client's latency
//! estimate catches up. The balancer blends the two (see
//! `client::balance::p2c`).
//!
//! A report is not believed the moment it shows, nor forever — gRFC A58's
//! rules, which gRPC's weighted round robin follows:
//!
//! * **Blackout** ([`BLACKOUT`], 10 s): an instance's reports count only
//!   once it has been reporting that long. A new instance's first answers
//!   come from an idle process; believing them would send it a flood.
//! * **Expiry** ([`EXPIRY`], 3 min): a report older than that is
//!   forgotten, and the next one starts a new blackout. An instance that
//!   stopped reporting (or that this client stopped calling) may be
//!   anything now.
//!
//! A breaker that closes forgets the reports too, as it forgets the
//! latency: the instance is new again.

use crate::overload::LoadReport;
use http::HeaderValue;
use std::time::Duration;
use tokio::time::Instant;

/// How long an instance must have been reporting before its reports count.
pub(crate) const BLACKOUT: Duration = Duration::from_secs(10);

/// How old a report may be and still count.
pub(crate) const EXPIRY: Duration = Duration::from_secs(180);

/// How often a report is read at most. Servers make theirs anew ten times
/// a second ([`OverloadLayer`](crate::overload::OverloadLayer) does):
/// reading every answer's would cost each call a parse for nothing new.
const READ_EVERY: Duration = Duration::from_millis(50);

/// What one endpoint's reports say. `Copy` and small: it lives in the
/// endpoint's state, under the lock its breaker already takes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ReportedLoad {
    /// The latest utilization reported and when; `None` before any (or
    /// after a reset).
    latest: Option<(f64, Instant)>,
    /// Since when the instance has been reporting without a gap longer
    /// than [`EXPIRY`]: blackout ends [`BLACKOUT`] after it.
    reporting_since: Option<Instant>,
}

impl ReportedLoad {
    /// Takes in an answer's `endpoint-load-metrics` header, if it had one,
    /// as of `now`. A header that is not ORCA's TEXT form, or reports no
    /// utilization, is no report.
    pub(crate) fn observe(&mut self, header: Option<&HeaderValue>, now: Instant) {
        let Some(header) = header else {
            return;
        };
        if let Some((_, at)) = self.latest {
            if now.saturating_duration_since(at) < READ_EVERY {
                return;
            }
        }
        let Some(utilization) = LoadReport::parse(header).and_then(|r| r.utilization()) else {
            return;
        };
        self.record(utilization, now);
    }

    /// Takes in a reported `utilization` as of `now`.
    pub(crate) fn record(&mut self, utilization: f64, now: Instant) {
        if self.is_expired(now) {
            self.reporting_since = None;
        }
        self.reporting_since.get_or_insert(now);
        self.latest = Some((utilization, now));
    }

    /// The utilization to weigh the instance by now: the latest report,
    /// once past blackout and before expiry; `None` otherwise.
    pub(crate) fn utilization(&self, now: Instant) -> Option<f64> {
        let (utilization, _) = self.latest?;
        let since = self.reporting_since?;
        let believed = now.saturating_duration_since(since) >= BLACKOUT && !self.is_expired(now);
        believed.then_some(utilization)
    }

    /// The latest utilization reported, believed or not: for dashboards.
    pub(crate) fn latest(&self) -> Option<f64> {
        self.latest.map(|(utilization, _)| utilization)
    }

    /// Forgets every report: the instance is new again.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.latest
            .is_some_and(|(_, at)| now.saturating_duration_since(at) >= EXPIRY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(utilization: f64) -> HeaderValue {
        LoadReport {
            application_utilization: Some(utilization),
            ..LoadReport::default()
        }
        .to_header_value()
    }

    #[tokio::test(start_paused = true)]
    async fn reports_count_only_after_the_blackout() {
        let mut load = ReportedLoad::default();
        let start = Instant::now();
        assert_eq!(load.utilization(start), None);
        load.observe(Some(&header(0.9)), start);
        assert_eq!(load.latest(), Some(0.9));
        assert_eq!(load.utilization(start), None, "a new instance's reports");
        let almost = start + BLACKOUT - Duration::from_millis(1);
        load.observe(Some(&header(0.4)), almost);
        assert_eq!(load.utilization(almost), None);
        assert_eq!(load.utilization(start + BLACKOUT), Some(0.4));
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_report_expires_and_the_next_starts_a_new_blackout() {
        let mut load = ReportedLoad::default();
        let start = Instant::now();
        load.record(0.5, start);
        load.record(0.5, start + BLACKOUT);
        let last = start + BLACKOUT;
        assert_eq!(load.utilization(last + EXPIRY / 2), Some(0.5));
        assert_eq!(load.utilization(last + EXPIRY), None, "expired");
        let back = last + EXPIRY + Duration::from_secs(1);
        load.record(0.7, back);
        assert_eq!(load.utilization(back), None, "blackout again");
        assert_eq!(load.utilization(back + BLACKOUT), Some(0.7));
    }

    #[tokio::test(start_paused = true)]
    async fn reports_closer_than_the_read_interval_are_not_parsed_and_junk_is_no_report() {
        let mut load = ReportedLoad::default();
        let start = Instant::now();
        load.observe(Some(&header(0.2)), start);
        load.observe(Some(&header(0.8)), start + READ_EVERY / 2);
        assert_eq!(load.latest(), Some(0.2));
        load.observe(Some(&header(0.8)), start + READ_EVERY);
        assert_eq!(load.latest(), Some(0.8));
        let later = start + READ_EVERY * 4;
        load.observe(Some(&HeaderValue::from_static("JSON {}")), later);
        load.observe(None, later);
        assert_eq!(load.latest(), Some(0.8));
        load.reset();
        assert_eq!(load.latest(), None);
    }
}
