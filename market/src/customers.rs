//! Customers: a name, an email and a shipping address, kept as versioned
//! documents (the Sesam example's shape, `../shared/seeds/002_…`).
//!
//! A change names the version it was based on. Based on the current
//! version, it is written as it is. Based on an older one, it is merged
//! three-way against that version ([`crate::merge`]): changes to different
//! fields are combined, and the same field changed two ways is a conflict —
//! nothing is written and the caller gets the three versions to choose
//! from. Either way the write is a compare-and-set retried on a lost race
//! ([`crate::versioned`]), so two replicas saving at once both land, merged.

use crate::access::{self, Access};
use crate::merge::{merge_documents, ConflictBody};
use crate::store::{Kind, Store, StoreError, Stored};
use crate::versioned::{self, Change, UpdateError};
use beacon::wire::InstanceId;
use serde_json::{Map, Value};

/// The fields a customer has, each a string.
pub const FIELDS: [&str; 3] = ["name", "email", "address"];
/// Longest name, in characters.
const MAX_NAME: usize = 100;
/// Longest email address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;
/// Longest shipping address, in characters.
const MAX_ADDRESS: usize = 500;

/// Customers kept in the store.
#[derive(Debug, Clone)]
pub struct Customers {
    store: Store,
}

/// A change to save: the fields, and the version it was based on.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// The customer's fields as the writer wants them.
    pub fields: Map<String, Value>,
    /// The version read before editing; `None` to create.
    pub based_on: Option<i64>,
}

/// How a save went.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// A new customer, version 1.
    Created(Stored),
    /// Written (merged, if it was based on an older version), or already so.
    Updated(Stored),
}

/// Why a customer could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// Input that can't be a customer (the code says what).
    #[error("{message}")]
    Invalid {
        /// Machine-readable.
        code: &'static str,
        /// Naming the offending input.
        message: String,
    },
    /// No customer with this id.
    #[error("there is no customer {0:?}")]
    Unknown(String),
    /// Creating (no version given) a customer that exists.
    #[error("customer {0:?} exists already: send the _version you read to change it")]
    Exists(String),
    /// Based on a version the customer never had.
    #[error("customer {id:?} has no version {version} yet (it is at {current})")]
    NoSuchVersion {
        /// Which customer.
        id: String,
        /// The version asked for.
        version: i64,
        /// Its version now.
        current: i64,
    },
    /// Based on a version so old the history no longer holds it.
    #[error("version {version} of customer {id:?} is too old to merge with: read it again and redo the change")]
    TooOld {
        /// Which customer.
        id: String,
        /// The version asked for.
        version: i64,
    },
    /// The same field changed two ways: nothing written.
    #[error("{}", .0.message)]
    Conflict(Box<ConflictBody>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Other writers kept winning.
    #[error("customer is changing too fast to save this change; try again")]
    Contended,
}

impl CustomerError {
    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
}

impl From<UpdateError<CustomerError>> for CustomerError {
    fn from(error: UpdateError<CustomerError>) -> Self {
        match error {
            UpdateError::Refused(error) => error,
            UpdateError::Store(error) => Self::Store(error),
            UpdateError::Contended => Self::Contended,
        }
    }
}

/// Checks a customer id: the registry's naming rule.
pub fn check_id(id: &str) -> Result<(), CustomerError> {
    InstanceId::new(id).map(drop).map_err(|e| {
        CustomerError::invalid(
            "invalid_id",
            e.to_string().replace("instance id", "customer id"),
        )
    })
}

/// Reads an edit from a request body (a JSON object with the fields, and
/// `_version` unless creating) and an `If-Match` version, if sent.
pub fn parse_edit(id: &str, body: &[u8], if_match: Option<i64>) -> Result<Edit, CustomerError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        CustomerError::invalid("invalid_json", format!("the body is not JSON: {e}"))
    })?;
    let Value::Object(object) = value else {
        return Err(CustomerError::invalid(
            "invalid_json",
            "the body must be a JSON object with name, email and address",
        ));
    };
    let mut based_on = None;
    let mut fields = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "_version" if value.is_null() => {}
            "_version" => {
                let version = value.as_i64().filter(|v| *v >= 1).ok_or_else(|| {
                    CustomerError::invalid(
                        "invalid_version",
                        format!("_version must be a whole number from 1, not {value}"),
                    )
                })?;
                based_on = Some(version);
            }
            "_id" if value.as_str() != Some(id) => {
                return Err(CustomerError::invalid(
                    "id_mismatch",
                    format!("_id {value} is not the customer {id:?} of the URL"),
                ))
            }
            // The store's own fields, as a reader got them back: not the
            // writer's to set.
            key if key.starts_with('_') => {}
            key if FIELDS.contains(&key) => {
                fields.insert(key.to_owned(), checked(key, value)?);
            }
            key => {
                return Err(CustomerError::invalid(
                    "unknown_field",
                    format!("a customer has no field {key:?}; fields: name, email, address"),
                ))
            }
        }
    }
    for field in FIELDS {
        if !fields.contains_key(field) {
            return Err(CustomerError::invalid(
                "missing_field",
                format!("{field} is missing"),
            ));
        }
    }
    let based_on = match (based_on, if_match) {
        (Some(body), Some(header)) if body != header => {
            return Err(CustomerError::invalid(
                "version_mismatch",
                format!("_version {body} and If-Match {header} disagree"),
            ))
        }
        (body, header) => body.or(header),
    };
    Ok(Edit { fields, based_on })
}

