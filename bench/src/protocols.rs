//! Steady throughput over HTTP/2 and TLS. Beacon and the bare client speak
//! the protocol to the instances themselves (h2c to plain instances; TLS,
//! HTTP/2 by ALPN, to instances serving HTTPS with a throwaway CA); HAProxy
//! and nginx terminate it and speak HTTP/1.1 to plain instances, as they
//! are usually deployed.

use crate::{
    contenders::{ready, Contender, Wire},
    proxies::Front,
    scenarios::{steady_runs, with, Outcome, Plan, SharedBackends},
    topology::{Backends, ServerCert},
};
use beacon::net::tls::ClientTls;
use beacon_kit::tls::ThrowawayPki;

/// A protocol the steady scenario runs over besides plain HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/2 without TLS, by prior knowledge.
    H2c,
    /// TLS, HTTP/2 by ALPN.
    Tls,
}

impl Protocol {
    /// Both, in report order.
    pub const ALL: [Protocol; 2] = [Self::H2c, Self::Tls];

    /// Its scenario name (`beacon-bench --scenarios`), and its outcomes'.
    pub fn name(self) -> &'static str {
        match self {
            Self::H2c => "h2c",
            Self::Tls => "tls",
        }
    }

    /// The outcomes' scenario.
    pub fn scenario(self) -> &'static str {
        match self {
            Self::H2c => "steady h2c",
            Self::Tls => "steady tls",
        }
    }
}

/// What the runs over other protocols measured, and the proxies'
/// configurations as run (name, configuration).
pub type Measured = (Vec<Outcome>, Vec<(String, String)>);

/// Runs the steady scenario over each of `protocols` for every contender,
/// `plan.runs` times (the contenders' order rotated); `plain` are the
/// HTTP/1.1 instances the proxies (and h2c callers) reach.
pub async fn run(
    plain: &SharedBackends,
    plan: Plan,
    protocols: &[Protocol],
) -> Result<Measured, String> {
    let dir = std::env::temp_dir().join(format!("beacon-bench-pki-{}", std::process::id()));
    let result = run_in(plain, plan, protocols, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(
    plain: &SharedBackends,
    plan: Plan,
    protocols: &[Protocol],
    dir: &std::path::Path,
) -> Result<Measured, String> {
    let mut outcomes = Vec::new();
    let mut configs = Vec::new();
    let (plain_urls, plain_registry) = with(plain, |b| (b.urls(), b.registry_url()));
    for &protocol in protocols {
        // What direct callers reach: the plain instances (h2c), or a set
        // serving HTTPS, with its own registry, kept while it is measured.
        let (wire, direct) = match protocol {
            Protocol::H2c => {
                let wire = Wire {
                    name: "h2c",
                    front: Front::H2c,
                    tls: None,
                    h2c: true,
                    verify_identity: false,
                };
                (wire, None)
            }
            Protocol::Tls => {
                let pki = ThrowawayPki::generate(dir)?;
                // The instances show the certificate naming `ratings`, and
                // Beacon checks it, as a TLS deployment should.
                let ratings = pki.service_identity("ratings");
                let cert = ServerCert {
                    cert: ratings.cert,
                    key: ratings.key,
                };
                let tls = ClientTls {
                    ca: Some(pki.ca.clone()),
                    identity: None,
                }
                .config()
                .map_err(|e| e.to_string())?;
                let wire = Wire {
                    name: "TLS, h2",
                    front: Front::Tls(cert.clone()),
                    tls: Some(tls),
                    h2c: false,
                    verify_identity: true,
                };
                (wire, Some(Backends::serving(Some(cert))?))
            }
        };
        let (direct_urls, direct_registry) = match &direct {
            Some(backends) => (backends.urls(), backends.registry_url()),
            None => (plain_urls.clone(), plain_registry.clone()),
        };
        let count = Contender::STEADY.len();
        for run in 0..plan.runs {
            let mut readies = Vec::new();
            for k in 0..count {
                let contender = Contender::STEADY[(k + run) % count];
                let (urls, registry) = match contender {
                    Contender::Beacon | Contender::BeaconNoDeadline | Contender::BareClient => {
                        (direct_urls.clone(), &direct_registry)
                    }
                    Contender::Haproxy | Contender::Nginx => (plain_urls.clone(), &plain_registry),
                };
                let ready = ready(contender, urls, registry, &wire).await?;
                if let (Some(config), 0) = (ready.config(), run) {
                    configs.push((format!("{} ({})", contender.name(), wire.name), config));
                }
                readies.push((contender, ready));
            }
            for mut outcome in steady_runs(&readies, plan, run).await {
                outcome.scenario = protocol.scenario();
                outcomes.push(outcome);
            }
        }
        eprintln!("== {} done ==", wire.name);
    }
    Ok((outcomes, configs))
}
