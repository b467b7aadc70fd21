//! Pieces of the command lines that several binaries share.

use beacon_net::failover::check_base_url;
use std::process::ExitCode;

/// A clap value parser for `--registry`: a comma-separated list of registry
/// URLs, checked the way the client will use them.
pub fn registry_urls(raw: &str) -> Result<String, String> {
    let mut count = 0;
    for url in raw.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        check_base_url(url).map_err(|reason| format!("bad registry URL {url:?}: {reason}"))?;
        count += 1;
    }
    if count == 0 {
        return Err("at least one registry URL is needed".into());
    }
    Ok(raw.to_owned())
}

/// A clap value parser for `--zone`: 1 to 63 of `a-z`, `0-9` and `-`
/// (e.g. `a`, `eu-west-1b`).
pub fn zone(raw: &str) -> Result<String, String> {
    let fits = (1..=63).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if fits {
        Ok(raw.to_owned())
    } else {
        Err("must be 1 to 63 of a-z, 0-9 and -".to_owned())
    }
}

/// Reports a start-up failure as `program: message` and exits non-zero
/// (2 is reserved for bad flags, which clap reports itself).
pub fn fail(program: &str, message: &str) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::FAILURE
}
