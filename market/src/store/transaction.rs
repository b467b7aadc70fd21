//! A write transaction whose connection never goes back to the pool in a
//! state nobody knows.
//!
//! sqlx's own `Transaction` keeps count of the transactions it opened on a
//! connection; when SQLite fails a `COMMIT` (a full disk, an I/O error) it
//! may roll the transaction back itself, the count and the connection
//! disagree from then on, and the pooled connection goes on holding a
//! transaction that later "commits" answer for but never make durable —
//! acknowledged writes that other connections never see and a restart
//! loses, and a write lock that keeps every other writer out. So this one
//! issues `BEGIN`/`COMMIT` itself and keeps one rule: a connection goes back
//! to the pool only after its `COMMIT` or `ROLLBACK` succeeded. On any
//! failure, or when the future is dropped half-way (a deadline), the
//! connection is closed instead, which rolls back whatever it had open.

use super::{Engine, Store, StoreError};
use sqlx::{pool::PoolConnection, Any, AnyConnection, Executor};

/// An open write transaction on a connection of its own.
pub(super) struct WriteTx {
    connection: PoolConnection<Any>,
    /// Whether the transaction ended cleanly, so the connection may be
    /// used again.
    ended: bool,
}

impl WriteTx {
    /// Takes a connection and begins a write transaction on it. On SQLite
    /// the write lock is taken at once (`BEGIN IMMEDIATE`), so a writer
    /// that must wait does so before it has read anything, instead of
    /// failing when it upgrades from reading.
    pub(super) async fn begin(store: &Store) -> Result<Self, StoreError> {
        let connection = store.pool.acquire().await?;
        let mut tx = Self {
            connection,
            ended: false,
        };
        let begin = match store.engine {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        };
        tx.connection().execute(begin).await?;
        Ok(tx)
    }

    /// The connection, to run the transaction's statements on.
    pub(super) fn connection(&mut self) -> &mut AnyConnection {
        &mut self.connection
    }

    /// Makes the writes durable. `Ok` only when the database said so; on
    /// an error nothing is known to be written and the connection is
    /// closed.
    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        self.connection().execute("COMMIT").await?;
        self.ended = true;
        Ok(())
    }

    /// Undoes the writes.
    pub(super) async fn rollback(mut self) -> Result<(), StoreError> {
        self.connection().execute("ROLLBACK").await?;
        self.ended = true;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.ended {
            // Its transaction may be open, rolled back or committed: a
            // closed connection is the only one whose state is known.
            self.connection.close_on_drop();
        }
    }
}
