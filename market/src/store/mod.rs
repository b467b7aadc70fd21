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
//!
//! A write is acknowledged only once its `COMMIT` succeeded; a connection
//! whose transaction ended any other way is closed, never pooled again
//! (see the `transaction` module). Every read and every change is bounded in time
//! ([`Deadlines`]), so a store that is down costs a page its deadline, not
//! the pool's patience.

mod documents;
mod error;
mod metrics;
mod migrations;
mod rotation;
pub mod sealing;
pub mod signing;
mod transaction;

pub use documents::{empty_cart, Kind, Order, Raced, Stored, HISTORY_KEPT};
use error::Space;
pub use error::StoreError;
pub use metrics::StoreMetrics;
pub use rotation::Rotated;

use sealing::{DataKey, Sealing};
use signing::Signer;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use std::{future::Future, path::Path, str::FromStr, time::Duration};
use transaction::WriteTx;

/// Which database is underneath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A file, shared by the processes of one machine.
    Sqlite,
    /// A server, shared by replicas anywhere.
    Postgres,
}

/// The market's database. Cheap to clone (a pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    signer: Signer,
    /// Customers' fields encrypted at rest, and the email's blind index.
    sealing: Sealing,
    /// Versions of each document kept in the history.
    history_kept: i64,
    /// How long a read, and a whole change, may take.
    deadlines: Deadlines,
    /// Whether the last write found the disk full.
    space: Space,
    /// What the store and the writers above it did, for `/_metrics`.
    pub metrics: StoreMetrics,
}

/// Longest a health check waits for the database (to write its probe).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the store may take before the market gives up and answers
/// `503 store_unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// One read (a cart for the page, a customer): the page's own deadline
    /// is about a second, and it shows the catalogue without the cart
    /// rather than wait longer.
    pub read: Duration,
    /// One whole change, compare-and-set retries included: a caller learns
    /// within this that its write did not land, instead of waiting out a
    /// connection pool's patience.
    pub write: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            read: Duration::from_secs(1),
            write: Duration::from_secs(2),
        }
    }
}

/// Longest a SQLite writer waits for another process's write to finish:
/// no longer than a change may take as a whole.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(2);

impl Store {
    /// Opens (creating a SQLite file if needed) the database at `url` —
    /// `sqlite:PATH` or `postgres://…` — brings its schema up to date, and
    /// signs with `secret`.
    pub async fn open(url: &str, secret: &[u8]) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (engine, url, file) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err(StoreError::BadUrl(url.to_owned()));
            }
            // Created if missing; the query string is ours to set.
            let path = path.split('?').next().unwrap_or(path);
            let url = format!("sqlite://{path}?mode=rwc");
            if !Path::new(path).exists() {
                create_owner_only(Path::new(path))?;
            }
            (Engine::Sqlite, url, Some(Path::new(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Engine::Postgres, url.to_owned(), None)
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
            // A database that can't be reached fails a call within the
            // change's deadline (the deadlines above bound it anyway).
            .acquire_timeout(Deadlines::default().write)
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
        migrations::run(&pool, file).await?;
        if let Some(file) = file {
            owner_only(file)?;
        }
        Ok(Self {
            pool,
            engine,
            signer: Signer::new(secret),
            sealing: Sealing::new(Vec::new(), secret),
            history_kept: HISTORY_KEPT,
            deadlines: Deadlines::default(),
            space: Space::default(),
            metrics: StoreMetrics::default(),
        })
    }

    /// Encrypts customers' fields with the first of `keys` and opens what
    /// any of them sealed (see [`sealing`]); none: fields are kept in clear
    /// (and still found by email).
    pub fn sealed_with(mut self, keys: Vec<DataKey>) -> Self {
        self.sealing = self.sealing.with_keys(keys);
        self
    }

    /// Gives up on reads and changes past `deadlines` ([`Deadlines::default`]
    /// unless set).
    pub fn within(mut self, deadlines: Deadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// One read, given up past the read deadline.
    async fn reading<T>(
        &self,
        read: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        let limit = self.deadlines.read;
        tokio::time::timeout(limit, read)
            .await
            .map_err(|_| StoreError::TimedOut(limit))?
            .map_err(StoreError::from)
    }

    /// A whole change (reads, compare-and-sets, retries), given up past the
    /// write deadline. A change given up half-way closes its connection
    /// (see the `transaction` module): it landed whole or not at all, and was not
    /// acknowledged.
    pub async fn changing<T, E: From<StoreError>>(
        &self,
        change: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let limit = self.deadlines.write;
        tokio::time::timeout(limit, change)
            .await
            .map_err(|_| E::from(StoreError::TimedOut(limit)))?
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

    /// Checks that the database takes a write, within [`CHECK_TIMEOUT`]
    /// (for `/_health?deep=true`): it commits a one-row probe, so a store
    /// that answers reads but can't make a write durable — a full disk, a
    /// read-only replica — is reported with the reason, and a health check
    /// never hangs on what it checks. A disk that was full at the last real
    /// write is reported too, until a write lands.
    pub async fn check(&self) -> Result<(), StoreError> {
        let probe = async {
            let mut tx = WriteTx::begin(self).await?;
            sqlx::query("UPDATE store_probe SET checked_at_ms = $1 WHERE id = 1")
                .bind(documents::now_ms())
                .execute(tx.connection())
                .await?;
            tx.commit().await
        };
        tokio::time::timeout(CHECK_TIMEOUT, probe)
            .await
            .map_err(|_| StoreError::TimedOut(CHECK_TIMEOUT))??;
        match self.space.last_full() {
            Some(why) => Err(StoreError::LastWriteFull(why)),
            None => Ok(()),
        }
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the database file readable and writable by its owner only
/// (SQLite gives its `-wal` and `-shm` files the same mode).
fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Ok(()),
            _ => Err(StoreError::Permissions(format!("{}: {e}", path.display()))),
        })
}

/// Narrows the database's files to their owner, should an older market
/// (or someone) have left them readable by others.
fn owner_only(database: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        let path = Path::new(&name);
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Permissions(format!("{}: {e}", path.display())))?;
            tracing::warn!("{} was readable by others: now 0600", path.display());
        }
    }
    Ok(())
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
