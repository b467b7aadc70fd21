//! Reading and writing versioned documents and orders.

use super::{transaction::WriteTx, Store, StoreError};
use serde_json::{Map, Value};
use sqlx::{any::AnyRow, AnyConnection, Row};
use std::time::{SystemTime, UNIX_EPOCH};

/// Versions of each document kept in the history by default: the newest
/// `HISTORY_KEPT`, older ones deleted as new ones are written (see
/// [`Store::keeping`]). A write based on a version older than that can't be
/// merged (there is no base) and is refused; at one change a second a
/// browser tab would have to sit on a form for a minute and a half for that
/// to happen.
pub const HISTORY_KEPT: i64 = 100;

/// The kinds of document the market keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A browser session's cart: `{"items": [thing id, …]}`.
    Cart,
    /// A customer: `{"name", "email", "address"}`.
    Customer,
}

impl Kind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cart => "cart",
            Self::Customer => "customer",
        }
    }
}

/// One version of a document, verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its id.
    pub id: String,
    /// Its version: 1 when created, one more on every change.
    pub version: i64,
    /// Its fields (without the `_` ones, which are the store's).
    pub body: Map<String, Value>,
}

impl Stored {
    /// As answered: the fields with `_id` and `_version`.
    pub fn to_json(&self) -> Value {
        let mut body = self.body.clone();
        body.insert("_id".into(), Value::from(self.id.clone()));
        body.insert("_version".into(), Value::from(self.version));
        Value::Object(body)
    }
}

/// A compare-and-set that lost: the document is no longer at the version
/// the writer read (or, creating, it exists already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raced;

