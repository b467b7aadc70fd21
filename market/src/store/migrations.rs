//! The schema, as sqlx migrations compiled into the binary (so a market
//! needs no files beside it) and applied at start: each once, in order,
//! recorded in the database; a process that starts while another migrates
//! waits for it (sqlx takes a lock).

use futures_util::future::BoxFuture;
use sqlx::{
    error::BoxDynError,
    migrate::{Migration, MigrationSource, MigrationType, Migrator},
    AnyPool,
};
use std::borrow::Cow;

/// Every migration: version, description, SQL. Append; never edit one that
/// has shipped (sqlx checks their checksums).
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "documents",
    include_str!("../../migrations/0001_documents.sql"),
)];

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

/// Brings `pool`'s schema up to date.
pub async fn run(pool: &AnyPool) -> Result<(), sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await?.run(pool).await
}
