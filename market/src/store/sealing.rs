//! Customers' personal data encrypted at rest, property by property (the
//! seeds' "per property encryption/hashing", `../shared/seeds/004_…`):
//! each string field of a customer record (name, email, address) is kept
//! as `{"sealed": "<key id>:<base64 of nonce and ciphertext>"}`, sealed with
//! AES-256-GCM under the market's data key. The record's kind, id and the
//! field's name are the associated data, so a sealed value moved to another
//! record or field does not open. Nothing readable is left in the database
//! file, its history, or a `pg_dump`.
//!
//! Keys are named by an id (a hash of the key), so a value says which key
//! sealed it: the market opens values sealed with any key it was given
//! (`--data-key` and `--old-data-keys`) and seals with the first;
//! `beacon-market rotate-key` reseals every stored value with it.
//!
//! Email is found without opening every record through a blind index: a
//! keyed hash of the normalised address, kept in the record (signed with
//! it) and in an indexed column. Its key comes from the market's secret,
//! not the data key, so it survives rotations.

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The field of a stored record holding its email's blind index.
pub const EMAIL_INDEX_FIELD: &str = "_email_index";

/// The key of a sealed value's object.
const SEALED: &str = "sealed";

/// One data key: 32 bytes, named by an id.
#[derive(Clone)]
pub struct DataKey {
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey {{ id: {}, key: <secret> }}", self.id)
    }
}

impl DataKey {
    /// A key from 64 hex digits (32 bytes); the error names the problem.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| format!("a data key is 64 hex digits (32 bytes): {e}"))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "a data key is 64 hex digits (32 bytes), not {} bytes",
                b.len()
            )
        })?;
        let digest = Sha256::new()
            .chain_update(b"beacon-market data key id\0")
            .chain_update(key)
            .finalize();
        Ok(Self {
            id: hex::encode(&digest[..4]),
            cipher: Aes256Gcm::new(&key.into()),
        })
    }

    /// The key's id, as sealed values name it.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Why a record's sealed values can't be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Sealed with a key this market was not given.
    #[error("field {field} was sealed with data key {key_id}, which this market was not given (--data-key / --old-data-keys)")]
    UnknownKey {
        /// The field.
        field: String,
        /// The key's id.
        key_id: String,
    },
    /// Sealed values, but no data key at all.
    #[error("field {field} is encrypted and this market has no --data-key")]
    NoKey {
        /// The field.
        field: String,
    },
    /// Not a value this module sealed, or it was changed.
    #[error("field {field} does not open: {why}")]
    Broken {
        /// The field.
        field: String,
        /// What failed.
        why: &'static str,
    },
}

/// What protects customer records: the data keys (none: fields stay in
/// clear) and the blind index's key.
#[derive(Clone)]
pub struct Sealing {
    /// The key that seals; then older ones, which only open.
    keys: Vec<DataKey>,
    index: Hmac<Sha256>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(DataKey::id).collect();
        write!(f, "Sealing {{ keys: {ids:?} }}")
    }
}

