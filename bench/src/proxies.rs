//! The proxies compared with Beacon, HAProxy and nginx, as real processes
//! on loopback with generated configurations, and how to see whether one
//! marked a server down.

use crate::{detection::Watch, topology::ServerCert};
use beacon_kit::net::free_port;
use std::{
    fmt::Write as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// What a proxy's clients speak to it; behind it, plain HTTP/1.1 to the
/// instances (it terminates the client's protocol).
#[derive(Debug, Clone)]
pub enum Front {
    /// Plain HTTP/1.1.
    Http1,
    /// HTTP/2 without TLS (prior knowledge).
    H2c,
    /// TLS with this certificate, HTTP/2 or HTTP/1.1 by ALPN.
    Tls(ServerCert),
}

/// How long a request may wait in HAProxy's queue for a server with room
/// (`timeout queue`), when servers have a `maxconn`: two requests' work on
/// the overload bench's instances, so that what it answers stays within
/// the bench's latency target.
pub const QUEUE_TIMEOUT_MS: u32 = 10;

/// A proxy process (HAProxy or nginx) with its generated config.
#[derive(Debug)]
pub struct Proxy {
    child: Child,
    /// Where clients send requests.
    pub url: String,
    /// The configuration it runs with, for the report.
    pub config: String,
    /// Where it tells whether it marked a server down.
    kind: ProxyKind,
    _dir: TempDir,
}

/// Which proxy, and where it reports its view of the servers.
#[derive(Debug)]
enum ProxyKind {
    /// HAProxy's admin socket, for `show stat`.
    Haproxy { socket: PathBuf },
    /// nginx's error log.
    Nginx { log: PathBuf },
}

impl Proxy {
    /// HAProxy tuned as its documentation recommends for fast failure
    /// detection, balancing to the server with the fewest connections
    /// (`leastconn`: its answer to a slow server): health checks every 500 ms, every 100 ms while a server
    /// is changing state or down (`fastinter`/`downinter`), a check that
    /// times out after 100 ms (`timeout check`), one failure marks a
    /// server down (`fall 1`) and one success up (`rise 1`); passive
    /// `observe layer7` marks it down on the first error seen in traffic;
    /// retries with redispatch to another server; per-try timeouts like
    /// Beacon's attempt timeout. The stats socket shows each server's state.
    ///
    /// With `per_server`, each server takes at most that many requests at
    /// once (`maxconn`) and the rest wait in HAProxy's queue for at most
    /// [`QUEUE_TIMEOUT_MS`] (`timeout queue`), then get a 503: its answer
    /// to instances that are full.
    pub fn haproxy(
        targets: &[String],
        front: &Front,
        per_server: Option<u32>,
    ) -> Result<Self, String> {
        let port = free_port();
        let dir = TempDir::new("haproxy")?;
        let socket = dir.path.join("admin.sock");
        let bind = match front {
            Front::Http1 => String::new(),
            Front::H2c => " proto h2".to_owned(),
            Front::Tls(tls) => {
                // HAProxy takes the certificate and its key in one file.
                let both = dir.path.join("server.pem");
                let pem = [&tls.cert, &tls.key]
                    .iter()
                    .map(|path| std::fs::read_to_string(path).map(|pem| pem + "\n"))
                    .collect::<Result<String, _>>()
                    .map_err(|e| format!("reading the bench certificate: {e}"))?;
                std::fs::write(&both, pem).map_err(|e| e.to_string())?;
                format!(" ssl crt {} alpn h2,http/1.1", both.display())
            }
        };
        let mut config = format!(
            "global\n  maxconn 4096\n  stats socket {} mode 600 level admin\n\ndefaults\n  mode http\n  option http-keep-alive\n  timeout connect 100ms\n  timeout client 10s\n  timeout server 100ms\n  timeout check 100ms\n  retries 2\n  option redispatch 1\n  retry-on all-retryable-errors\n{queue}\nfrontend ratings_in\n  bind 127.0.0.1:{port}{bind}\n  default_backend ratings\n\nbackend ratings\n  balance leastconn\n  option httpchk GET /_health\n  default-server inter 500ms fastinter 100ms downinter 100ms fall 1 rise 1 observe layer7 error-limit 1 on-error mark-down\n",
            socket.display(),
            queue = per_server.map_or(String::new(), |_| format!("  timeout queue {QUEUE_TIMEOUT_MS}ms\n")),
        );
        let maxconn = per_server.map_or(String::new(), |n| format!(" maxconn {n}"));
        for (i, target) in targets.iter().enumerate() {
            let address = target.trim_start_matches("http://");
            let _ = writeln!(config, "  server r{} {address} check{maxconn}", i + 1);
        }
        let path = dir.path.join("haproxy.cfg");
        std::fs::write(&path, &config).map_err(|e| e.to_string())?;
        let child = Command::new("haproxy")
            .args(["-f", &path.display().to_string(), "-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run haproxy (apt-get install haproxy): {e}"))?;
        Self::ready(
            child,
            (port, front),
            config,
            ProxyKind::Haproxy { socket },
            dir,
        )
    }

    /// nginx tuned as its documentation recommends for this job:
    /// `least_conn` (fewest active connections: its answer to a slow
    /// server), a shared
    /// `zone` so every worker learns of a failed server at once, passive
    /// `max_fails=1`/`fail_timeout`, `proxy_next_upstream` on errors,
    /// timeouts and 5xx, per-try timeouts like Beacon's attempt timeout,
    /// keep-alive upstream connections, and client connections kept for
    /// as many requests as they carry (its default closes one after 1000
    /// requests, which over HTTP/2 fails the streams in flight). (Active
    /// health checks are in the commercial edition only.)
    ///
    /// With `per_server`, each server takes at most that many connections
    /// at once (`max_conns`); with every one at it, nginx answers 502 at
    /// once (the open-source edition has no queue).
    pub fn nginx(
        targets: &[String],
        front: &Front,
        per_server: Option<u32>,
    ) -> Result<Self, String> {
        let port = free_port();
        let dir = TempDir::new("nginx")?;
        let d = dir.path.display();
        let listen = match front {
            Front::Http1 => String::new(),
            Front::H2c => " http2".to_owned(),
            Front::Tls(tls) => format!(
                " ssl http2;\n    ssl_certificate {};\n    ssl_certificate_key {}",
                tls.cert.display(),
                tls.key.display()
            ),
        };
        let mut upstream = String::new();
        let max_conns = per_server.map_or(String::new(), |n| format!(" max_conns={n}"));
        for target in targets {
            let address = target.trim_start_matches("http://");
            let _ = writeln!(
                upstream,
                "    server {address} max_fails=1 fail_timeout=2s{max_conns};"
            );
        }
        let config = format!(
            "daemon off;\nworker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  keepalive_requests 1000000;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  upstream ratings {{\n    zone ratings 64k;\n    least_conn;\n{upstream}    keepalive 64;\n  }}\n  server {{\n    listen 127.0.0.1:{port}{listen};\n    location / {{\n      proxy_pass http://ratings;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_connect_timeout 100ms;\n      proxy_read_timeout 100ms;\n      proxy_next_upstream error timeout http_500 http_502 http_503 http_504;\n      proxy_next_upstream_tries 3;\n    }}\n  }}\n}}\n"
        );
        let path = dir.path.join("nginx.conf");
        std::fs::write(&path, &config).map_err(|e| e.to_string())?;
        let child = Command::new("nginx")
            .args([
                "-p",
                &dir.path.display().to_string(),
                "-c",
                &path.display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run nginx (apt-get install nginx): {e}"))?;
        let log = dir.path.join("error.log");
        Self::ready(child, (port, front), config, ProxyKind::Nginx { log }, dir)
    }

    /// How to see whether this proxy marked `targets[index]` down.
    pub fn watch(&self, targets: &[String], index: usize) -> Watch {
        let target = targets
            .get(index)
            .map(|t| t.trim_start_matches("http://").to_owned())
            .unwrap_or_default();
        match &self.kind {
            ProxyKind::Haproxy { socket } => Watch::Haproxy {
                socket: socket.clone(),
                server: format!("r{}", index + 1),
            },
            ProxyKind::Nginx { log } => Watch::Nginx {
                log: log.clone(),
                target,
            },
        }
    }

    fn ready(
        mut child: Child,
        (port, front): (u16, &Front),
        config: String,
        kind: ProxyKind,
        dir: TempDir,
    ) -> Result<Self, String> {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Self {
                    child,
                    url: match front {
                        Front::Tls(_) => format!("https://127.0.0.1:{port}"),
                        _ => format!("http://127.0.0.1:{port}"),
                    },
                    config,
                    kind,
                    _dir: dir,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("proxy exited at start: {status}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        Err("proxy did not listen within 5 s".into())
    }
}

impl Drop for Proxy {
    /// SIGTERM first: an nginx master killed outright leaves its workers
    /// running (and listening); told to stop, it takes them down with it.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!(
            "beacon-bench-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
