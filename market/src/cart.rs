//! Shopping carts, one per browser session.

use crate::catalog::{position, Thing, THINGS};
use dashmap::DashMap;
use serde::Serialize;
use std::collections::BTreeSet;

/// Most carts kept at once; past it an arbitrary cart is dropped, so a
/// stream of cookie-less requests can't grow memory without bound.
const MAX_CARTS: usize = 10_000;

/// Every session's cart.
#[derive(Debug, Default)]
pub struct Carts {
    carts: DashMap<String, BTreeSet<usize>>,
}

/// A cart as shown and answered: items in catalog order, and the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CartView {
    /// What is in it.
    pub items: Vec<Thing>,
    /// Sum of the prices, in cents.
    pub total_cents: u32,
}

/// Why a cart change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
}

impl CartError {
    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownThing(_) => "unknown_thing",
            Self::AlreadyInCart(_) => "already_in_cart",
            Self::NotInCart(_) => "not_in_cart",
            Self::Empty => "cart_empty",
        }
    }
}

impl Carts {
    /// The cart of `session` (empty if it has none).
    pub fn view(&self, session: &str) -> CartView {
        self.carts
            .get(session)
            .map(|items| view_of(&items))
            .unwrap_or_else(|| view_of(&BTreeSet::new()))
    }

    /// Puts `thing` in the cart.
    pub fn add(&self, session: &str, thing: &str) -> Result<CartView, CartError> {
        let index = position(thing).ok_or_else(|| CartError::UnknownThing(thing.to_owned()))?;
        if !self.carts.contains_key(session) && self.carts.len() >= MAX_CARTS {
            let victim = self.carts.iter().next().map(|e| e.key().clone());
            if let Some(victim) = victim {
                self.carts.remove(&victim);
            }
        }
        let mut items = self.carts.entry(session.to_owned()).or_default();
        if !items.insert(index) {
            return Err(CartError::AlreadyInCart(THINGS[index]));
        }
        Ok(view_of(&items))
    }

    /// Takes `thing` out of the cart.
    pub fn remove(&self, session: &str, thing: &str) -> Result<CartView, CartError> {
        let index = position(thing).ok_or_else(|| CartError::UnknownThing(thing.to_owned()))?;
        let removed = self
            .carts
            .get_mut(session)
            .is_some_and(|mut items| items.remove(&index));
        if !removed {
            return Err(CartError::NotInCart(THINGS[index]));
        }
        Ok(self.view(session))
    }

    /// Empties the cart, returning what was bought.
    pub fn checkout(&self, session: &str) -> Result<CartView, CartError> {
        match self.carts.remove(session) {
            Some((_, items)) if !items.is_empty() => Ok(view_of(&items)),
            _ => Err(CartError::Empty),
        }
    }
}

fn view_of(items: &BTreeSet<usize>) -> CartView {
    let items: Vec<Thing> = items.iter().map(|&i| THINGS[i]).collect();
    let total_cents = items.iter().map(|t| t.price_cents).sum();
    CartView { items, total_cents }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_once_remove_total_and_checkout() {
        let carts = Carts::default();
        carts.add("s", "camera").expect("add");
        let view = carts.add("s", "basketball").expect("add");
        let ids: Vec<&str> = view.items.iter().map(|t| t.id).collect();
        assert_eq!(ids, ["basketball", "camera"], "catalog order");
        assert_eq!(view.total_cents, 1999 + 9999);
        assert_eq!(
            carts.add("s", "camera"),
            Err(CartError::AlreadyInCart(THINGS[2]))
        );
        assert_eq!(
            carts.add("s", "piano"),
            Err(CartError::UnknownThing("piano".into()))
        );
        assert_eq!(
            carts.remove("s", "camera").expect("remove").total_cents,
            1999
        );
        assert_eq!(
            carts.remove("s", "camera"),
            Err(CartError::NotInCart(THINGS[2]))
        );
        assert!(
            carts.view("other").items.is_empty(),
            "carts are per session"
        );
        assert_eq!(carts.checkout("s").expect("checkout").total_cents, 1999);
        assert!(carts.view("s").items.is_empty());
        assert_eq!(carts.checkout("s"), Err(CartError::Empty));
    }
}
