//! The faults the side-by-side runs inflict on one ratings instance, how
//! each is healed, and what the instances themselves count of the traffic
//! they took.
//!
//! Hard faults are signals (a paused or killed process); gray ones go
//! through the instance's own fault switch (`PUT /_faults`): alive and
//! registered, only slow, or failing a share of its calls.

use crate::scenarios::{with, SharedBackends};
use beacon::net::http::{http_client, read_body, HttpClient};
use beacon_ratings_api::{rating_requests, FaultSettings};
use bytes::Bytes;
use http_body_util::Full;
use std::{sync::Arc, time::Duration};

/// One fault scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGSTOP, then SIGCONT: running but unresponsive.
    Hang,
    /// The same, three times, a few seconds apart: as a GC pause, CPU
    /// throttling or a slow disk would (a hang is not flapping: each time
    /// the instance should be back as soon as it answers).
    RepeatedHang,
    /// SIGKILL (no deregistration), then a restart.
    Crash,
    /// Every answer 40 ms late, then on time again.
    Gray,
    /// 30 % of calls answered with a 500, then none.
    Flaky,
}

/// How late the gray instance answers.
pub const GRAY_DELAY_MS: u64 = 40;
/// A gray-scenario call slower than this is slow (the target: at
/// most 2 % of calls).
pub const GRAY_SLOW: Duration = Duration::from_millis(20);
/// The share of calls the flaky instance fails.
pub const FLAKY_PERCENT: u8 = 30;
/// The flaky scenario's call rate: the tens of calls per second most
/// services see, where a consecutive-failure rule alone rarely trips.
pub const FLAKY_RATE: u32 = 50;

/// When a fault run breaks and heals its instance, and which part of it is
/// measured as "once routed around".
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Length of the run.
    pub length: Duration,
    /// When the fault starts.
    pub fault_at: Duration,
    /// When it is healed.
    pub heal_at: Duration,
    /// From when (after the fault) the faulty instance's share of the
    /// traffic is counted: the contender has had time to react.
    pub settled_at: Duration,
    /// How many times the fault strikes (each `every` after the last,
    /// healed `heal_at - fault_at` after it struck).
    pub repeats: u32,
    /// From one strike to the next.
    pub every: Duration,
}

impl Timing {
    /// When strike `n` (0-based) begins and is healed.
    pub fn strike(&self, n: u32) -> (Duration, Duration) {
        let offset = self.every * n;
        (self.fault_at + offset, self.heal_at + offset)
    }

    /// When the last strike is healed.
    pub fn last_heal(&self) -> Duration {
        self.strike(self.repeats.saturating_sub(1)).1
    }
}

/// How many times the repeated hang strikes.
pub const HANG_REPEATS: u32 = 3;

impl Fault {
    /// Every fault, in report order.
    pub const ALL: [Fault; 5] = [
        Self::Hang,
        Self::RepeatedHang,
        Self::Crash,
        Self::Gray,
        Self::Flaky,
    ];

    /// Its name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hang => "hang",
            Self::RepeatedHang => "repeated-hang",
            Self::Crash => "crash",
            Self::Gray => "gray",
            Self::Flaky => "flaky",
        }
    }

    /// What it does, for the report.
    pub fn description(self) -> String {
        match self {
            Self::Hang => "one instance SIGSTOPped (running but unresponsive), then resumed; open loop at a fixed rate".into(),
            Self::RepeatedHang => format!("one instance SIGSTOPped and resumed {HANG_REPEATS} times, a few seconds apart (a GC pause, CPU throttling); open loop at a fixed rate"),
            Self::Crash => "one instance SIGKILLed (no deregistration), then restarted; open loop at a fixed rate".into(),
            Self::Gray => format!("one of three instances answers {GRAY_DELAY_MS} ms late (alive, registered, never timing out), then on time again; open loop at a fixed rate"),
            Self::Flaky => format!("one of three instances fails {FLAKY_PERCENT} % of its calls with a 500, then none; open loop at {FLAKY_RATE} calls/s"),
        }
    }

    /// Which instance (1..=3) it strikes.
    pub fn instance(self) -> u16 {
        match self {
            Self::Crash => 3,
            Self::Hang | Self::RepeatedHang | Self::Gray | Self::Flaky => 2,
        }
    }

    /// Whether the faulty instance still answers (slow or failing): then
    /// it can be asked what it took.
    pub fn answers_while_broken(self) -> bool {
        matches!(self, Self::Gray | Self::Flaky)
    }

    /// Calls per second, given the plan's rate for fault runs.
    pub fn rate(self, plan_rate: u32) -> u32 {
        match self {
            Self::Flaky => FLAKY_RATE,
            _ => plan_rate,
        }
    }

    /// When it breaks and heals, given the plan's hard-fault timing.
    pub fn timing(self, length: Duration, fault_at: Duration, heal_at: Duration) -> Timing {
        let second = Duration::from_secs(1);
        match self {
            Self::Hang | Self::Crash => Timing {
                length,
                fault_at,
                heal_at,
                settled_at: fault_at + second,
                repeats: 1,
                every: Duration::ZERO,
            },
            // Half as long a pause as the single hang, then as long again
            // answering before the next: each strike comes while the last
            // one's trip is fresh, as repeated pauses do.
            Self::RepeatedHang => {
                let pause = (heal_at - fault_at) / 2;
                let every = pause * 2 + second;
                Timing {
                    length: fault_at + every * HANG_REPEATS + second,
                    fault_at,
                    heal_at: fault_at + pause,
                    settled_at: fault_at + second.min(pause),
                    repeats: HANG_REPEATS,
                    every,
                }
            }
            // Long enough to see the share drain, hold and come back.
            Self::Gray => Timing {
                length: length + 2 * second,
                fault_at,
                heal_at: heal_at + 2 * second,
                settled_at: fault_at + second,
                repeats: 1,
                every: Duration::ZERO,
            },
            // At 50 calls/s the flaky instance sees a call every 60 ms:
            // seconds, not milliseconds, to judge it.
            Self::Flaky => Timing {
                length: length + 5 * second,
                fault_at,
                heal_at: heal_at + 6 * second,
                settled_at: fault_at + 3 * second,
                repeats: 1,
                every: Duration::ZERO,
            },
        }
    }

    /// Breaks instance `self.instance()`.
    pub async fn inflict(self, backends: &SharedBackends) -> Result<(), String> {
        let n = self.instance();
        match self {
            Self::Hang | Self::RepeatedHang => signal(backends, n, "STOP").await,
            Self::Crash => signal(backends, n, "KILL").await,
            Self::Gray => set_faults(backends, n, GRAY_DELAY_MS, 0).await,
            Self::Flaky => set_faults(backends, n, 0, FLAKY_PERCENT).await,
        }
    }

    /// Heals instance `self.instance()`.
    pub async fn heal(self, backends: &SharedBackends) -> Result<(), String> {
        let n = self.instance();
        match self {
            Self::Hang | Self::RepeatedHang => signal(backends, n, "CONT").await,
            Self::Crash => {
                let b = Arc::clone(backends);
                tokio::task::spawn_blocking(move || with(&b, |b| b.start_ratings(n)))
                    .await
                    .map_err(|e| e.to_string())?
            }
            Self::Gray | Self::Flaky => set_faults(backends, n, 0, 0).await,
        }
    }
}

