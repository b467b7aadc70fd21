//! Judging a chaos run after the fact, from what the load saw and what the
//! chaos did: pure functions over records, so each rule is unit-tested
//! without processes.
//!
//! The rules a run must keep:
//! * every market answer is a 200 with four ratings, within the page
//!   deadline (plus a grace for the HTTP round trip);
//! * in every window during which some instance had been up (running, not
//!   paused) long enough to be in rotation, at least a minimum share of the
//!   ratings shown were live — cached values can't pass for a working
//!   client;
//! * an instance restarted or resumed, and then left alone, serves a live
//!   rating again within a bound.

use std::{collections::BTreeMap, time::Duration};

/// One rating as the market showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// `live`, `cached` or `none`.
    pub source: String,
    /// The instance that served it (for a cached value: back then).
    pub instance: Option<String>,
}

/// One market answer, timed from the run's origin.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the request started.
    pub at: Duration,
    /// How long the answer took.
    pub took: Duration,
    /// The ratings shown, or why the answer was not a 200 with JSON.
    pub outcome: Result<Vec<Shown>, String>,
}

/// An instance going up (started, resumed) or down (killed, stopped, paused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// When, from the run's origin.
    pub at: Duration,
    /// Instance number.
    pub instance: u16,
    /// Up (serving) after the change.
    pub up: bool,
}

/// The thresholds a run is judged by.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Width of a window for the live-share rule.
    pub window: Duration,
    /// How long an instance must have been up before a window for the
    /// window to count as "an instance was available": registration, the
    /// resolver's long poll and a closing breaker take a moment.
    pub settle: Duration,
    /// Least share of live ratings in a window that counts.
    pub min_live_share: f64,
    /// A restarted instance left alone serves again within this.
    pub serve_again_within: Duration,
    /// The market's page deadline.
    pub page_deadline: Duration,
    /// Allowance on top of the deadline for the caller's HTTP round trip.
    pub deadline_grace: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(1),
            settle: Duration::from_secs(2),
            min_live_share: 0.75,
            serve_again_within: Duration::from_secs(5),
            page_deadline: Duration::from_secs(1),
            deadline_grace: Duration::from_millis(250),
        }
    }
}

/// What the judge found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Answers judged.
    pub answers: usize,
    /// Ratings shown live, from cache, and not at all.
    pub live: usize,
    /// Ratings shown from cache.
    pub cached: usize,
    /// Ratings shown as `none`.
    pub none: usize,
    /// Windows in which an instance was available (the live-share rule applied).
    pub windows_checked: usize,
    /// The lowest live share among them.
    pub worst_live_share: Option<f64>,
    /// Answers slower than the page deadline (within the grace: noted, not failed).
    pub over_deadline: usize,
    /// Restarts (and resumes) left alone long enough to be checked.
    pub returns_checked: usize,
    /// Their times from coming up until the first live rating they served.
    pub return_times: Vec<Duration>,
    /// Every broken rule, with when.
    pub violations: Vec<String>,
}

/// Judges `answers` against `changes` (instances `1..=instances`, all up
/// from the origin until their first change) over a run ending at `end`.
pub fn judge(
    answers: &[Answer],
    changes: &[Change],
    instances: u16,
    end: Duration,
    rules: &Rules,
) -> Verdict {
    let mut verdict = Verdict {
        answers: answers.len(),
        ..Verdict::default()
    };
    let up = up_intervals(changes, instances, end);
    for answer in answers {
        let late = rules.page_deadline + rules.deadline_grace;
        if answer.took > rules.page_deadline {
            verdict.over_deadline += 1;
        }
        if answer.took > late {
            verdict.violations.push(format!(
                "{:.1}s: an answer took {} ms, past the {} ms deadline",
                answer.at.as_secs_f64(),
                answer.took.as_millis(),
                rules.page_deadline.as_millis()
            ));
        }
        match &answer.outcome {
            Ok(shown) if shown.len() == 4 => {
                for rating in shown {
                    match rating.source.as_str() {
                        "live" => verdict.live += 1,
                        "cached" => verdict.cached += 1,
                        _ => verdict.none += 1,
                    }
                }
            }
            Ok(shown) => verdict.violations.push(format!(
                "{:.1}s: {} ratings instead of 4",
                answer.at.as_secs_f64(),
                shown.len()
            )),
            Err(e) => verdict
                .violations
                .push(format!("{:.1}s: {e}", answer.at.as_secs_f64())),
        }
    }
    live_share_by_window(answers, &up, end, rules, &mut verdict);
    returns(answers, changes, &up, rules, &mut verdict);
    verdict
}

