//! TLS for Beacon's clients, with rustls (no OpenSSL): which roots to trust
//! and, for mutual TLS, which certificate to present.
//!
//! Mozilla's roots (webpki-roots) are always trusted, so public https
//! registries and instances work with no setting; [`ClientTls::ca`] adds a
//! private CA on top (DESIGN: `--ca PATH` / `BEACON_CA` "adds a trusted
//! root"). Files are read once, when the rustls config is made, so a bad
//! path is an error at start-up, not on the first call.

pub use rustls;

use rustls::{
    crypto::ring,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ClientConfig, RootCertStore,
};
use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

/// What a client trusts and, for mTLS, presents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// A PEM file of extra trusted roots (e.g. your own CA), trusted
    /// besides Mozilla's.
    pub ca: Option<PathBuf>,
    /// A certificate to present to servers that ask for one (mutual TLS).
    pub identity: Option<Identity>,
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a TLS configuration could not be made; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed as PEM.
    #[error("cannot read {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A certificate file held no certificate.
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    /// rustls refused a certificate or key.
    #[error("{path}: {source}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
}

impl ClientTls {
    /// The rustls configuration: Mozilla's roots, plus [`ca`](Self::ca),
    /// presenting [`identity`](Self::identity) when asked.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(ca) = &self.ca {
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|source| TlsError::Refused {
                    path: ca.clone(),
                    source,
                })?;
            }
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Refused {
                path: PathBuf::new(),
                source,
            })?
            .with_root_certificates(roots);
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(certificates(&identity.cert)?, private_key(&identity.key)?)
                .map_err(|source| TlsError::Refused {
                    path: identity.key.clone(),
                    source,
                })?,
        };
        // No ALPN here: the HTTP connector offers the versions it speaks.
        Ok(Arc::new(config))
    }
}

/// Mozilla's roots only: what a client trusts when given nothing else.
/// Built once per process and shared: every pool made without a TLS
/// setting (registry client, health checker, transport) gets the same one.
pub fn default_config() -> Arc<ClientConfig> {
    static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    Arc::clone(DEFAULT.get_or_init(|| {
        // No files to read: the only errors `config` has are about files.
        ClientTls::default()
            .config()
            .unwrap_or_else(|_| unreachable!("no files, no errors"))
    }))
}

/// Every certificate in a PEM file.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |detail: String| TlsError::Read {
        path: path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let missing = ClientTls {
            ca: Some("/nonexistent/ca.pem".into()),
            identity: None,
        };
        let error = missing.config().expect_err("no such file").to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
        let dir = std::env::temp_dir().join(format!("beacon-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let error = ClientTls {
            ca: Some(empty.clone()),
            identity: None,
        }
        .config()
        .expect_err("no certificate")
        .to_string();
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_ca_file_adds_to_the_default_roots() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).expect("ca");
        let dir = std::env::temp_dir().join(format!("beacon-tls-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).expect("write");
        let tls = ClientTls {
            ca: Some(path),
            identity: None,
        };
        assert!(tls.config().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
