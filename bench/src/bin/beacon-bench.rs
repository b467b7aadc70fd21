//! `beacon-bench`: every benchmark side by side, written to BENCHMARKS.md,
//! benchmarks/results.json and the plots in benchmarks/.

#![forbid(unsafe_code)]

use beacon_bench::{
    cross_zone, deep_chain,
    faults::Fault,
    overload,
    plots::{plot_gray, plot_hang},
    protocols::{self, Protocol},
    registry_bench::{self, Sizes},
    report::{machine, Report},
    scenarios::{run_all, Plan},
    sites, store_costs,
    topology::{binary, Backends},
};
use clap::Parser;
use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
};

/// Runs Beacon's benchmarks and writes the report.
#[derive(Debug, Parser)]
#[command(name = "beacon-bench", version, about)]
struct Cli {
    /// Short runs (about a minute), for a quick look.
    #[arg(long)]
    quick: bool,

    /// Where to write BENCHMARKS.md and benchmarks/.
    #[arg(long, default_value = ".")]
    out: PathBuf,

    /// Skip the registry-against-etcd part.
    #[arg(long)]
    no_registry: bool,

    /// Only the registry-against-etcd part (prints it; writes nothing).
    #[arg(long)]
    only_registry: bool,

    /// Only the shared-lease part of it (prints it; writes nothing).
    #[arg(long)]
    only_leases: bool,

    /// Only the subset part of it (prints it; writes nothing).
    #[arg(long)]
    only_subsets: bool,

    /// Only the changes-feed fleet part of it, one run (prints it; writes
    /// nothing).
    #[arg(long)]
    only_fleet: bool,

    /// The scenarios to run, comma-separated (steady, h2c, tls, hang, repeated-hang,
    /// crash, gray, flaky, chain, zones, overload, sites); all by default. Without steady,
    /// "slow" is 10 ms.
    #[arg(long, value_delimiter = ',', value_parser = parse_scenario)]
    scenarios: Vec<Scenario>,
}

/// A side-by-side scenario named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Steady,
    Over(Protocol),
    Fault(Fault),
    /// Deadline propagation in a chain of calls.
    Chain,
    /// Cross-zone calls.
    Zones,
    /// Full instances: adaptive limits against caps, HAProxy and nginx.
    Overload,
    /// A whole site's ratings stop and resume.
    Sites,
}

