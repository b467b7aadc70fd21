//! What can go wrong with the store, sorted by what the caller should do
//! about it: fix its input, wait for space, wait for the database, or
//! refuse a row that was changed behind the market's back.

use std::time::Duration;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `--db` value is not a database URL we take.
    #[error("--db {0:?}: expected sqlite:PATH or postgres://USER@HOST:PORT/DB")]
    BadUrl(String),
    /// The database file's permissions could not be set to its owner only.
    #[error("the database file can't be made private: {0}")]
    Permissions(String),
    /// The disk under the database is full (SQLite's `SQLITE_FULL`,
    /// PostgreSQL's `disk_full`): nothing was written, and trying again
    /// helps only once space is freed — so it is told apart from an
    /// outage (507 rather than 503).
    #[error("the database's disk is full: nothing was written ({0})")]
    Full(sqlx::Error),
    /// The database failed or can't be reached.
    #[error("the database failed: {0}")]
    Database(sqlx::Error),
    /// The disk was full at the last write, though the health check's
    /// own small write went through.
    #[error("the last write found the database's disk full: {0}")]
    LastWriteFull(String),
    /// The database did not answer in time: a read or a write that would
    /// have outlived the page's deadline was given up (a write given up
    /// this way may or may not have landed; it was not acknowledged).
    #[error("the database did not answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
    /// The schema could not be brought up to date.
    #[error("the database schema could not be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row is not what the market wrote: its signature does not
    /// verify.
    #[error("the stored {kind} {id:?} was changed outside the market (its signature does not verify): refused")]
    Tampered {
        /// Which kind of document.
        kind: &'static str,
        /// Which one.
        id: String,
    },
    /// A customer's encrypted fields can't be opened: a data key is
    /// missing (or the value was damaged).
    #[error("the stored {kind} {id:?} can't be decrypted: {source}")]
    Sealed {
        /// Which kind of document.
        kind: &'static str,
        /// Which one.
        id: String,
        /// Why.
        #[source]
        source: super::sealing::SealError,
    },
    /// A stored body is not the JSON the market writes (and yet signed:
    /// a bug, not tampering).
    #[error("the stored {kind} {id:?} is unreadable: {reason}")]
    Corrupt {
        /// Which kind of document.
        kind: &'static str,
        /// Which one.
        id: String,
        /// Why.
        reason: String,
    },
}

/// SQLite's result code for a full disk (`SQLITE_FULL`; it has no
/// extended variants).
const SQLITE_FULL: &str = "13";
/// PostgreSQL's SQLSTATE for a full disk (`disk_full`).
const POSTGRES_DISK_FULL: &str = "53100";

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let full = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| code == SQLITE_FULL || code == POSTGRES_DISK_FULL);
        if full {
            Self::Full(error)
        } else {
            Self::Database(error)
        }
    }
}

impl StoreError {
    /// The machine-readable code the market answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Tampered { .. } => "tampered",
            Self::Sealed { .. } => "data_key_missing",
            Self::Full(_) | Self::LastWriteFull(_) => "insufficient_storage",
            _ => "store_unavailable",
        }
    }
}

/// Whether the last write failed for want of space, shared by a store's
/// clones: a full disk can still take a tiny write now and then (SQLite
/// reuses its log's space), so the health check's one-row probe alone
/// would call a store healthy that fails every real write.
#[derive(Debug, Clone, Default)]
pub(super) struct Space {
    /// Why the last write failed, while no write has succeeded since.
    full: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Space {
    /// Notes how a write ended: a full disk is remembered until a write
    /// lands; any other failure says nothing about space.
    pub(super) fn note<T>(&self, outcome: &Result<T, StoreError>) {
        let full = match outcome {
            Ok(_) => None,
            Err(e @ StoreError::Full(_)) => Some(e.to_string()),
            Err(_) => return,
        };
        *self
            .full
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = full;
    }

    /// Why the last write failed for want of space, if it did.
    pub(super) fn last_full(&self) -> Option<String> {
        self.full
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
