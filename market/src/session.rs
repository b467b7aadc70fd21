//! A browser's session: a random secret in an HttpOnly cookie, never put in
//! a page. Everything that belongs to the session is found from it on the
//! server, keyed with the market's secret (so every replica finds the
//! same): its cart's id, its customer record's id, the owner mark of the
//! records it creates, and its CSRF token. None of those is a credential:
//! knowing a cart or customer id — in a URL, in the page — gets nobody in;
//! only the cookie does, and scripts can't read it.

use crate::store::signing::Signer;
use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use rand::Rng;

/// The cookie holding the session's secret.
pub const COOKIE: &str = "beacon_session";

/// What the server knows of the caller's session, put into request
/// extensions by [`ensure_session`].
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The id of the session's cart.
    pub cart_id: String,
    /// The id of the customer record the page edits for this session.
    pub customer_id: String,
    /// The mark on records this session created: only it (or an admin)
    /// may read or change them.
    pub owner: String,
    /// The token every form post and page script write must carry.
    pub csrf: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cart_id", &self.cart_id)
            .field("customer_id", &self.customer_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session whose cookie holds `secret`, as `keys` derive it.
    pub fn of(keys: &Signer, secret: &str) -> Self {
        let derive = |purpose: &str| keys.sign(&["session", purpose, secret]);
        Self {
            cart_id: derive("cart")[..32].to_owned(),
            customer_id: derive("customer")[..32].to_owned(),
            owner: derive("owner"),
            csrf: derive("csrf"),
        }
    }
}

/// A cookie value the market could have issued: 32 hex digits.
fn is_session_secret(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Middleware: gives every caller a session, reusing the cookie's when it
/// is one the market could have issued and starting a new one otherwise.
/// A new session's cookie is set only on a read (`GET`, `HEAD`): a write
/// that came without the cookie — a cross-site form post, which a
/// `SameSite=Lax` cookie does not ride on — must not replace the visitor's
/// session with a new one and cut them off from their cart. (Such a write
/// acts on a session of its own, which ends with it.)
pub async fn ensure_session(
    State(keys): State<Signer>,
    jar: CookieJar,
    mut request: Request,
    next: Next,
) -> (CookieJar, Response) {
    let existing = jar
        .get(COOKIE)
        .map(Cookie::value)
        .filter(|v| is_session_secret(v))
        .map(str::to_owned);
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let (secret, jar) = match existing {
        Some(secret) => (secret, jar),
        None => {
            let secret = format!("{:032x}", rand::rng().random::<u128>());
            let cookie = Cookie::build((COOKIE, secret.clone()))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax);
            let jar = if reading { jar.add(cookie) } else { jar };
            (secret, jar)
        }
    };
    request.extensions_mut().insert(Session::of(&keys, &secret));
    (jar, next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_session_owns_follows_from_its_secret_and_the_key_only() {
        let keys = Signer::new(b"the market's secret");
        let one = Session::of(&keys, "00112233445566778899aabbccddeeff");
        assert_eq!(one, Session::of(&keys, "00112233445566778899aabbccddeeff"));
        let other = Session::of(&keys, "ffeeddccbbaa99887766554433221100");
        assert_ne!(one.cart_id, other.cart_id);
        assert_ne!(one.owner, other.owner);
        assert_ne!(one.csrf, other.csrf);
        let elsewhere = Session::of(
            &Signer::new(b"another secret"),
            "00112233445566778899aabbccddeeff",
        );
        assert_ne!(one.cart_id, elsewhere.cart_id);
        // Nothing derived gives away the secret or another derivation.
        for derived in [&one.cart_id, &one.customer_id, &one.owner, &one.csrf] {
            assert!(!derived.contains("00112233445566778899aabbccddeeff"));
        }
        assert_ne!(one.cart_id, one.customer_id);
        assert!(is_session_secret("00112233445566778899aabbccddeeff"));
        assert!(!is_session_secret("0011"));
        assert!(!is_session_secret("zz112233445566778899aabbccddeeff"));
    }
}
