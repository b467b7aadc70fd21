//! The schema, as sqlx migrations compiled into the binary (so a market
//! needs no files beside it) and applied at start: each once, in order,
//! recorded in the database. A process that starts while another migrates
//! waits for it and goes on: on PostgreSQL sqlx takes an advisory lock; on
//! SQLite (where sqlx takes none, and two processes on a new file would
//! both create the tables) the market holds an exclusive lock on a file
//! beside the database (`PATH.lock`) while it sets WAL mode and migrates.

use futures_util::future::BoxFuture;
use sqlx::Executor;
use sqlx::{
    error::BoxDynError,
    migrate::{Migration, MigrationSource, MigrationType, Migrator},
    AnyPool,
};
use std::{borrow::Cow, fs::File, os::unix::fs::OpenOptionsExt, path::Path};

/// Every migration: version, description, SQL. Append; never edit one that
/// has shipped (sqlx checks their checksums).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "documents",
        include_str!("../../migrations/0001_documents.sql"),
    ),
    (
        2,
        "store probe",
        include_str!("../../migrations/0002_store_probe.sql"),
    ),
    (
        3,
        "lookup by blind index",
        include_str!("../../migrations/0003_lookup.sql"),
    ),
];

/// The compiled-in migrations, as a source sqlx can read.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Brings `pool`'s schema up to date; `sqlite` is the database file when
/// it is one (then it is put in WAL mode too).
pub(super) async fn run(
    pool: &AnyPool,
    sqlite: Option<&Path>,
) -> Result<(), sqlx::migrate::MigrateError> {
    let _lock = match sqlite {
        Some(file) => Some(lock_beside(file).await?),
        None => None,
    };
    if sqlite.is_some() {
        // Kept in the file: readers and one writer at a time, from any
        // process, without blocking each other. Switching takes an
        // exclusive lock on the database: done under ours, so two new
        // processes don't race for it.
        pool.execute("PRAGMA journal_mode = WAL").await?;
    }
    Migrator::new(Embedded).await?.run(pool).await
}

/// Waits for, and holds until dropped, an exclusive lock on `PATH.lock`.
/// A separate file: opening and closing the database file itself would
/// drop SQLite's own (POSIX) locks on it.
async fn lock_beside(database: &Path) -> Result<File, sqlx::migrate::MigrateError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let failed = |e: std::io::Error| {
        let path = Path::new(&name).display().to_string();
        sqlx::migrate::MigrateError::Source(format!("locking {path} to migrate: {e}").into())
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&name)
        .map_err(failed)?;
    // A blocking wait, off the runtime's threads.
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| failed(std::io::Error::other(e)))?
        .map_err(failed)
}