/// Each instance's up intervals `[from, to)`.
fn up_intervals(
    changes: &[Change],
    instances: u16,
    end: Duration,
) -> BTreeMap<u16, Vec<(Duration, Duration)>> {
    let mut intervals = BTreeMap::new();
    for n in 1..=instances {
        let mut list = Vec::new();
        let mut since = Some(Duration::ZERO);
        for change in changes.iter().filter(|c| c.instance == n) {
            match (change.up, since) {
                (true, None) => since = Some(change.at),
                (false, Some(from)) => {
                    list.push((from, change.at));
                    since = None;
                }
                _ => {}
            }
        }
        if let Some(from) = since {
            list.push((from, end));
        }
        intervals.insert(n, list);
    }
    intervals
}

fn live_share_by_window(
    answers: &[Answer],
    up: &BTreeMap<u16, Vec<(Duration, Duration)>>,
    end: Duration,
    rules: &Rules,
    verdict: &mut Verdict,
) {
    let mut from = Duration::ZERO;
    while from + rules.window <= end {
        let to = from + rules.window;
        let available = up
            .values()
            .flatten()
            .any(|&(since, until)| since + rules.settle <= from && until >= to);
        let shown: Vec<&Shown> = answers
            .iter()
            .filter(|a| a.at >= from && a.at < to)
            .filter_map(|a| a.outcome.as_ref().ok())
            .flatten()
            .collect();
        if available && !shown.is_empty() {
            let live = shown.iter().filter(|s| s.source == "live").count();
            let share = live as f64 / shown.len() as f64;
            verdict.windows_checked += 1;
            verdict.worst_live_share =
                Some(verdict.worst_live_share.map_or(share, |w| w.min(share)));
            if share < rules.min_live_share {
                verdict.violations.push(format!(
                    "{:.1}s-{:.1}s: only {:.0}% of ratings live while an instance was up",
                    from.as_secs_f64(),
                    to.as_secs_f64(),
                    share * 100.0
                ));
            }
        }
        from = to;
    }
}

