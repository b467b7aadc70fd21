//! The HTML page and its forms (which work without JavaScript; the live
//! panel is the one part that needs it).

use crate::{
    app::App,
    cart::{CartError, CartView},
    catalog::{format_price, position, THINGS},
    csrf,
    panel::status::Status,
    ratings::{ShownRating, Source},
    session::Session,
};
use askama::Template;
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    Extension, Form,
};
use beacon::BreakerState;
use serde::Deserialize;

/// The page.
#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    things: Vec<ThingRow>,
    cart: Vec<CartRow>,
    total: String,
    /// The cart version shown: the checkout buys that one or nothing.
    cart_version: i64,
    /// Whose details the page edits: this session's record (an id, not a
    /// credential: the record is found and checked by the session).
    customer_id: String,
    /// The session's CSRF token, in every form and for the page's scripts.
    csrf: String,
    notice: Option<String>,
    status: Status,
    deadline_ms: u64,
}

impl IndexPage {
    /// How the panel names a breaker state: the walkthrough's words.
    fn breaker_label(&self, state: &BreakerState) -> &'static str {
        match state {
            BreakerState::Closed => "CLOSED",
            BreakerState::Open => "OPEN",
            BreakerState::HalfOpen => "HALF-OPEN",
        }
    }
}

struct ThingRow {
    id: &'static str,
    name: &'static str,
    price: String,
    /// `4.5`, or empty when there is no rating.
    stars: String,
    /// `★★★★★` rounded to the nearest whole star.
    glyphs: String,
    /// `live`, `cached` or `none`, for styling.
    source: &'static str,
    /// e.g. "live from ratings-2", "cached 12 s ago", "no rating yet".
    badge: String,
    in_cart: bool,
}

struct CartRow {
    id: &'static str,
    name: &'static str,
    price: String,
}

/// `?notice=CODE&thing=ID`, set by the form handlers' redirects.
#[derive(Debug, Deserialize)]
pub struct Notice {
    notice: Option<String>,
    thing: Option<String>,
}

