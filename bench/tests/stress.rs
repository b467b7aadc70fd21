//! A short stress run against the real binaries on both stores: it must
//! pass (no 5xx, every request answered, no acknowledged write lost), and
//! it must have raced (compare-and-sets retried, stale saves merged,
//! conflicts answered), or a pass would mean nothing. Needs the
//! workspace's binaries built (`make test` builds them first).

use std::process::Command;

#[test]
fn a_few_seconds_of_racing_writers_lose_nothing_on_either_store() {
    let output = Command::new(env!("CARGO_BIN_EXE_beacon-stress"))
        .args(["--seconds", "3", "--workers", "8", "--seed", "7"])
        .output()
        .expect("beacon-stress runs");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "stress failed:\n{report}");
    for store in ["SQLite", "PostgreSQL"] {
        let row: Vec<&str> = report
            .lines()
            .find(|l| l.starts_with(&format!("| {store} | ")) && l.matches('|').count() > 10)
            .unwrap_or_else(|| panic!("no {store} row:\n{report}"))
            .split('|')
            .map(str::trim)
            .collect();
        let column = |n: usize| row[n].parse::<f64>().unwrap_or(-1.0);
        assert_eq!(
            (column(6), column(7)),
            (0.0, 0.0),
            "{store}: 5xx or unanswered"
        );
        assert!(column(8) > 0.0, "{store}: no compare-and-set was retried");
        assert!(column(9) > 0.0, "{store}: no stale save merged");
        assert!(column(10) > 0.0, "{store}: no conflict answered");
        assert_eq!(column(13), 0.0, "{store}: lost updates");
    }
}
