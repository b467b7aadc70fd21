//! The market's state in a database: versioned documents (carts,
//! customers) with every version kept, and orders.
//!
//! One [`Store`] speaks to either engine through sqlx's run-time query API
//! (nothing needs a database to build): **SQLite** in a file, in WAL mode so
//! several market processes on one machine share it, or **PostgreSQL**, for
//! replicas on several machines. The SQL is the same for both; only the
//! connection set-up differs ([`Engine`]).
//!
//! Every write is a compare-and-set on the document's version
//! ([`Store::write`]): it lands only if the version is still the one the
//! writer read, and then the version rises by one and the new version goes
//! into the history in the same transaction. Retrying a lost race is the
//! caller's business ([`crate::versioned`]). Every row is signed
//! ([`signing`]); a row that does not verify is never served
//! ([`StoreError::Tampered`]).

mod documents;
mod metrics;
mod migrations;
pub mod signing;

pub use documents::{empty_cart, Kind, Order, Raced, Stored, HISTORY_KEPT};
pub use metrics::StoreMetrics;

use signing::Signer;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::{str::FromStr, time::Duration};

/// Which database is underneath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A file, shared by the processes of one machine.
    Sqlite,
    /// A server, shared by replicas anywhere.
    Postgres,
}

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `--db` value is not a database URL we take.
    #[error("--db {0:?}: expected sqlite:PATH or postgres://USER@HOST:PORT/DB")]
    BadUrl(String),
    /// The database failed or can't be reached.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
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

/// The market's database. Cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    signer: Signer,
    /// Versions of each document kept in the history.
    history_kept: i64,
    /// What the store and the writers above it did, for `/_metrics`.
    pub metrics: StoreMetrics,
}

/// Longest a health check waits for the database.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest a SQLite writer waits for another process's write to finish.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating a SQLite file if needed) the database at `url` —
    /// `sqlite:PATH` or `postgres://…` — brings its schema up to date, and
    /// signs with `secret`.
    pub async fn open(url: &str, secret: &[u8]) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (engine, url) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err(StoreError::BadUrl(url.to_owned()));
            }
            // Created if missing; the query string is ours to set.
            let path = path.split('?').next().unwrap_or(path);
            (Engine::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Engine::Postgres, url.to_owned())
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|_| StoreError::BadUrl(url.clone()))?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(match engine {
                Engine::Sqlite => 4,
                Engine::Postgres => 10,
            })
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if engine == Engine::Sqlite {
                        // Per connection: wait for another process's write
                        // instead of failing at once.
                        let ms = SQLITE_BUSY_TIMEOUT.as_millis();
                        connection
                            .execute(format!("PRAGMA busy_timeout = {ms}").as_str())
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if engine == Engine::Sqlite {
            // Kept in the file: readers and one writer at a time, from any
            // process, without blocking each other.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        migrations::run(&pool).await?;
        Ok(Self {
            pool,
            engine,
            signer: Signer::new(secret),
            history_kept: HISTORY_KEPT,
            metrics: StoreMetrics::default(),
        })
    }

    /// Keeps the newest `versions` of each document in the history (at
    /// least 1; [`HISTORY_KEPT`] unless set), deleting older ones as new
    /// ones are written.
    pub fn keeping(mut self, versions: i64) -> Self {
        self.history_kept = versions.max(1);
        self
    }

    /// Which engine it is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Checks that the database answers, within [`CHECK_TIMEOUT`] (for
    /// `/_health?deep=true`: a health check must not hang on what it checks).
    pub async fn check(&self) -> Result<(), StoreError> {
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolTimedOut))??;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_history_keeps_the_newest_versions_and_every_write_is_a_compare_and_set() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("m.db").display());
        let store = Store::open(&url, b"k").await.expect("store").keeping(3);
        let mut read = None;
        for n in 1..=5 {
            let mut body = serde_json::Map::new();
            body.insert("n".into(), n.into());
            let stored = store
                .write(Kind::Customer, "c", read, &body)
                .await
                .expect("write");
            read = Some(stored.expect("no race").version);
        }
        let versions: Vec<i64> = store
            .history(Kind::Customer, "c")
            .await
            .expect("history")
            .iter()
            .map(|s| s.version)
            .collect();
        assert_eq!(versions, [3, 4, 5]);
        assert_eq!(
            store
                .at_version(Kind::Customer, "c", 2)
                .await
                .expect("read"),
            None
        );
        let stale = store
            .write(Kind::Customer, "c", Some(4), &serde_json::Map::new())
            .await
            .expect("write");
        assert_eq!(stale, Err(Raced), "based on version 4 while 5 is stored");
        let again = store
            .write(Kind::Customer, "c", None, &serde_json::Map::new())
            .await
            .expect("write");
        assert_eq!(again, Err(Raced), "creating what exists");
        assert_eq!(
            store
                .get(Kind::Customer, "c")
                .await
                .expect("get")
                .map(|s| s.version),
            Some(5)
        );
    }

    #[tokio::test]
    async fn urls_other_than_sqlite_and_postgres_are_refused_by_name() {
        for url in ["mysql://x", "market.db", "sqlite:", ""] {
            let error = Store::open(url, b"k").await.expect_err(url);
            assert!(matches!(error, StoreError::BadUrl(_)), "{url}: {error}");
            assert!(error.to_string().contains("--db"), "{error}");
        }
    }
}
