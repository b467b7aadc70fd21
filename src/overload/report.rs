//! ORCA's per-answer load report, `endpoint-load-metrics`, in its TEXT
//! form: written by [`OverloadLayer`](super::OverloadLayer), read by the
//! client's balancer. One type for both sides.

use http::{header::HeaderName, HeaderValue};
use std::fmt::Write as _;

/// The header an answer's load report travels in (ORCA, as gRPC's
/// weighted round robin and Envoy read it).
pub const LOAD_METRICS_HEADER: HeaderName = HeaderName::from_static("endpoint-load-metrics");

/// What an instance says of its own load. Every field is optional on the
/// wire; ORCA's other fields (`mem_utilization`, `named_metrics.*`, …) are
/// read past.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadReport {
    /// The process's CPU use as a share of the machine's cores (0.0–1.0).
    pub cpu_utilization: Option<f64>,
    /// The application's own measure of how full it is (0.0–1.0 and
    /// above when past it): for [`OverloadLayer`](super::OverloadLayer),
    /// requests in flight as a share of its limit.
    pub application_utilization: Option<f64>,
    /// Requests answered per second.
    pub rps_fractional: Option<f64>,
}

impl LoadReport {
    /// The utilization a balancer weighs by, as gRFC A58 picks it: the
    /// application's own figure when it gives one above zero, else the
    /// CPU's.
    pub fn utilization(&self) -> Option<f64> {
        self.application_utilization
            .filter(|u| *u > 0.0)
            .or(self.cpu_utilization)
    }

    /// The report as the header's value: `TEXT key=value, …`, three
    /// decimals.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut text = String::from("TEXT ");
        let fields = [
            ("cpu_utilization", self.cpu_utilization),
            ("application_utilization", self.application_utilization),
            ("rps_fractional", self.rps_fractional),
        ];
        let mut first = true;
        for (name, value) in fields {
            let Some(value) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            if !first {
                text.push_str(", ");
            }
            first = false;
            // Writing into a String cannot fail.
            let _ = write!(text, "{name}={value:.3}");
        }
        // ASCII letters, digits, '=', ',', '.', '-' and spaces only.
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("TEXT "))
    }

    /// Reads a header's value; `None` if it is not the TEXT form. A field
    /// that is not a finite, non-negative number is left out; unknown
    /// fields are read past.
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?.trim();
        let fields = text.strip_prefix("TEXT")?;
        let mut report = Self::default();
        for field in fields.split(',') {
            let Some((name, value)) = field.split_once('=') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            if !value.is_finite() || value < 0.0 {
                continue;
            }
            match name.trim() {
                "cpu_utilization" => report.cpu_utilization = Some(value),
                "application_utilization" => report.application_utilization = Some(value),
                "rps_fractional" => report.rps_fractional = Some(value),
                _ => {}
            }
        }
        Some(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_as_written() {
        let report = LoadReport {
            cpu_utilization: Some(0.25),
            application_utilization: Some(0.5),
            rps_fractional: Some(812.0),
        };
        let value = report.to_header_value();
        assert_eq!(
            value,
            "TEXT cpu_utilization=0.250, application_utilization=0.500, rps_fractional=812.000"
        );
        assert_eq!(LoadReport::parse(&value), Some(report));
        assert_eq!(report.utilization(), Some(0.5));
    }

    #[test]
    fn others_reports_are_read_past_what_is_not_understood() {
        let envoy = HeaderValue::from_static(
            "TEXT cpu_utilization=0.3, mem_utilization=0.8, named_metrics.foo=2, rps_fractional=10",
        );
        let report = LoadReport::parse(&envoy).expect("TEXT");
        assert_eq!(report.cpu_utilization, Some(0.3));
        assert_eq!(report.rps_fractional, Some(10.0));
        // No application figure (or zero): the CPU's is the utilization.
        assert_eq!(report.utilization(), Some(0.3));
        let junk = HeaderValue::from_static("TEXT cpu_utilization=NaN, rps_fractional=-1, x");
        assert_eq!(LoadReport::parse(&junk), Some(LoadReport::default()));
        assert_eq!(
            LoadReport::parse(&HeaderValue::from_static("JSON {}")),
            None
        );
        assert_eq!(LoadReport::default().to_header_value(), "TEXT ");
    }
}
