//! gRPC through Beacon: a tonic service that keeps itself registered, and a
//! tonic client whose channel is a [`ServiceClient`] — so every call is
//! resolved through the registry, balanced over the live instances,
//! guarded by their breakers, hedged when late, and sent over TLS and
//! HTTP/2 when the instances serve them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use beacon::{ClientConfig, RegistryClient, Resolver, ResolverConfig, ServiceClient};
//! use beacon_grpc_example::{grpc_client, pb::GetRatingRequest, SERVICE};
//! let resolver = Resolver::new(
//!     RegistryClient::from_list("http://127.0.0.1:8400", None)?,
//!     ResolverConfig::default(),
//! );
//! let config = ClientConfig { http2_prior_knowledge: true, ..ClientConfig::default() };
//! let mut ratings = grpc_client(ServiceClient::new(&resolver, &SERVICE.parse()?, config));
//! let rating = ratings.get_rating(GetRatingRequest { item: "camera".into() }).await?;
//! println!("{} stars", rating.into_inner().stars);
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! * [`pb`]: the code tonic generates from `proto/ratings.proto`.
//! * [`RatingsService`], [`router`], [`run`]: the server side — the gRPC
//!   service beside a `/_health` route for Beacon's health checks, served
//!   (plain or TLS, HTTP/1.1 and HTTP/2) while a [`Lease`] keeps it
//!   registered.
//! * [`grpc_client`]: the client side — tonic's generated client over a
//!   [`ServiceClient`], every call marked [`Idempotent`] since the one
//!   method only reads (gRPC calls are `POST`s, which Beacon otherwise
//!   never sends twice).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

/// The README's Rust snippets, compiled as doc tests so they can't rot —
/// here, because this package has every dependency they use (tonic's
/// included), and the library itself should not need protoc to test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeSnippets;

/// The same for the library's reference, `docs/library.md`.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/library.md")]
struct LibraryReferenceSnippets;

use axum::routing::get;
use beacon::{
    client::Idempotent,
    wire::{Address, InstanceId, Registration, ServiceName},
    Lease, RegistryClient, ServiceClient,
};
use beacon_kit::tls;
use std::{future::Future, io, sync::Arc};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The code tonic generates from `proto/ratings.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("beacon.ratings.v1");
}

use pb::{
    ratings_client::RatingsClient,
    ratings_server::{Ratings, RatingsServer},
    GetRatingRequest, Rating,
};

/// The service name instances register under.
pub const SERVICE: &str = "grpc-ratings";

/// The ratings service: a deterministic number of stars per item, and the
/// instance that answered.
#[derive(Debug, Clone)]
pub struct RatingsService {
    instance: InstanceId,
    /// Answer every call UNAVAILABLE, as an instance shedding load or
    /// shutting down does (to show callers route around it).
    unavailable: bool,
}

impl RatingsService {
    /// The service as instance `instance` serves it.
    pub fn new(instance: InstanceId) -> Self {
        Self {
            instance,
            unavailable: false,
        }
    }

    /// The same, answering every call UNAVAILABLE.
    pub fn unavailable(instance: InstanceId) -> Self {
        Self {
            instance,
            unavailable: true,
        }
    }
}

#[tonic::async_trait]
impl Ratings for RatingsService {
    async fn get_rating(
        &self,
        request: Request<GetRatingRequest>,
    ) -> Result<Response<Rating>, Status> {
        if self.unavailable {
            return Err(Status::unavailable(format!(
                "{} is draining",
                self.instance
            )));
        }
        let item = request.into_inner().item;
        if item.is_empty() || item.len() > 100 {
            return Err(Status::invalid_argument("item must be 1 to 100 bytes long"));
        }
        let stars = item.bytes().map(u32::from).sum::<u32>() % 5 + 1;
        Ok(Response::new(Rating {
            item,
            stars,
            served_by: self.instance.to_string(),
        }))
    }
}

/// The gRPC service, with `GET /_health` beside it for Beacon's health
/// checks (which speak plain HTTP).
pub fn router(service: RatingsService) -> axum::Router {
    tonic::service::Routes::new(RatingsServer::new(service))
        .prepare()
        .into_axum_router()
        .route("/_health", get(|| async { "ok" }))
}

/// Serves `service` on `listener` (TLS with `tls`), registered in
/// `registry` under [`SERVICE`], until `shutdown` completes; then
/// deregisters first and drains.
pub async fn run(
    listener: TcpListener,
    tls: Option<Arc<beacon::net::tls::rustls::ServerConfig>>,
    registry: RegistryClient,
    service: RatingsService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let instance = service.instance.clone();
    let invalid = |e: beacon::wire::WireError| io::Error::new(io::ErrorKind::InvalidInput, e);
    let local = listener.local_addr()?;
    let scheme = tls::scheme(tls.as_ref());
    let address = Address::new(&format!("{scheme}://{local}")).map_err(invalid)?;
    let name: ServiceName = SERVICE.parse().map_err(invalid)?;
    let lease = Lease::start(registry, name, instance.clone(), Registration::new(address));
    tracing::info!(%instance, "listening on {scheme}://{local}");
    let app = router(service);
    let deregister_then_drain = async move {
        shutdown.await;
        if let Err(e) = lease.shutdown().await {
            tracing::warn!(%instance, "could not deregister: {e}");
        }
    };
    tls::serve(listener, tls, app, deregister_then_drain).await
}

/// What a [`grpc_client`] sends through: the service client, with every
/// request marked [`Idempotent`].
pub type Channel = tower::util::MapRequest<ServiceClient, fn(GrpcRequest) -> GrpcRequest>;

/// A gRPC request as tonic hands it to its channel.
pub type GrpcRequest = http::Request<tonic::body::Body>;

/// Tonic's client for the ratings service over `service` (a
/// [`ServiceClient`] for [`SERVICE`]; give it `http2_prior_knowledge` for
/// plain `http://` instances, since gRPC is HTTP/2 only — over TLS it is
/// negotiated).
pub fn grpc_client(service: ServiceClient) -> RatingsClient<Channel> {
    RatingsClient::new(tower::util::MapRequest::new(service, mark_idempotent))
}

/// `GetRating` only reads, so it may be retried and hedged.
fn mark_idempotent(mut request: GrpcRequest) -> GrpcRequest {
    request.extensions_mut().insert(Idempotent);
    request
}