impl Sealing {
    /// Sealing with `keys` (the first seals; all open; none: no
    /// encryption), the blind index keyed from `secret`.
    pub fn new(keys: Vec<DataKey>, secret: &[u8]) -> Self {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        derive.update(b"beacon-market email index");
        let index_key = derive.finalize().into_bytes();
        Self {
            keys,
            index: <Hmac<Sha256> as Mac>::new_from_slice(&index_key)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }

    /// The same, with `keys` instead (the blind index's key is kept).
    pub fn with_keys(mut self, keys: Vec<DataKey>) -> Self {
        self.keys = keys;
        self
    }

    /// The id of the key that seals, if any.
    pub fn sealing_key(&self) -> Option<&str> {
        self.keys.first().map(DataKey::id)
    }

    /// The blind index of an email address: a keyed hash of it, trimmed
    /// and lowercased.
    pub fn email_index(&self, email: &str) -> String {
        let mut mac = self.index.clone();
        mac.update(email.trim().to_lowercase().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// `body` as stored: its string fields sealed (when there is a key),
    /// the email's blind index added. Also the index, for its column.
    pub fn seal(
        &self,
        kind: &str,
        id: &str,
        body: &Map<String, Value>,
    ) -> (Map<String, Value>, Option<String>) {
        let mut stored = Map::with_capacity(body.len() + 1);
        let index = body
            .get("email")
            .and_then(Value::as_str)
            .map(|e| self.email_index(e));
        for (field, value) in body {
            let sealed = match (value.as_str(), self.keys.first()) {
                (Some(text), Some(key)) if !field.starts_with('_') => {
                    seal_one(key, &aad(kind, id, field), text)
                }
                _ => value.clone(),
            };
            stored.insert(field.clone(), sealed);
        }
        if let Some(index) = &index {
            stored.insert(EMAIL_INDEX_FIELD.to_owned(), Value::from(index.clone()));
        }
        (stored, index)
    }

    /// `stored` opened: each sealed field in clear, the blind index gone.
    pub fn open(
        &self,
        kind: &str,
        id: &str,
        stored: Map<String, Value>,
    ) -> Result<Map<String, Value>, SealError> {
        let mut body = Map::with_capacity(stored.len());
        for (field, value) in stored {
            if field == EMAIL_INDEX_FIELD {
                continue;
            }
            let opened = match sealed_text(&value) {
                Some(sealed) => {
                    Value::from(self.open_one(&aad(kind, id, &field), &field, sealed)?)
                }
                None => value,
            };
            body.insert(field, opened);
        }
        Ok(body)
    }

    /// Whether `stored` is already as [`seal`](Self::seal) would make it
    /// now: every string field sealed with the sealing key (or, with no
    /// key, in clear), and the index there.
    pub fn is_current(&self, stored: &Map<String, Value>) -> bool {
        let current = self.sealing_key();
        let fields_current =
            stored
                .iter()
                .filter(|(f, _)| !f.starts_with('_'))
                .all(|(_, value)| match (sealed_text(value), current) {
                    (Some(sealed), Some(key)) => sealed.split(':').next() == Some(key),
                    (None, Some(_)) => !value.is_string(),
                    (Some(_), None) => false,
                    (None, None) => true,
                });
        let indexed = !stored.contains_key("email") || stored.contains_key(EMAIL_INDEX_FIELD);
        fields_current && indexed
    }

    fn open_one(&self, aad: &[u8], field: &str, sealed: &str) -> Result<String, SealError> {
        let broken = |why| SealError::Broken {
            field: field.to_owned(),
            why,
        };
        let (key_id, data) = sealed.split_once(':').ok_or_else(|| broken("no key id"))?;
        if self.keys.is_empty() {
            return Err(SealError::NoKey {
                field: field.to_owned(),
            });
        }
        let key =
            self.keys
                .iter()
                .find(|k| k.id == key_id)
                .ok_or_else(|| SealError::UnknownKey {
                    field: field.to_owned(),
                    key_id: key_id.to_owned(),
                })?;
        let bytes = STANDARD.decode(data).map_err(|_| broken("not base64"))?;
        if bytes.len() < 12 {
            return Err(broken("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let clear = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| broken("authentication failed"))?;
        String::from_utf8(clear).map_err(|_| broken("not UTF-8"))
    }
}

/// The associated data of a field: where it belongs.
fn aad(kind: &str, id: &str, field: &str) -> Vec<u8> {
    format!("{kind}\0{id}\0{field}").into_bytes()
}

/// The sealed text of a value, if it is a sealed one.
fn sealed_text(value: &Value) -> Option<&str> {
    match value {
        Value::Object(object) if object.len() == 1 => object.get(SEALED)?.as_str(),
        _ => None,
    }
}

fn seal_one(key: &DataKey, aad: &[u8], text: &str) -> Value {
    let nonce: [u8; 12] = rand::rng().random();
    let ciphertext = key
        .cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: text.as_bytes(),
                aad,
            },
        )
        // AES-GCM fails only past 64 GiB of plaintext; a field is at most
        // a few hundred bytes.
        .unwrap_or_else(|_| unreachable!("a field is far below AES-GCM's limit"));
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&ciphertext);
    let mut object = Map::new();
    object.insert(
        SEALED.to_owned(),
        Value::from(format!("{}:{}", key.id, STANDARD.encode(bytes))),
    );
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::from_hex(&hex::encode([byte; 32])).expect("key")
    }

    fn ada() -> Map<String, Value> {
        serde_json::json!({"name": "Ada", "email": "Ada@Example.org", "address": "1 Row", "_owner": "o"})
            .as_object()
            .cloned()
            .expect("object")
    }

    #[test]
    fn sealed_fields_are_unreadable_and_open_only_in_their_place_with_a_known_key() {
        let sealing = Sealing::new(vec![key(1)], b"secret");
        let (stored, index) = sealing.seal("customer", "ada", &ada());
        let text = Value::Object(stored.clone()).to_string();
        for clear in ["Ada", "Example.org", "1 Row"] {
            assert!(!text.contains(clear), "{clear} in {text}");
        }
        assert_eq!(stored["_owner"], "o", "the store's own fields stay");
        assert_eq!(
            index.as_deref(),
            Some(sealing.email_index(" ada@example.ORG ").as_str())
        );
        assert_eq!(sealing.open("customer", "ada", stored.clone()), Ok(ada()));
        assert!(sealing.is_current(&stored));

        // Moved to another record: does not open.
        let moved = sealing.open("customer", "eve", stored.clone());
        assert!(matches!(moved, Err(SealError::Broken { .. })), "{moved:?}");
        // Another key alone: says which key it needs.
        let other = Sealing::new(vec![key(2)], b"secret");
        let unknown = other.open("customer", "ada", stored.clone());
        assert!(
            matches!(unknown, Err(SealError::UnknownKey { .. })),
            "{unknown:?}"
        );
        assert!(!other.is_current(&stored));
        // A rotated market: seals with the new key, opens the old.
        let rotated = Sealing::new(vec![key(2), key(1)], b"secret");
        assert_eq!(rotated.open("customer", "ada", stored), Ok(ada()));
        // No key: clear, and a sealed value says a key is needed.
        let clear = Sealing::new(Vec::new(), b"secret");
        let (plain, _) = clear.seal("customer", "ada", &ada());
        assert_eq!(plain["name"], "Ada");
        assert!(clear.is_current(&plain));
        assert!(!sealing.is_current(&plain));
    }

    #[test]
    fn a_data_key_is_64_hex_digits() {
        assert!(DataKey::from_hex("00").is_err());
        assert!(DataKey::from_hex(&"zz".repeat(32)).is_err());
        assert_ne!(key(1).id(), key(2).id());
    }
}
