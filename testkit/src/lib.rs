//! What every crate's integration tests share: an in-process registry, log
//! capture, the workspace's binaries, real etcd clusters, and deadline
//! polls. A dev-dependency only; it does not depend on the client library,
//! so the client's own tests can use it without a dependency loop.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub use beacon_kit::etcd;
pub use beacon_kit::wait::{eventually, holds_for};

use beacon_registry::server::{self, Backend, Options};
use std::time::Duration;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// A registry served in-process on `127.0.0.1:0`.
#[derive(Debug)]
pub struct TestRegistry {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestRegistry {
    /// Starts a registry with the in-memory store; writes need `token` if given.
    pub async fn start(token: Option<&str>) -> Self {
        Self::start_at("127.0.0.1:0", token).await
    }

    /// Starts a registry on `addr` (e.g. to restart one on the same port).
    pub async fn start_at(addr: &str, token: Option<&str>) -> Self {
        Self::start_with(addr, Backend::Memory, token).await
    }

    /// Starts a registry over `backend` on `addr`.
    pub async fn start_with(addr: &str, backend: Backend, token: Option<&str>) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let options = Options {
            token: token.map(str::to_owned),
            backend,
            ..Options::default()
        };
        let task = tokio::spawn(server::run(listener, options, shutdown.clone()));
        // Serving starts once the store is ready (the etcd store loads first).
        let health = format!("{url}/_health");
        eventually(Duration::from_secs(20), "the registry to serve", || async {
            reqwest::get(&health)
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(drop)
        })
        .await;
        Self {
            url,
            shutdown,
            task,
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// `self.url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Shuts down gracefully and waits for the server to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("registry stops within 10 s")
            .expect("task")
            .expect("serve");
    }
}

/// Log lines captured from `tracing` on this thread (use with the default
/// current-thread test runtime, where every task runs on this thread).
#[derive(Debug)]
pub struct CapturedLogs {
    buffer: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl CapturedLogs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        let buffer = self
            .buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

/// Starts capturing `info` and above on this thread.
pub fn capture_logs() -> CapturedLogs {
    capture_logs_at(tracing::Level::INFO)
}

/// Starts capturing `level` and above on this thread. The `fmt` output
/// names each line's level (`DEBUG`, ` INFO`, ` WARN`, ...) before its target.
pub fn capture_logs_at(level: tracing::Level) -> CapturedLogs {
    let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let buffer = buffer.clone();
        move || SharedWriter(buffer.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_max_level(level)
        .finish();
    CapturedLogs {
        buffer,
        _guard: tracing::subscriber::set_default(subscriber),
    }
}

struct SharedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The body of a GET of `url` as text; `None` on any failure, for a
/// condition polled with [`eventually`], where a miss is tried again.
pub async fn get_text(url: impl reqwest::IntoUrl) -> Option<String> {
    reqwest::get(url).await.ok()?.text().await.ok()
}

/// Set by `make test`, which has just built every binary with the test
/// features: building them again here, without those features, would
/// rebuild the workspace (minutes of a CI run) and swap the binaries under
/// the tests that run next.
pub const PREBUILT_BINS: &str = "BEACON_PREBUILT_BINS";

/// Path of a workspace binary (e.g. `beacon-ratings`), built first if needed.
///
/// Integration tests of the root package can't name other packages' binaries
/// through `CARGO_BIN_EXE_*`, so this builds them (a no-op when they are
/// fresh; skipped when [`PREBUILT_BINS`] is set) and finds them beside the
/// test executable.
pub fn binary(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build(&["--workspace", "--bins"]));
    built(name)
}

/// Runs `cargo build ARGS` in the workspace, unless [`PREBUILT_BINS`] says
/// `make test` built everything already.
fn build(args: &[&str]) {
    if std::env::var_os(PREBUILT_BINS).is_some() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .arg("build")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build {} failed", args.join(" "));
}

/// `name` in the test's target directory (`target/<profile>/`), which must
/// exist.
fn built(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The path of the `beacon` library's example `name` (`target/<profile>/examples/`),
/// built first unless [`PREBUILT_BINS`] says `make test` built them.
pub fn example(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| build(&["-p", "beacon", "--examples"]));
    built(&format!("examples/{name}"))
}
