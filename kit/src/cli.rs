//! Pieces of the command lines that several binaries share.

use beacon::RegistryClient;
use std::process::ExitCode;

/// A clap value parser for `--registry`: a comma-separated list of registry
/// URLs, checked the way the client will use them.
pub fn registry_urls(raw: &str) -> Result<String, String> {
    RegistryClient::from_list(raw, None)
        .map(|_| raw.to_owned())
        .map_err(|e| e.to_string())
}

/// Reports a start-up failure as `program: message` and exits non-zero
/// (2 is reserved for bad flags, which clap reports itself).
pub fn fail(program: &str, message: &str) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::FAILURE
}
