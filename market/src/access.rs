//! Who may read and change a customer record: the browser session that
//! created it, or support holding the admin token. Anyone else is told
//! there is no such record (404 `unknown_customer`), so that ids — which
//! appear in URLs and pages — are not credentials, and probing them says
//! nothing about who exists.
//!
//! The owner's mark (a keyed hash of the session, see
//! [`Session::owner`](crate::session::Session::owner)) is kept in the
//! record as `_owner`: signed with the rest of the row, so it can't be
//! changed behind the market's back, and never answered.

use crate::store::Stored;
use serde_json::{Map, Value};

/// The field of a stored record that holds its owner's mark.
pub const OWNER_FIELD: &str = "_owner";

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A browser session, by its owner mark.
    Session(String),
    /// Support, with the admin token: any record.
    Admin,
}

impl Access {
    /// Whether this caller may see `stored`: its owner, or an admin. A
    /// record with no owner (made before records had one) is support's.
    pub fn may_see(&self, stored: &Stored) -> bool {
        match self {
            Self::Admin => true,
            Self::Session(mark) => owner(stored) == Some(mark.as_str()),
        }
    }

    /// The mark a record this caller creates carries: an admin's record
    /// has none (it is support's).
    pub fn mark(&self) -> Option<&str> {
        match self {
            Self::Session(mark) => Some(mark),
            Self::Admin => None,
        }
    }
}

/// The owner's mark on `stored`, if it has one.
pub fn owner(stored: &Stored) -> Option<&str> {
    stored.body.get(OWNER_FIELD).and_then(Value::as_str)
}

/// `stored` as its readers see it: without the owner's mark.
pub fn unmarked(mut stored: Stored) -> Stored {
    stored.body.remove(OWNER_FIELD);
    stored
}

/// `fields` marked as `owner`'s (unmarked for `None`).
pub fn marked(mut fields: Map<String, Value>, owner: Option<&str>) -> Map<String, Value> {
    match owner {
        Some(owner) => fields.insert(OWNER_FIELD.to_owned(), Value::from(owner)),
        None => fields.remove(OWNER_FIELD),
    };
    fields
}
