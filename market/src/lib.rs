//! `beacon-market`: the demo web app.
//!
//! Four things for sale with their ratings, a cart, and a live panel of the
//! ratings instances and their breakers. Ratings come from the `ratings`
//! service through Beacon's client: all four fetched concurrently under one
//! page deadline, served from the last good value when a live one can't be
//! had in time. The page answers within the deadline whatever the ratings
//! instances do.
//!
//! # Layout
//!
//! * [`catalog`]: the things for sale.
//! * [`store`]: the database (SQLite or PostgreSQL): versioned, signed
//!   documents with their history, and orders.
//! * [`versioned`]: writes that retry a lost compare-and-set race.
//! * [`merge`]: three-way merges of versioned documents.
//! * [`cart`]: one cart per browser session, in the store.
//! * [`customers`]: customer records, merged three-way on stale writes.
//! * [`session`]: the session cookie, and what is found from it (its cart,
//!   its customer record, its CSRF token).
//! * [`access`]: who may read and change a customer record.
//! * [`csrf`]: writes only from the market's own pages (origin, JSON, a
//!   per-session token).
//! * [`ratings`]: live ratings through Beacon, with the last-good cache.
//! * [`panel`]: the live panel — its data, each instance's share of
//!   traffic, the library's events, and Server-Sent Events.
//! * [`page`]: the HTML page and its forms.
//! * [`api`]: the JSON API.
//! * [`app`]: the state every handler shares.
//! * [`router`]: the routes and their middleware.
//! * [`server`]: wiring it to the registry and serving until shutdown.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod access;
pub mod api;
pub mod app;
pub mod cart;
pub mod catalog;
pub mod csrf;
pub mod customers;
pub mod merge;
pub mod page;
pub mod panel;
pub mod ratings;
pub mod router;
pub mod server;
pub mod session;
pub mod store;
pub mod versioned;