fn returns(
    answers: &[Answer],
    changes: &[Change],
    up: &BTreeMap<u16, Vec<(Duration, Duration)>>,
    rules: &Rules,
    verdict: &mut Verdict,
) {
    for change in changes.iter().filter(|c| c.up) {
        let deadline = change.at + rules.serve_again_within;
        let left_alone = up.get(&change.instance).is_some_and(|list| {
            list.iter()
                .any(|&(since, until)| since == change.at && until >= deadline)
        });
        if !left_alone {
            continue;
        }
        verdict.returns_checked += 1;
        let name = format!("ratings-{}", change.instance);
        let first = answers
            .iter()
            .filter(|a| a.at >= change.at)
            .filter(|a| {
                a.outcome.as_ref().is_ok_and(|shown| {
                    shown
                        .iter()
                        .any(|s| s.source == "live" && s.instance.as_deref() == Some(&name))
                })
            })
            .map(|a| a.at + a.took - change.at)
            .min();
        match first {
            Some(took) if took <= rules.serve_again_within => verdict.return_times.push(took),
            _ => verdict.violations.push(format!(
                "{:.1}s: {name} came back but served nothing live within {:?}",
                change.at.as_secs_f64(),
                rules.serve_again_within
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn answer(at: f64, sources: [&str; 4], instance: &str) -> Answer {
        Answer {
            at: s(at),
            took: Duration::from_millis(5),
            outcome: Ok(sources
                .iter()
                .map(|source| Shown {
                    source: (*source).to_owned(),
                    instance: Some(instance.to_owned()),
                })
                .collect()),
        }
    }

    fn every_100ms(from: f64, to: f64, sources: [&str; 4], instance: &str) -> Vec<Answer> {
        let (first, last) = ((from * 10.0).round() as u32, (to * 10.0).round() as u32);
        (first..last)
            .map(|tenth| answer(f64::from(tenth) / 10.0, sources, instance))
            .collect()
    }

    #[test]
    fn a_cached_only_run_fails_while_an_instance_is_up() {
        // All four ratings answered from cache although ratings-1 was up the
        // whole time: exactly what a client that routes nothing looks like.
        let answers = every_100ms(0.0, 10.0, ["cached"; 4], "ratings-1");
        let verdict = judge(&answers, &[], 1, s(10.0), &Rules::default());
        assert_eq!(verdict.windows_checked, 8, "windows from 2 s on");
        assert_eq!(verdict.worst_live_share, Some(0.0));
        assert_eq!(verdict.violations.len(), 8, "{:?}", verdict.violations);
    }

    #[test]
    fn cached_answers_pass_while_nothing_is_up() {
        let changes = [Change {
            at: s(0.5),
            instance: 1,
            up: false,
        }];
        let answers = every_100ms(0.0, 10.0, ["cached"; 4], "ratings-1");
        let verdict = judge(&answers, &changes, 1, s(10.0), &Rules::default());
        assert_eq!(verdict.windows_checked, 0);
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert_eq!((verdict.cached, verdict.live), (400, 0));
    }

    #[test]
    fn a_window_just_under_the_share_fails_and_one_at_it_passes() {
        let rules = Rules::default();
        let mut answers = every_100ms(4.0, 5.0, ["live", "live", "live", "cached"], "ratings-1");
        let verdict = judge(&answers, &[], 1, s(5.0), &rules);
        assert!(verdict.violations.is_empty(), "75% is enough");
        answers[0] = answer(4.0, ["live", "cached", "cached", "none"], "ratings-1");
        let verdict = judge(&answers, &[], 1, s(5.0), &rules);
        assert_eq!(verdict.violations.len(), 1, "{:?}", verdict.violations);
        assert_eq!(verdict.none, 1);
    }

    #[test]
    fn a_restarted_instance_must_serve_again_within_the_bound() {
        let changes = [
            Change {
                at: s(1.0),
                instance: 2,
                up: false,
            },
            Change {
                at: s(2.0),
                instance: 2,
                up: true,
            },
        ];
        let rules = Rules::default();
        // Only ratings-1 serves afterwards: ratings-2 never came back.
        let answers = every_100ms(0.0, 10.0, ["live"; 4], "ratings-1");
        let verdict = judge(&answers, &changes, 2, s(10.0), &rules);
        assert_eq!(verdict.returns_checked, 1);
        assert_eq!(verdict.violations.len(), 1, "{:?}", verdict.violations);
        // ratings-2 serves 1.5 s after its restart: passes, time recorded.
        let mut answers = answers;
        answers.push(answer(3.5, ["live"; 4], "ratings-2"));
        let verdict = judge(&answers, &changes, 2, s(10.0), &rules);
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert_eq!(verdict.return_times, [Duration::from_millis(1505)]);
    }

    #[test]
    fn a_restart_not_left_alone_is_not_judged() {
        let changes = [
            Change {
                at: s(1.0),
                instance: 1,
                up: false,
            },
            Change {
                at: s(2.0),
                instance: 1,
                up: true,
            },
            Change {
                at: s(3.0),
                instance: 1,
                up: false,
            },
        ];
        let verdict = judge(&[], &changes, 1, s(10.0), &Rules::default());
        assert_eq!(verdict.returns_checked, 0);
        assert!(verdict.violations.is_empty());
    }

    #[test]
    fn slow_or_broken_answers_are_violations() {
        let mut slow = answer(1.0, ["live"; 4], "ratings-1");
        slow.took = Duration::from_millis(1300);
        let mut late_but_in_grace = answer(1.1, ["live"; 4], "ratings-1");
        late_but_in_grace.took = Duration::from_millis(1100);
        let broken = Answer {
            at: s(1.2),
            took: Duration::from_millis(3),
            outcome: Err("the market answered 500".into()),
        };
        let short = Answer {
            outcome: Ok(Vec::new()),
            ..answer(1.3, ["live"; 4], "ratings-1")
        };
        let verdict = judge(
            &[slow, late_but_in_grace, broken, short],
            &[],
            1,
            s(2.0),
            &Rules::default(),
        );
        assert_eq!(verdict.over_deadline, 2);
        assert_eq!(verdict.violations.len(), 3, "{:?}", verdict.violations);
    }
}
