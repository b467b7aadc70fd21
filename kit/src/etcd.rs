//! Real etcd clusters for tests and benchmarks: members on free loopback
//! ports, data in temp dirs, stopped when the process that started them
//! ends (even if it crashes).

use crate::{net::free_port, wait::eventually};
use beacon_wire::transport::{http_client, read_body};
use bytes::Bytes;
use http_body_util::Full;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

/// One member of a test cluster.
pub struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    data_dir: PathBuf,
    initial_cluster: String,
    /// The network namespace it runs in (a host of a test network), if any.
    netns: Option<String>,
    child: Option<Child>,
}

/// A cluster of `n` members.
pub struct EtcdCluster {
    /// Its members, in start order.
    pub members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster answers. Panics
    /// (with what to install) when etcd is missing.
    pub async fn start(n: usize) -> Self {
        let places = (0..n)
            .map(|_| {
                let client = format!("http://127.0.0.1:{}", free_port());
                let peer = format!("http://127.0.0.1:{}", free_port());
                (None, client, peer)
            })
            .collect();
        Self::start_at(places).await
    }

    /// Starts one member on each of `hosts` of a test network (client port
    /// 2379, peer port 2380 on the host's address), and waits until the
    /// cluster answers.
    pub async fn start_on(hosts: &[&crate::netns::Host]) -> Self {
        let places = hosts
            .iter()
            .map(|host| {
                let client = format!("http://{}:2379", host.ip);
                let peer = format!("http://{}:2380", host.ip);
                (Some(host.netns.clone()), client, peer)
            })
            .collect();
        Self::start_at(places).await
    }

    /// Members at `places`: (namespace, client URL, peer URL).
    async fn start_at(places: Vec<(Option<String>, String, String)>) -> Self {
        assert!(
            std::path::Path::new("/usr/bin/etcd").exists(),
            "/usr/bin/etcd is missing: `make test` installs the Debian package etcd-server"
        );
        let run = format!("{}-{}", std::process::id(), free_port());
        let mut members: Vec<Member> = places
            .into_iter()
            .enumerate()
            .map(|(i, (netns, client_url, peer_url))| Member {
                name: format!("m{i}"),
                client_url,
                peer_url,
                data_dir: std::env::temp_dir().join(format!("beacon-etcd-{run}-m{i}")),
                initial_cluster: String::new(),
                netns,
                child: None,
            })
            .collect();
        let initial: Vec<String> = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect();
        for member in &mut members {
            member.initial_cluster = initial.join(",");
            member.start();
        }
        let cluster = Self { members };
        cluster.until_healthy().await;
        cluster
    }

    /// Client URLs of every member.
    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Stops member `i` (SIGTERM to etcd).
    pub fn stop(&mut self, i: usize) {
        self.members[i].stop();
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        self.members[i].start();
    }

    /// Waits until a running member answers a write-path health check.
    pub async fn until_healthy(&self) {
        let urls: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client_url.clone())
            .collect();
        let http = http_client(Duration::from_millis(500));
        eventually(Duration::from_secs(20), "etcd to be healthy", || async {
            for url in &urls {
                let Ok(request) =
                    http::Request::get(format!("{url}/health")).body(Full::new(Bytes::new()))
                else {
                    continue;
                };
                let Ok(Ok(answer)) =
                    tokio::time::timeout(Duration::from_secs(1), http.request(request)).await
                else {
                    continue;
                };
                let Ok(body) = read_body(answer.into_body(), 1 << 16).await else {
                    continue;
                };
                let health: serde_json::Value = serde_json::from_slice(&body).ok()?;
                if health["health"] == "true" {
                    return Some(());
                }
            }
            None
        })
        .await;
    }

    /// The first member's etcd process id (for its memory): the child of
    /// its watchdog shell.
    pub fn pid(&self) -> Option<u32> {
        let shell = self.members.first()?.child.as_ref()?.id();
        let children =
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }
}

impl Member {
    fn start(&mut self) {
        let args = [
            format!("--name={}", self.name),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={}", self.client_url),
            format!("--advertise-client-urls={}", self.client_url),
            format!("--listen-peer-urls={}", self.peer_url),
            format!("--initial-advertise-peer-urls={}", self.peer_url),
            format!("--initial-cluster={}", self.initial_cluster),
            "--initial-cluster-state=new".to_owned(),
            "--initial-cluster-token=beacon-test".to_owned(),
            // Quick elections keep failover tests short.
            "--heartbeat-interval=50".to_owned(),
            "--election-timeout=500".to_owned(),
            "--logger=zap".to_owned(),
            "--log-level=error".to_owned(),
        ];
        // A watchdog shell ends etcd when this test process goes away, however
        // it goes, and when the shell itself is told to stop.
        let script = r#"etcd "$@" & child=$!
trap 'kill $child 2>/dev/null; wait $child; exit 0' TERM INT
while kill -0 "$PPID" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.2; done
kill $child 2>/dev/null; wait $child"#;
        let mut command = match &self.netns {
            Some(netns) => crate::netns::exec(netns, std::path::Path::new("sh")),
            None => Command::new("sh"),
        };
        let child = command
            .arg("-c")
            .arg(script)
            .arg("etcd-watchdog")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.stop();
            let _ = std::fs::remove_dir_all(&member.data_dir);
        }
    }
}

/// One single-member cluster shared by every test of a test binary; tests
/// keep apart by key prefix. Stopped by its watchdog when the binary exits.
pub fn shared_urls() -> Vec<String> {
    static SHARED: OnceLock<Vec<String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            // On a thread of its own: callers are inside a runtime already.
            std::thread::spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let cluster = runtime.block_on(EtcdCluster::start(1));
                let urls = cluster.urls();
                // Lives as long as the process; the watchdog stops it at exit.
                std::mem::forget(cluster);
                urls
            })
            .join()
            .expect("shared etcd started")
        })
        .clone()
}

/// A fresh key prefix, so tests sharing a cluster don't see each other.
pub fn fresh_prefix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/beacon-test/{}/{}/",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
