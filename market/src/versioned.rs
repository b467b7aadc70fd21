//! Writes that never lose an update: read, change, compare-and-set, and on
//! a lost race read again and change again, after a short random pause —
//! so the caller sees its change land, never the race (the retry sample of
//! `../shared/seeds/000_…`, with capped exponential backoff and jitter so
//! racing replicas spread out instead of colliding again in lock-step).

use crate::store::{Kind, Raced, Store, StoreError, Stored};
use beacon::net::backoff::Backoff;
use serde_json::{Map, Value};
use std::time::Duration;

/// Most compare-and-sets per change. With the backoff below a change gives
/// up only after about a second of losing every race: something is wrong.
const MAX_WRITES: u32 = 16;
/// First pause after a lost race; doubles up to the cap.
const BACKOFF: Duration = Duration::from_millis(2);
/// Longest pause after a lost race.
const BACKOFF_CAP: Duration = Duration::from_millis(100);

/// What a change makes of the current version.
#[derive(Debug)]
pub enum Change {
    /// Write this as the next version.
    Write(Map<String, Value>),
    /// Nothing to write: the current version already says it.
    Keep,
}

/// Why a change did not land.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    /// The change itself refused (bad input, a conflict, a stale checkout).
    #[error(transparent)]
    Refused(E),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every compare-and-set lost its race.
    #[error(
        "the document changed {MAX_WRITES} times while this change was being written; try again"
    )]
    Contended,
}

/// Applies `change` to the current version of `kind` `id` (`None` if there
/// is none) and writes the result, again and again while other writers win
/// the race — all within the store's write deadline. Returns what was
/// stored, and whether anything was written.
pub async fn update<E>(
    store: &Store,
    kind: Kind,
    id: &str,
    change: impl FnMut(Option<&Stored>) -> Result<Change, E>,
) -> Result<(Stored, bool), UpdateError<E>> {
    store
        .changing(update_unbounded(store, kind, id, change))
        .await
}

/// [`update`] with no deadline.
async fn update_unbounded<E>(
    store: &Store,
    kind: Kind,
    id: &str,
    mut change: impl FnMut(Option<&Stored>) -> Result<Change, E>,
) -> Result<(Stored, bool), UpdateError<E>> {
    let mut races = Races::new();
    loop {
        let current = store.get(kind, id).await?;
        let body = match change(current.as_ref()).map_err(UpdateError::Refused)? {
            Change::Write(body) => body,
            Change::Keep => return Ok((current.unwrap_or_else(|| empty(id)), false)),
        };
        let read = current.as_ref().map(|c| c.version);
        match store.write(kind, id, read, &body).await? {
            Ok(stored) => return Ok((stored, true)),
            Err(Raced) => races.lost(store).await?,
        }
    }
}

/// The races one change has lost so far: each costs a pause, and too many
/// give up.
#[derive(Debug)]
pub struct Races {
    backoff: Backoff,
    lost: u32,
}

impl Races {
    /// None lost yet.
    pub fn new() -> Self {
        Self {
            backoff: Backoff::new(BACKOFF, BACKOFF_CAP),
            lost: 0,
        }
    }

    /// Counts a lost race and pauses before the next try; `Contended` once
    /// there have been too many.
    pub async fn lost<E>(&mut self, store: &Store) -> Result<(), UpdateError<E>> {
        self.lost += 1;
        if self.lost >= MAX_WRITES {
            return Err(UpdateError::Contended);
        }
        store.metrics.retries.inc();
        tokio::time::sleep(self.backoff.next_delay()).await;
        Ok(())
    }
}

impl Default for Races {
    fn default() -> Self {
        Self::new()
    }
}

/// A document that was never written: version 0, no fields.
fn empty(id: &str) -> Stored {
    Stored {
        id: id.to_owned(),
        version: 0,
        body: Map::new(),
    }
}
