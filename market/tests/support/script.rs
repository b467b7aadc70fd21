//! `make demo` as a person runs it: `scripts/demo.sh` on the debug
//! binaries, stopped with ^C. The demo's ports are fixed: only the tests
//! that run it use them, one test binary at a time.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The running demo script; ^C (SIGINT) on drop, as a person stops it, so
/// a failing test leaves nothing behind.
pub struct DemoScript {
    child: Child,
}

impl DemoScript {
    /// `scripts/demo.sh` with the debug binaries, its run directory
    /// `run_dir`, and `env` (e.g. `TLS=1`).
    pub fn start(run_dir: &Path, env: &[(&str, &str)]) -> Self {
        let bin = super::binary("beacon-market");
        // A shell ignores for good a signal ignored when it starts, and a
        // test run started in the background (`make test &`) ignores
        // SIGINT: reset it to default, as a terminal has it, so the demo's
        // ^C trap can be set.
        let child = Command::new("env")
            .args(["--default-signal=INT", "scripts/demo.sh"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("BIN", bin.parent().expect("binary directory"))
            .env("RUN_DIR", run_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run scripts/demo.sh");
        Self { child }
    }

    /// ^C, then waits (at most 20 s) for everything to stop.
    pub fn interrupt(&mut self) -> bool {
        self.signal("-INT")
    }

    /// Sends `signal` to the script, then waits (at most 20 s) for it to
    /// end, which it does once everything it started has stopped.
    pub fn signal(&mut self, signal: &str) -> bool {
        let _ = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for DemoScript {
    fn drop(&mut self) {
        // SIGTERM runs the same cleanup should ^C have gone unheard;
        // SIGKILL last, though it leaves the script's children running.
        if !matches!(self.child.try_wait(), Ok(Some(_)))
            && !self.interrupt()
            && !self.signal("-TERM")
        {
            let _ = self.child.kill();
        }
    }
}