async fn signal(backends: &SharedBackends, n: u16, signal: &'static str) -> Result<(), String> {
    let b = Arc::clone(backends);
    tokio::task::spawn_blocking(move || with(&b, |b| b.signal(n, signal)))
        .await
        .map_err(|e| e.to_string())?
}

/// `PUT /_faults` on instance `n`.
async fn set_faults(
    backends: &SharedBackends,
    n: u16,
    delay_ms: u64,
    fail_percent: u8,
) -> Result<(), String> {
    let url = with(backends, |b| b.url(n))?;
    put_faults(&url, delay_ms, fail_percent).await
}

/// `PUT /_faults` on the instance at `url`: a delay and a failure share.
pub async fn put_faults(url: &str, delay_ms: u64, fail_percent: u8) -> Result<(), String> {
    let settings = FaultSettings {
        delay_ms,
        fail_percent,
        ..FaultSettings::default()
    };
    put_settings(url, &settings).await
}

/// `PUT /_faults` on the instance at `url`, with every setting.
pub async fn put_settings(url: &str, settings: &FaultSettings) -> Result<(), String> {
    let body = serde_json::to_vec(settings).map_err(|e| e.to_string())?;
    let request = http::Request::put(format!("{url}/_faults"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = admin_client()
        .request(request)
        .await
        .map_err(|e| format!("PUT {url}/_faults: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("PUT {url}/_faults: {}", response.status()))
    }
}

fn admin_client() -> HttpClient {
    http_client(Duration::from_millis(500))
}

/// Rating requests each instance has taken so far (any answer), read from
/// its `/_metrics`; `None` for an instance that did not answer.
pub async fn served(urls: &[String]) -> Vec<Option<u64>> {
    let client = admin_client();
    futures_util::future::join_all(urls.iter().map(|url| served_by(&client, url))).await
}

async fn served_by(client: &HttpClient, url: &str) -> Option<u64> {
    let request = http::Request::get(format!("{url}/_metrics"))
        .body(Full::new(Bytes::new()))
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(1), client.request(request))
        .await
        .ok()?
        .ok()?;
    let body = read_body(response.into_body(), 1 << 20).await.ok()?;
    Some(rating_requests(&String::from_utf8_lossy(&body)))
}

/// The share of the requests between two readings of [`served`] that
/// instance `index` (0-based) took; `None` if a reading is missing or no
/// request came.
pub fn share(before: &[Option<u64>], after: &[Option<u64>], index: usize) -> Option<f64> {
    let deltas: Option<Vec<u64>> = before
        .iter()
        .zip(after)
        .map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?)))
        .collect();
    let deltas = deltas?;
    let total: u64 = deltas.iter().sum();
    let taken = *deltas.get(index)?;
    (total > 0).then(|| taken as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_of_the_requests_between_readings() {
        let before = [Some(10), Some(10), Some(10)];
        let after = [Some(50), Some(30), Some(50)];
        assert_eq!(share(&before, &after, 1), Some(0.2));
        assert_eq!(share(&before, &[Some(50), None, Some(50)], 0), None);
        assert_eq!(share(&before, &before, 0), None, "no requests");
    }
}
