//! One cart per browser: a random id in a cookie.

use axum::{extract::Request, middleware::Next, response::Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use rand::Rng;

/// The cookie holding the cart id.
pub const COOKIE: &str = "beacon_cart";

/// The caller's cart id, put into request extensions by [`ensure_cart_cookie`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartId(pub String);

/// Middleware: gives every caller a cart id, reusing the cookie's when it is
/// one we could have issued (32 hex digits) and setting a new one otherwise.
pub async fn ensure_cart_cookie(
    jar: CookieJar,
    mut request: Request,
    next: Next,
) -> (CookieJar, Response) {
    let existing = jar
        .get(COOKIE)
        .map(Cookie::value)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let (id, jar) = match existing {
        Some(id) => (id, jar),
        None => {
            let id = format!("{:032x}", rand::rng().random::<u128>());
            let cookie = Cookie::build((COOKIE, id.clone()))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax);
            (id, jar.add(cookie))
        }
    };
    request.extensions_mut().insert(CartId(id));
    (jar, next.run(request).await)
}
