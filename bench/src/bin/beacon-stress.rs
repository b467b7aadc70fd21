//! `beacon-stress` (`make stress`): concurrent POST/GET/PUT/DELETE on
//! shared carts and customers through two market replicas, on SQLite and on
//! PostgreSQL, then a check that no acknowledged write was lost; with
//! `--faults`, the same while the store fails under the load (a full disk,
//! PostgreSQL stopped, a replica killed).

#![forbid(unsafe_code)]

use beacon_bench::stress::{
    self,
    faults::{self, Fault, FaultReport},
    Db, Options, Report,
};
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

    /// Instead: the store's fault scenarios (disk full on SQLite, which
    /// needs root for its tmpfs; PostgreSQL stopped and started; a replica
    /// killed mid-write on each store), each `--seconds` long in three
    /// phases (load, fault, healed), checked the same way.
    #[arg(long)]
    faults: bool,
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
    if cli.faults {
        return run_faults(&options, &cli).await;
    }
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

async fn run_faults(options: &Options, cli: &Cli) -> ExitCode {
    println!(
        "stress --faults: {} workers on {} carts and {} customers through 2 market replicas, {} s per scenario (load, fault, healed), seed {}",
        options.workers, options.carts, options.customers, cli.seconds, options.seed
    );
    let mut reports = Vec::new();
    for fault in Fault::ALL {
        let fault = fault_for(fault, cli.db);
        let Some(fault) = fault else { continue };
        match faults::run(fault, options).await {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!(
                    "beacon-stress: {} on {}: {e}",
                    fault.name(),
                    fault.db().name()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    print_fault_table(&reports);
    let mut passed = true;
    for report in &reports {
        for lost in report.verdict.lost.iter().take(20) {
            println!("LOST ({}): {lost}", report.fault.name());
        }
        passed &= report.passed();
    }
    println!(
        "reproduce: make stress ARGS=\"--faults --seed {} --seconds {} --workers {}\"",
        options.seed, cli.seconds, options.workers
    );
    if passed {
        println!(
            "stress --faults: passed (no acknowledged write lost; writes back after every fault)"
        );
        ExitCode::SUCCESS
    } else {
        println!("stress --faults: FAILED");
        ExitCode::FAILURE
    }
}

/// `fault` if it runs on a store `which` takes.
fn fault_for(fault: Fault, which: Which) -> Option<Fault> {
    match (which, fault.db()) {
        (Which::Both, _) | (Which::Sqlite, Db::Sqlite) | (Which::Postgres, Db::Postgres) => {
            Some(fault)
        }
        _ => None,
    }
}

fn print_fault_table(reports: &[FaultReport]) {
    println!();
    println!("| fault | store | writes acknowledged | acknowledged lost | failed writes (status: count) | slowest failed write ms | page while down: slowest ms | page 200 throughout | page said \"unavailable\" | deep health while down | writes back after ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let failed: Vec<String> = r
            .failed
            .iter()
            .map(|(status, n)| match status {
                0 => format!("none: {n}"),
                s => format!("{s}: {n}"),
            })
            .collect();
        // Each status with how many times, in the order they came.
        let mut health: Vec<(u16, usize)> = Vec::new();
        for &status in &r.health_while_down {
            match health.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => health.push((status, 1)),
            }
        }
        let health: Vec<String> = health.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} |",
            r.fault.name(),
            r.fault.db().name(),
            r.acknowledged,
            r.verdict.lost.len(),
            if failed.is_empty() {
                "-".to_owned()
            } else {
                failed.join(", ")
            },
            r.slowest_failure.as_secs_f64() * 1000.0,
            r.page_while_down.0.as_secs_f64() * 1000.0,
            if r.page_while_down.1 { "yes" } else { "no" },
            if r.page_said_unavailable { "yes" } else { "no" },
            health.join(", "),
            r.recovery.map_or("never".to_owned(), |d| format!(
                "{:.0}",
                d.as_secs_f64() * 1000.0
            )),
        );
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
