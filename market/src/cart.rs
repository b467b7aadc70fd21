//! Shopping carts, one per browser session, kept in the store as versioned
//! documents (`{"items": [thing id, …]}`).
//!
//! Adding and removing are operations on the set, applied to whatever
//! version is current when they are written: an add and a remove of
//! different things from two tabs (or two replicas) both stand, the way a
//! three-way set merge would have it, and a lost race just applies the
//! operation again. Checkout is different: it buys what the buyer saw, so
//! it names the version it was based on and is refused if the cart moved
//! on since.

use crate::catalog::{position, Thing, THINGS};
use crate::store::{empty_cart, Kind, Raced, Store, StoreError, Stored};
use crate::versioned::{self, Change, Races, UpdateError};
use rand::Rng;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Every session's cart.
#[derive(Debug, Clone)]
pub struct Carts {
    store: Store,
}

/// A cart as shown and answered: items in catalog order, the total, and
/// the version (to base a checkout on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CartView {
    /// What is in it.
    pub items: Vec<Thing>,
    /// Sum of the prices, in cents.
    pub total_cents: u32,
    /// The cart's version: 0 for a cart never written.
    #[serde(rename = "_version")]
    pub version: i64,
}

/// What a checkout bought.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The order's id.
    pub order: String,
    /// The cart as bought.
    pub bought: CartView,
}

/// Why a cart change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// No such thing for sale.
    #[error("there is no thing called {0:?} for sale")]
    UnknownThing(String),
    /// Each thing can be in a cart once.
    #[error("{} is already in your cart", .0.name)]
    AlreadyInCart(Thing),
    /// Removing what isn't there.
    #[error("{} is not in your cart", .0.name)]
    NotInCart(Thing),
    /// Checking out nothing.
    #[error("your cart is empty")]
    Empty,
    /// A checkout based on an older version of the cart than the current
    /// one, which it carries.
    #[error("your cart changed since you saw it (version {seen}, now {}): check it and buy again", .current.version)]
    Stale {
        /// The version the buyer saw.
        seen: i64,
        /// The cart now.
        current: CartView,
    },
    /// A change based on a version the cart never had.
    #[error("your cart has no version {seen} (it is at {current})")]
    UnknownVersion {
        /// The version the change named.
        seen: i64,
        /// The cart's version now.
        current: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers kept winning.
    #[error("your cart is changing too fast to save this change; try again")]
    Contended,
}

impl CartError {
    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownThing(_) => "unknown_thing",
            Self::AlreadyInCart(_) => "already_in_cart",
            Self::NotInCart(_) => "not_in_cart",
            Self::Empty => "cart_empty",
            Self::Stale { .. } => "stale_cart",
            Self::UnknownVersion { .. } => "unknown_version",
            Self::Store(error) => error.code(),
            Self::Contended => "contended",
        }
    }
}

impl From<UpdateError<CartError>> for CartError {
    fn from(error: UpdateError<CartError>) -> Self {
        match error {
            UpdateError::Refused(error) => error,
            UpdateError::Store(error) => Self::Store(error),
            UpdateError::Contended => Self::Contended,
        }
    }
}

impl Carts {
    /// Carts kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The cart of `session` (empty, version 0, if it has none).
    pub async fn view(&self, session: &str) -> Result<CartView, CartError> {
        let stored = self.store.get(Kind::Cart, session).await?;
        Ok(stored.map_or_else(|| view_of(&BTreeSet::new(), 0), |s| view(&s)))
    }

    /// Puts `thing` in the cart.
    pub async fn add(
        &self,
        session: &str,
        thing: &str,
        based_on: Option<i64>,
    ) -> Result<CartView, CartError> {
        let index = position(thing).ok_or_else(|| CartError::UnknownThing(thing.to_owned()))?;
        self.change(session, based_on, |items| {
            if items.insert(index) {
                Ok(())
            } else {
                Err(CartError::AlreadyInCart(THINGS[index]))
            }
        })
        .await
    }

    /// Takes `thing` out of the cart.
    pub async fn remove(
        &self,
        session: &str,
        thing: &str,
        based_on: Option<i64>,
    ) -> Result<CartView, CartError> {
        let index = position(thing).ok_or_else(|| CartError::UnknownThing(thing.to_owned()))?;
        self.change(session, based_on, |items| {
            if items.remove(&index) {
                Ok(())
            } else {
                Err(CartError::NotInCart(THINGS[index]))
            }
        })
        .await
    }

    /// Buys what is in the cart — if it is still at version `seen` (when
    /// given) — writing the order and emptying the cart in one transaction.
    pub async fn checkout(&self, session: &str, seen: Option<i64>) -> Result<Receipt, CartError> {
        self.store
            .changing(self.checkout_unbounded(session, seen))
            .await
    }

