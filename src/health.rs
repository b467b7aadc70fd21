//! Active health checks: how an open breaker learns, without waiting out its
//! open time, that its instance is answering again.
//!
//! While an instance's breaker is open, the resolver asks it
//! `GET {address}{path}` every `interval`. The first answer that isn't a 5xx
//! (a 404 counts: the process is up and serving) moves the breaker to
//! HalfOpen, and the checker then sends the single probe itself, so a
//! recovered instance is back in rotation within about one interval even
//! when no caller is sending requests. A paused process accepts TCP
//! connections but never answers, so only a real HTTP answer counts.

use crate::net::http::{http_client_with, HttpClient};
use crate::wire::Address;
use bytes::Bytes;
use http_body_util::Full;
use std::{sync::Arc, time::Duration};

/// How to check an instance whose breaker is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// Path asked for. Default `/_health`.
    pub path: String,
    /// Time between checks. Default 1 s.
    pub interval: Duration,
    /// Longest wait for an answer. Default 500 ms.
    pub timeout: Duration,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: "/_health".to_owned(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
        }
    }
}

/// Sends health checks.
#[derive(Debug)]
pub(crate) struct HealthChecker {
    config: HealthCheckConfig,
    http: HttpClient,
}

impl HealthChecker {
    /// A checker with its own connection pool, `https://` instances
    /// reached with `tls` when given (else Mozilla's roots).
    pub(crate) fn with_tls(
        config: HealthCheckConfig,
        tls: Option<Arc<crate::net::tls::rustls::ClientConfig>>,
    ) -> Self {
        let tls = tls.unwrap_or_else(crate::net::tls::default_config);
        let http = http_client_with(config.timeout, tls);
        Self { config, http }
    }

    /// Time between checks.
    pub(crate) fn interval(&self) -> Duration {
        self.config.interval
    }

    /// `Ok` if `address` answered with anything but a 5xx in time.
    pub(crate) async fn check(&self, address: &Address) -> Result<(), String> {
        let uri = format!("{address}{}", self.config.path);
        let request = http::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.config.timeout, self.http.request(request)).await {
            Ok(Ok(response)) if !response.status().is_server_error() => Ok(()),
            Ok(Ok(response)) => Err(format!("health check answered {}", response.status())),
            Ok(Err(e)) => Err(format!("health check failed: {e}")),
            Err(_) => Err(format!(
                "health check: no answer within {:?}",
                self.config.timeout
            )),
        }
    }
}
