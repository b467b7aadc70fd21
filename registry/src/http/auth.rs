//! Who may write: open, one bearer token for every write (`--token`), or
//! the ACL's tokens, each scoped to some services (`--acl`). Every refused
//! write is logged (who, what, why) on the `audit` target and counted.

use super::error::AppError;
use crate::{
    acl::{Grant, LiveAcl},
    metrics::Metrics,
    store::{Catalog, Owner},
};
use axum::{
    extract::{Request, State},
    http::{header, Method},
    middleware::Next,
    response::Response,
};
use beacon_kit::{
    auth::{check_bearer, BearerError},
    identity::{spiffe_id, PeerNames},
};
use beacon_wire::{ErrorCode, InstanceId, LeaseId, ServiceName};
use std::sync::Arc;

/// How writes are authorized. Reads are always open: watchers and
/// dashboards should not need a secret.
#[derive(Debug, Clone, Default)]
pub enum WriteAuth {
    /// Anyone may write.
    #[default]
    Open,
    /// Every write carries this bearer token.
    Token(Arc<str>),
    /// Every write carries one of the ACL's tokens, and writes only the
    /// services it names.
    Acl(LiveAcl),
}

/// What the request's token may write, for the handlers that check it
/// against the service they write (a request extension under an ACL).
#[derive(Debug, Clone)]
pub struct Writer {
    /// The token's grant.
    pub grant: Grant,
    /// Who it is in the audit log: a digest of the token, never the token.
    pub who: String,
}

/// The state of [`require_token`].
#[derive(Debug, Clone)]
pub struct WriteGuard {
    /// How writes are authorized.
    pub auth: WriteAuth,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
}

/// Middleware: every request other than GET/HEAD/OPTIONS must carry
/// `Authorization: Bearer <token>` with the registry's token or one of the
/// ACL's. Runs before the body is read, so an unauthenticated caller learns
/// nothing about its input. Under an ACL, the token's grant goes on to the
/// handler as a [`Writer`].
pub async fn require_token(
    State(guard): State<WriteGuard>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(next.run(request).await);
    }
    match &guard.auth {
        WriteAuth::Open => {}
        WriteAuth::Token(expected) => {
            check_bearer(request.headers(), expected).map_err(|refused| {
                let why = match refused {
                    BearerError::Missing => "writes need an `Authorization: Bearer <token>` header",
                    BearerError::Wrong => "the bearer token is not the registry's token",
                };
                refuse(&guard.metrics, &request, "?", ErrorCode::Unauthorized, why)
            })?;
        }
        WriteAuth::Acl(acl) => {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let Some(presented) = presented else {
                let why = "writes need an `Authorization: Bearer <token>` header";
                return Err(refuse(
                    &guard.metrics,
                    &request,
                    "?",
                    ErrorCode::Unauthorized,
                    why,
                ));
            };
            let who = digest(presented);
            let Some(grant) = acl.current().grant(presented).cloned() else {
                let why = "the bearer token is not one of the registry's ACL";
                return Err(refuse(
                    &guard.metrics,
                    &request,
                    &who,
                    ErrorCode::Unauthorized,
                    why,
                ));
            };
            request.extensions_mut().insert(Writer { grant, who });
        }
    }
    Ok(next.run(request).await)
}

/// What a write acts on, for [`Writer::authorize`].
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// An instance of a service.
    Instance(&'a ServiceName, &'a InstanceId),
    /// A shared lease.
    Lease(&'a LeaseId),
}

impl Writer {
    /// Whether `writer` may write `target`: an instance's service must be
    /// one its token names, and the instance or lease (if held) must be
    /// its own, unless the token is an admin's. A refusal is 403
    /// `forbidden`, logged and counted. Returns the owner to record.
    pub fn authorize(
        writer: Option<&Self>,
        target: Target<'_>,
        catalog: &Catalog,
        metrics: &Metrics,
        what: &str,
    ) -> Result<Option<Owner>, AppError> {
        let Some(writer) = writer else {
            return Ok(None);
        };
        let (owner, name) = match target {
            Target::Instance(service, id) => {
                if !writer.grant.may_write(service) {
                    let why = format!("this token may not write the service {service}");
                    return Err(writer.refuse(metrics, what, why));
                }
                (catalog.owner_of(service, id), format!("{service}/{id}"))
            }
            Target::Lease(lease) => (catalog.lease_owner(lease), format!("lease {lease}")),
        };
        if writer.grant != Grant::Admin && owner.is_some_and(|owner| *owner != *writer.who) {
            let why = format!("{name} was made with another token");
            return Err(writer.refuse(metrics, what, why));
        }
        Ok(Some(Owner::from(writer.who.as_str())))
    }

    /// Logs and counts a refusal of this token: 403 `forbidden`.
    fn refuse(&self, metrics: &Metrics, what: &str, why: String) -> AppError {
        audited(metrics, &self.who, what, ErrorCode::Forbidden, &why)
    }
}

/// With mutual TLS (`--client-ca`), a write to `service` must come from a
/// certificate that names it (`spiffe://beacon/service/<service>`, or a
/// DNS name `<service>`): else 403 `forbidden`, logged and counted. No
/// certificate (no mutual TLS): nothing to check.
pub fn check_peer(
    peer: Option<&PeerNames>,
    service: &ServiceName,
    metrics: &Metrics,
    what: &str,
) -> Result<(), AppError> {
    let Some(peer) = peer else {
        return Ok(());
    };
    if peer.name_service(service.as_str()) {
        return Ok(());
    }
    let why = format!(
        "the client certificate does not name the service {service} (it names {}; expected {})",
        peer.describe(),
        spiffe_id(service.as_str())
    );
    Err(audited(
        metrics,
        &peer.describe(),
        what,
        ErrorCode::Forbidden,
        &why,
    ))
}

/// A refused request's error, logged and counted as a refused write.
fn refuse(metrics: &Metrics, request: &Request, who: &str, code: ErrorCode, why: &str) -> AppError {
    let what = format!("{} {}", request.method(), request.uri().path());
    audited(metrics, who, &what, code, why)
}

/// Every refused write: an `audit` log line (who, what, why), the
/// refusals counter, and the error it is answered with.
fn audited(metrics: &Metrics, who: &str, what: &str, code: ErrorCode, why: &str) -> AppError {
    tracing::warn!(target: "audit", who, what, why, "write refused");
    metrics.writes_refused.inc();
    AppError::new(code, why)
}

/// A token's name in the audit log: the first 8 bytes of its SHA-256, in
/// hex. Enough to tell tokens apart, and no help in guessing one.
fn digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
