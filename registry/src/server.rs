//! Serving the API: what `main` runs and what tests start in-process.

use crate::{
    acl::LiveAcl,
    http::{auth::WriteAuth, router, AppState},
    metrics::Metrics,
    store::{EtcdStore, MemoryStore, Store},
};
use beacon_kit::tls;
use std::{io, sync::Arc};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How to run a registry.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Bearer token that writes must carry; `None` leaves writes open
    /// (unless there is an ACL).
    pub token: Option<String>,
    /// Tokens scoped to services (`--acl`); when given, `token` is not
    /// used.
    pub acl: Option<LiveAcl>,
    /// At most this many instances in the registry, and in any one service
    /// (`--max-instances`, `--max-per-service`); `None`: no limit.
    pub limits: Option<(usize, usize)>,
    /// Where registrations are kept.
    pub backend: Backend,
    /// Serve HTTPS with this configuration (`--tls-cert`/`--tls-key`); if
    /// it requires client certificates (`--client-ca`), every connection
    /// must present one the CA signed — reads too — and writes still need
    /// the token when there is one.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The site (data center) this registry serves (`--dc`), said in
    /// `/_health`; `None`: one site, unnamed.
    pub dc: Option<String>,
}

/// Where registrations are kept.
#[derive(Debug, Clone, Default)]
pub enum Backend {
    /// In this process's memory (the embedded default).
    #[default]
    Memory,
    /// In an etcd cluster shared by several registry replicas.
    Etcd {
        /// Client URLs of the cluster's members.
        urls: Vec<String>,
        /// Key prefix, e.g. `/beacon/services/`.
        prefix: String,
    },
}

/// Serves the registry on `listener` until `shutdown` fires, then drains:
/// parked blocking queries answer at once, in-flight requests finish, and
/// the call returns.
pub async fn run(
    listener: TcpListener,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let metrics = Arc::new(Metrics::new());
    match &options.backend {
        Backend::Memory => {
            let store = Arc::new(MemoryStore::new(Arc::clone(&metrics)));
            serve(listener, store, metrics, options, shutdown).await
        }
        Backend::Etcd { urls, prefix } => {
            let store = EtcdStore::connect(urls.clone(), prefix, Arc::clone(&metrics))
                .await
                .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e))?;
            serve(listener, Arc::new(store), metrics, options, shutdown).await
        }
    }
}

/// Serves the registry over any [`Store`].
pub async fn serve<S: Store>(
    listener: TcpListener,
    store: Arc<S>,
    metrics: Arc<Metrics>,
    options: Options,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let kind = store.kind();
    if let Some((instances, per_service)) = options.limits {
        store.catalog().set_limits(instances, per_service);
    }
    let state = AppState {
        store,
        metrics,
        shutdown: shutdown.clone(),
        dc: options.dc.as_deref().map(Arc::from),
    };
    let auth = match (options.acl, options.token) {
        (Some(acl), _) => WriteAuth::Acl(acl),
        (None, Some(token)) => WriteAuth::Token(Arc::from(token)),
        (None, None) => WriteAuth::Open,
    };
    let app = router(state, auth);
    let address = listener.local_addr()?;
    let scheme = tls::scheme(options.tls.as_ref());
    match &options.dc {
        Some(dc) => tracing::info!(store = kind, dc, "listening on {scheme}://{address}"),
        None => tracing::info!(store = kind, "listening on {scheme}://{address}"),
    }
    tls::serve(listener, options.tls, app, shutdown.cancelled_owned()).await?;
    tracing::info!("stopped");
    Ok(())
}
