//! `beacon-chaos`: the demo's topology under load and random failures.

#![forbid(unsafe_code)]

use beacon_bench::chaos;
use clap::Parser;
use std::{process::ExitCode, time::Duration};

/// Kills, pauses, resumes and restarts ratings instances at random, and
/// restarts the registry twice, while loading the market; fails if any
/// answer is not a 200 with four ratings or a rating goes missing.
#[derive(Debug, Parser)]
#[command(name = "beacon-chaos", version, about)]
struct Cli {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..=3600))]
    seconds: u64,

    /// Concurrent callers loading the market.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    callers: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let findings = match chaos::run(Duration::from_secs(cli.seconds), cli.callers as usize).await {
        Ok(findings) => findings,
        Err(e) => {
            eprintln!("beacon-chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut latencies = findings.latencies.clone();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies
            .get(((latencies.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "\nchaos: {} s, {} actions",
        cli.seconds,
        findings.actions.len()
    );
    println!(
        "market answers: {} (latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms)",
        findings.answers,
        at(0.5),
        at(0.99),
        at(1.0)
    );
    println!(
        "ratings shown: {} live, {} from cache",
        findings.live, findings.cached
    );
    if findings.violations.is_empty() {
        println!("every answer was a 200 with four ratings, none missing: PASS");
        ExitCode::SUCCESS
    } else {
        println!("{} broken promises, e.g.:", findings.violations.len());
        for violation in findings.violations.iter().take(10) {
            println!("  {violation}");
        }
        println!("FAIL");
        ExitCode::FAILURE
    }
}
