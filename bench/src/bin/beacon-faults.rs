//! `beacon-faults` (`make faults`): partitions between real hosts under a
//! steady market load, each scenario asserted and reported. Needs root.
//!
//! `beacon-faults [NAME...]` runs only the scenarios whose names contain
//! one of the words given (`make faults ARGS=leader`).

#![forbid(unsafe_code)]

use beacon_bench::partitions::{print_table, scenarios};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut reports = Vec::new();
    let mut failed = false;
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let chosen: Vec<_> = scenarios::all()
        .into_iter()
        .filter(|(name, _)| wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str())))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = scenarios::all().iter().map(|(name, _)| *name).collect();
        eprintln!(
            "beacon-faults: no scenario matches {wanted:?}; there are {}",
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    for (name, scenario) in chosen {
        eprintln!("beacon-faults: {name}");
        match scenario().await {
            Ok(report) => {
                failed |= !report.passed();
                for error in report.caller_errors.iter().take(5) {
                    println!("caller error ({}): {error}", report.name);
                }
                for (check, held) in &report.checks {
                    let verdict = if *held { "held" } else { "FAILED" };
                    println!("{}: {check}: {verdict}", report.name);
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("beacon-faults: a scenario could not run: {e}");
                failed = true;
            }
        }
    }
    println!();
    print_table(&reports);
    println!("reproduce: make faults (as root)");
    if failed {
        println!("faults: FAILED");
        ExitCode::FAILURE
    } else {
        println!("faults: PASS");
        ExitCode::SUCCESS
    }
}
