//! Whether any acknowledged write was lost, judged against the store's
//! history after the run (kept whole: the markets run with a history long
//! enough for every version).
//!
//! A cart's history must be every version from 1 to the last with no gap;
//! each acknowledged change must have made a version of its own (two
//! acknowledgements of one version would mean one overwrote the other);
//! and replaying the acknowledged changes in version order from an empty
//! cart must give, version by version, exactly what the history holds — so
//! the final cart is the acknowledged adds minus the acknowledged removes,
//! checkouts emptying it. A customer save's version must be in the history
//! with the very document that was answered, holding the writer's value.

use super::workload::{customer_id, CartAck, CartChange, CustomerAck};
use beacon_market::access::unmarked;
use beacon_market::store::{Kind, Store, Stored};
use std::collections::{BTreeMap, BTreeSet};

/// What the check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Acknowledged writes not in the store as acknowledged.
    pub lost: Vec<String>,
    /// Versions written whose answer never came back (a caller timed
    /// out): not lost, but not checkable against an acknowledgement.
    pub unacknowledged: usize,
    /// Versions checked.
    pub versions: usize,
}

/// Checks `carts` shared carts and `customers` customers.
pub async fn verify(
    store: &Store,
    cart_acks: &[CartAck],
    customer_acks: &[CustomerAck],
    carts: usize,
    customers: usize,
) -> Result<Verdict, String> {
    let mut verdict = Verdict::default();
    for cart in 0..carts {
        let id = super::workload::cart_id(cart, super::SECRET);
        let history = store
            .history(Kind::Cart, &id)
            .await
            .map_err(|e| e.to_string())?;
        let acks: Vec<&CartAck> = cart_acks.iter().filter(|a| a.cart == cart).collect();
        check_cart(&id, &history, &acks, &mut verdict);
    }
    for customer in 0..customers {
        let id = customer_id(customer);
        let history = store
            .history(Kind::Customer, &id)
            .await
            .map_err(|e| e.to_string())?;
        let acks: Vec<&CustomerAck> = customer_acks
            .iter()
            .filter(|a| a.customer == customer)
            .collect();
        check_customer(&id, &history, &acks, &mut verdict);
    }
    Ok(verdict)
}

fn contiguous(id: &str, history: &[Stored], verdict: &mut Verdict) {
    for (i, stored) in history.iter().enumerate() {
        let expected = i64::try_from(i).unwrap_or(i64::MAX) + 1;
        if stored.version != expected {
            verdict.lost.push(format!(
                "{id}: history has version {} where {expected} was due",
                stored.version
            ));
            return;
        }
    }
}

fn check_cart(id: &str, history: &[Stored], acks: &[&CartAck], verdict: &mut Verdict) {
    contiguous(id, history, verdict);
    let mut by_version: BTreeMap<i64, CartChange> = BTreeMap::new();
    for ack in acks {
        if by_version.insert(ack.version, ack.change).is_some() {
            verdict
                .lost
                .push(format!("{id}: version {} acknowledged twice", ack.version));
        }
    }
    let mut items: BTreeSet<String> = BTreeSet::new();
    for stored in history {
        verdict.versions += 1;
        let stored_items: BTreeSet<String> = stored.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        match by_version.remove(&stored.version) {
            Some(change) => {
                match change {
                    CartChange::Add(thing) => drop(items.insert(thing.to_owned())),
                    CartChange::Remove(thing) => drop(items.remove(thing)),
                    CartChange::Checkout => items.clear(),
                }
                if items != stored_items {
                    verdict.lost.push(format!(
                        "{id} v{}: acknowledged changes give {items:?}, the store holds {stored_items:?}",
                        stored.version
                    ));
                    items = stored_items;
                }
            }
            None => {
                verdict.unacknowledged += 1;
                items = stored_items;
            }
        }
    }
    for version in by_version.keys() {
        verdict.lost.push(format!(
            "{id}: acknowledged version {version} is not in the history"
        ));
    }
}

