//! Who a peer is, by its certificate: the names (subject alternative names)
//! of the certificate a client presented over mutual TLS, and whether they
//! name a service — a URI SAN `spiffe://beacon/service/<service>`, as
//! SPIFFE, linkerd and Istio name workloads, or a DNS SAN `<service>`.
//!
//! Both sides use it: the registry's serve loop puts a client's
//! [`PeerNames`] on each of its requests, so a write is checked against the
//! service it writes; the library's transport checks an instance's server
//! certificate against the service it resolved.

use rustls::pki_types::CertificateDer;
use x509_parser::{extensions::GeneralName, prelude::FromDer};

/// The prefix of a service's SPIFFE id.
pub const SPIFFE_SERVICE_PREFIX: &str = "spiffe://beacon/service/";

/// The SPIFFE id of `service`: `spiffe://beacon/service/<service>`.
pub fn spiffe_id(service: &str) -> String {
    format!("{SPIFFE_SERVICE_PREFIX}{service}")
}

/// The names a peer's certificate carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerNames {
    /// URI SANs, e.g. `spiffe://beacon/service/ratings`.
    pub uris: Vec<String>,
    /// DNS SANs.
    pub dns: Vec<String>,
}

impl PeerNames {
    /// The names in `cert`; none if it can't be parsed (rustls has already
    /// verified it, so that does not happen for a peer's certificate).
    pub fn of(cert: &CertificateDer<'_>) -> Self {
        let mut names = Self::default();
        let Ok((_, parsed)) = x509_parser::certificate::X509Certificate::from_der(cert) else {
            return names;
        };
        let Ok(Some(san)) = parsed.subject_alternative_name() else {
            return names;
        };
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) => names.uris.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => names.dns.push((*dns).to_owned()),
                _ => {}
            }
        }
        names
    }

    /// Whether these names name `service`: its SPIFFE id as a URI SAN, or
    /// the service name itself as a DNS SAN.
    pub fn name_service(&self, service: &str) -> bool {
        let id = spiffe_id(service);
        self.uris.contains(&id) || self.dns.iter().any(|dns| dns == service)
    }

    /// The names, for a message: `spiffe://…, dns:…`.
    pub fn describe(&self) -> String {
        let all: Vec<String> = self
            .uris
            .iter()
            .cloned()
            .chain(self.dns.iter().map(|d| format!("dns:{d}")))
            .collect();
        if all.is_empty() {
            "no names".into()
        } else {
            all.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_named_by_its_spiffe_id_or_its_dns_name_only() {
        let spiffe = PeerNames {
            uris: vec![spiffe_id("ratings")],
            dns: vec![],
        };
        assert!(spiffe.name_service("ratings"));
        assert!(!spiffe.name_service("market"));
        assert!(!spiffe.name_service("ratings-2"));
        let dns = PeerNames {
            uris: vec![],
            dns: vec!["market".into()],
        };
        assert!(dns.name_service("market"));
        assert!(!dns.name_service("ratings"));
        assert!(!PeerNames::default().name_service("ratings"));
        assert_eq!(PeerNames::default().describe(), "no names");
    }
}
