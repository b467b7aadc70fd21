//! Whether a contender's failure handling actually fired during a fault
//! run, and how long after the fault: a benchmark row that says "0 errors"
//! is only honest when we know *why* — a breaker that opened, a server
//! marked down — and not because of a configuration that never reacted.
//!
//! Each contender is asked in its own words: Beacon through its event
//! stream, HAProxy through its stats socket, nginx through its error log.

use beacon::{wire::Address, Event, EventKind};
use serde::Serialize;
use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    time::Duration,
};
use tokio::{sync::broadcast, time::Instant};

/// What was seen of one contender's failure handling in one run.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// Whether it marked the faulty instance down at all.
    pub fired: bool,
    /// How long after the fault it did, in milliseconds.
    pub after_ms: Option<f64>,
    /// Where that was read, for the report.
    pub evidence: String,
}

/// How to learn whether a contender marked the faulty instance down.
#[derive(Debug)]
pub enum Watch {
    /// Beacon: a breaker-opened event for the instance's address.
    Beacon {
        /// The resolver's events.
        events: broadcast::Receiver<Event>,
        /// The faulty instance.
        address: Address,
    },
    /// HAProxy: the server's status in `show stat` on the stats socket.
    Haproxy {
        /// The admin socket.
        socket: PathBuf,
        /// The server's name in the backend (`r2`).
        server: String,
    },
    /// nginx: "upstream server temporarily disabled" for the instance in
    /// the error log (open-source nginx exposes upstream state nowhere else).
    Nginx {
        /// The error log (at `warn`, where nginx logs that line).
        log: PathBuf,
        /// The instance's `host:port`.
        target: String,
    },
    /// The bare client has no failure handling to watch.
    Nothing,
}

/// How often proxies are polled: fine enough for the sub-second
/// detection times compared, cheap enough not to load them.
const POLL: Duration = Duration::from_millis(20);

impl Watch {
    /// Watches from now until `until`; the fault happens at `fault_at`.
    /// Detection before the fault doesn't count.
    pub async fn observe(self, fault_at: Instant, until: Instant) -> Option<Detection> {
        let after =
            |seen: Instant| (seen >= fault_at).then(|| (seen - fault_at).as_secs_f64() * 1000.0);
        match self {
            Self::Nothing => None,
            Self::Beacon {
                mut events,
                address,
            } => {
                let evidence = "breaker opened (resolver events)".to_owned();
                loop {
                    match tokio::time::timeout_at(until, events.recv()).await {
                        Ok(Ok(Event {
                            kind: EventKind::BreakerOpened { address: a, .. },
                            ..
                        })) if a == address => {
                            if let Some(ms) = after(Instant::now()) {
                                return Some(fired(ms, evidence));
                            }
                        }
                        Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                        Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                            return Some(missed(evidence))
                        }
                    }
                }
            }
            Self::Haproxy { socket, server } => {
                let evidence = format!("{server} DOWN in `show stat` (stats socket)");
                poll(until, after, evidence, move || {
                    haproxy_status(&socket, &server).is_some_and(|s| s.starts_with("DOWN"))
                })
                .await
            }
            Self::Nginx { log, target } => {
                let evidence =
                    format!("\"upstream server temporarily disabled\" for {target} (error log)");
                poll(until, after, evidence, move || {
                    std::fs::read_to_string(&log).is_ok_and(|text| {
                        text.lines().any(|l| {
                            l.contains("upstream server temporarily disabled")
                                && l.contains(&target)
                        })
                    })
                })
                .await
            }
        }
    }
}

fn fired(ms: f64, evidence: String) -> Detection {
    Detection {
        fired: true,
        after_ms: Some(ms),
        evidence,
    }
}

fn missed(evidence: String) -> Detection {
    Detection {
        fired: false,
        after_ms: None,
        evidence,
    }
}

/// Polls `marked` (a blocking check) until it holds after the fault, or
/// `until`.
async fn poll(
    until: Instant,
    after: impl Fn(Instant) -> Option<f64>,
    evidence: String,
    marked: impl Fn() -> bool + Clone + Send + 'static,
) -> Option<Detection> {
    while Instant::now() < until {
        let check = marked.clone();
        let seen = tokio::task::spawn_blocking(check).await.unwrap_or(false);
        if seen {
            if let Some(ms) = after(Instant::now()) {
                return Some(fired(ms, evidence));
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Some(missed(evidence))
}

/// A server's `status` column from HAProxy's `show stat` CSV.
pub fn haproxy_status(socket: &PathBuf, server: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(b"show stat\n").ok()?;
    let mut csv = String::new();
    stream.read_to_string(&mut csv).ok()?;
    stat_column(&csv, "ratings", server, "status")
}

/// One column of one row of `show stat` output (its header line starts
/// with `# `).
fn stat_column(csv: &str, proxy: &str, server: &str, column: &str) -> Option<String> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let at = header.iter().position(|h| *h == column)?;
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|row| row.first() == Some(&proxy) && row.get(1) == Some(&server))
        .and_then(|row| row.get(at).map(|v| (*v).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_servers_status_from_show_stat() {
        let csv = "# pxname,svname,qcur,status,chkdown\n\
                   ratings_in,FRONTEND,,OPEN,\n\
                   ratings,r1,0,UP,0\n\
                   ratings,r2,0,DOWN,1\n\
                   ratings,BACKEND,0,UP,0\n";
        assert_eq!(
            stat_column(csv, "ratings", "r2", "status").as_deref(),
            Some("DOWN")
        );
        assert_eq!(
            stat_column(csv, "ratings", "r1", "chkdown").as_deref(),
            Some("0")
        );
        assert_eq!(stat_column(csv, "ratings", "r9", "status"), None);
        assert_eq!(stat_column(csv, "ratings", "r1", "nope"), None);
    }

    #[tokio::test]
    async fn a_proxy_that_never_reports_down_did_not_fire() {
        let now = Instant::now();
        let watch = Watch::Haproxy {
            socket: "/nonexistent".into(),
            server: "r1".into(),
        };
        let seen = watch.observe(now, now + Duration::from_millis(100)).await;
        let seen = seen.expect("a proxy always reports");
        assert!(!seen.fired);
        assert_eq!(seen.after_ms, None);
    }
}
