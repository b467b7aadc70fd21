//! Three-way merges of versioned documents: what the store does when a
//! write is based on an older version than the one stored (the Sesam
//! example's rule, `../shared/seeds/002_…`).
//!
//! Three versions take part: the **base** the writer read, **ours** (what
//! is stored now) and **yours** (what the writer sends). Field by field: a
//! field only one side changed takes that side's value; a field both sides
//! changed to the same value takes it; a field both sides changed to
//! different values is a **conflict**, and nothing is written — the caller
//! gets every conflicting field with its three values and decides. Nested
//! objects (an address) merge field by field too, their conflicts named by
//! dotted keys (`address.city`). A missing field is `null`, so removing a
//! field is a change like any other. Fields whose names start with `_`
//! (`_id`, `_version`, `_signature`) belong to the store, not to either
//! writer: the merge leaves them out, and the store sets them.
//!
//! Carts merge as sets instead, and never conflict: a thing one side added
//! is in, a thing one side removed is out, whatever the other side did
//! with other things.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// One field changed two ways.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// The field, dotted for nested ones (`address.city`).
    #[serde(rename = "_key")]
    pub key: String,
    /// Its value in the version both sides started from.
    pub base_value: Value,
    /// Its value as stored now.
    pub our_value: Value,
    /// Its value as the writer sent it.
    pub your_value: Value,
}

/// The body of a 409 answer: the conflicts and the three versions, so the
/// caller can show them and save again on the current version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConflictBody {
    /// For people.
    pub message: String,
    /// Every field changed two ways.
    pub conflicts: Vec<Conflict>,
    /// The writer's version.
    pub yours: Value,
    /// The stored version.
    pub ours: Value,
    /// The version the writer started from.
    pub base: Value,
}

impl ConflictBody {
    /// The answer for `conflicts` between these three versions.
    pub fn new(conflicts: Vec<Conflict>, base: Value, ours: Value, yours: Value) -> Self {
        Self {
            message: "someone else changed the same fields since you read them: nothing was saved"
                .into(),
            conflicts,
            yours,
            ours,
            base,
        }
    }
}

