//! A typed client for the registry API, with failover across registry URLs.
//!
//! Every call tries the registry that answered last, then the others in
//! order. Transport failures and 5xx move on to the next URL; a 4xx is the
//! registry's considered answer and is returned at once.

use crate::net::failover::{check_base_url, exchange, Failed, Failover, Step};
use crate::net::http::{http_client_with, HttpClient};
use crate::wire::{
    ErrorBody, ErrorCode, GrantRequest, HeartbeatQuery, Instance, InstanceId, LeaseGrant, LeaseId,
    LeaseStatus, Registration, ServiceChanges, ServiceInstances, ServiceList, ServiceName,
    SubsetQuery, WatchQuery, WireError,
};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use std::{sync::Arc, time::Duration};

mod stream;

pub use stream::ChangesStream;

/// Largest registry answer read (a resolve of 10k instances is ~1.4 MB).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Why a registry call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// No registry URL answered at all (refused, timed out); the reason
    /// names each one's failure.
    #[error("no registry reachable: {0}")]
    Unreachable(String),
    /// A registry answered, but with a 5xx (e.g. `503 store_unavailable`:
    /// its store can't take writes just now), and no other answered
    /// better: the registry is there, the call should be tried again.
    #[error("the registry answered but can't serve this now: {0}")]
    Unavailable(String),
    /// A registry answered with a 4xx error.
    #[error("registry refused: {0}")]
    Rejected(WireError),
    /// The request could not be encoded (a bug, not a registry's fault).
    #[error("cannot encode the request")]
    Encode(#[source] Arc<serde_json::Error>),
    /// A registry answered 2xx with a body that is not what the API says.
    #[error("unreadable {status} answer from the registry")]
    Unreadable {
        /// The status it answered with.
        status: StatusCode,
        /// Why the body could not be read.
        #[source]
        cause: Arc<serde_json::Error>,
    },
    /// A registry URL given to the client is not usable.
    #[error("bad registry URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl RegistryError {
    /// The registry does not hold the instance: register again.
    pub fn is_unknown_instance(&self) -> bool {
        matches!(self, Self::Rejected(e) if e.code == ErrorCode::UnknownInstance)
    }

    /// The registry does not hold the shared lease: grant a new one.
    pub fn is_unknown_lease(&self) -> bool {
        matches!(self, Self::Rejected(e) if e.code == ErrorCode::UnknownLease)
    }
}

/// Tunables of a [`RegistryClient`].
#[derive(Debug, Clone)]
pub struct RegistryClientConfig {
    /// Bound on one call to one registry (blocking queries get their `wait`
    /// on top). Default 2 s.
    pub request_timeout: Duration,
    /// Bound on the TCP handshake. Default 500 ms.
    pub connect_timeout: Duration,
    /// TLS for `https://` registries: your CA besides Mozilla's roots, and a
    /// client certificate for a registry that requires one — made with
    /// [`ClientTls::config`](crate::net::tls::ClientTls::config). Default
    /// `None`: Mozilla's roots only.
    pub tls: Option<Arc<crate::net::tls::rustls::ClientConfig>>,
}

impl Default for RegistryClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            tls: None,
        }
    }
}

/// A cheap-to-clone handle on one or more registries.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The registries, tried from the one that answered last.
    registries: Failover,
    token: Option<String>,
    http: HttpClient,
    config: RegistryClientConfig,
}

impl RegistryClient {
    /// A client for `urls` (tried in order), sending `token` on writes.
    pub fn new(
        urls: impl IntoIterator<Item = impl AsRef<str>>,
        token: Option<String>,
        config: RegistryClientConfig,
    ) -> Result<Self, RegistryError> {
        let urls = urls
            .into_iter()
            .map(|url| {
                let url = url.as_ref();
                check_base_url(url).map_err(|reason| RegistryError::InvalidUrl {
                    url: url.to_owned(),
                    reason: reason.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err(RegistryError::InvalidUrl {
                url: String::new(),
                reason: "at least one registry URL is needed".into(),
            });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                registries: Failover::new(urls),
                token,
                http: http_client_with(
                    config.connect_timeout,
                    config
                        .tls
                        .clone()
                        .unwrap_or_else(crate::net::tls::default_config),
                ),
                config,
            }),
        })
    }

    /// The TLS configuration given for `https://` registries, if any: what
    /// a [`Resolver`](crate::Resolver) and its service clients use too
    /// unless given their own.
    pub fn tls(&self) -> Option<Arc<crate::net::tls::rustls::ClientConfig>> {
        self.shared.config.tls.clone()
    }

    /// A client for a comma-separated list such as
    /// `http://127.0.0.1:8400,http://127.0.0.1:8401`.
    pub fn from_list(list: &str, token: Option<String>) -> Result<Self, RegistryError> {
        Self::from_list_with(list, token, RegistryClientConfig::default())
    }