    /// [`Carts::checkout`] with no deadline.
    async fn checkout_unbounded(
        &self,
        session: &str,
        seen: Option<i64>,
    ) -> Result<Receipt, CartError> {
        let order = format!("{:032x}", rand::rng().random::<u128>());
        let mut races = Races::new();
        loop {
            let current = self.view(session).await?;
            if let Some(seen) = seen.filter(|&seen| seen != current.version) {
                return Err(CartError::Stale { seen, current });
            }
            if current.items.is_empty() {
                return Err(CartError::Empty);
            }
            let bought = serde_json::to_value(&current)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            match self
                .store
                .place_order(session, current.version, &order, &bought)
                .await?
            {
                Ok(_) => {
                    return Ok(Receipt {
                        order,
                        bought: current,
                    })
                }
                Err(Raced) => races.lost::<CartError>(&self.store).await?,
            }
        }
    }

    /// Applies `change` to the items of the current version and writes it.
    /// A change based on an older version (`based_on`) applies all the
    /// same — set operations merge — but not one based on a version the
    /// cart never had.
    async fn change(
        &self,
        session: &str,
        based_on: Option<i64>,
        change: impl Fn(&mut BTreeSet<usize>) -> Result<(), CartError>,
    ) -> Result<CartView, CartError> {
        let (stored, _) = versioned::update(&self.store, Kind::Cart, session, |current| {
            let version = current.map_or(0, |c| c.version);
            if let Some(seen) = based_on.filter(|&seen| seen > version) {
                return Err(CartError::UnknownVersion {
                    seen,
                    current: version,
                });
            }
            let mut items = current.map(items_of).unwrap_or_default();
            change(&mut items)?;
            Ok(Change::Write(body_of(&items)))
        })
        .await?;
        Ok(view(&stored))
    }
}

/// The things in a stored cart (ids no longer for sale are left out).
fn items_of(stored: &Stored) -> BTreeSet<usize> {
    stored
        .body
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().and_then(position))
        .collect()
}

fn body_of(items: &BTreeSet<usize>) -> Map<String, Value> {
    let mut body = empty_cart();
    body.insert(
        "items".into(),
        items.iter().map(|&i| Value::from(THINGS[i].id)).collect(),
    );
    body
}

fn view(stored: &Stored) -> CartView {
    view_of(&items_of(stored), stored.version)
}

fn view_of(items: &BTreeSet<usize>, version: i64) -> CartView {
    let items: Vec<Thing> = items.iter().map(|&i| THINGS[i]).collect();
    let total_cents = items.iter().map(|t| t.price_cents).sum();
    CartView {
        items,
        total_cents,
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn carts() -> (Carts, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("m.db").display());
        let store = Store::open(&url, b"k").await.expect("store");
        (Carts::new(store), dir)
    }

    #[tokio::test]
    async fn add_once_remove_total_and_checkout() {
        let (carts, _dir) = carts().await;
        carts.add("s", "camera", None).await.expect("add");
        let view = carts.add("s", "basketball", None).await.expect("add");
        let ids: Vec<&str> = view.items.iter().map(|t| t.id).collect();
        assert_eq!(ids, ["basketball", "camera"], "catalog order");
        assert_eq!(view.total_cents, 1999 + 9999);
        assert_eq!(view.version, 2);
        assert!(matches!(
            carts.add("s", "camera", None).await,
            Err(CartError::AlreadyInCart(_))
        ));
        assert!(matches!(
            carts.add("s", "piano", None).await,
            Err(CartError::UnknownThing(_))
        ));
        let view = carts.remove("s", "camera", None).await.expect("remove");
        assert_eq!((view.total_cents, view.version), (1999, 3));
        assert!(matches!(
            carts.remove("s", "camera", None).await,
            Err(CartError::NotInCart(_))
        ));
        assert!(carts.view("other").await.expect("view").items.is_empty());
        let receipt = carts.checkout("s", Some(3)).await.expect("checkout");
        assert_eq!(receipt.bought.total_cents, 1999);
        let after = carts.view("s").await.expect("view");
        assert!(after.items.is_empty());
        assert_eq!(after.version, 4, "emptying is a version too");
        assert!(matches!(
            carts.checkout("s", None).await,
            Err(CartError::Empty)
        ));
    }

    #[tokio::test]
    async fn a_checkout_based_on_a_stale_cart_is_refused_with_the_current_one() {
        let (carts, _dir) = carts().await;
        let seen = carts.add("s", "camera", None).await.expect("add").version;
        carts
            .add("s", "basketball", Some(seen))
            .await
            .expect("another tab adds");
        match carts.checkout("s", Some(seen)).await {
            Err(CartError::Stale { seen: s, current }) => {
                assert_eq!(s, seen);
                assert_eq!(current.items.len(), 2, "the cart as it is now");
            }
            other => panic!("expected a stale cart, got {other:?}"),
        }
        assert_eq!(
            carts.view("s").await.expect("view").items.len(),
            2,
            "nothing bought"
        );
    }
}
