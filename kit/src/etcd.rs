//! Real etcd clusters for tests and benchmarks: members on free loopback
//! ports, data in temp dirs, stopped when the process that started them
//! ends (even if it crashes).

use crate::net::free_port;
use beacon_net::{
    failover::exchange,
    http::{http_client, HttpClient},
};
use bytes::Bytes;
use http_body_util::Full;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

/// One member of a test cluster.
#[derive(Debug)]
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

/// Where one member runs: its network namespace (none for the host's
/// loopback), client URL and peer URL.
type Place = (Option<String>, String, String);

/// How many times a cluster is started afresh when a member dies while
/// starting: a port found free can be taken (by any process's outgoing
/// connection) before etcd binds it, and a cluster left one member short
/// would lose its quorum with the first member a test stops.
const START_ATTEMPTS: usize = 3;

/// How long a starting cluster has to report every member healthy.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// A cluster of `n` members.
#[derive(Debug)]
pub struct EtcdCluster {
    /// Its members, in start order.
    pub members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one of them is healthy.
    /// Panics (with what to install) when etcd is missing.
    pub async fn start(n: usize) -> Self {
        Self::start_at(|| (0..n).map(|_| loopback_place(free_port())).collect()).await
    }

    /// Starts one member on each of `hosts` of a test network (client port
    /// 2379, peer port 2380 on the host's address), and waits until every
    /// member is healthy.
    pub async fn start_on(hosts: &[&crate::netns::Host]) -> Self {
        Self::start_at(|| {
            hosts
                .iter()
                .map(|host| {
                    let client = format!("http://{}:2379", host.ip);
                    let peer = format!("http://{}:2380", host.ip);
                    (Some(host.netns.clone()), client, peer)
                })
                .collect()
        })
        .await
    }

    /// Members at the places `places` gives, started afresh (new places,
    /// new data) when one of them dies before the cluster is healthy.
    async fn start_at(places: impl Fn() -> Vec<Place>) -> Self {
        assert!(
            std::path::Path::new("/usr/bin/etcd").exists(),
            "/usr/bin/etcd is missing: `make test` installs the Debian package etcd-server"
        );
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let mut cluster = Self::launch(places());
            match cluster.all_healthy(START_PATIENCE).await {
                Ok(()) => return cluster,
                // Dropping the cluster stops its members and removes their data.
                Err(why) => failures.push(why),
            }
        }
        panic!(
            "no etcd cluster started in {START_ATTEMPTS} attempts: {}",
            failures.join("; ")
        );
    }

    /// Starts a member at each of `places`, without waiting.
    fn launch(places: Vec<Place>) -> Self {
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
        Self { members }
    }

    /// Client URLs of every member.
    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Stops member `i` (SIGTERM to etcd).
    pub fn stop(&mut self, i: usize) {
        self.members[i].stop();
    }

    /// Kills member `i` (SIGKILL to etcd): no leadership handed over, no
    /// goodbye to its peers, as when its machine dies. A leader stopped
    /// with [`stop`](Self::stop) hands leadership over first.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        self.members[i].start();
    }

    /// The running member that is the leader now, by its own status
    /// (`header.member_id == leader`); `None` when none says so.
    pub async fn leader(&self) -> Option<usize> {
        let http = http_client(Duration::from_millis(500));
        for (i, member) in self.members.iter().enumerate() {
            if member.child.is_none() {
                continue;
            }
            let url = format!("{}/v3/maintenance/status", member.client_url);
            let Ok(request) = http::Request::post(url).body(Full::new(Bytes::from_static(b"{}")))
            else {
                continue;
            };
            let Ok((_, body)) = exchange(&http, request, Duration::from_secs(1), 1 << 16).await
            else {
                continue;
            };
            let Ok(status) = serde_json::from_slice::<serde_json::Value>(&body) else {
                continue;
            };
            let leader = status["leader"].as_str();
            if leader.is_some() && leader == status["header"]["member_id"].as_str() {
                return Some(i);
            }
        }
        None
    }

    /// Waits until every running member reports itself healthy (it sees a
    /// leader, so writes go through it). Panics, with the log of a member
    /// that died, when that does not happen.
    pub async fn until_healthy(&mut self) {
        if let Err(why) = self.all_healthy(START_PATIENCE).await {
            panic!("etcd did not become healthy: {why}");
        }
    }

    /// Polls every running member's `/health` until all say `true`; fails
    /// at once when a member's process has ended, and after `limit`.
    async fn all_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let http = http_client(Duration::from_millis(500));
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut sick = Vec::new();
            for member in self.members.iter_mut().filter(|m| m.child.is_some()) {
                if let Some(ended) = member.ended() {
                    return Err(ended);
                }
                if !healthy(&http, &member.client_url).await {
                    sick.push(member.name.clone());
                }
            }
            if sick.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{} not healthy after {limit:?}", sick.join(", ")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first member's etcd process id (for its memory).
    pub fn pid(&self) -> Option<u32> {
        etcd_pid(self.members.first()?.child.as_ref()?.id())
    }
}