    /// The same, with `config` (e.g. TLS for `https://` registries).
    pub fn from_list_with(
        list: &str,
        token: Option<String>,
        config: RegistryClientConfig,
    ) -> Result<Self, RegistryError> {
        let urls = list.split(',').map(str::trim).filter(|u| !u.is_empty());
        Self::new(urls, token, config)
    }

    /// The registry URLs, in failover order.
    pub fn urls(&self) -> &[String] {
        self.shared.registries.urls()
    }

    /// Registers (or re-registers) an instance.
    pub async fn register(
        &self,
        service: &ServiceName,
        id: &InstanceId,
        registration: &Registration,
    ) -> Result<Instance, RegistryError> {
        let body = serde_json::to_vec(&registration.to_request())
            .map_err(|e| RegistryError::Encode(Arc::new(e)))?;
        let path = format!("/v1/services/{service}/instances/{id}");
        self.call(Method::PUT, &path, Some(body.into()), None).await
    }

    /// Renews an instance's lease. [`RegistryError::is_unknown_instance`]
    /// tells the caller to register again.
    pub async fn heartbeat(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<Instance, RegistryError> {
        self.renew(service, id, HeartbeatQuery::default()).await
    }

    /// Renews the registration answered with `registered_at` (see
    /// [`HeartbeatQuery`]): if the instance was registered again since —
    /// someone else's address under this id — the registry says
    /// [`RegistryError::is_unknown_instance`] and the caller registers its
    /// own again, instead of keeping the other alive.
    pub async fn renew(
        &self,
        service: &ServiceName,
        id: &InstanceId,
        which: HeartbeatQuery,
    ) -> Result<Instance, RegistryError> {
        let query = which.to_query_string();
        let path = match query.is_empty() {
            true => format!("/v1/services/{service}/instances/{id}/heartbeat"),
            false => format!("/v1/services/{service}/instances/{id}/heartbeat?{query}"),
        };
        self.call(Method::PUT, &path, None, None).await
    }

    /// Deregisters an instance.
    pub async fn deregister(
        &self,
        service: &ServiceName,
        id: &InstanceId,
    ) -> Result<(), RegistryError> {
        let path = format!("/v1/services/{service}/instances/{id}");
        self.call::<serde::de::IgnoredAny>(Method::DELETE, &path, None, None)
            .await
            .map(drop)
    }

    /// Grants a shared lease of `ttl` for registrations to live on.
    pub async fn grant(&self, ttl: Duration) -> Result<LeaseGrant, RegistryError> {
        let body = serde_json::to_vec(&GrantRequest::new(ttl))
            .map_err(|e| RegistryError::Encode(Arc::new(e)))?;
        self.call(Method::POST, "/v1/leases", Some(body.into()), None)
            .await
    }

    /// Renews a shared lease, and every instance on it.
    /// [`RegistryError::is_unknown_lease`] tells the caller to grant anew.
    pub async fn keep_alive(&self, lease: &LeaseId) -> Result<LeaseStatus, RegistryError> {
        let path = format!("/v1/leases/{lease}/keepalive");
        self.call(Method::PUT, &path, None, None).await
    }

    /// Ends a shared lease: every instance on it goes at once.
    pub async fn revoke(&self, lease: &LeaseId) -> Result<(), RegistryError> {
        let path = format!("/v1/leases/{lease}");
        self.call::<serde::de::IgnoredAny>(Method::DELETE, &path, None, None)
            .await
            .map(drop)
    }

    /// The live instances of a service, now.
    pub async fn resolve(&self, service: &ServiceName) -> Result<ServiceInstances, RegistryError> {
        self.call(Method::GET, &format!("/v1/services/{service}"), None, None)
            .await
    }

    /// A blocking query: answers when the service's index moves past
    /// `query.index`, or after `query.wait`.
    pub async fn watch(
        &self,
        service: &ServiceName,
        query: WatchQuery,
    ) -> Result<ServiceInstances, RegistryError> {
        let path = format!("/v1/services/{service}?{}", query.to_query_string());
        self.call(Method::GET, &path, None, Some(query.wait)).await
    }

    /// What changed in `service`: with `query`, a blocking read of the
    /// changes after `query.index` (a snapshot when that is older than the
    /// registry keeps); without, a snapshot at once.
    pub async fn changes(
        &self,
        service: &ServiceName,
        query: Option<WatchQuery>,
    ) -> Result<ServiceChanges, RegistryError> {
        self.read_changes(service, query, None).await
    }

    /// The subset of `service` the registry chose for `subset.client`,
    /// whole; with `query`, once it moves past `query.index` (a change of
    /// the service, or of the callers that share it).
    pub async fn subset(
        &self,
        service: &ServiceName,
        query: Option<WatchQuery>,
        subset: &SubsetQuery,
    ) -> Result<ServiceChanges, RegistryError> {
        self.read_changes(service, query, Some(subset)).await
    }

    async fn read_changes(
        &self,
        service: &ServiceName,
        query: Option<WatchQuery>,
        subset: Option<&SubsetQuery>,
    ) -> Result<ServiceChanges, RegistryError> {
        let params: Vec<String> = query
            .map(|q| q.to_query_string())
            .into_iter()
            .chain(subset.map(SubsetQuery::to_query_string))
            .collect();
        let path = if params.is_empty() {
            format!("/v1/services/{service}/changes")
        } else {
            format!("/v1/services/{service}/changes?{}", params.join("&"))
        };
        self.call(Method::GET, &path, None, query.map(|q| q.wait))
            .await
    }

    /// Every service with live instances.
    pub async fn services(&self) -> Result<ServiceList, RegistryError> {
        self.call(Method::GET, "/v1/services", None, None).await
    }

    /// Tries each registry in turn, from the one that answered last; a
    /// 5xx or no answer moves on to the next.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        wait: Option<Duration>,
    ) -> Result<T, RegistryError> {
        let shared = &self.shared;
        let limit = shared.config.request_timeout + wait.unwrap_or_default();
        let answer = self
            .try_registries(&method, path, body, |request| async move {
                let (status, bytes) =
                    exchange(&shared.http, request, limit, MAX_ANSWER_BYTES).await?;
                Ok(Read::checked(status, bytes, |status, bytes| {
                    (status, bytes)
                }))
            })
            .await?;
        parse_answer(answer)
    }

