//! A single-member etcd (beacon-kit's launcher), reached two ways: through
//! its v3 JSON gateway (how the registry's etcd store talks to it) and
//! through its gRPC API with the `etcd-client` crate (how real etcd
//! clients talk to it: one connection, long-lived streams).

use beacon_kit::etcd::EtcdCluster;
use beacon_registry::store::etcd::EtcdClient;
use etcd_client::{
    Client as GrpcClient, GetOptions, LeaseKeepAliveStream, LeaseKeeper, WatchOptions, WatchStream,
};
use std::sync::Arc;

/// A single-member etcd and both clients.
pub struct Etcd {
    /// Stopped (and its data removed) when dropped.
    cluster: EtcdCluster,
    /// Its client URL.
    pub url: String,
    /// The JSON gateway client (the registry's own).
    pub gateway: Arc<EtcdClient>,
    /// The gRPC client: one channel, cloned per task.
    pub grpc: GrpcClient,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The gRPC client says nothing worth printing.
        f.debug_struct("Etcd")
            .field("cluster", &self.cluster)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Etcd {
    /// Starts etcd and connects both clients.
    pub async fn start() -> Result<Self, String> {
        let cluster = EtcdCluster::start(1).await;
        let url = cluster
            .urls()
            .first()
            .cloned()
            .ok_or("etcd has no member")?;
        let gateway = Arc::new(EtcdClient::new(vec![url.clone()]));
        let grpc = GrpcClient::connect([url.clone()], None)
            .await
            .map_err(|e| format!("etcd gRPC: {e}"))?;
        Ok(Self {
            cluster,
            url,
            gateway,
            grpc,
        })
    }

    /// The etcd process id (for its memory).
    pub fn pid(&self) -> u32 {
        self.cluster.pid().unwrap_or(0)
    }
}

/// One lease's keep-alive stream, opened once and kept, as etcd's clients
/// do (the Go client multiplexes every lease on one stream; this crate
/// opens one stream per lease, all on the same connection).
#[derive(Debug)]
pub struct KeepAlive {
    keeper: LeaseKeeper,
    answers: LeaseKeepAliveStream,
}

impl KeepAlive {
    /// Opens the stream for `lease`.
    pub async fn open(grpc: &GrpcClient, lease: i64) -> Result<Self, String> {
        let (keeper, answers) = grpc
            .clone()
            .lease_keep_alive(lease)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self { keeper, answers })
    }

    /// One keep-alive round trip; `true` if the lease is still alive.
    pub async fn renew(&mut self) -> bool {
        if self.keeper.keep_alive().await.is_err() {
            return false;
        }
        matches!(self.answers.message().await, Ok(Some(answer)) if answer.ttl() > 0)
    }
}

/// Every key under `prefix`, read whole (linearizable, etcd's default, like
/// the gateway's range); returns how many came back.
pub async fn range_prefix(grpc: &GrpcClient, prefix: &str) -> Result<usize, String> {
    let answer = grpc
        .clone()
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer.kvs().len())
}

/// How many keys are under `prefix`, without reading them (a full read of
/// 100k keys is past gRPC's default 4 MiB message limit).
pub async fn count_prefix(grpc: &GrpcClient, prefix: &str) -> Result<usize, String> {
    let answer = grpc
        .clone()
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .map_err(|e| e.to_string())?;
    usize::try_from(answer.count()).map_err(|e| e.to_string())
}

/// A watch on `prefix`, returned once etcd confirmed it was created (so a
/// change made after this is seen).
pub async fn watch_prefix(grpc: &GrpcClient, prefix: &str) -> Result<WatchStream, String> {
    let mut stream = grpc
        .clone()
        .watch(prefix, Some(WatchOptions::new().with_prefix()))
        .await
        .map_err(|e| e.to_string())?;
    match stream.message().await {
        Ok(Some(answer)) if answer.created() => Ok(stream),
        other => Err(format!("watch not created: {other:?}")),
    }
}

/// Waits for the first change on `stream`; `true` if one came.
pub async fn next_change(stream: &mut WatchStream) -> bool {
    loop {
        match stream.message().await {
            Ok(Some(answer)) if !answer.events().is_empty() => return true,
            Ok(Some(_)) => {}
            _ => return false,
        }
    }
}