fn check_customer(id: &str, history: &[Stored], acks: &[&CustomerAck], verdict: &mut Verdict) {
    contiguous(id, history, verdict);
    // As answered: without the owner's mark the store keeps.
    let answered: Vec<Stored> = history.iter().cloned().map(unmarked).collect();
    let by_version: BTreeMap<i64, &Stored> = answered.iter().map(|s| (s.version, s)).collect();
    let mut acked = BTreeSet::new();
    for ack in acks {
        let version = ack.stored["_version"].as_i64().unwrap_or(0);
        if !acked.insert(version) {
            verdict
                .lost
                .push(format!("{id}: version {version} acknowledged twice"));
        }
        if ack.stored[ack.field].as_str() != Some(ack.value.as_str()) {
            verdict.lost.push(format!(
                "{id} v{version}: the answer lost the writer's {} {:?}",
                ack.field, ack.value
            ));
        }
        match by_version.get(&version) {
            Some(stored) if stored.to_json() == ack.stored => {}
            Some(stored) => verdict.lost.push(format!(
                "{id} v{version}: answered {}, stored {}",
                ack.stored,
                stored.to_json()
            )),
            None => verdict.lost.push(format!(
                "{id}: acknowledged version {version} is not in the history"
            )),
        }
    }
    verdict.versions += history.len();
    // Version 1 is the set-up's; any other without an acknowledgement
    // had its answer lost on the way.
    verdict.unacknowledged += history
        .iter()
        .filter(|s| s.version > 1 && !acked.contains(&s.version))
        .count();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cart(version: i64, items: &[&str]) -> Stored {
        let body = json!({"items": items});
        Stored {
            id: "c".into(),
            version,
            body: body.as_object().cloned().unwrap_or_default(),
        }
    }

    fn judged(history: &[Stored], acks: &[CartAck]) -> Verdict {
        let mut verdict = Verdict::default();
        check_cart("c", history, &acks.iter().collect::<Vec<_>>(), &mut verdict);
        verdict
    }

    fn ack(version: i64, change: CartChange) -> CartAck {
        CartAck {
            cart: 0,
            version,
            change,
        }
    }

    #[test]
    fn a_history_that_replays_the_acknowledged_changes_passes() {
        let history = [
            cart(1, &["camera"]),
            cart(2, &["camera", "football"]),
            cart(3, &["football"]),
            cart(4, &[]),
        ];
        let acks = [
            ack(1, CartChange::Add("camera")),
            ack(2, CartChange::Add("football")),
            ack(4, CartChange::Checkout),
        ];
        let verdict = judged(&history, &acks);
        assert!(verdict.lost.is_empty(), "{:?}", verdict.lost);
        assert_eq!((verdict.versions, verdict.unacknowledged), (4, 1));
    }

    #[test]
    fn an_overwritten_add_a_doubly_acknowledged_version_or_a_missing_one_is_lost() {
        // The add of v2 is gone from v2 on (a write based on v1 overwrote it).
        let history = [cart(1, &["camera"]), cart(2, &["camera"])];
        let acks = [
            ack(1, CartChange::Add("camera")),
            ack(2, CartChange::Add("football")),
        ];
        let verdict = judged(&history, &acks);
        assert_eq!(verdict.lost.len(), 1, "{:?}", verdict.lost);

        let acks = [
            ack(1, CartChange::Add("camera")),
            ack(1, CartChange::Add("football")),
            ack(3, CartChange::Remove("camera")),
        ];
        let verdict = judged(&history[..1], &acks);
        assert_eq!(
            verdict.lost.len(),
            3,
            "v1 twice (so its replay differs too), v3 not stored: {:?}",
            verdict.lost
        );
    }

    #[test]
    fn a_customer_answer_missing_from_the_history_or_without_its_value_is_lost() {
        let stored = Stored {
            id: "c".into(),
            version: 2,
            body: json!({"name": "A", "email": "a@b.org", "address": "x"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let first = Stored {
            version: 1,
            ..stored.clone()
        };
        let good = CustomerAck {
            customer: 0,
            field: "name",
            value: "A".into(),
            stored: stored.to_json(),
        };
        let mut verdict = Verdict::default();
        check_customer(
            "c",
            &[first.clone(), stored.clone()],
            &[&good],
            &mut verdict,
        );
        assert!(verdict.lost.is_empty(), "{:?}", verdict.lost);

        let dropped_value = CustomerAck {
            value: "B".into(),
            ..good.clone()
        };
        let mut verdict = Verdict::default();
        check_customer(
            "c",
            &[first.clone(), stored.clone()],
            &[&dropped_value],
            &mut verdict,
        );
        assert_eq!(verdict.lost.len(), 1, "{:?}", verdict.lost);

        let mut verdict = Verdict::default();
        check_customer("c", &[first], &[&good], &mut verdict);
        assert_eq!(
            verdict.lost.len(),
            1,
            "v2 not in the history: {:?}",
            verdict.lost
        );
    }
}