impl Member {
    /// Where etcd's own log goes (errors only), to say why a member died:
    /// beside its data.
    fn log(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

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
        // Appended to, so a restarted member's log follows its first run's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .map_or_else(|_| Stdio::null(), Stdio::from);
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
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
    }

    /// Why the member's process has ended, with the end of its log; `None`
    /// while it runs.
    fn ended(&mut self) -> Option<String> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        Some(format!(
            "member {} ({}, peers at {}) ended ({status}): {}",
            self.name,
            self.client_url,
            self.peer_url,
            lines[lines.len().saturating_sub(3)..].join(" | ")
        ))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(etcd) = etcd_pid(child.id()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &etcd.to_string()])
                    .status();
            }
            // The watchdog shell ends once etcd has.
            let _ = child.wait();
        }
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
            let _ = std::fs::remove_file(member.log());
        }
    }
}

/// The etcd process a member's watchdog shell (`shell`) runs: its child.
fn etcd_pid(shell: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// A member on loopback, serving clients on `client_port`.
fn loopback_place(client_port: u16) -> Place {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{}", free_port());
    (None, client, peer)
}

/// Whether the member at `url` answers its `/health` with `true`.
async fn healthy(http: &HttpClient, url: &str) -> bool {
    let Ok(request) = http::Request::get(format!("{url}/health")).body(Full::new(Bytes::new()))
    else {
        return false;
    };
    let Ok((_, body)) = exchange(http, request, Duration::from_secs(1), 1 << 16).await else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&body)
        .is_ok_and(|health| health["health"] == "true")
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

#[cfg(all(test, feature = "etcd-tests"))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_member_that_cannot_bind_its_port_makes_a_fresh_start() {
        // Another process's listener on the port the first start hands m2.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let busy = taken.local_addr().expect("address").port();
        let starts = AtomicUsize::new(0);
        let mut cluster = EtcdCluster::start_at(|| {
            let first = starts.fetch_add(1, Ordering::Relaxed) == 0;
            (0..3)
                .map(|i| loopback_place(if first && i == 2 { busy } else { free_port() }))
                .collect()
        })
        .await;
        assert_eq!(starts.load(Ordering::Relaxed), 2, "started afresh once");
        let busy_url = format!("http://127.0.0.1:{busy}");
        assert!(!cluster.urls().contains(&busy_url), "{:?}", cluster.urls());
        // All three members run: one may go and the other two still agree.
        cluster.stop(0);
        cluster.until_healthy().await;
    }

    #[tokio::test]
    async fn the_leader_is_found_and_another_takes_over_when_it_is_killed() {
        let mut cluster = EtcdCluster::start(3).await;
        let leader = cluster
            .leader()
            .await
            .expect("a healthy cluster has a leader");
        cluster.kill(leader);
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        loop {
            match cluster.leader().await {
                Some(next) => {
                    assert_ne!(next, leader, "a killed member leads");
                    break;
                }
                None if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                None => panic!("no new leader within {START_PATIENCE:?}"),
            }
        }
    }
}
