//! The report's sections on gray failures: an instance that is slow, and
//! one that fails a share of its calls.

use super::{marked_down, show, Report};
use crate::{
    contenders::Contender,
    faults::{Fault, FLAKY_PERCENT, GRAY_SLOW},
    scenarios::Outcome,
};
use std::fmt::Write as _;

/// `median (min–max)` of a share over the runs, in percent.
fn percent(runs: &[&Outcome], share: fn(&Outcome) -> Option<f64>) -> String {
    let values: Vec<f64> = runs
        .iter()
        .filter_map(|o| share(o))
        .map(|s| s * 100.0)
        .collect();
    if values.is_empty() {
        return "—".to_owned();
    }
    format!("{} %", show(values, 1))
}

impl Report {
    /// The gray scenario: one instance answers late.
    pub(super) fn gray(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "Targets: at most 2 % of the calls made while the instance is slow take over {} ms, and \
             their p99 is at most twice the p99 of the healthy seconds before. \"Share\" is the slow \
             instance's share of the requests reaching the instances from 1 s after the fault to the \
             heal, as the instances count them (a third is its fair share); \"after heal\" is its share \
             of the answers from 2 s after the heal to the end.\n",
            GRAY_SLOW.as_millis()
        );
        let _ = writeln!(
            md,
            "| contender | errors | calls over {} ms while slow | p99 ms healthy | p99 ms while slow | share while slow | share after heal |",
            GRAY_SLOW.as_millis()
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for contender in Contender::ALL {
            let runs = self.runs_of(Fault::Gray.name(), contender);
            if runs.is_empty() {
                continue;
            }
            let figure = |f: &dyn Fn(&Outcome) -> Option<f64>, decimals| {
                show(runs.iter().filter_map(|o| f(o)), decimals)
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                contender.name(),
                figure(&|o| Some(o.summary.errors as f64), 0),
                percent(&runs, |o| o.late_share),
                figure(&|o| o.before.as_ref().map(|s| s.p99_ms), 2),
                figure(&|o| o.during.as_ref().map(|s| s.p99_ms), 2),
                percent(&runs, |o| o.faulty_share),
                percent(&runs, |o| o.healed_share),
            );
        }
    }

    /// The flaky scenario: one instance fails a share of its calls.
    pub(super) fn flaky(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "Targets: no caller error; the flaky instance taken out within a few seconds, and then \
             reached by at most 5 % of the requests. \"Share\" is its share of the requests reaching the \
             instances from 3 s after the fault to the heal, as the instances count them (failed ones \
             included; a third is its fair share, and with {FLAKY_PERCENT} % of those failing, a caller \
             without retries would see about {:.0} % errors). \"Marked down\" is the first time the \
             contender took it out.\n",
            f64::from(FLAKY_PERCENT) / 3.0
        );
        let _ = writeln!(
            md,
            "| contender | errors | marked down after | share once marked down | share after heal |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        for contender in Contender::ALL {
            let runs = self.runs_of(Fault::Flaky.name(), contender);
            if runs.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                contender.name(),
                show(runs.iter().map(|o| o.summary.errors as f64), 0),
                marked_down(&runs),
                percent(&runs, |o| o.faulty_share),
                percent(&runs, |o| o.healed_share),
            );
        }
    }
}
