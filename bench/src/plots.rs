//! The plots in `benchmarks/`: the hang scenario's timeline and the gray
//! scenario's traffic share, one line per contender (run 1).

use crate::scenarios::Outcome;
use plotters::prelude::*;
use std::path::Path;

/// One colour per contender, in `Contender::ALL` order.
const COLORS: [RGBColor; 4] = [
    RGBColor(9, 105, 218),
    RGBColor(130, 130, 130),
    RGBColor(207, 34, 46),
    RGBColor(26, 127, 55),
];

/// Run 1 of `scenario`, every contender, and the end of its timeline (s).
fn first_runs<'a>(outcomes: &'a [Outcome], scenario: &str) -> (Vec<&'a Outcome>, f64) {
    let runs: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.scenario == scenario && o.run == 0)
        .collect();
    let end = runs
        .iter()
        .flat_map(|o| o.timeline.last())
        .map(|b| b.at_s + 0.1)
        .fold(1.0, f64::max);
    (runs, end)
}

/// Draws the hang scenario: p99 latency (log scale) and errors per 100 ms
/// slice, one line per contender.
pub fn plot_hang(outcomes: &[Outcome], paused: (f64, f64), path: &Path) -> Result<(), String> {
    let (runs, end) = first_runs(outcomes, "hang");
    if runs.is_empty() {
        return Ok(());
    }
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (top, bottom) = root.split_vertically(420);
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
    draw_lines(&mut latency, &runs, |run| {
        run.timeline
            .iter()
            .filter(|b| b.requests > 0)
            .map(|b| (b.at_s, b.p99_ms.max(0.1)))
            .collect()
    })?;
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
    for (run, color) in runs.iter().zip(COLORS) {
        let points = run.timeline.iter().map(|b| (b.at_s, b.errors as f64));
        errors
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Draws the gray scenario: the slow instance's share of the answers per
/// 500 ms, one line per contender; a third is its fair share.
pub fn plot_gray(outcomes: &[Outcome], slow: (f64, f64), path: &Path) -> Result<(), String> {
    let (runs, end) = first_runs(outcomes, "gray");
    if runs.is_empty() {
        return Ok(());
    }
    let instance = format!("ratings-{}", crate::faults::Fault::Gray.instance());
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{instance} answers {} ms late from {} s to {} s: its share of the answers per 500 ms",
                crate::faults::GRAY_DELAY_MS,
                slow.0,
                slow.1
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..0.6)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .y_desc("share of answers")
        .x_desc("seconds")
        .draw()
        .map_err(|e| e.to_string())?;
    draw_lines(&mut chart, &runs, |run| {
        run.timeline
            .chunks(5)
            .filter_map(|slices| {
                let all: usize = slices.iter().flat_map(|b| b.served.values()).sum();
                let slow: usize = slices.iter().filter_map(|b| b.served.get(&instance)).sum();
                let at = slices.first()?.at_s;
                (all > 0).then(|| (at, slow as f64 / all as f64))
            })
            .collect()
    })?;
    root.present().map_err(|e| e.to_string())
}

/// One line per contender's run, `points` of each, with a legend.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    runs: &[&Outcome],
    points: impl Fn(&Outcome) -> Vec<(f64, f64)>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (run, color) in runs.iter().zip(COLORS) {
        chart
            .draw_series(LineSeries::new(points(run), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(run.contender.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    legend(chart)
}

/// One named line of [`plot_lines`]: its points (seconds, value).
pub type Line = (String, Vec<(f64, f64)>);

/// Draws `lines` over time on one chart titled `caption`, the y axis
/// named `y_desc` and running from 0 to a little past the highest point.
pub fn plot_lines(path: &Path, caption: &str, y_desc: &str, lines: &[Line]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let points = || lines.iter().flat_map(|(_, points)| points.iter());
    let end = points().map(|(x, _)| *x).fold(1.0, f64::max);
    let top = points().map(|(_, y)| *y).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .y_desc(y_desc)
        .x_desc("seconds")
        .draw()
        .map_err(|e| e.to_string())?;
    for ((name, points), color) in lines.iter().zip(COLORS.iter().cycle()) {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    legend(&mut chart)?;
    root.present().map_err(|e| e.to_string())
}

/// The chart's legend, top right.
fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())
}
