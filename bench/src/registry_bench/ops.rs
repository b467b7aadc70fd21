//! Running many operations at once and counting what succeeded: a
//! benchmark that counted failed operations as done would flatter.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::time::Instant;

/// What a batch of operations did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tally {
    /// Operations that succeeded.
    pub ok: usize,
    /// Operations that failed.
    pub failed: usize,
    /// How long the batch took.
    pub took: Duration,
}

impl Tally {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.took.as_secs_f64().max(f64::EPSILON)
    }
}

/// Runs operations `0..total` on `workers` tasks; `op` says whether each
/// succeeded.
pub async fn spread<F, Fut>(workers: usize, total: usize, op: F) -> Tally
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (next, ok, op) = (Arc::clone(&next), Arc::clone(&ok), op.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    if op(n).await {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let ok = ok.load(Ordering::Relaxed);
    Tally {
        ok,
        failed: total - ok,
        took: started.elapsed(),
    }
}

/// Runs operations on `workers` tasks for `duration` (worker `w` does
/// operations `w`, `w + workers`, ...); `op` says whether each succeeded.
pub async fn for_a_while<F, Fut>(workers: usize, duration: Duration, op: F) -> Tally
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let until = started + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (ok, failed, op) = (Arc::clone(&ok), Arc::clone(&failed), op.clone());
            tokio::spawn(async move {
                let mut n = w;
                while Instant::now() < until {
                    let counter = if op(n).await { &ok } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    n += workers;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    Tally {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        took: started.elapsed(),
    }
}

/// The `q` quantile of `samples`, in milliseconds.
pub fn percentile(mut samples: Vec<Duration>, q: f64) -> f64 {
    samples.sort();
    samples
        .get(((samples.len().max(1) - 1) as f64 * q).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failed_operations_are_counted_not_done() {
        let tally = spread(4, 10, |n| async move { n % 5 != 0 }).await;
        assert_eq!((tally.ok, tally.failed), (8, 2));
        let tally = for_a_while(2, Duration::from_millis(20), |n| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            n % 2 == 0
        })
        .await;
        // Worker 0 does the even operations (all succeed), worker 1 the odd.
        assert!(tally.ok > 0 && tally.failed > 0, "{tally:?}");
        assert!(tally.rate() > 0.0);
    }
}
