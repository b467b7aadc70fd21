//! The report: a markdown table, the raw results as JSON, and the hang
//! scenario's timeline as an SVG plot.

use crate::{
    contenders::{Contender, PER_TRY},
    faults::Fault,
    registry_bench::RegistryResults,
    scenarios::{Comparison, Outcome},
    stats::Spread,
};
use serde::Serialize;

mod protocols;
mod slowness;
use std::fmt::Write as _;

/// Everything one `make bench` measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When (UTC, RFC 3339-ish from `date`).
    pub date: String,
    /// CPU and cores.
    pub machine: String,
    /// The command that produced it.
    pub command: String,
    /// Side-by-side client/proxy results, every run.
    pub comparison: Comparison,
    /// Registry against etcd.
    pub registry: Option<RegistryResults>,
    /// The etcd store against the memory store (a markdown section).
    pub store_costs: Option<String>,
    /// Deadlines across a chain, and calls across zones (markdown sections).
    pub calls_across: Vec<String>,
}

/// The machine, as `nproc` and `/proc/cpuinfo` tell it.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| format!("{} GiB", kib / 1024 / 1024))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {memory}")
}

impl Report {
    /// Every broken measurement: a request answered with the wrong body, a
    /// steady-load request that failed. A report with any is not a result.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        for o in &self.comparison.outcomes {
            let s = &o.summary;
            if s.wrong_answers > 0 {
                failures.push(format!(
                    "{} {} run {}: {} answers were not the asked-for rating",
                    o.contender.name(),
                    o.scenario,
                    o.run,
                    s.wrong_answers
                ));
            }
            if o.scenario == "steady" && s.errors > 0 {
                failures.push(format!(
                    "{} steady run {}: {} of {} requests failed",
                    o.contender.name(),
                    o.run,
                    s.errors,
                    s.requests
                ));
            }
        }
        if let Some(registry) = &self.registry {
            failures.extend(registry.failures());
        }
        failures
    }

    /// The markdown document.
    pub fn markdown(&self, hang_plot: &str, gray_plot: &str) -> String {
        let c = &self.comparison;
        let runs = c.outcomes.iter().map(|o| o.run + 1).max().unwrap_or(0);
        let mut md = String::new();
        let _ = writeln!(md, "# Beacon benchmarks\n");
        let _ = writeln!(
            md,
            "- machine: {}\n- date: {}\n- command: `{}`\n- every figure: the median of {runs} runs, with the lowest and highest in brackets\n",
            self.machine, self.date, self.command
        );
        let _ = writeln!(
            md,
            "Three `beacon-ratings` instances on loopback; each contender takes the same load in turn, \
             in an order rotated from run to run (steady: in turns of half a second, taken in rotation \
             until each has had its time, so the machine's drift falls on all alike, after one unmeasured \
             turn each to open connections). Beacon, HAProxy \
             and nginx each detect a failed instance \
             and retry on another with a {} ms per-try timeout; HAProxy and nginx balance to the server \
             with the fewest connections, Beacon by latency (power of two choices over peak-EWMA \
             latency × calls in flight) with hedging on, its defaults (configurations below). The bare client \
             (static round-robin over a pooled hyper-util client) has no discovery, no failure handling, \
             no per-try timeout and no retries: it is the floor for speed, and shows what a fault costs \
             without any handling. The caller gives up after 2 s (an error). Every answer is checked: a \
             2xx whose body is not the asked-for rating counts as a failure and fails `make bench`.\n",
            PER_TRY.as_millis()
        );
        self.steady(&mut md);
        for fault in Fault::ALL {
            if c.outcomes.iter().all(|o| o.scenario != fault.name()) {
                continue;
            }
            let _ = writeln!(
                md,
                "\n## {}: {}\n",
                capitalize(fault.name()),
                fault.description()
            );
            match fault {
                Fault::Hang | Fault::RepeatedHang | Fault::Crash => {
                    self.faults(&mut md, fault.name())
                }
                Fault::Gray => self.gray(&mut md),
                Fault::Flaky => self.flaky(&mut md),
            }
            let plot = match fault {
                Fault::Hang => Some((
                    "latency and errors over time while one instance hangs (run 1)",
                    hang_plot,
                )),
                Fault::Gray => Some((
                    "the slow instance's share of the answers over time (run 1)",
                    gray_plot,
                )),
                _ => None,
            };
            if let Some((alt, path)) = plot {
                let _ = writeln!(md, "\n![{alt}]({path})\n");
            }
        }
        for section in &self.calls_across {
            md.push_str(section);
        }
        if let Some(registry) = &self.registry {
            md.push_str(&registry.markdown());
        }
        if let Some(costs) = &self.store_costs {
            md.push_str(costs);
        }
        let _ = writeln!(md, "\n## Proxy configurations, as run\n");
        for (name, config) in &c.configs {
            let _ = writeln!(md, "### {name}\n\n```\n{}```\n", config);
        }
        let _ = writeln!(
            md,
            "Raw results: `benchmarks/results.json`. Reproduce: `{}`.",
            self.command
        );
        md
    }

    fn runs_of(&self, scenario: &str, contender: Contender) -> Vec<&Outcome> {
        self.comparison
            .outcomes
            .iter()
            .filter(|o| o.scenario == scenario && o.contender == contender)
            .collect()
    }

    fn steady(&self, md: &mut String) {
        let _ = writeln!(md, "## Steady: closed loop, maximum throughput\n");
        let _ = writeln!(
            md,
            "Beacon tells each instance how long its attempt will be waited for, in a \
             `beacon-deadline-ms` header that the instances read (their `DeadlineLayer`); the bare \
             client and the proxies send nothing of the kind, and one more header is work for hyper \
             and h2 on both sides (counted with callgrind: `examples/instructions_per_call.rs`). \
             \"beacon, no deadline header\" is Beacon with `send_deadline: false`, so that what the \
             header costs and what the rest of Beacon costs can be told apart.\n"
        );
        self.steady_table(md, "steady");
        self.protocols(md);
    }

    /// The steady table of `scenario`, each contender against the bare
    /// client of the same run.
    fn steady_table(&self, md: &mut String, scenario: &str) {
        let _ = writeln!(
            md,
            "| contender | req/s | vs bare client | p50 ms | p99 ms | max ms | failed requests | extra requests sent |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        let bare = self.runs_of(scenario, Contender::BareClient);
        for contender in Contender::STEADY {
            let runs = self.runs_of(scenario, contender);
            if runs.is_empty() {
                continue;
            }
            // Each run's ratio against the bare client of the same run.
            let ratios = runs.iter().filter_map(|o| {
                let floor = bare.iter().find(|b| b.run == o.run)?.summary.throughput;
                (floor > 0.0).then(|| o.summary.throughput / floor)
            });
            let figure =
                |f: fn(&Outcome) -> f64, decimals| show(runs.iter().map(|o| f(o)), decimals);
            let extra: Vec<_> = runs.iter().filter_map(|o| o.extra_requests).collect();
            let extra = if extra.is_empty() {
                "—".to_owned()
            } else {
                let requests: usize = runs.iter().map(|o| o.summary.requests).sum();
                let hedges: u64 = extra.iter().map(|e| e.hedges).sum();
                let refused: u64 = extra.iter().map(|e| e.hedges_refused).sum();
                let retries: u64 = extra.iter().map(|e| e.retries).sum();
                format!(
                    "{hedges} hedges ({:.2} % of calls; {refused} more refused by the budget), {retries} retries",
                    100.0 * hedges as f64 / requests.max(1) as f64
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {extra} |",
                contender.name(),
                figure(|o| o.summary.throughput, 0),
                show(ratios, 2),
                figure(|o| o.summary.p50_ms, 2),
                figure(|o| o.summary.p99_ms, 2),
                figure(|o| o.summary.max_ms, 1),
                runs.iter().map(|o| o.summary.errors).sum::<usize>(),
            );
        }
    }

    fn faults(&self, md: &mut String, scenario: &str) {
        let _ = writeln!(
            md,
            "\"Slow\" is one threshold for every contender: slower than {:.1} ms (twice the bare client's \
             steady p99, at least 10 ms), or failed. p99 and max include failed requests, at the time they \
             failed. \"Marked down\" is when the contender itself took the instance out (how we know is \
             below the table), counted from the fault. \"Back\" is from healing until the instance's first \
             answer, every run listed.\n",
            self.comparison.slow_ms
        );
        let _ = writeln!(
            md,
            "| contender | errors | slow | p99 ms | max ms | marked down after | back in rotation after |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        let mut evidence = Vec::new();
        for contender in Contender::ALL {
            let runs = self.runs_of(scenario, contender);
            if runs.is_empty() {
                continue;
            }
            let figure =
                |f: fn(&Outcome) -> f64, decimals| show(runs.iter().map(|o| f(o)), decimals);
            let marked = marked_down(&runs);
            let detections: Vec<_> = runs.iter().filter_map(|o| o.detection.as_ref()).collect();
            if let Some(d) = detections.first() {
                evidence.push(format!("{}: {}", contender.name(), d.evidence));
            }
            let heals = runs
                .iter()
                .map(|o| o.back_after_ms.len())
                .max()
                .unwrap_or(0);
            let back = (0..heals)
                .map(|n| {
                    let back = back_after(&runs, n);
                    if heals > 1 {
                        format!("resume {}: {back}", n + 1)
                    } else {
                        back
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {marked} | {back} |",
                contender.name(),
                figure(|o| o.summary.errors as f64, 0),
                figure(|o| o.slow.unwrap_or(0) as f64, 0),
                figure(|o| o.summary.p99_ms, 2),
                figure(|o| o.summary.max_ms, 1),
            );
        }
        if !evidence.is_empty() {
            let _ = writeln!(
                md,
                "\nMarked down, as each contender tells it: {}.",
                evidence.join("; ")
            );
        }
    }
}

/// When the contender marked the faulty instance down, over the runs.
fn marked_down(runs: &[&Outcome]) -> String {
    let detections: Vec<_> = runs.iter().filter_map(|o| o.detection.as_ref()).collect();
    if detections.is_empty() {
        return "no failure handling".to_owned();
    }
    let fired: Vec<f64> = detections.iter().filter_map(|d| d.after_ms).collect();
    let times = show(fired.iter().copied(), 0);
    if fired.len() == runs.len() {
        format!("{times} ms")
    } else if fired.is_empty() {
        "**never** (did not fire)".to_owned()
    } else {
        format!(
            "{times} ms; **did not fire in {} of {} runs**",
            runs.len() - fired.len(),
            runs.len()
        )
    }
}

/// `median (min–max)` of `values`, or `—` when there are none.
fn show(values: impl IntoIterator<Item = f64>, decimals: usize) -> String {
    Spread::of(values).map_or("—".to_owned(), |s| s.show(decimals))
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// How long after heal `n` the instance answered again, over the runs: the
/// median and range, then every run ("—": not before the next strike).
fn back_after(runs: &[&Outcome], n: usize) -> String {
    let each = |o: &&Outcome| o.back_after_ms.get(n).copied().flatten();
    let listed: Vec<String> = runs
        .iter()
        .map(|o| each(o).map_or("—".to_owned(), |ms| format!("{ms:.0}")))
        .collect();
    match Spread::of(runs.iter().filter_map(each)) {
        Some(spread) => format!("{} ms (runs: {})", spread.show(0), listed.join(", ")),
        None => "not within the run".to_owned(),
    }
}
