//! What each stress worker does: random POST/GET/PUT/DELETE on a few
//! shared carts and customers, through either market replica, recording
//! every answer and every acknowledged write.

use beacon::net::http::{read_body, HttpClient};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

use beacon_market::{catalog::THINGS, customers::FIELDS, session::COOKIE};

/// A shared cart's cookie value (32 hex digits, as the market issues).
pub fn cart_cookie(cart: usize) -> String {
    format!("{cart:032x}")
}

/// A shared customer's id.
pub fn customer_id(customer: usize) -> String {
    format!("stress-{customer}")
}

/// The session every stress customer belongs to: only it may read and
/// change them.
pub const CUSTOMERS_COOKIE: &str = "c0570e4c0570e4c0570e4c0570e4c057";

/// The id the market gives cart `cart`'s session cookie, with `secret`.
pub fn cart_id(cart: usize, secret: &str) -> String {
    let keys = beacon_market::store::signing::Signer::new(secret.as_bytes());
    beacon_market::session::Session::of(&keys, &cart_cookie(cart)).cart_id
}

/// What a request was, for the tallies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// `POST /api/cart/items/{thing}`.
    CartAdd,
    /// `DELETE /api/cart/items/{thing}`.
    CartRemove,
    /// `GET /api/cart`.
    CartGet,
    /// `POST /api/checkout` based on the version just read.
    Checkout,
    /// `GET /api/customers/{id}`.
    CustomerGet,
    /// `PUT /api/customers/{id}` based on the version just read.
    CustomerPut,
}

/// One answer (or failure to get one).
#[derive(Debug, Clone)]
pub struct Answer {
    /// What was asked.
    pub op: Op,
    /// The status; `None`: no answer (connection failed, timed out).
    pub status: Option<StatusCode>,
    /// How long it took.
    pub took: Duration,
}

/// A cart change the market acknowledged, with the version it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartAck {
    /// Which cart.
    pub cart: usize,
    /// The version the change produced.
    pub version: i64,
    /// What it did.
    pub change: CartChange,
}

/// A change to a cart's set of things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CartChange {
    /// Put in.
    Add(&'static str),
    /// Taken out.
    Remove(&'static str),
    /// Bought: emptied.
    Checkout,
}

/// A customer save the market acknowledged: the document it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerAck {
    /// Which customer.
    pub customer: usize,
    /// The field this writer changed, and the value it wrote.
    pub field: &'static str,
    /// The value.
    pub value: String,
    /// The stored document as answered.
    pub stored: Value,
}

/// Everything one worker saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every answer.
    pub answers: Vec<Answer>,
    /// Acknowledged cart changes.
    pub carts: Vec<CartAck>,
    /// Acknowledged customer saves.
    pub customers: Vec<CustomerAck>,
}

/// One worker's load.
#[derive(Debug)]
pub struct Worker {
    /// Its number (unique values are made from it).
    pub id: usize,
    /// The market replicas' URLs; each request picks one.
    pub markets: Vec<String>,
    /// How many shared carts and customers there are.
    pub carts: usize,
    /// Customers.
    pub customers: usize,
    /// Shared HTTP client.
    pub http: HttpClient,
}

impl Worker {
    /// Works until `until`, returning what it saw.
    pub async fn run(self, until: Instant, seed: u64) -> Seen {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen = Seen::default();
        let mut n = 0u64;
        while Instant::now() < until {
            n += 1;
            let market = self.markets[rng.random_range(0..self.markets.len())].clone();
            if rng.random_bool(0.5) {
                let cart = rng.random_range(0..self.carts);
                let thing = THINGS[rng.random_range(0..THINGS.len())].id;
                match rng.random_range(0..100) {
                    0..40 => {
                        self.cart_change(&mut seen, &market, cart, CartChange::Add(thing))
                            .await
                    }
                    40..80 => {
                        self.cart_change(&mut seen, &market, cart, CartChange::Remove(thing))
                            .await
                    }
                    80..95 => drop(
                        self.send(
                            &mut seen,
                            Op::CartGet,
                            &market,
                            Method::GET,
                            "/api/cart",
                            &cart_cookie(cart),
                            None,
                        )
                        .await,
                    ),
                    _ => {
                        self.cart_change(&mut seen, &market, cart, CartChange::Checkout)
                            .await
                    }
                }
            } else {
                let customer = rng.random_range(0..self.customers);
                let field = FIELDS[rng.random_range(0..FIELDS.len())];
                let value = match field {
                    "email" => format!("w{}-{n}@example.org", self.id),
                    _ => format!("{field} by worker {} #{n}", self.id),
                };
                self.customer_save(&mut seen, &market, customer, field, value)
                    .await;
            }
        }
        seen
    }