/// `value` as field `key`'s, if it is a valid one.
fn checked(key: &str, value: Value) -> Result<Value, CustomerError> {
    let Some(text) = value.as_str() else {
        return Err(CustomerError::invalid(
            "invalid_field",
            format!("{key} must be a string, not {value}"),
        ));
    };
    let chars = text.chars().count();
    let problem = match key {
        "name" if text.trim().is_empty() => Some("must not be empty".to_owned()),
        "name" if chars > MAX_NAME => Some(format!("is longer than {MAX_NAME} characters")),
        "email" if chars > MAX_EMAIL => Some(format!("is longer than {MAX_EMAIL} characters")),
        "email" if !looks_like_email(text) => {
            Some("is not an email address (name@domain)".to_owned())
        }
        "address" if chars > MAX_ADDRESS => {
            Some(format!("is longer than {MAX_ADDRESS} characters"))
        }
        _ if text.chars().any(|c| c.is_control() && c != '\n') => {
            Some("has a control character".to_owned())
        }
        _ => None,
    };
    match problem {
        Some(problem) => Err(CustomerError::invalid(
            "invalid_field",
            format!("{key} {problem}"),
        )),
        None => Ok(value),
    }
}

fn looks_like_email(text: &str) -> bool {
    let mut parts = text.split('@');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None)
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    ) && !text.chars().any(char::is_whitespace)
}

impl Customers {
    /// Customers kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Customer `id` as stored now, if `access` may see it (else, as for
    /// no such customer, [`CustomerError::Unknown`]).
    pub async fn get(&self, id: &str, access: &Access) -> Result<Stored, CustomerError> {
        check_id(id)?;
        self.store
            .get(Kind::Customer, id)
            .await?
            .filter(|stored| access.may_see(stored))
            .map(access::unmarked)
            .ok_or_else(|| CustomerError::Unknown(id.to_owned()))
    }

    /// The customers whose email is `email` (any case) that `access` may
    /// see — every one for support, a session's own for a session — found
    /// through the email's blind index, not by reading every record.
    pub async fn find_by_email(
        &self,
        email: &str,
        access: &Access,
    ) -> Result<Vec<Stored>, CustomerError> {
        let found = self.store.find_by_email(Kind::Customer, email).await?;
        let same = |stored: &Stored| {
            stored
                .body
                .get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(email.trim()))
        };
        Ok(found
            .into_iter()
            .filter(|stored| access.may_see(stored) && same(stored))
            .map(access::unmarked)
            .collect())
    }

    /// Saves `edit` as customer `id` for `access`: creates it (owned by
    /// the caller's session), writes it, or merges it with what changed
    /// since the version it was based on. Someone else's customer is
    /// [`CustomerError::Unknown`]; nothing is written.
    pub async fn save(
        &self,
        id: &str,
        edit: Edit,
        access: &Access,
    ) -> Result<Saved, CustomerError> {
        check_id(id)?;
        let Some(based_on) = edit.based_on else {
            let (stored, _) =
                versioned::update(&self.store, Kind::Customer, id, |current| match current {
                    Some(_) => Err(CustomerError::Exists(id.to_owned())),
                    None => Ok(Change::Write(access::marked(
                        edit.fields.clone(),
                        access.mark(),
                    ))),
                })
                .await?;
            return Ok(Saved::Created(access::unmarked(stored)));
        };
        // The base does not move while the write is retried: fetched once.
        let base = self
            .store
            .at_version(Kind::Customer, id, based_on)
            .await?
            .map(access::unmarked);
        let mut merged = false;
        let (stored, written) = versioned::update(&self.store, Kind::Customer, id, |current| {
            let current = current
                .filter(|current| access.may_see(current))
                .ok_or_else(|| CustomerError::Unknown(id.to_owned()))?;
            // Kept as it is, whoever writes.
            let owner = access::owner(current).map(str::to_owned);
            let current = access::unmarked(current.clone());
            merged = false;
            if based_on > current.version {
                return Err(CustomerError::NoSuchVersion {
                    id: id.to_owned(),
                    version: based_on,
                    current: current.version,
                });
            }
            let fields = if based_on == current.version {
                edit.fields.clone()
            } else {
                let base = base.as_ref().ok_or_else(|| CustomerError::TooOld {
                    id: id.to_owned(),
                    version: based_on,
                })?;
                merged = true;
                merge_documents(&base.body, &current.body, &edit.fields).map_err(|conflicts| {
                    let yours = Stored {
                        id: id.to_owned(),
                        version: based_on,
                        body: edit.fields.clone(),
                    };
                    CustomerError::Conflict(Box::new(ConflictBody::new(
                        conflicts,
                        base.to_json(),
                        current.to_json(),
                        yours.to_json(),
                    )))
                })?
            };
            Ok(if fields == current.body {
                Change::Keep
            } else {
                Change::Write(access::marked(fields, owner.as_deref()))
            })
        })
        .await
        .inspect_err(|e| {
            if matches!(e, UpdateError::Refused(CustomerError::Conflict(_))) {
                self.store.metrics.conflicts.inc();
            }
        })?;
        if merged && written {
            self.store.metrics.merges.inc();
        }
        Ok(Saved::Updated(access::unmarked(stored)))
    }
}
