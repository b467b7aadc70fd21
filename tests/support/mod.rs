//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test binary uses a different subset

use beacon_registry::server::{self, Options};
use std::time::Duration;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// A registry served in-process on `127.0.0.1:0`.
pub struct TestRegistry {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestRegistry {
    /// Starts a registry with the in-memory store; writes need `token` if given.
    pub async fn start(token: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let options = Options {
            token: token.map(str::to_owned),
        };
        let task = tokio::spawn(server::run(listener, options, shutdown.clone()));
        Self {
            url,
            shutdown,
            task,
        }
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

/// Polls `check` every 20 ms until it returns `Some`, failing after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