/// `GET /`.
pub async fn index(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Query(notice): Query<Notice>,
) -> Response {
    // Both at once, each within the page's deadline: a store that is slow
    // or down costs the page its cart, never its catalogue or its time.
    let deadline = std::time::Duration::from_millis(app.deadline_ms);
    let (ratings, cart) = tokio::join!(
        app.board.all(),
        tokio::time::timeout(deadline, app.carts.view(&session.cart_id))
    );
    let (cart, cart_problem) = match cart {
        Ok(Ok(cart)) => (cart, None),
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer from the store within {} ms", app.deadline_ms),
            };
            tracing::warn!("the page shows no cart: {why}");
            (
                CartView::default(),
                Some(
                    "Your cart is unavailable right now; the things and their ratings are \
                     still here. Try again in a moment."
                        .to_owned(),
                ),
            )
        }
    };
    let things = ratings
        .into_iter()
        .map(|(thing, rating)| ThingRow {
            id: thing.id,
            name: thing.name,
            price: format_price(thing.price_cents),
            stars: rating.stars.map(|s| format!("{s:.1}")).unwrap_or_default(),
            glyphs: glyphs(&rating),
            source: match rating.source {
                Source::Live => "live",
                Source::Cached => "cached",
                Source::None => "none",
            },
            badge: badge(&rating),
            in_cart: cart.items.iter().any(|t| t.id == thing.id),
        })
        .collect();
    let page = IndexPage {
        things,
        cart: cart_rows(&cart),
        total: format_price(cart.total_cents),
        cart_version: cart.version,
        customer_id: session.customer_id.clone(),
        csrf: session.csrf.clone(),
        notice: notice_text(&notice).or(cart_problem),
        status: app.status(),
        deadline_ms: app.deadline_ms,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("rendering the page failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// The form naming a thing, with the session's CSRF token.
#[derive(Debug, Deserialize)]
pub struct ThingForm {
    thing: String,
    csrf: Option<String>,
}

/// `POST /cart/add`; 403 `csrf` without the session's token.
pub async fn add(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<ThingForm>,
) -> Response {
    if !csrf::is_sessions_token(&session, form.csrf.as_deref()) {
        return csrf::refused("the form did not carry this session's token");
    }
    let added = app.carts.add(&session.cart_id, &form.thing, None).await;
    back(added.map(drop), "added", &form.thing)
}

/// `POST /cart/remove`; 403 `csrf` without the session's token.
pub async fn remove(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<ThingForm>,
) -> Response {
    if !csrf::is_sessions_token(&session, form.csrf.as_deref()) {
        return csrf::refused("the form did not carry this session's token");
    }
    let removed = app.carts.remove(&session.cart_id, &form.thing, None).await;
    back(removed.map(drop), "removed", &form.thing)
}

/// The checkout form: the cart version the page showed, and the token.
#[derive(Debug, Deserialize)]
pub struct CheckoutForm {
    #[serde(rename = "_version")]
    version: Option<i64>,
    csrf: Option<String>,
}

/// `POST /checkout`: buys the cart as the page showed it; 403 `csrf`
/// without the session's token.
pub async fn checkout(
    State(app): State<App>,
    Extension(session): Extension<Session>,
    Form(form): Form<CheckoutForm>,
) -> Response {
    if !csrf::is_sessions_token(&session, form.csrf.as_deref()) {
        return csrf::refused("the form did not carry this session's token");
    }
    let outcome = app.carts.checkout(&session.cart_id, form.version).await;
    back(outcome.map(drop), "checked_out", "")
}

/// Post/redirect/get: back to the page with a notice saying what happened.
fn back(outcome: Result<(), CartError>, done: &str, thing: &str) -> Response {
    let code = match &outcome {
        Ok(()) => done,
        Err(e) => e.code(),
    };
    // Only a known thing id goes back into the URL.
    let thing = position(thing).map(|i| THINGS[i].id).unwrap_or_default();
    Redirect::to(&format!("/?notice={code}&thing={thing}")).into_response()
}

/// The sentence for a notice; unknown codes show nothing.
fn notice_text(notice: &Notice) -> Option<String> {
    let name = notice
        .thing
        .as_deref()
        .and_then(position)
        .map(|i| THINGS[i].name)
        .unwrap_or("That thing");
    let text = match notice.notice.as_deref()? {
        "added" => format!("{name} is in your cart."),
        "removed" => format!("{name} is out of your cart."),
        "checked_out" => "Thank you! Your order is placed and your cart is empty.".to_owned(),
        "already_in_cart" => {
            format!("{name} is already in your cart: each thing can be bought once.")
        }
        "not_in_cart" => format!("{name} was not in your cart."),
        "cart_empty" => "Your cart is empty: add something first.".to_owned(),
        "stale_cart" => {
            "Your cart changed since this page showed it (another tab?): check it and buy again."
                .to_owned()
        }
        "unknown_thing" => "There is no such thing for sale.".to_owned(),
        "store_unavailable" => {
            "Your cart is unavailable right now, so nothing was changed: try again in a moment."
                .to_owned()
        }
        "insufficient_storage" => {
            "The shop can't save anything just now (its storage is full), so nothing was changed."
                .to_owned()
        }
        "contended" => "Your cart was changing too fast to save that: try again.".to_owned(),
        "tampered" => {
            "Your cart's stored data failed its integrity check, so it was not used.".to_owned()
        }
        _ => return None,
    };
    Some(text)
}

fn cart_rows(cart: &CartView) -> Vec<CartRow> {
    cart.items
        .iter()
        .map(|t| CartRow {
            id: t.id,
            name: t.name,
            price: format_price(t.price_cents),
        })
        .collect()
}

fn glyphs(rating: &ShownRating) -> String {
    let Some(stars) = rating.stars else {
        return String::new();
    };
    let full = stars.round().clamp(0.0, 5.0) as usize;
    format!("{}{}", "★".repeat(full), "☆".repeat(5 - full))
}

fn badge(rating: &ShownRating) -> String {
    let instance = rating.instance.as_deref().unwrap_or("?");
    match rating.source {
        Source::Live => format!("live from {instance}"),
        Source::Cached => match rating.age_ms.unwrap_or_default() / 1000 {
            0 => "cached just now".to_owned(),
            secs => format!("cached {secs} s ago"),
        },
        Source::None => "no rating yet".to_owned(),
    }
}
