//! The report: a markdown table, the raw results as JSON, and the hang
//! scenario's timeline as an SVG plot.

use crate::{registry_bench::RegistryResults, scenarios::Outcome};
use plotters::prelude::*;
use serde::Serialize;
use std::{fmt::Write as _, path::Path};

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// When (UTC, RFC 3339-ish from `date`).
    pub date: String,
    /// CPU and cores.
    pub machine: String,
    /// The command that produced it.
    pub command: String,
    /// Side-by-side client/proxy results.
    pub outcomes: Vec<Outcome>,
    /// Registry against etcd.
    pub registry: Option<RegistryResults>,
    /// The proxies' configurations, as run.
    pub proxy_configs: Vec<(String, String)>,
    /// The etcd store against the memory store (a markdown section).
    pub store_costs: Option<String>,
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
    /// The markdown document.
    pub fn markdown(&self, plot: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Beacon benchmarks\n");
        let _ = writeln!(
            md,
            "- machine: {}\n- date: {}\n- command: `{}`\n",
            self.machine, self.date, self.command
        );
        let _ = writeln!(
            md,
            "Three `beacon-ratings` instances on loopback; each contender takes the same load in turn. \
             Every contender works with a 100 ms per-try timeout and retries on another instance; the caller \
             gives up after 2 s (an error). Ratios are against the bare client (the floor: no discovery, no \
             failure handling).\n"
        );
        let steady: Vec<&Outcome> = self
            .outcomes
            .iter()
            .filter(|o| o.scenario == "steady")
            .collect();
        let floor = steady
            .iter()
            .find(|o| o.contender.name() == "bare client")
            .map(|o| o.summary.throughput);
        let _ = writeln!(md, "## Steady: closed loop, maximum throughput\n");
        let _ = writeln!(
            md,
            "| contender | req/s | vs bare client | p50 ms | p90 ms | p99 ms | max ms | errors |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for o in &steady {
            let s = &o.summary;
            let ratio = floor
                .map(|f| format!("{:.2}", s.throughput / f))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {:.0} | {ratio} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
                o.contender.name(),
                s.throughput,
                s.p50_ms,
                s.p90_ms,
                s.p99_ms,
                s.max_ms,
                s.errors
            );
        }
        for (scenario, what) in [
            ("hang", "one instance SIGSTOPped (running but unresponsive), then resumed; open loop at a fixed rate"),
            ("crash", "one instance SIGKILLed (no deregistration), then restarted; open loop at a fixed rate"),
        ] {
            let _ = writeln!(md, "\n## {}: {what}\n", capitalize(scenario));
            let _ = writeln!(
                md,
                "| contender | requests | errors | slower than 2x steady p99 | p99 ms | max ms | back in rotation after |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|---|");
            for o in self.outcomes.iter().filter(|o| o.scenario == scenario) {
                let s = &o.summary;
                let back = o.back_after_ms.map(|ms| format!("{ms:.0} ms")).unwrap_or_else(|| "not within the run".into());
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {:.2} | {:.1} | {back} |",
                    o.contender.name(), s.requests, s.errors, o.slow.unwrap_or(0), s.p99_ms, s.max_ms
                );
            }
        }
        let _ = writeln!(
            md,
            "\n![latency and errors over time while one instance hangs]({plot})\n"
        );
        if let Some(registry) = &self.registry {
            md.push_str(&registry.markdown());
        }
        if let Some(costs) = &self.store_costs {
            md.push_str(costs);
        }
        let _ = writeln!(md, "\n## Proxy configurations, as run\n");
        for (name, config) in &self.proxy_configs {
            let _ = writeln!(md, "### {name}\n\n```\n{}```\n", config);
        }
        let _ = writeln!(
            md,
            "Raw results: `benchmarks/results.json`. Reproduce: `{}`.",
            self.command
        );
        md
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Draws the hang scenario: p99 latency (log scale) and errors per 100 ms
/// slice, one line per contender.
pub fn plot_hang(outcomes: &[Outcome], paused: (f64, f64), path: &Path) -> Result<(), String> {
    let runs: Vec<&Outcome> = outcomes.iter().filter(|o| o.scenario == "hang").collect();
    let end = runs
        .iter()
        .flat_map(|o| o.timeline.last())
        .map(|b| b.at_s + 0.1)
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(420);
    let colors = [
        RGBColor(9, 105, 218),
        RGBColor(130, 130, 130),
        RGBColor(207, 34, 46),
        RGBColor(26, 127, 55),
    ];
    let max_ms = runs
        .iter()
        .flat_map(|o| o.timeline.iter().map(|b| b.p99_ms))
        .fold(1.0, f64::max)
        * 1.5;
    let mut latency = ChartBuilder::on(&top)
        .caption(
            format!(
                "One instance paused at {} s, resumed at {} s: p99 latency per 100 ms",
                paused.0, paused.1
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, (0.1..max_ms).log_scale())
        .map_err(|e| e.to_string())?;
    latency
        .configure_mesh()
        .y_desc("ms (log)")
        .x_desc("seconds")
        .draw()
        .map_err(|e| e.to_string())?;
    for (run, color) in runs.iter().zip(colors) {
        let points = run
            .timeline
            .iter()
            .filter(|b| b.requests > 0)
            .map(|b| (b.at_s, b.p99_ms.max(0.1)));
        latency
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(run.contender.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())?;
    let max_errors = runs
        .iter()
        .flat_map(|o| o.timeline.iter().map(|b| b.errors))
        .max()
        .unwrap_or(0)
        .max(1);
    let mut errors = ChartBuilder::on(&bottom)
        .caption("errors per 100 ms", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..(max_errors as f64 * 1.1))
        .map_err(|e| e.to_string())?;
    errors
        .configure_mesh()
        .x_desc("seconds")
        .draw()
        .map_err(|e| e.to_string())?;
    for (run, color) in runs.iter().zip(colors) {
        let points = run.timeline.iter().map(|b| (b.at_s, b.errors as f64));
        errors
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
