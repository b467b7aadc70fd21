//! Starting a Beacon binary as a child process, as tests and tools do.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{mpsc, Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// A running Beacon binary whose address was read from its
/// `listening on http://...` log line. Killed (SIGKILL) if dropped while
/// still running, so a failing test leaves nothing behind.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// The base URL it logged, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Everything it printed on stdout so far.
    output: Arc<Mutex<String>>,
}

impl Service {
    /// Runs `binary args...` and waits (at most 10 s) for its listening line.
    /// Its other output goes on to this process's stderr, so a failing
    /// test shows the service's logs.
    pub fn start(binary: &Path, args: &[&str]) -> Result<Self, String> {
        Self::start_with_log(binary, args, "info")
    }

    /// Like [`start`](Self::start), logging at `level` (`RUST_LOG`), e.g.
    /// `warn` to keep a load test from measuring its own logging.
    pub fn start_with_log(binary: &Path, args: &[&str], level: &str) -> Result<Self, String> {
        let mut command = Command::new(binary);
        command.args(args);
        Self::spawn(command, binary, level)
    }

    /// Like [`start`](Self::start), with `env` set for the process.
    pub fn start_with_env(
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut command = Command::new(binary);
        command.args(args).envs(env.iter().copied());
        Self::spawn(command, binary, "info")
    }

    /// Like [`start`](Self::start), on `host` of a test network: the
    /// process sees only that host's network.
    pub fn start_on(
        net: &crate::netns::TestNet,
        host: &crate::netns::Host,
        binary: &Path,
        args: &[&str],
    ) -> Result<Self, String> {
        let mut command = net.command(host, binary);
        command.args(args);
        Self::spawn(command, binary, "info")
    }

    /// Runs `command` (the program `binary`, maybe behind a wrapper that
    /// execs it), logging at `level`, and waits for its listening line.
    fn spawn(mut command: Command, binary: &Path, level: &str) -> Result<Self, String> {
        let mut child = command
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel();
        let prefix = name.clone();
        let output = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(url.to_owned());
                }
                eprintln!("[{prefix}] {line}");
                let mut all = sink.lock().unwrap_or_else(PoisonError::into_inner);
                all.push_str(&line);
                all.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(url) => Ok(Self { child, url, output }),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "{name} did not start listening within 10 s (exit: {status:?})"
                ))
            }
        }
    }

    /// Everything the process printed on stdout so far (its log).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (at most `limit`, else panics) until the process has printed
    /// `text`. Its log reaches [`output`](Self::output) through a pipe and
    /// a reader thread, so a line it wrote just before answering a request
    /// may arrive here just after the answer.
    pub async fn until_logged(&self, text: &str, limit: Duration) {
        crate::wait::eventually(limit, &format!("the log to show {text:?}"), || {
            let found = self.output().contains(text);
            async move { found.then_some(()) }
        })
        .await;
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`, `KILL`, ...).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -{name} {} failed", self.pid());
    }

    /// SIGSTOP, returning once the kernel reports the process stopped
    /// (signal delivery is asynchronous: a request could still slip through
    /// right after `kill` returns).
    pub fn pause(&self) {
        self.signal("STOP");
        let stat = format!("/proc/{}/stat", self.pid());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let state = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().chars().next())
                })
                .flatten();
            if matches!(state, Some('T' | 't') | None) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!("pid {} still running after {limit:?}", self.pid()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> Result<ExitStatus, String> {
        self.signal("CONT"); // a paused process can't act on SIGTERM
        self.signal("TERM");
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
