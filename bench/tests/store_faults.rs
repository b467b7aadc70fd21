//! The store's fault scenarios against the real binaries and stores
//! (`beacon-stress --faults`): a full disk under SQLite (a tmpfs: needs
//! root, and fails rather than skips without it), PostgreSQL stopped and
//! started, a replica killed mid-write on each store. In every one no
//! acknowledged write may be missing from the store, and writes must come
//! back without a restart; while PostgreSQL is down the page keeps its
//! deadline and says the cart is unavailable, and deep health says 503.

use std::process::Command;

/// The table's row for `fault` on `store`, as cells.
fn row<'a>(report: &'a str, fault: &str, store: &str) -> Vec<&'a str> {
    report
        .lines()
        .find(|l| l.starts_with(&format!("| {fault} | {store} |")))
        .unwrap_or_else(|| panic!("no row for {fault} on {store}:\n{report}"))
        .split('|')
        .map(str::trim)
        .skip(1)
        .collect()
}

fn millis(cell: &str) -> f64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number of ms"))
}

#[test]
fn no_acknowledged_write_is_lost_when_the_store_fails_and_writes_come_back() {
    let output = Command::new(env!("CARGO_BIN_EXE_beacon-stress"))
        .args([
            "--faults",
            "--seconds",
            "6",
            "--workers",
            "8",
            "--seed",
            "7",
        ])
        .output()
        .expect("beacon-stress runs");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("{report}");
    assert!(output.status.success(), "stress --faults failed:\n{report}");
    // Columns: fault, store, acknowledged, lost, failed, slowest failed
    // write, page slowest, page 200 throughout, page said unavailable,
    // deep health while down, writes back after.
    for (fault, store) in [
        ("disk full", "SQLite"),
        ("PostgreSQL stopped", "PostgreSQL"),
        ("replica SIGKILLed", "SQLite"),
        ("replica SIGKILLed", "PostgreSQL"),
    ] {
        let cells = row(&report, fault, store);
        assert!(
            millis(cells[2]) > 0.0,
            "{fault}/{store}: nothing acknowledged"
        );
        assert_eq!(cells[3], "0", "{fault}/{store}: acknowledged writes lost");
        assert!(
            millis(cells[10]) < 5000.0,
            "{fault}/{store}: writes came back only after {} ms",
            cells[10]
        );
    }
    let full = row(&report, "disk full", "SQLite");
    assert!(full[4].contains("507"), "a full disk answers 507: {full:?}");
    assert!(
        full[9].contains("503"),
        "deep health saw the full disk: {full:?}"
    );
    let down = row(&report, "PostgreSQL stopped", "PostgreSQL");
    assert!(down[4].contains("503"), "writes failed with 503: {down:?}");
    assert!(
        millis(down[5]) < 3500.0,
        "a write failed only after {} ms (the bound is 2 s)",
        down[5]
    );
    assert!(
        millis(down[6]) < 2500.0,
        "the page took {} ms with the store down (its deadline is 1 s)",
        down[6]
    );
    assert_eq!((down[7], down[8]), ("yes", "yes"), "{down:?}");
    assert!(
        down[9].starts_with("503 ×") && !down[9].contains(','),
        "deep health while down, 503 every time: {down:?}"
    );
}
