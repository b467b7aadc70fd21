//! `beacon-faults` (`make faults`): partitions between real hosts under a
//! steady market load, each scenario asserted and reported. Needs root.

#![forbid(unsafe_code)]

use beacon_bench::partitions::{print_table, scenarios};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut reports = Vec::new();
    let mut failed = false;
    for outcome in scenarios::all().await {
        match outcome {
            Ok(report) => {
                failed |= !report.passed();
                for error in report.caller_errors.iter().take(5) {
                    println!("caller error ({}): {error}", report.name);
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
