//! `beacon-chaos`: the demo's topology under load and random failures,
//! judged against rules that a client routing nothing would break.

#![forbid(unsafe_code)]

use beacon_bench::chaos::{self, judge, Options, Rules};
use clap::Parser;
use std::{process::ExitCode, time::Duration};

/// Kills, pauses, resumes and restarts ratings instances at random, and
/// restarts the registry twice, while loading the market. Fails if an
/// answer is not a 200 with four ratings within the page deadline, if too
/// few ratings are live while an instance is up, or if a restarted
/// instance does not serve again in time.
#[derive(Debug, Parser)]
#[command(name = "beacon-chaos", version, about)]
struct Cli {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..=3600))]
    seconds: u64,

    /// Concurrent callers loading the market.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    callers: u64,

    /// Seed of every random choice (default: a fresh one, printed): the
    /// same seed replays the same actions.
    #[arg(long)]
    seed: Option<u64>,

    /// Least share of live ratings, in percent, in each second during which
    /// an instance had been up for 2 s.
    #[arg(long, default_value_t = 75, value_parser = clap::value_parser!(u64).range(0..=100))]
    min_live_percent: u64,

    /// A restarted or resumed instance, left alone, serves again within this
    /// many milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    serve_again_ms: u64,

    /// The market's maximum age of a cached rating, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    rating_max_age_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(rand::random);
    println!("chaos: seed {seed} (replay with --seed {seed})");
    let rules = Rules {
        min_live_share: cli.min_live_percent as f64 / 100.0,
        serve_again_within: Duration::from_millis(cli.serve_again_ms),
        ..Rules::default()
    };
    let options = Options {
        duration: Duration::from_secs(cli.seconds),
        workers: cli.callers as usize,
        seed,
        rating_max_age: Duration::from_millis(cli.rating_max_age_ms),
        rules,
    };
    let findings = match chaos::run(&options).await {
        Ok(findings) => findings,
        Err(e) => {
            eprintln!("beacon-chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    let verdict = judge(
        &findings.answers,
        &findings.changes,
        3,
        findings.end,
        &rules,
    );
    let mut latencies: Vec<f64> = findings
        .answers
        .iter()
        .map(|a| a.took.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "\nchaos: {} s, {} actions, seed {seed}",
        cli.seconds,
        findings.actions.len()
    );
    println!(
        "market answers: {} (latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} over the {} ms deadline)",
        verdict.answers,
        at(0.5),
        at(0.99),
        at(1.0),
        verdict.over_deadline,
        rules.page_deadline.as_millis()
    );
    println!(
        "ratings shown: {} live, {} from cache, {} none",
        verdict.live, verdict.cached, verdict.none
    );
    println!(
        "live share: lowest {} in {} one-second windows with an instance up (needed {}%)",
        verdict
            .worst_live_share
            .map_or("n/a".to_owned(), |s| format!("{:.0}%", s * 100.0)),
        verdict.windows_checked,
        cli.min_live_percent
    );
    let slowest = verdict.return_times.iter().max();
    println!(
        "instances back: {} checked, slowest served again after {}",
        verdict.returns_checked,
        slowest.map_or("n/a".to_owned(), |d| format!("{} ms", d.as_millis()))
    );
    if verdict.violations.is_empty() {
        println!("PASS");
        ExitCode::SUCCESS
    } else {
        println!("{} broken rules, e.g.:", verdict.violations.len());
        for violation in verdict.violations.iter().take(10) {
            println!("  {violation}");
        }
        println!("FAIL (replay with --seed {seed})");
        ExitCode::FAILURE
    }
}
