//! The market's command line refuses what it can't use, naming it: a
//! signing secret too short to be one, a database URL it does not take, a
//! site name or remote site it cannot use.

mod support;

use std::process::Command;
use support::binary;

fn market(args: &[&str]) -> std::process::Output {
    Command::new(binary("beacon-market"))
        .args(args)
        .env_remove("BEACON_MARKET_SECRET")
        .env_remove("BEACON_MARKET_DB")
        .output()
        .expect("run beacon-market")
}

#[test]
fn a_short_or_missing_secret_is_a_usage_error_naming_the_flag() {
    for args in [&["--secret", "short"][..], &[][..]] {
        let out = market(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--secret"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_database_url_it_does_not_take_is_refused_by_name() {
    let out = market(&[
        "--secret",
        "a secret of enough length",
        "--db",
        "mysql://x/y",
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--db \"mysql://x/y\""), "{stderr}");
    assert!(stderr.contains("sqlite:PATH"), "{stderr}");
}

#[test]
fn a_site_or_remote_site_it_cannot_use_is_a_usage_error_naming_the_flag() {
    let secret = "0123456789abcdef0123456789abcdef";
    for (flag, value, says) in [
        ("--remote-dc", "b", "NAME=URL"),
        ("--remote-dc", "B=http://127.0.0.1:8500", "site name"),
        ("--remote-dc", "b=ftp://127.0.0.1:8500", "ftp://"),
        ("--dc", "A B", "a-z"),
    ] {
        let out = market(&["--secret", secret, flag, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
    }
}
