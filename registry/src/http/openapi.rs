//! `GET /openapi.json`: the API as OpenAPI 3, made from the handlers'
//! annotations and the wire types' schemas, so it can't drift from what the
//! server does (and `make test` runs schemathesis against a live registry
//! to check that it doesn't).

use super::{instances, leases, ops, services};
use axum::Json;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

/// The registry API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Beacon registry",
        description = "Service instances register with a lease of their own and heartbeat, or on a shared lease that one keepalive renews for all; callers resolve a service, or long-poll it for changes. Every error answers {\"error\": {\"code\", \"message\"}}."
    ),
    paths(
        services::list,
        services::resolve,
        services::changes,
        instances::register,
        instances::heartbeat,
        instances::deregister,
        leases::grant,
        leases::keep_alive,
        leases::revoke,
        ops::health,
        ops::metrics,
    ),
    modifiers(&BearerToken)
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Writes take `Authorization: Bearer <token>` when the registry was
/// started with `--token`.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
