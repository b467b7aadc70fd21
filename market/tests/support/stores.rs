//! The market's two real stores for tests: a SQLite file in a temporary
//! directory, and a throwaway PostgreSQL server (`scripts/postgres.sh`:
//! initdb + pg_ctl on a free loopback port, as an unprivileged user when
//! run as root), stopped when dropped.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

/// The secret the tests' markets sign with.
pub const SECRET: &str = "a test secret of some length";

/// A database for a market, removed (and its server stopped) on drop.
pub struct TestDb {
    /// What `--db` takes.
    pub url: String,
    /// Whether it is PostgreSQL (else SQLite).
    pub postgres: bool,
    dir: tempfile::TempDir,
}

impl TestDb {
    /// A SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("market.db").display());
        Self {
            url,
            postgres: false,
            dir,
        }
    }

    /// A PostgreSQL server of its own.
    pub fn postgres() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // The server may run as another user: it must reach its directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let out = Command::new(script())
            .args(["start", &pg_dir(dir.path())])
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            out.status.success(),
            "PostgreSQL did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Self {
            url,
            postgres: true,
            dir,
        }
    }

    /// Runs `sql` with the database's own command-line tool (`sqlite3` or
    /// `psql`), behind the market's back.
    pub fn run_sql(&self, sql: &str) {
        let out = if self.postgres {
            Command::new("psql")
                .args([self.url.as_str(), "-v", "ON_ERROR_STOP=1", "-c", sql])
                .output()
        } else {
            let path = self.url.trim_start_matches("sqlite:");
            Command::new("sqlite3").args([path, sql]).output()
        }
        .expect("run the database's client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl TestDb {
    /// Everything the database holds, as an attacker with a copy would
    /// read it: a `pg_dump`, or the SQLite file with its `-wal` and `-shm`.
    pub fn dump(&self) -> Vec<u8> {
        if self.postgres {
            let out = Command::new("pg_dump")
                .arg(&self.url)
                .output()
                .expect("run pg_dump");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return out.stdout;
        }
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", self.url.trim_start_matches("sqlite:"));
            bytes.extend(std::fs::read(path).unwrap_or_default());
        }
        bytes
    }

    /// Stops the PostgreSQL server (a no-op for SQLite, or when stopped).
    pub fn stop_server(&self) {
        if self.postgres {
            let _ = Command::new(script())
                .args(["stop", &pg_dir(self.dir.path())])
                .status();
        }
    }
}

impl TestDb {
    /// Starts the stopped PostgreSQL server again on `port` (its old one,
    /// so the URL stays good).
    pub fn restart_server(&self, port: &str) {
        let out = Command::new(script())
            .args(["start", &pg_dir(self.dir.path()), port])
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            out.status.success(),
            "PostgreSQL did not start again: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.stop_server();
    }
}

fn pg_dir(dir: &Path) -> String {
    dir.join("pg").display().to_string()
}

fn script() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh").to_owned()
}
