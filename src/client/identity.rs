//! Whether an instance is the service it was resolved for: its server
//! certificate must name that service, by the rule the registry applies to
//! registrations over mutual TLS (a URI SAN `spiffe://beacon/service/<name>`
//! or a DNS SAN `<name>`; see [`crate::net::identity`]).
//!
//! Why: anyone holding a certificate from the fleet's CA passes TLS
//! verification for any address the registry lists, so an instance of
//! another service — or a rogue one registered under this service's name —
//! would be called as if it were this one. Checked once per connection,
//! when it is made: a request on a checked connection costs nothing more.

use crate::net::http::MaybeHttpsStream;
use crate::net::identity::PeerNames;

/// An instance that could not show it is the service it was resolved
/// for: its certificate names another, or it spoke plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the instance is not {expected}: its certificate names {presented}")]
pub struct IdentityMismatch {
    /// The service resolved.
    pub expected: String,
    /// What the instance showed: its certificate's names, or that it had
    /// no certificate.
    pub presented: String,
}

/// Checks that the connection `io` is to `service`: TLS, with a leaf
/// certificate naming it.
pub(crate) fn check<T>(io: &MaybeHttpsStream<T>, service: &str) -> Result<(), IdentityMismatch> {
    let mismatch = |presented: String| IdentityMismatch {
        expected: service.to_owned(),
        presented,
    };
    let MaybeHttpsStream::Https(tls) = io else {
        return Err(mismatch("no certificate (plain http)".into()));
    };
    let (_, session) = tls.inner().get_ref();
    let Some(leaf) = session.peer_certificates().and_then(|chain| chain.first()) else {
        return Err(mismatch("no certificate".into()));
    };
    let names = PeerNames::of(leaf);
    if names.name_service(service) {
        Ok(())
    } else {
        Err(mismatch(names.describe()))
    }
}