/// A checked-out cart.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Its id.
    pub id: String,
    /// The cart it came from, and the cart version bought.
    pub cart: String,
    /// The cart version bought.
    pub cart_version: i64,
    /// What was bought.
    pub body: Map<String, Value>,
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// The current version of `kind` `id`, if there is one.
    pub async fn get(&self, kind: Kind, id: &str) -> Result<Option<Stored>, StoreError> {
        let query = sqlx::query(
            "SELECT version, body, signature FROM documents WHERE kind = $1 AND id = $2",
        )
        .bind(kind.as_str())
        .bind(id);
        let row = self.reading(query.fetch_optional(&self.pool)).await?;
        row.map(|row| self.verified(kind, id, &row)).transpose()
    }

    /// Version `version` of `kind` `id`, if the history still has it.
    pub async fn at_version(
        &self,
        kind: Kind,
        id: &str,
        version: i64,
    ) -> Result<Option<Stored>, StoreError> {
        let query = sqlx::query(
            "SELECT version, body, signature FROM history \
             WHERE kind = $1 AND id = $2 AND version = $3",
        )
        .bind(kind.as_str())
        .bind(id)
        .bind(version);
        let row = self.reading(query.fetch_optional(&self.pool)).await?;
        row.map(|row| self.verified(kind, id, &row)).transpose()
    }

    /// Every version of `kind` `id` the history holds, oldest first.
    pub async fn history(&self, kind: Kind, id: &str) -> Result<Vec<Stored>, StoreError> {
        let query = sqlx::query(
            "SELECT version, body, signature FROM history \
             WHERE kind = $1 AND id = $2 ORDER BY version",
        )
        .bind(kind.as_str())
        .bind(id);
        let rows = self.reading(query.fetch_all(&self.pool)).await?;
        rows.iter()
            .map(|row| self.verified(kind, id, row))
            .collect()
    }

    /// Writes `body` as the next version of `kind` `id` if it is still at
    /// `read` (`None`: if it does not exist yet), keeping the new version
    /// in the history; `Ok(Err(Raced))` if another writer got there first.
    /// `Ok` only once the database has made the version durable.
    pub async fn write(
        &self,
        kind: Kind,
        id: &str,
        read: Option<i64>,
        body: &Map<String, Value>,
    ) -> Result<Result<Stored, Raced>, StoreError> {
        let outcome = self.write_once(kind, id, read, body).await;
        self.space.note(&outcome);
        outcome
    }

    async fn write_once(
        &self,
        kind: Kind,
        id: &str,
        read: Option<i64>,
        body: &Map<String, Value>,
    ) -> Result<Result<Stored, Raced>, StoreError> {
        let mut tx = WriteTx::begin(self).await?;
        let version = read.map_or(1, |v| v + 1);
        let written = self.write_in(tx.connection(), kind, id, read, body).await?;
        if written.is_err() {
            tx.rollback().await?;
            return Ok(Err(Raced));
        }
        tx.commit().await?;
        self.metrics.versions_written.inc();
        Ok(Ok(Stored {
            id: id.to_owned(),
            version,
            body: body.clone(),
        }))
    }

    /// Empties cart `cart` if it is still at `read` and records what it
    /// held as order `order` — both or neither.
    pub async fn place_order(
        &self,
        cart: &str,
        read: i64,
        order: &str,
        bought: &Map<String, Value>,
    ) -> Result<Result<Order, Raced>, StoreError> {
        let outcome = self.place_order_once(cart, read, order, bought).await;
        self.space.note(&outcome);
        outcome
    }

    async fn place_order_once(
        &self,
        cart: &str,
        read: i64,
        order: &str,
        bought: &Map<String, Value>,
    ) -> Result<Result<Order, Raced>, StoreError> {
        let mut tx = WriteTx::begin(self).await?;
        let empty = empty_cart();
        if self
            .write_in(tx.connection(), Kind::Cart, cart, Some(read), &empty)
            .await?
            .is_err()
        {
            tx.rollback().await?;
            return Ok(Err(Raced));
        }
        let body = Value::Object(bought.clone()).to_string();
        let read_text = read.to_string();
        let signature = self.signer.sign(&["order", order, cart, &read_text, &body]);
        sqlx::query(
            "INSERT INTO orders (id, cart, cart_version, body, signature, placed_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(order)
        .bind(cart)
        .bind(read)
        .bind(&body)
        .bind(&signature)
        .bind(now_ms())
        .execute(tx.connection())
        .await?;
        tx.commit().await?;
        self.metrics.versions_written.inc();
        Ok(Ok(Order {
            id: order.to_owned(),
            cart: cart.to_owned(),
            cart_version: read,
            body: bought.clone(),
        }))
    }

    /// The compare-and-set and the history row, inside the transaction
    /// open on `tx`.
    async fn write_in(
        &self,
        tx: &mut AnyConnection,
        kind: Kind,
        id: &str,
        read: Option<i64>,
        body: &Map<String, Value>,
    ) -> Result<Result<(), Raced>, StoreError> {
        let version = read.map_or(1, |v| v + 1);
        let (stored, lookup) = self.sealed(kind, id, body);
        let text = Value::Object(stored).to_string();
        let signature = self.sign(kind, id, version, &text);
        let changed = match read {
            None => sqlx::query(
                "INSERT INTO documents (kind, id, version, body, signature, lookup) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(kind.as_str())
            .bind(id)
            .bind(version)
            .bind(&text)
            .bind(&signature)
            .bind(lookup),
            Some(read) => sqlx::query(
                "UPDATE documents SET version = $3, body = $4, signature = $5, lookup = $7 \
                 WHERE kind = $1 AND id = $2 AND version = $6",
            )
            .bind(kind.as_str())
            .bind(id)
            .bind(version)
            .bind(&text)
            .bind(&signature)
            .bind(read)
            .bind(lookup),
        }
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(Err(Raced));
        }
        sqlx::query(
            "INSERT INTO history (kind, id, version, body, signature, written_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(kind.as_str())
        .bind(id)
        .bind(version)
        .bind(&text)
        .bind(&signature)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if version > self.history_kept {
            sqlx::query("DELETE FROM history WHERE kind = $1 AND id = $2 AND version <= $3")
                .bind(kind.as_str())
                .bind(id)
                .bind(version - self.history_kept)
                .execute(&mut *tx)
                .await?;
        }
        Ok(Ok(()))
    }

    /// Logs and counts a row that does not verify.
    fn tampered(&self, kind: &'static str, id: &str) -> StoreError {
        self.metrics.tampered.inc();
        tracing::error!("tampered: the stored {kind} {id:?} does not verify; refused");
        StoreError::Tampered {
            kind,
            id: id.to_owned(),
        }
    }

    pub(super) fn sign(&self, kind: Kind, id: &str, version: i64, body: &str) -> String {
        self.signer
            .sign(&[kind.as_str(), id, &version.to_string(), body])
    }

    /// A row's document, if its signature verifies; a customer's fields
    /// opened.
    pub(super) fn verified(
        &self,
        kind: Kind,
        id: &str,
        row: &AnyRow,
    ) -> Result<Stored, StoreError> {
        let version: i64 = row.try_get("version")?;
        let body: String = row.try_get("body")?;
        let signature: String = row.try_get("signature")?;
        let fields = [kind.as_str(), id, &version.to_string(), body.as_str()];
        if !self.signer.verifies(&fields, &signature) {
            return Err(self.tampered(kind.as_str(), id));
        }
        let body = parse(kind.as_str(), id, &body)?;
        let body = match kind {
            Kind::Customer => self
                .sealing
                .open(kind.as_str(), id, body)
                .map_err(|source| StoreError::Sealed {
                    kind: kind.as_str(),
                    id: id.to_owned(),
                    source,
                })?,
            Kind::Cart => body,
        };
        Ok(Stored {
            id: id.to_owned(),
            version,
            body,
        })
    }

    /// `body` as stored, and its lookup column: a customer's fields sealed
    /// and its email's blind index (see [`super::sealing`]); a cart as it is.
    pub(super) fn sealed(
        &self,
        kind: Kind,
        id: &str,
        body: &Map<String, Value>,
    ) -> (Map<String, Value>, Option<String>) {
        match kind {
            Kind::Customer => self.sealing.seal(kind.as_str(), id, body),
            Kind::Cart => (body.clone(), None),
        }
    }

    /// The current documents of `kind` whose email is `email`, found by
    /// its blind index (each verified and opened like any read).
    pub async fn find_by_email(&self, kind: Kind, email: &str) -> Result<Vec<Stored>, StoreError> {
        let query = sqlx::query(
            "SELECT id, version, body, signature FROM documents \
             WHERE kind = $1 AND lookup = $2 ORDER BY id",
        )
        .bind(kind.as_str())
        .bind(self.sealing.email_index(email));
        let rows = self.reading(query.fetch_all(&self.pool)).await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                self.verified(kind, &id, row)
            })
            .collect()
    }
}

/// An empty cart's body.
pub fn empty_cart() -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("items".into(), Value::Array(Vec::new()));
    body
}

pub(super) fn parse(
    kind: &'static str,
    id: &str,
    body: &str,
) -> Result<Map<String, Value>, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        kind,
        id: id.to_owned(),
        reason: e.to_string(),
    })
}
