//! `GET /openapi.json`: the API as OpenAPI 3, made from the handlers'
//! annotations and the wire types' schemas, so it can't drift from what the
//! server does (and `make test` runs schemathesis against a live registry
//! to check that it doesn't).

use super::{instances, leases, ops, services};
use axum::Json;
use utoipa::{
    openapi::{
        schema::{AnyOfBuilder, ObjectBuilder, Type},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        RefOr, Schema,
    },
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
    modifiers(&BearerToken, &LeaseOrTtl)
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

/// A registration names `ttl_ms` or `lease`, never both (the server
/// answers 400 `invalid_registration`): one struct on the wire, two
/// shapes in the description (one without each), so that generated
/// clients and checkers know.
struct LeaseOrTtl;

impl Modify for LeaseOrTtl {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(both))) = components.schemas.get("RegisterRequest") else {
            return;
        };
        // `null` stands for absent, as the server reads it.
        let without = |field: &str| {
            let mut shape = both.clone();
            let null = ObjectBuilder::new().schema_type(Type::Null).build();
            shape.properties.insert(field.to_owned(), null.into());
            Schema::Object(shape)
        };
        let any_of = AnyOfBuilder::new()
            .item(without("lease"))
            .item(without("ttl_ms"))
            .description(both.description.clone())
            .build();
        components.schemas.insert(
            "RegisterRequest".to_owned(),
            RefOr::T(Schema::AnyOf(any_of)),
        );
    }
}

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
