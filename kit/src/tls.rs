//! Serving HTTPS with rustls: a server configuration from PEM files, a
//! listener that hands `axum::serve` connections already through their TLS
//! handshake, and a throwaway CA for demos and tests.
//!
//! Handshakes run in tasks of their own, bounded by [`HANDSHAKE_TIMEOUT`],
//! so a client that connects and stalls can't hold up the next one; a
//! failed handshake is logged at debug and dropped, never an error of the
//! server.

use crate::identity::{spiffe_id, PeerNames};
use axum::serve::ListenerExt;
use beacon_net::tls::{certificates, private_key, ClientTls, Identity, TlsError};
use rustls::{crypto::ring, server::WebPkiClientVerifier, RootCertStore, ServerConfig};
use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};
use tokio::{net::TcpListener, sync::mpsc, task::JoinHandle};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

/// Longest a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server configuration presenting `cert` (PEM chain) with `key`; with
/// `client_ca`, clients must present a certificate that CA signed (mutual
/// TLS). HTTP/2 or HTTP/1.1, by ALPN.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let refused = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Refused { path, source }
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(refused(cert))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for root in certificates(ca)? {
                roots.add(root).map_err(refused(ca))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Read {
                    path: ca.to_owned(),
                    detail: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certificates(cert)?, private_key(key)?)
        .map_err(refused(key))?;
    // axum serves both; HTTP/2 lets a client multiplex every call on one
    // connection.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener whose connections come out through their TLS handshake:
/// give it to `axum::serve` in place of a `TcpListener`.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `listener`, handshaking with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause
                        // rather than spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended (it never does while we hold it):
            // nothing will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A throwaway certificate authority and the certificates a demo or a test
/// needs, as PEM files in one directory: a server certificate for
/// `localhost` and `127.0.0.1`, a client certificate, and a second,
/// unrelated CA (what a wrong root looks like).
#[derive(Debug, Clone)]
pub struct ThrowawayPki {
    /// The CA's certificate: the root clients trust (`--ca`).
    pub ca: PathBuf,
    /// The server's certificate (`--tls-cert`) and key (`--tls-key`).
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// A client certificate the CA signed (`--client-cert`), and its key.
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
    /// Another CA's certificate, which signed none of the above.
    pub other_ca: PathBuf,
    /// Where the files are: also each service's certificate
    /// ([`service_identity`](Self::service_identity)).
    pub dir: PathBuf,
}

/// The services [`ThrowawayPki::generate`] issues certificates for: the
/// demo's.
pub const DEMO_SERVICES: [&str; 2] = ["ratings", "market"];

impl ThrowawayPki {
    /// Generates the CA and certificates into `dir` (created if missing).
    pub fn generate(dir: &Path) -> Result<Self, String> {
        let failed = |e: &dyn std::fmt::Display| format!("generating certificates: {e}");
        std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
        let ca = authority("Beacon throwaway CA").map_err(|e| failed(&e))?;
        let other = authority("Some other CA").map_err(|e| failed(&e))?;
        let leaf = |names: Vec<String>, name: &str| -> Result<(String, String), rcgen::Error> {
            let key = rcgen::KeyPair::generate()?;
            let mut params = rcgen::CertificateParams::new(names)?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "beacon server",
        )
        .map_err(|e| failed(&e))?;
        let (client_cert, client_key) =
            leaf(vec!["client.beacon.test".into()], "beacon client").map_err(|e| failed(&e))?;
        // Each service's identity: its SPIFFE id as a URI SAN (the
        // registry and the callers check it), and localhost to serve on.
        for service in DEMO_SERVICES {
            let key = rcgen::KeyPair::generate().map_err(|e| failed(&e))?;
            let mut params =
                rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .map_err(|e| failed(&e))?;
            let uri =
                rcgen::string::Ia5String::try_from(spiffe_id(service)).map_err(|e| failed(&e))?;
            params.subject_alt_names.push(rcgen::SanType::URI(uri));
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, service);
            let cert = params.signed_by(&key, &ca).map_err(|e| failed(&e))?;
            for (path, pem) in [
                (dir.join(format!("{service}.pem")), cert.pem()),
                (dir.join(format!("{service}.key")), key.serialize_pem()),
            ] {
                std::fs::write(&path, pem)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
        }
        let pki = Self {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
            dir: dir.to_owned(),
        };
        for (path, pem) in [
            (&pki.ca, ca.pem()),
            (&pki.server_cert, server_cert),
            (&pki.server_key, server_key),
            (&pki.client_cert, client_cert),
            (&pki.client_key, client_key),
            (&pki.other_ca, other.pem()),
        ] {
            std::fs::write(path, pem).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        Ok(pki)
    }

    /// The certificate and key naming `service` (one of [`DEMO_SERVICES`]):
    /// a client certificate the registry takes its registrations with,
    /// and a server certificate callers can check the service by.
    pub fn service_identity(&self, service: &str) -> Identity {
        Identity {
            cert: self.dir.join(format!("{service}.pem")),
            key: self.dir.join(format!("{service}.key")),
        }
    }
}

/// A self-signed CA that may sign certificates.
fn authority(name: &str) -> Result<rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate()?)
}

/// The flags of a binary that can serve HTTPS (DESIGN, "TLS").
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeTlsArgs {
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "BEACON_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "BEACON_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServeTlsArgs {
    /// The server configuration, if HTTPS was asked for; with `client_ca`,
    /// clients must present a certificate it signed.
    pub fn config(&self, client_ca: Option<&Path>) -> Result<Option<Arc<ServerConfig>>, TlsError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => server_config(cert, key, client_ca).map(Some),
            _ => Ok(None),
        }
    }
}

/// The flags of a binary that calls https registries or instances.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientTlsArgs {
    /// Trust this CA (PEM) for https registries and instances, besides
    /// Mozilla's roots.
    #[arg(long, env = "BEACON_CA")]
    pub ca: Option<PathBuf>,

    /// Present this certificate (PEM) to servers that require one (mutual
    /// TLS); needs --client-key.
    #[arg(long, env = "BEACON_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,

    /// The private key of --client-cert (PEM).
    #[arg(long, env = "BEACON_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl ClientTlsArgs {
    /// The client configuration these flags describe (Mozilla's roots when
    /// none is given).
    pub fn config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(Identity {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        ClientTls {
            ca: self.ca.clone(),
            identity,
        }
        .config()
    }
}

/// Serves `app` on `listener` — over TLS with `tls`, plain HTTP without —
/// until `shutdown` completes, then lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    match tls {
        None => {
            // Small writes go out at once: many answers multiplexed on one
            // HTTP/2 connection must not wait out Nagle and delayed ACKs
            // (~40 ms a line).
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let most = crate::serve::max_connections();
            crate::serve::serve(listener, app, most, |_| None, shutdown).await
        }
        Some(tls) => {
            let listener = TlsListener::new(listener, tls)?;
            let most = crate::serve::max_connections();
            crate::serve::serve(listener, app, most, peer_names, shutdown).await
        }
    }
}

/// The names of the certificate the client presented on `tls`, if any
/// (only when the server asks for one: `--client-ca`).
fn peer_names(tls: &TlsStream<tokio::net::TcpStream>) -> Option<PeerNames> {
    let (_, session) = tls.get_ref();
    session.peer_certificates()?.first().map(PeerNames::of)
}

/// The scheme of a server's URL: `https` with `tls`, else `http`.
pub fn scheme(tls: Option<&Arc<ServerConfig>>) -> &'static str {
    if tls.is_some() {
        "https"
    } else {
        "http"
    }
}
