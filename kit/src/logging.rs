//! One `tracing` setup for every binary.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Logs to stdout at `info` (or as `RUST_LOG` says), in colour only on a
/// terminal so that log files and test captures stay plain text.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}