    /// Sends one cart change to `market`, recording the answer and, when
    /// it was acknowledged, the version it made.
    pub async fn cart_change(
        &self,
        seen: &mut Seen,
        market: &str,
        cart: usize,
        change: CartChange,
    ) {
        let cookie = cart_cookie(cart);
        let (op, method, path, body) = match change {
            CartChange::Add(thing) => (
                Op::CartAdd,
                Method::POST,
                format!("/api/cart/items/{thing}"),
                None,
            ),
            CartChange::Remove(thing) => (
                Op::CartRemove,
                Method::DELETE,
                format!("/api/cart/items/{thing}"),
                None,
            ),
            CartChange::Checkout => {
                let Some(cart_now) = self
                    .send(
                        seen,
                        Op::CartGet,
                        market,
                        Method::GET,
                        "/api/cart",
                        &cookie,
                        None,
                    )
                    .await
                else {
                    return;
                };
                let seen_version = cart_now["_version"].clone();
                (
                    Op::Checkout,
                    Method::POST,
                    "/api/checkout".to_owned(),
                    Some(json!({"_version": seen_version})),
                )
            }
        };
        let Some(answer) = self
            .send(seen, op, market, method, &path, &cookie, body)
            .await
        else {
            return;
        };
        let version = match change {
            // The receipt shows the cart as bought; emptying it made the next version.
            CartChange::Checkout => answer["bought"]["_version"].as_i64().map(|v| v + 1),
            _ => answer["_version"].as_i64(),
        };
        if let Some(version) = version {
            seen.carts.push(CartAck {
                cart,
                version,
                change,
            });
        }
    }

    async fn customer_save(
        &self,
        seen: &mut Seen,
        market: &str,
        customer: usize,
        field: &'static str,
        value: String,
    ) {
        let path = format!("/api/customers/{}", customer_id(customer));
        let Some(mut doc) = self
            .send(
                seen,
                Op::CustomerGet,
                market,
                Method::GET,
                &path,
                CUSTOMERS_COOKIE,
                None,
            )
            .await
        else {
            return;
        };
        doc[field] = Value::from(value.clone());
        if let Some(stored) = self
            .send(
                seen,
                Op::CustomerPut,
                market,
                Method::PUT,
                &path,
                CUSTOMERS_COOKIE,
                Some(doc),
            )
            .await
        {
            seen.customers.push(CustomerAck {
                customer,
                field,
                value,
                stored,
            });
        }
    }

    /// Sends one request; the answer's JSON if it was a 2xx.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        seen: &mut Seen,
        op: Op,
        market: &str,
        method: Method,
        path: &str,
        cookie: &str,
        body: Option<Value>,
    ) -> Option<Value> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{market}{path}"));
        if !cookie.is_empty() {
            request = request.header(header::COOKIE, format!("{COOKIE}={cookie}"));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = request.body(Full::new(body)).ok()?;
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            let response = self.http.request(request).await.ok()?;
            let status = response.status();
            let body = read_body(response.into_body(), 1 << 20).await.ok()?;
            Some((status, body))
        })
        .await
        .ok()
        .flatten();
        seen.answers.push(Answer {
            op,
            status: answer.as_ref().map(|(status, _)| *status),
            took: started.elapsed(),
        });
        let (status, body) = answer?;
        if !status.is_success() {
            return None;
        }
        serde_json::from_slice(&body).ok()
    }
}
