//! The JSON API: things with ratings, status, cart.

use crate::{
    app::App,
    cart::{CartError, CartView},
    ratings::ShownRating,
    session::CartId,
    status::Status,
};
use axum::{
    extract::{Path, State},
    http::StatusCode,
    Extension, Json,
};
use beacon_kit::error::JsonError;
use serde::Serialize;

/// One entry of `GET /api/things`.
#[derive(Debug, Serialize)]
pub struct ThingWithRating {
    id: &'static str,
    name: &'static str,
    price_cents: u32,
    rating: ShownRating,
}

/// `GET /api/things`: always 200 within the page deadline.
pub async fn things(State(app): State<App>) -> Json<Vec<ThingWithRating>> {
    let rows = app
        .board
        .all()
        .await
        .into_iter()
        .map(|(thing, rating)| ThingWithRating {
            id: thing.id,
            name: thing.name,
            price_cents: thing.price_cents,
            rating,
        })
        .collect();
    Json(rows)
}

/// `GET /api/status`.
pub async fn status(State(app): State<App>) -> Json<Status> {
    Json(app.status())
}

/// `GET /api/cart`.
pub async fn cart(
    State(app): State<App>,
    Extension(CartId(id)): Extension<CartId>,
) -> Json<CartView> {
    Json(app.carts.view(&id))
}

/// `POST /api/cart/items/{thing}`: 201 with the cart; 409 `already_in_cart`;
/// 404 `unknown_thing`.
pub async fn add(
    State(app): State<App>,
    Extension(CartId(id)): Extension<CartId>,
    Path(thing): Path<String>,
) -> Result<(StatusCode, Json<CartView>), JsonError> {
    let view = app.carts.add(&id, &thing).map_err(cart_error)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/cart/items/{thing}`: 200 with the cart; 404 `not_in_cart`.
pub async fn remove(
    State(app): State<App>,
    Extension(CartId(id)): Extension<CartId>,
    Path(thing): Path<String>,
) -> Result<Json<CartView>, JsonError> {
    app.carts.remove(&id, &thing).map(Json).map_err(cart_error)
}

/// Body of `POST /api/checkout`.
#[derive(Debug, Serialize)]
pub struct Receipt {
    bought: CartView,
}

/// `POST /api/checkout`: empties the cart; 409 `cart_empty` when empty.
pub async fn checkout(
    State(app): State<App>,
    Extension(CartId(id)): Extension<CartId>,
) -> Result<Json<Receipt>, JsonError> {
    let bought = app.carts.checkout(&id).map_err(cart_error)?;
    Ok(Json(Receipt { bought }))
}

fn cart_error(error: CartError) -> JsonError {
    let status = match error {
        CartError::UnknownThing(_) | CartError::NotInCart(_) => StatusCode::NOT_FOUND,
        CartError::AlreadyInCart(_) | CartError::Empty => StatusCode::CONFLICT,
    };
    JsonError::new(status, error.code(), error.to_string())
}
