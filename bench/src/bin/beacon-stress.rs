//! `beacon-stress` (`make stress`): concurrent POST/GET/PUT/DELETE on
//! shared carts and customers through two market replicas, on SQLite and on
//! PostgreSQL, then a check that no acknowledged write was lost.

#![forbid(unsafe_code)]

use beacon_bench::stress::{self, Db, Options, Report};
use clap::{Parser, ValueEnum};
use std::{process::ExitCode, time::Duration};

/// Loads two market replicas sharing one store and checks the outcome:
/// fails on any 5xx, any request without an answer, or any acknowledged
/// write missing from the store.
#[derive(Debug, Parser)]
#[command(name = "beacon-stress", version, about)]
struct Cli {
    /// How long each store is loaded, in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,

    /// Concurrent workers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    workers: u64,

    /// Shared carts (few: so that writers collide).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    carts: u64,

    /// Shared customers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    customers: u64,

    /// Which store(s).
    #[arg(long, value_enum, default_value_t = Which::Both)]
    db: Which,

    /// Seed of the workers' choices (default: a fresh one, printed).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    Sqlite,
    Postgres,
    Both,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(rand::random);
    let options = Options {
        duration: Duration::from_secs(cli.seconds),
        workers: cli.workers as usize,
        carts: cli.carts as usize,
        customers: cli.customers as usize,
        seed,
    };
    let dbs: &[Db] = match cli.db {
        Which::Sqlite => &[Db::Sqlite],
        Which::Postgres => &[Db::Postgres],
        Which::Both => &[Db::Sqlite, Db::Postgres],
    };
    println!(
        "stress: {} workers on {} carts and {} customers through 2 market replicas, {} s per store, seed {seed}",
        options.workers, options.carts, options.customers, cli.seconds
    );
    let mut reports = Vec::new();
    for &db in dbs {
        match stress::run(db, &options).await {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("beacon-stress: {}: {e}", db.name());
                return ExitCode::FAILURE;
            }
        }
    }
    print_table(&reports);
    let mut passed = true;
    for report in &reports {
        for lost in report.verdict.lost.iter().take(20) {
            println!("LOST ({}): {lost}", report.db.name());
        }
        passed &= report.passed();
    }
    println!(
        "reproduce: make stress ARGS=\"--seed {seed} --seconds {} --workers {}\"",
        cli.seconds, options.workers
    );
    if passed {
        println!("stress: passed (no 5xx, every request answered, no acknowledged write lost)");
        ExitCode::SUCCESS
    } else {
        println!("stress: FAILED");
        ExitCode::FAILURE
    }
}

fn print_table(reports: &[Report]) {
    println!();
    println!("| store | requests | req/s | 2xx | 4xx (expected) | 5xx | no answer | CAS retries | merges | conflicts (409) | stale checkouts | versions checked | lost updates | cart write p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let t = r.total();
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {:.2} | {:.2} |",
            r.db.name(),
            t.sent,
            t.sent as f64 / r.took.as_secs_f64(),
            t.ok,
            t.refused,
            t.server_errors,
            t.failed,
            r.retries,
            r.merges,
            r.conflicts,
            r.stale_checkouts,
            r.verdict.versions,
            r.verdict.lost.len(),
            r.cart_write_ms.0,
            r.cart_write_ms.1,
        );
    }
    println!();
    println!("| store | request | sent | 2xx | 4xx | 5xx | no answer |");
    println!("|---|---|---|---|---|---|---|");
    for r in reports {
        for (op, t) in &r.tallies {
            println!(
                "| {} | {op:?} | {} | {} | {} | {} | {} |",
                r.db.name(),
                t.sent,
                t.ok,
                t.refused,
                t.server_errors,
                t.failed
            );
        }
    }
}