    /// Sends `method path` to each registry in turn, from the one that
    /// answered last, reading each answer with `read`; a 5xx or no answer
    /// moves on to the next.
    async fn try_registries<A, F, Fut>(
        &self,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
        read: F,
    ) -> Result<A, RegistryError>
    where
        F: Fn(Request<Full<Bytes>>) -> Fut,
        Fut: std::future::Future<Output = Result<Read<A>, String>>,
    {
        // Whether some registry answered (with a 5xx), to tell "none
        // reachable" from "reachable, but can't serve this now".
        let answered = std::sync::atomic::AtomicBool::new(false);
        let answer = self
            .shared
            .registries
            .call(|base| {
                let request = self.request(&base, method, path, body.clone());
                let (answered, read) = (&answered, &read);
                async move {
                    let request = request.map_err(Step::Stop)?;
                    match read(request).await.map_err(Step::TryNext)? {
                        Read::Answer(answer) => Ok(answer),
                        Read::ServerError(text) => {
                            answered.store(true, std::sync::atomic::Ordering::Relaxed);
                            Err(Step::TryNext(format!("{base}: {text}")))
                        }
                    }
                }
            })
            .await;
        match answer {
            Ok(answer) => Ok(answer),
            Err(Failed::Stopped(error)) => Err(error),
            Err(Failed::Unreachable(failures))
                if answered.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                Err(RegistryError::Unavailable(failures.join("; ")))
            }
            Err(Failed::Unreachable(failures)) => {
                Err(RegistryError::Unreachable(failures.join("; ")))
            }
        }
    }

    /// The request for `method path` on the registry at `base`.
    fn request(
        &self,
        base: &str,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, RegistryError> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{base}{path}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let (Some(token), true) = (&self.shared.token, method != Method::GET) {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| RegistryError::InvalidUrl {
                url: base.to_owned(),
                reason: e.to_string(),
            })
    }
}

/// One registry's answer as read: what the caller gets, or a 5xx (the
/// registry is there, but can't serve this now: try the next).
enum Read<A> {
    Answer(A),
    ServerError(String),
}

impl<A> Read<A> {
    /// A whole answer: a 5xx with its text, else `answer` made of it.
    fn checked(
        status: StatusCode,
        bytes: Bytes,
        answer: impl FnOnce(StatusCode, Bytes) -> A,
    ) -> Self {
        if status.is_server_error() {
            Self::ServerError(format!("{status}: {}", String::from_utf8_lossy(&bytes)))
        } else {
            Self::Answer(answer(status, bytes))
        }
    }
}

/// Turns a non-5xx answer into `T` or the registry's error.
fn parse_answer<T: DeserializeOwned>(
    (status, bytes): (StatusCode, Bytes),
) -> Result<T, RegistryError> {
    if status.is_success() {
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"null")
        } else {
            bytes
        };
        return serde_json::from_slice(&bytes).map_err(|e| RegistryError::Unreadable {
            status,
            cause: Arc::new(e),
        });
    }
    let error = serde_json::from_slice::<ErrorBody>(&bytes)
        .map(WireError::from)
        .unwrap_or_else(|_| {
            WireError::new(
                ErrorCode::Unknown,
                format!("{status}: {}", String::from_utf8_lossy(&bytes)),
            )
        });
    Err(RegistryError::Rejected(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        for good in [
            "http://127.0.0.1:8400, http://127.0.0.1:8401/",
            "https://registry.example:8400",
        ] {
            assert!(RegistryClient::from_list(good, None).is_ok(), "{good:?}");
        }
        for bad in ["", "127.0.0.1:8400", "http://x:1/?a=b", "ftp://x"] {
            assert!(RegistryClient::from_list(bad, None).is_err(), "{bad:?}");
        }
    }
}
