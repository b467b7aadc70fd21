//! Headless Chromium driven over WebDriver (chromedriver + fantoccini).

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A chromedriver process on a free port; killed when dropped.
pub struct ChromeDriver {
    child: Child,
    pub url: String,
    profile: PathBuf,
}

impl ChromeDriver {
    /// Starts chromedriver, or fails the test naming what is missing.
    pub async fn start() -> Self {
        for tool in ["/usr/bin/chromedriver", "/usr/bin/chromium"] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: `make test` installs the Debian packages chromium and chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let profile =
            std::env::temp_dir().join(format!("beacon-chromium-{}-{port}", std::process::id()));
        super::eventually(
            Duration::from_secs(10),
            "chromedriver to answer",
            || async { reqwest::get(format!("{url}/status")).await.ok().map(drop) },
        )
        .await;
        Self {
            child,
            url,
            profile,
        }
    }

    /// A new headless browser session.
    pub async fn browser(&self) -> Client {
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            // The machine has no network beyond loopback: don't try.
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", self.profile.display()),
        ];
        let capabilities = serde_json::json!({
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal");
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Chromium may outlive its driver (a session closing as the driver
        // dies, or a failed test): end whatever runs on this test's profile.
        let _ = Command::new("pkill")
            // `--` first: the pattern starts with dashes, not an option.
            .args([
                "-f",
                "--",
                &format!("--user-data-dir={}", self.profile.display()),
            ])
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where screenshots go, for people to look at: `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    // The workspace's target/, where `make test` says to look.
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/screenshots"
    ));
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// Saves a screenshot of the whole window as `target/screenshots/{name}.png`.
pub async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}
