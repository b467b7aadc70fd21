//! The library's events, remembered: the live panel shows what happened
//! before the page was opened, then what happens next, with nothing lost or
//! doubled in between.

use beacon::{Event, Resolver};
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};
use tokio::sync::broadcast;

/// Events kept for newly opened pages.
const KEEP: usize = 50;

/// Recent events, and a feed of new ones.
#[derive(Debug)]
pub struct EventLog {
    recent: Mutex<VecDeque<Event>>,
    feed: broadcast::Sender<Event>,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self {
            recent: Mutex::new(VecDeque::with_capacity(KEEP)),
            feed: broadcast::Sender::new(256),
        }
    }

    /// Copies every event of `resolver` into the log, until the resolver's
    /// event channel closes. Spawn it once.
    pub async fn follow(self: Arc<Self>, resolver: Resolver) {
        let mut events = resolver.subscribe();
        loop {
            match events.recv().await {
                Ok(event) => self.record(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!("event log fell behind; {missed} events not shown");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Adds an event and sends it to every subscriber.
    pub fn record(&self, event: Event) {
        let mut recent = self.lock();
        if recent.len() == KEEP {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        // Under the lock, so that `subscribe` sees each event exactly once.
        let _ = self.feed.send(event);
    }

    /// The events so far (oldest first) and a receiver for every later one.
    pub fn subscribe(&self) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let recent = self.lock();
        (recent.iter().cloned().collect(), self.feed.subscribe())
    }

    /// Plain data, valid at every step: a poisoned lock is safe to reuse.
    fn lock(&self) -> MutexGuard<'_, VecDeque<Event>> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon::EventKind;

    fn event(n: u64) -> Event {
        Event {
            at_ms: n,
            service: "ratings".parse().expect("valid"),
            kind: EventKind::RegistryRegained,
        }
    }

    #[test]
    fn keeps_the_latest_and_feeds_what_follows() {
        let log = EventLog::new();
        for n in 0..60 {
            log.record(event(n));
        }
        let (recent, mut later) = log.subscribe();
        assert_eq!(recent.len(), KEEP);
        assert_eq!(recent.first().map(|e| e.at_ms), Some(10));
        log.record(event(60));
        assert_eq!(later.try_recv().map(|e| e.at_ms), Ok(60));
        assert!(later.try_recv().is_err(), "nothing doubled");
    }
}
