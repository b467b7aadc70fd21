//! The systems under test: a registry and three ratings instances, as real
//! processes on loopback (the proxies in front are in [`crate::proxies`]).

use beacon_kit::{net::free_port, process::Service};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// Ratings lease length in the benchmarks: a killed instance lingers in the
/// registry this long unless its breaker routes around it first.
pub const RATINGS_TTL_MS: &str = "3000";

/// Where the workspace's binaries are: beside this one (a test's
/// executable is in `deps/`, one below them).
pub fn binary(name: &str) -> PathBuf {
    let here = std::env::current_exe().unwrap_or_default();
    let Some(mut dir) = here.parent() else {
        return PathBuf::new();
    };
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    dir.join(name)
}

/// A server certificate and its key (PEM files).
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A registry and ratings instances (1..=3 unless made with
/// [`in_zones`](Self::in_zones)), each on a fixed free port so that it can
/// be restarted where its peers expect it.
#[derive(Debug)]
pub struct Backends {
    /// The instances serve HTTPS with this certificate; `None`: plain HTTP.
    tls: Option<ServerCert>,
    /// The registry's port.
    registry_port: u16,
    /// The registry, while it runs.
    registry: Option<Service>,
    /// Instance number, its port, and the process while it runs.
    pub ratings: Vec<(u16, u16, Option<Service>)>,
    /// The zone instance `n` registers in, at `n - 1`; empty: none.
    zones: Vec<String>,
    /// More arguments for instance `n` when it next starts (see
    /// [`Backends::set_args`]).
    extra_args: std::collections::HashMap<u16, Vec<String>>,
    /// The site all of it runs in (`--dc`), and what is added to each
    /// instance's number to make its id (two sites' instances apart);
    /// `None`: one unnamed site, ids 1..
    site: Option<(String, u16)>,
}

impl Backends {
    /// Starts the registry and three ratings instances.
    pub fn start() -> Result<Self, String> {
        Self::serving(None)
    }

    /// The same, every instance started with `args` too (e.g.
    /// `--max-in-flight 4`).
    pub fn start_with(args: &[&str]) -> Result<Self, String> {
        let mut backends = Self::of(None, Vec::new(), 0, None)?;
        for n in 1..=3 {
            backends.set_args(n, args);
            backends.ratings.push((n, free_port(), None));
            backends.start_ratings(n)?;
        }
        Ok(backends)
    }

    /// The same, the instances serving HTTPS with `tls` (HTTP/2 by ALPN).
    pub fn serving(tls: Option<ServerCert>) -> Result<Self, String> {
        Self::of(tls, Vec::new(), 3, None)
    }

    /// A site's registry and three ratings instances, all started with
    /// `--dc dc`; the instances' ids are `ratings-{first}` and the next two.
    pub fn site(dc: &str, first: u16) -> Result<Self, String> {
        Self::of(None, Vec::new(), 3, Some((dc.to_owned(), first - 1)))
    }

    /// The registry and one plain-HTTP instance per entry of `zones`,
    /// registered in that zone.
    pub fn in_zones(zones: &[&str]) -> Result<Self, String> {
        let count = u16::try_from(zones.len()).map_err(|e| e.to_string())?;
        Self::of(
            None,
            zones.iter().map(|z| (*z).to_owned()).collect(),
            count,
            None,
        )
    }

    fn of(
        tls: Option<ServerCert>,
        zones: Vec<String>,
        count: u16,
        site: Option<(String, u16)>,
    ) -> Result<Self, String> {
        let registry_port = free_port();
        let mut backends = Self {
            tls,
            registry_port,
            registry: None,
            ratings: Vec::new(),
            zones,
            extra_args: std::collections::HashMap::new(),
            site,
        };
        backends.start_registry()?;
        for n in 1..=count {
            backends.ratings.push((n, free_port(), None));
            backends.start_ratings(n)?;
        }
        Ok(backends)
    }

    /// The registry's base URL.
    pub fn registry_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.registry_port)
    }

    fn start_registry(&mut self) -> Result<(), String> {
        let listen = format!("127.0.0.1:{}", self.registry_port);
        let mut args = vec!["--listen", listen.as_str()];
        if let Some((dc, _)) = &self.site {
            args.extend(["--dc", dc.as_str()]);
        }
        self.registry = Some(Service::start(&binary("beacon-registry"), &args)?);
        Ok(())
    }

    /// Stops the registry (SIGTERM) and starts it again, empty, on its port.
    pub fn restart_registry(&mut self) -> Result<(), String> {
        if let Some(registry) = self.registry.take() {
            registry.stop()?;
        }
        self.start_registry()
    }

    /// Base URLs of the instances.
    pub fn urls(&self) -> Vec<String> {
        self.ratings
            .iter()
            .map(|(_, port, _)| format!("{}://127.0.0.1:{port}", self.scheme()))
            .collect()
    }

    /// Base URL of instance `n`.
    pub fn url(&mut self, n: u16) -> Result<String, String> {
        let scheme = self.scheme();
        Ok(format!("{scheme}://127.0.0.1:{}", self.slot(n)?.1))
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Starts (or restarts) instance `n` on its port.
    pub fn start_ratings(&mut self, n: u16) -> Result<(), String> {
        let registry = self.registry_url();
        let tls = self.tls.clone();
        let zone = self.zones.get(usize::from(n) - 1).cloned();
        let mut extra = self.extra_args.get(&n).cloned().unwrap_or_default();
        let mut instance = n;
        if let Some((dc, offset)) = &self.site {
            extra.extend(["--dc".to_owned(), dc.clone()]);
            instance += offset;
        }
        let slot = self.slot(n)?;
        let (instance, port) = (instance.to_string(), slot.1.to_string());
        let mut args = vec![
            "--instance".to_owned(),
            instance,
            "--port".to_owned(),
            port,
            "--registry".to_owned(),
            registry,
            "--ttl-ms".to_owned(),
            RATINGS_TTL_MS.to_owned(),
        ];
        if let Some(zone) = zone {
            args.extend(["--zone".to_owned(), zone]);
        }
        // The benches switch faults on their own instances.
        args.push("--allow-faults".to_owned());
        args.extend(extra);
        if let Some(tls) = tls {
            args.extend(["--tls-cert".to_owned(), tls.cert.display().to_string()]);
            args.extend(["--tls-key".to_owned(), tls.key.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        slot.2 = Some(Service::start(&binary("beacon-ratings"), &args)?);
        Ok(())
    }

    /// Instance `n` starts with `args` too from its next start on (e.g.
    /// `--max-in-flight 4`, `--warmup-ms 10000`).
    pub fn set_args(&mut self, n: u16, args: &[&str]) {
        self.extra_args
            .insert(n, args.iter().map(|a| (*a).to_owned()).collect());
    }

    /// Sends a signal to instance `n` (`STOP`, `CONT`, `KILL`, `TERM`);
    /// after `KILL` or `TERM` waits for it to exit.
    pub fn signal(&mut self, n: u16, signal: &str) -> Result<(), String> {
        let slot = self.slot(n)?;
        let service = slot
            .2
            .as_ref()
            .ok_or(format!("ratings-{n} is not running"))?;
        service.signal(signal);
        if matches!(signal, "KILL" | "TERM") {
            if let Some(mut service) = slot.2.take() {
                service.signal("CONT"); // a paused process can't act on SIGTERM
                let _ = service.wait(Duration::from_secs(10));
            }
        }
        Ok(())
    }

    /// Whether instance `n` has a process.
    pub fn is_up(&self, n: u16) -> bool {
        self.ratings
            .iter()
            .any(|(m, _, service)| *m == n && service.is_some())
    }

    /// Makes sure every instance runs and none is paused.
    pub fn heal(&mut self) -> Result<(), String> {
        let numbers: Vec<u16> = self.ratings.iter().map(|(n, _, _)| *n).collect();
        for n in numbers {
            match &self.slot(n)?.2 {
                Some(service) => service.signal("CONT"),
                None => self.start_ratings(n)?,
            }
        }
        Ok(())
    }

    fn slot(&mut self, n: u16) -> Result<&mut (u16, u16, Option<Service>), String> {
        self.ratings
            .iter_mut()
            .find(|(m, _, _)| *m == n)
            .ok_or(format!("no ratings-{n}"))
    }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
