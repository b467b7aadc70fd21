//! A short chaos run against the real binaries: it must pass, and it must
//! have judged something (windows with an instance up, an instance coming
//! back), or a pass would mean nothing. Needs the workspace's binaries
//! built (`make test` builds them first).

use std::process::Command;

/// A seed whose 30 s of actions mix pauses, kills, stops, restarts and
/// resumes, and leave instances alone long enough to be judged. Replay
/// any other with `make chaos ARGS="--seed N"`.
const SEED: &str = "4865583455557295164";

#[test]
fn thirty_seconds_of_chaos_keep_every_rule() {
    let output = Command::new(env!("CARGO_BIN_EXE_beacon-chaos"))
        .args(["--seconds", "30", "--seed", SEED])
        .output()
        .expect("beacon-chaos runs");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "chaos failed:\n{report}");
    assert!(report.contains("PASS"), "{report}");
    let number_before = |marker: &str| -> usize {
        let head = report.split(marker).next().unwrap_or_default();
        head.split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let windows = number_before(" one-second windows");
    let returns = number_before(" checked, slowest");
    assert!(windows >= 5, "only {windows} windows judged:\n{report}");
    assert!(returns >= 1, "no instance's return judged:\n{report}");
}