/// Merges `yours` into `ours`, both changed from `base`: the merged
/// document (without the store's `_` fields), or every conflict.
pub fn merge_documents(
    base: &Map<String, Value>,
    ours: &Map<String, Value>,
    yours: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<Conflict>> {
    let mut conflicts = Vec::new();
    let merged = merge_objects("", base, ours, yours, &mut conflicts);
    if conflicts.is_empty() {
        Ok(merged)
    } else {
        Err(conflicts)
    }
}

fn merge_objects(
    prefix: &str,
    base: &Map<String, Value>,
    ours: &Map<String, Value>,
    yours: &Map<String, Value>,
    conflicts: &mut Vec<Conflict>,
) -> Map<String, Value> {
    let keys: BTreeSet<&String> = base
        .keys()
        .chain(ours.keys())
        .chain(yours.keys())
        .filter(|key| !(prefix.is_empty() && key.starts_with('_')))
        .collect();
    let mut merged = Map::new();
    for key in keys {
        let at = |doc: &Map<String, Value>| doc.get(key).cloned().unwrap_or(Value::Null);
        let (b, o, y) = (at(base), at(ours), at(yours));
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let value = match (&b, &o, &y) {
            _ if y == b => o,
            _ if o == b || o == y => y,
            (b_obj, Value::Object(o_obj), Value::Object(y_obj)) => {
                let empty = Map::new();
                let b_obj = b_obj.as_object().unwrap_or(&empty);
                Value::Object(merge_objects(&name, b_obj, o_obj, y_obj, conflicts))
            }
            _ => {
                conflicts.push(Conflict {
                    key: name,
                    base_value: b,
                    our_value: o,
                    your_value: y,
                });
                continue;
            }
        };
        if !value.is_null() {
            merged.insert(key.clone(), value);
        }
    }
    merged
}

/// Merges two sets both changed from `base`: what either side added is in,
/// what either side removed is out.
pub fn merge_sets<T: Ord + Clone>(
    base: &BTreeSet<T>,
    ours: &BTreeSet<T>,
    yours: &BTreeSet<T>,
) -> BTreeSet<T> {
    let kept_by_both = base
        .iter()
        .filter(|t| ours.contains(t) && yours.contains(t));
    let added = ours
        .iter()
        .chain(yours.iter())
        .filter(|t| !base.contains(t));
    kept_by_both.chain(added).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    fn merge(base: Value, ours: Value, yours: Value) -> Result<Value, Vec<Conflict>> {
        merge_documents(&doc(base), &doc(ours), &doc(yours)).map(Value::Object)
    }

    #[test]
    fn changes_to_different_fields_are_combined() {
        let base = json!({"first_name": "Baard", "last_name": "Johansen"});
        let ours = json!({"first_name": "Baard", "last_name": "Johnson"});
        let yours = json!({"first_name": "Brad", "last_name": "Johansen"});
        assert_eq!(
            merge(base, ours, yours),
            Ok(json!({"first_name": "Brad", "last_name": "Johnson"}))
        );
    }

    #[test]
    fn the_same_field_changed_two_ways_is_a_conflict_with_all_three_values() {
        let base = json!({"first_name": "Baard", "last_name": "Johnson"});
        let ours = json!({"first_name": "Brad", "last_name": "Johnson"});
        let yours = json!({"first_name": "Bird", "last_name": "Johnson"});
        let conflicts = merge(base, ours, yours).expect_err("conflict");
        assert_eq!(
            conflicts,
            vec![Conflict {
                key: "first_name".into(),
                base_value: json!("Baard"),
                our_value: json!("Brad"),
                your_value: json!("Bird"),
            }]
        );
        // On the wire, as the Sesam example answers.
        let wire = serde_json::to_value(&conflicts[0]).expect("serializes");
        assert_eq!(
            wire,
            json!({"_key": "first_name", "base_value": "Baard", "our_value": "Brad", "your_value": "Bird"})
        );
    }

    #[test]
    fn the_same_change_on_both_sides_is_no_conflict() {
        let base = json!({"email": "a@example.com"});
        let both = json!({"email": "b@example.com"});
        assert_eq!(merge(base, both.clone(), both.clone()), Ok(both));
    }

    #[test]
    fn nested_fields_merge_one_by_one_and_conflicts_name_the_path() {
        let base = json!({"address": {"street": "Storgata 1", "city": "Oslo"}});
        let ours = json!({"address": {"street": "Storgata 2", "city": "Oslo"}});
        let yours = json!({"address": {"street": "Storgata 1", "city": "Bergen"}});
        assert_eq!(
            merge(base.clone(), ours, yours),
            Ok(json!({"address": {"street": "Storgata 2", "city": "Bergen"}}))
        );
        let ours = json!({"address": {"street": "Storgata 1", "city": "Trondheim"}});
        let yours = json!({"address": {"street": "Storgata 1", "city": "Bergen"}});
        let conflicts = merge(base, ours, yours).expect_err("conflict");
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].key, "address.city");
    }

    #[test]
    fn removing_a_field_is_a_change_and_can_conflict_with_another() {
        let base = json!({"name": "Ada", "phone": "123"});
        let ours = json!({"name": "Ada"});
        let yours = json!({"name": "Ada Lovelace", "phone": "123"});
        assert_eq!(
            merge(base.clone(), ours, yours),
            Ok(json!({"name": "Ada Lovelace"}))
        );
        let ours = json!({"name": "Ada"});
        let yours = json!({"name": "Ada", "phone": "456"});
        let conflicts = merge(base, ours, yours).expect_err("removed and changed");
        assert_eq!(conflicts[0].our_value, Value::Null);
    }

    #[test]
    fn the_stores_own_fields_are_left_to_the_store() {
        let base = json!({"_id": "ada", "_version": 1, "name": "Ada"});
        let ours = json!({"_id": "ada", "_version": 2, "name": "Ada"});
        let yours = json!({"_id": "forged", "_version": 1, "name": "Ada L"});
        assert_eq!(merge(base, ours, yours), Ok(json!({"name": "Ada L"})));
    }

    #[test]
    fn carts_merge_as_sets_an_add_and_a_remove_of_different_things_both_stand() {
        let set = |items: &[&'static str]| items.iter().copied().collect::<BTreeSet<_>>();
        let base = set(&["camera", "lamp"]);
        let ours = set(&["camera", "lamp", "kettle"]); // added a kettle
        let yours = set(&["camera"]); // removed the lamp
        assert_eq!(merge_sets(&base, &ours, &yours), set(&["camera", "kettle"]));
        // Both added the same thing: once. Both removed it: gone.
        let ours = set(&["camera", "lamp", "kettle"]);
        let yours = set(&["lamp", "kettle"]);
        assert_eq!(merge_sets(&base, &ours, &yours), set(&["lamp", "kettle"]));
    }
}
