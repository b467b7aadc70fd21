//! The partition scenarios between real hosts (network namespaces), run
//! through `beacon-faults` as `make faults` runs them: every scenario must
//! pass. Needs root, and fails without it (CI runs as root); behind the
//! `netns-tests` feature, which `make test` turns on. Needs the
//! workspace's binaries built (`make test` builds them first).

use std::process::Command;

#[test]
fn every_partition_scenario_keeps_its_promises() {
    let output = Command::new(env!("CARGO_BIN_EXE_beacon-faults"))
        .output()
        .expect("beacon-faults runs");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "faults failed:\n{report}");
    let passed = report.lines().filter(|l| l.ends_with("| PASS |")).count();
    assert_eq!(passed, 9, "nine scenarios passed:\n{report}");
}
