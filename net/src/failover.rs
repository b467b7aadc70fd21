//! One call tried across equivalent servers — registry replicas, etcd
//! members — starting from the one that answered last, so a healthy
//! cluster costs one attempt and a dead server costs one failed attempt,
//! not one per call.
//!
//! The registry client and the registry's etcd client both call through
//! this; each decides per answer whether to try the next server or stop.

use crate::http::{error_chain, read_body, HttpClient};
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::Full;
use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

/// Equivalent base URLs, and which answered last.
#[derive(Debug)]
pub struct Failover {
    urls: Vec<String>,
    preferred: AtomicUsize,
}

/// What one server's attempt says about the call.
#[derive(Debug)]
pub enum Step<E> {
    /// This server can't answer now (unreachable, overloaded, no leader):
    /// try the next, noting why.
    TryNext(String),
    /// A final answer for the call (e.g. the request itself was refused):
    /// don't try the others.
    Stop(E),
}

/// Why a call failed on every server.
#[derive(Debug)]
pub enum Failed<E> {
    /// A server gave a final answer.
    Stopped(E),
    /// No server could answer: `url: reason` for each.
    Unreachable(Vec<String>),
}

impl Failover {
    /// Tries `urls` in order, the first one first.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            preferred: AtomicUsize::new(0),
        }
    }

    /// The base URLs, in the order given.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Runs `attempt` on each base URL in turn, from the one that answered
    /// last, until one answers or stops the call.
    pub async fn call<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, Failed<E>>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, Step<E>>>,
    {
        let count = self.urls.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for offset in 0..count {
            let index = (first + offset) % count;
            let url = &self.urls[index];
            match attempt(url.clone()).await {
                Ok(answer) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(Step::Stop(error)) => return Err(Failed::Stopped(error)),
                Err(Step::TryNext(reason)) => failures.push(format!("{url}: {reason}")),
            }
        }
        Err(Failed::Unreachable(failures))
    }
}

/// Checks a server's base URL — `http://host:port`, optionally with a path
/// prefix — and returns it without a trailing slash, or says what is wrong.
pub fn check_base_url(raw: &str) -> Result<String, &'static str> {
    let uri: Uri = raw.parse().map_err(|_| "not a URL")?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("only http:// and https:// URLs are supported");
    }
    if uri.authority().is_none() {
        return Err("no host");
    }
    if uri.query().is_some() {
        return Err("a base URL takes no query");
    }
    Ok(raw.trim_end_matches('/').to_owned())
}

/// Sends `request` and reads the whole answer (at most `max_bytes`), all
/// within `limit`; the error says why in words (with its causes).
pub async fn exchange(
    http: &HttpClient,
    request: Request<Full<Bytes>>,
    limit: Duration,
    max_bytes: usize,
) -> Result<(StatusCode, Bytes), String> {
    let exchange = async {
        let response = http.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status();
        let bytes = read_body(response.into_body(), max_bytes)
            .await
            .map_err(|e| error_chain(&e))?;
        Ok((status, bytes))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            check_base_url("http://127.0.0.1:8400/"),
            Ok("http://127.0.0.1:8400".into())
        );
        assert_eq!(
            check_base_url("https://registry.example:8400"),
            Ok("https://registry.example:8400".into())
        );
        assert_eq!(
            check_base_url("ftp://x:1"),
            Err("only http:// and https:// URLs are supported")
        );
        assert_eq!(
            check_base_url("http://x:1/?a=b"),
            Err("a base URL takes no query")
        );
        assert_eq!(check_base_url("::"), Err("not a URL"));
    }

    #[tokio::test]
    async fn starts_from_the_server_that_answered_last() {
        let failover = Failover::new(vec!["a".into(), "b".into(), "c".into()]);
        let mut tried = Vec::new();
        let answer: Result<&str, Failed<()>> = failover
            .call(|url| {
                tried.push(url.clone());
                async move {
                    match url.as_str() {
                        "c" => Ok("from c"),
                        _ => Err(Step::TryNext("down".into())),
                    }
                }
            })
            .await;
        assert!(matches!(answer, Ok("from c")));
        assert_eq!(tried, ["a", "b", "c"]);
        tried.clear();
        let _: Result<&str, Failed<()>> = failover
            .call(|url| {
                tried.push(url);
                async { Ok("again") }
            })
            .await;
        assert_eq!(tried, ["c"], "the one that answered goes first");
    }

    #[tokio::test]
    async fn a_final_answer_stops_and_exhaustion_lists_every_reason() {
        let failover = Failover::new(vec!["a".into(), "b".into()]);
        let stopped: Result<(), Failed<&str>> = failover
            .call(|_| async { Err(Step::Stop("refused")) })
            .await;
        assert!(matches!(stopped, Err(Failed::Stopped("refused"))));
        let down: Result<(), Failed<()>> = failover
            .call(|url| async move { Err(Step::TryNext(format!("{url} is down"))) })
            .await;
        match down {
            Err(Failed::Unreachable(reasons)) => {
                assert_eq!(reasons, ["a: a is down", "b: b is down"])
            }
            other => panic!("{other:?}"),
        }
    }
}