fn parse_scenario(name: &str) -> Result<Scenario, String> {
    match name {
        "steady" => return Ok(Scenario::Steady),
        "chain" => return Ok(Scenario::Chain),
        "zones" => return Ok(Scenario::Zones),
        "overload" => return Ok(Scenario::Overload),
        "sites" => return Ok(Scenario::Sites),
        _ => {}
    }
    if let Some(protocol) = Protocol::ALL.into_iter().find(|p| p.name() == name) {
        return Ok(Scenario::Over(protocol));
    }
    Fault::ALL
        .into_iter()
        .find(|f| f.name() == name)
        .map(Scenario::Fault)
        .ok_or_else(|| {
            format!(
                "unknown scenario {name:?}; expected steady, h2c, tls, hang, repeated-hang, crash, gray, flaky, chain, zones, overload or sites"
            )
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beacon-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<(), String> {
    let command = if cli.quick {
        "make bench-quick"
    } else {
        "make bench"
    };
    let plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let sizes = if cli.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if cli.only_fleet {
        let (results, failed) =
            registry_bench::fleet::run(&binary("beacon-registry"), sizes.fleet).await?;
        println!("{}", results.markdown());
        return match failed.as_slice() {
            [] => Ok(()),
            failures => Err(format!("failed operations: {}", failures.join("; "))),
        };
    }
    if cli.only_leases || cli.only_subsets {
        let mut leases = registry_bench::leases::LeaseResults::default();
        let mut subsets = registry_bench::subsets::SubsetResults::default();
        let mut failed = Vec::new();
        for run in 0..plan.runs {
            let binary = binary("beacon-registry");
            if cli.only_leases {
                eprintln!("shared leases, run {}", run + 1);
                failed
                    .extend(registry_bench::leases::run(&binary, sizes.leases, &mut leases).await?);
            }
            if cli.only_subsets {
                eprintln!("subsets, run {}", run + 1);
                failed.extend(
                    registry_bench::subsets::run(&binary, sizes.subsets, &mut subsets).await?,
                );
            }
        }
        println!("{}{}", leases.markdown(), subsets.markdown());
        return match failed.as_slice() {
            [] => Ok(()),
            failures => Err(format!("failed operations: {}", failures.join("; "))),
        };
    }
    if cli.only_registry {
        let results = registry_bench::run(&binary("beacon-registry"), sizes, plan.runs).await?;
        println!("{}", results.markdown());
        return match results.failures().as_slice() {
            [] => Ok(()),
            failures => Err(format!("failed operations: {}", failures.join("; "))),
        };
    }
    let all = cli.scenarios.is_empty();
    let steady = all || cli.scenarios.contains(&Scenario::Steady);
    let faults: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| all || cli.scenarios.contains(&Scenario::Fault(*f)))
        .collect();
    let protocols: Vec<Protocol> = Protocol::ALL
        .into_iter()
        .filter(|p| all || cli.scenarios.contains(&Scenario::Over(*p)))
        .collect();
    let backends = Arc::new(Mutex::new(Backends::start()?));
    let mut comparison = run_all(Arc::clone(&backends), plan, steady, &faults).await?;
    let (over, configs) = protocols::run(&backends, plan, &protocols).await?;
    comparison.outcomes.extend(over);
    comparison.configs.extend(configs);
    drop(backends);
    let mut calls_across = Vec::new();
    if all || cli.scenarios.contains(&Scenario::Chain) {
        eprintln!("== deep chain ==");
        calls_across.push(deep_chain::run(plan.steady_for * 2).await?);
    }
    if all || cli.scenarios.contains(&Scenario::Zones) {
        eprintln!("== cross-zone ==");
        calls_across.push(cross_zone::run(plan.steady_for).await?);
    }
    if all || cli.scenarios.contains(&Scenario::Overload) {
        eprintln!("== overload ==");
        let length = std::time::Duration::from_secs(if cli.quick { 4 } else { 10 });
        calls_across.push(overload::run(length, &cli.out.join("benchmarks")).await?);
    }
    if all || cli.scenarios.contains(&Scenario::Sites) {
        eprintln!("== sites ==");
        let run = sites::measure(sites::Timing::full()).await?;
        calls_across.push(sites::markdown(&run));
    }
    let (registry, store_costs) = if cli.no_registry {
        (None, None)
    } else {
        eprintln!("== registry against etcd ==");
        let registry = registry_bench::run(&binary("beacon-registry"), sizes, plan.runs).await?;
        eprintln!("== etcd store against memory store ==");
        let calls = if cli.quick { 300 } else { 2_000 };
        let costs = store_costs::run(calls, plan.runs)
            .await
            .map_err(|e| e.to_string())?;
        (Some(registry), Some(costs))
    };
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let report = Report {
        date,
        machine: machine(),
        command: command.into(),
        comparison,
        registry,
        store_costs,
        calls_across,
    };
    let dir = cli.out.join("benchmarks");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let paused = (plan.fault_at.as_secs_f64(), plan.heal_at.as_secs_f64());
    plot_hang(
        &report.comparison.outcomes,
        paused,
        &dir.join("hang-timeline.svg"),
    )?;
    let gray = Fault::Gray.timing(plan.faults_for, plan.fault_at, plan.heal_at);
    plot_gray(
        &report.comparison.outcomes,
        (gray.fault_at.as_secs_f64(), gray.heal_at.as_secs_f64()),
        &dir.join("gray-share.svg"),
    )?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("results.json"), json).map_err(|e| e.to_string())?;
    let markdown = report.markdown("benchmarks/hang-timeline.svg", "benchmarks/gray-share.svg");
    std::fs::write(cli.out.join("BENCHMARKS.md"), &markdown).map_err(|e| e.to_string())?;
    println!("{markdown}");
    match report.failures().as_slice() {
        [] => Ok(()),
        failures => Err(format!(
            "the report is written, but these operations failed, so it is not a result: {}",
            failures.join("; ")
        )),
    }
}
