//! `beacon-market rotate-key`: every stored customer value — the current
//! versions and the whole history — resealed in place with the market's
//! current data key (and values kept in clear sealed for the first time),
//! so that an old key can be retired. Safe beside running markets: each
//! row is rewritten only if it is still what was read (its signature), and
//! a row a writer changed meanwhile is read again in the next pass. Running
//! markets need the old key among `--old-data-keys` until it is done.

use super::{documents::parse, Kind, Store, StoreError};
use serde_json::Value;
use sqlx::Row;

/// Passes over a table before giving up on rows that keep changing.
const MAX_PASSES: usize = 10;

/// What a rotation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotated {
    /// Rows resealed with the current key.
    pub resealed: u64,
    /// Rows already sealed with it.
    pub current: u64,
}

impl Store {
    /// Reseals every row of `kind`, current versions and history, with the
    /// current data key (see [`super::sealing`]). Rows that don't verify or
    /// don't open (a key missing) fail it, naming the row; nothing is
    /// rewritten with a key the market was not given.
    pub async fn reseal(&self, kind: Kind) -> Result<Rotated, StoreError> {
        let mut rotated = Rotated::default();
        for table in ["documents", "history"] {
            let mut pass = 0;
            loop {
                pass += 1;
                let (done, raced) = self.reseal_pass(kind, table).await?;
                rotated.resealed += done.resealed;
                if raced == 0 || pass == MAX_PASSES {
                    rotated.current += done.current;
                    break;
                }
            }
        }
        Ok(rotated)
    }

    /// One pass over `table`: what it resealed, and how many rows changed
    /// under it.
    async fn reseal_pass(&self, kind: Kind, table: &str) -> Result<(Rotated, u64), StoreError> {
        let mut done = Rotated::default();
        let mut raced = 0;
        let rows = sqlx::query(&format!(
            "SELECT id, version, body, signature FROM {table} WHERE kind = $1"
        ))
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let raw: String = row.try_get("body")?;
            let old_signature: String = row.try_get("signature")?;
            // Verifies the signature and opens the fields with any key.
            let stored = self.verified(kind, &id, row)?;
            if self.sealing.is_current(&parse(kind.as_str(), &id, &raw)?) {
                done.current += 1;
                continue;
            }
            let (sealed, lookup) = self.sealed(kind, &id, &stored.body);
            let text = Value::Object(sealed).to_string();
            let signature = self.sign(kind, &id, stored.version, &text);
            // The row is rewritten only if it is still what was read. Only
            // the current version has the lookup column.
            let sql = match table {
                "documents" => {
                    "UPDATE documents SET body = $1, signature = $2, lookup = $6 \
                     WHERE kind = $3 AND id = $4 AND version = $5 AND signature = $7"
                }
                _ => {
                    "UPDATE history SET body = $1, signature = $2 \
                     WHERE kind = $3 AND id = $4 AND version = $5 AND signature = $6"
                }
            };
            let update = sqlx::query(sql)
                .bind(&text)
                .bind(&signature)
                .bind(kind.as_str())
                .bind(&id)
                .bind(stored.version);
            let update = match table {
                "documents" => update.bind(lookup),
                _ => update,
            };
            let update = update.bind(&old_signature);
            match update.execute(&self.pool).await?.rows_affected() {
                1 => done.resealed += 1,
                _ => raced += 1,
            }
        }
        Ok((done, raced))
    }
}
