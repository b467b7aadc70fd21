//! What the registry-vs-etcd runs measured, and how it reads as markdown.

use super::ops::Tally;
use crate::stats::Spread;
use serde::Serialize;
use std::fmt::Write as _;

/// One operation measured on the registry and on etcd, every run.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// What was measured.
    pub what: String,
    /// Beacon's registry, one value per run.
    pub registry: Vec<f64>,
    /// etcd through its JSON gateway.
    pub gateway: Vec<f64>,
    /// etcd through gRPC; empty where the client doesn't matter (memory).
    pub grpc: Vec<f64>,
    /// Unit of the numbers.
    pub unit: &'static str,
    /// Whether more is better (throughput) or less is (latency, memory).
    pub higher_is_better: bool,
}

/// The registry-vs-etcd results.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RegistryResults {
    /// Each operation.
    pub pairs: Vec<Pair>,
    /// Every operation that failed, or a count that came out wrong.
    pub failed: Vec<String>,
    /// Runs made.
    pub runs: usize,
    /// The fleet section.
    pub fleet: super::fleet::FleetResults,
    /// The shared-lease section.
    pub leases: super::leases::LeaseResults,
    /// The subset section.
    pub subsets: super::subsets::SubsetResults,
}

impl RegistryResults {
    /// What went wrong (empty for a clean run).
    pub fn failures(&self) -> Vec<String> {
        self.failed.clone()
    }

    /// A markdown section.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "\n## Registry against etcd\n\nThe same operations on Beacon's registry (memory store) and on a \
             single etcd member, both on loopback; medians of {} runs with the range in brackets. etcd is \
             reached two ways: through its v3 JSON gateway (a request per operation; how the registry's \
             etcd store talks to it) and through gRPC with the `etcd-client` crate over one connection, \
             with the keep-alive and watch streams opened before timing, as real etcd clients hold them. \
             Reads are linearizable on every side (etcd's default; the registry answers from its own \
             memory). Every operation is checked: a resolve must return every instance, a watcher must be \
             woken by the change, memory is divided by the instances actually stored. etcd is a durable, \
             replicated store: the reference, not a peer.\n\n\
             | operation | beacon-registry | etcd gRPC | etcd gateway | registry advantage (vs gRPC / vs gateway) |\n|---|---|---|---|---|\n",
            self.runs
        );
        for p in &self.pairs {
            let median = |v: &[f64]| Spread::of(v.iter().copied()).map(|s| s.median);
            let show = |v: &[f64], unit: &str| {
                Spread::of(v.iter().copied())
                    .map_or("n/a".to_owned(), |s| format!("{} {unit}", s.show(2)))
            };
            let advantage = |other: Option<f64>| match (median(&p.registry), other) {
                (Some(r), Some(o)) if r > 0.0 && o > 0.0 => {
                    format!("{:.1}x", if p.higher_is_better { r / o } else { o / r })
                }
                _ => "n/a".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} / {} |",
                p.what,
                show(&p.registry, p.unit),
                show(&p.grpc, p.unit),
                show(&p.gateway, p.unit),
                advantage(median(&p.grpc)),
                advantage(median(&p.gateway)),
            );
        }
        md.push_str(&self.fleet.markdown());
        md.push_str(&self.leases.markdown());
        md.push_str(&self.subsets.markdown());
        if !self.failed.is_empty() {
            let _ = writeln!(md, "\n**Failed operations:** {}", self.failed.join("; "));
        }
        md
    }

    pub(super) fn record(
        &mut self,
        what: String,
        unit: &'static str,
        higher_is_better: bool,
        values: [Option<f64>; 3],
    ) {
        let at = match self.pairs.iter().position(|p| p.what == what) {
            Some(at) => at,
            None => {
                self.pairs.push(Pair {
                    what,
                    registry: Vec::new(),
                    gateway: Vec::new(),
                    grpc: Vec::new(),
                    unit,
                    higher_is_better,
                });
                self.pairs.len() - 1
            }
        };
        let pair = &mut self.pairs[at];
        for (list, value) in [&mut pair.registry, &mut pair.gateway, &mut pair.grpc]
            .into_iter()
            .zip(values)
        {
            list.extend(value);
        }
    }

    pub(super) fn check(&mut self, what: &str, tally: Tally) {
        if tally.failed > 0 {
            self.failed.push(format!(
                "{what}: {} of {} failed",
                tally.failed,
                tally.ok + tally.failed
            ));
        }
    }
}
