//! Who may register what: the `--acl` file's tokens, each allowed to write
//! some services (exact names, or prefixes ending in `*`) or all of them
//! (`admin = true`), reloaded whole on SIGHUP.
//!
//! ```toml
//! [[tokens]]
//! token = "ratings-team-secret-0001"
//! services = ["ratings", "batch-*"]
//!
//! [[tokens]]
//! token = "operators-secret-000001"
//! admin = true
//! ```
//!
//! A token is compared in constant time against every token of the file,
//! so the answer's timing says nothing about how much of it was right.

use beacon_wire::ServiceName;
use serde::Deserialize;
use std::{
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// Shortest token the file may hold: a guessable secret guards nothing.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why an ACL file can't be used.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file could not be read.
    #[error("cannot read the ACL file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid ACL; the message names the entry and what
    /// is wrong with it.
    #[error("the ACL file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, for people.
        message: String,
    },
}

/// The file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AclFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    admin: bool,
}

/// What a token may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Every service, and every instance whoever registered it.
    Admin,
    /// The services these patterns match.
    Services(Vec<Pattern>),
}

/// A service name, or a prefix of names (`batch-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this service.
    Exact(String),
    /// Every service whose name starts with this (`*` alone: every one).
    Prefix(String),
}

impl Pattern {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.strip_suffix('*') {
            Some(prefix) => {
                let valid = prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
                if valid && prefix.len() < 63 {
                    Ok(Self::Prefix(prefix.to_owned()))
                } else {
                    Err(format!("{raw:?} is not a service name prefix"))
                }
            }
            None => raw
                .parse::<ServiceName>()
                .map(|name| Self::Exact(name.to_string()))
                .map_err(|e| format!("{raw:?}: {}", e.message)),
        }
    }

    fn matches(&self, service: &ServiceName) -> bool {
        match self {
            Self::Exact(name) => service.as_str() == name,
            Self::Prefix(prefix) => service.as_str().starts_with(prefix.as_str()),
        }
    }
}

impl Grant {
    /// Whether the token may write `service`.
    pub fn may_write(&self, service: &ServiceName) -> bool {
        match self {
            Self::Admin => true,
            Self::Services(patterns) => patterns.iter().any(|p| p.matches(service)),
        }
    }
}

/// The tokens of one ACL file.
#[derive(Debug, Default)]
pub struct Acl {
    tokens: Vec<(String, Grant)>,
}

impl Acl {
    /// Parses an ACL file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: AclFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut tokens: Vec<(String, Grant)> = Vec::with_capacity(file.tokens.len());
        for (n, entry) in file.tokens.into_iter().enumerate() {
            let at = format!("token {} of the file", n + 1);
            if entry.token.chars().count() < MIN_TOKEN_LEN {
                return Err(format!(
                    "{at}: a token needs at least {MIN_TOKEN_LEN} characters"
                ));
            }
            if tokens.iter().any(|(token, _)| *token == entry.token) {
                return Err(format!("{at}: the same token is given twice"));
            }
            let grant = match (entry.admin, entry.services.is_empty()) {
                (true, true) => Grant::Admin,
                (true, false) => {
                    return Err(format!(
                        "{at}: `admin = true` may write every service; give it no `services`"
                    ))
                }
                (false, true) => {
                    return Err(format!(
                        "{at}: no `services` and not `admin`: it could write nothing"
                    ))
                }
                (false, false) => Grant::Services(
                    entry
                        .services
                        .iter()
                        .map(|raw| Pattern::parse(raw))
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("{at}: {e}"))?,
                ),
            };
            tokens.push((entry.token, grant));
        }
        Ok(Self { tokens })
    }

    /// Reads and parses the ACL file at `path`.
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| AclError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// The grant of `presented`, if it is one of the file's tokens. Every
    /// token is compared, in constant time.
    pub fn grant(&self, presented: &str) -> Option<&Grant> {
        let mut found = None;
        for (token, grant) in &self.tokens {
            if bool::from(token.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(grant);
            }
        }
        found
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the file holds no token (then no write is allowed).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The ACL in force, replaced whole when its file is loaded again.
#[derive(Debug, Clone)]
pub struct LiveAcl {
    path: PathBuf,
    current: Arc<RwLock<Arc<Acl>>>,
}

impl LiveAcl {
    /// Loads the ACL file at `path`.
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let acl = Acl::load(path)?;
        Ok(Self {
            path: path.to_owned(),
            current: Arc::new(RwLock::new(Arc::new(acl))),
        })
    }

    /// The ACL as it is now.
    pub fn current(&self) -> Arc<Acl> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Loads the file again; a file that can't be used leaves the ACL in
    /// force as it was. Returns how many tokens the new one holds.
    pub fn reload(&self) -> Result<usize, AclError> {
        let acl = Acl::load(&self.path)?;
        let tokens = acl.len();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(acl);
        Ok(tokens)
    }

    /// Reloads on every SIGHUP until `shutdown` fires, logging each
    /// outcome.
    pub fn reload_on_hangup(&self, shutdown: CancellationToken) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        let live = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = hangups.recv() => if got.is_none() { return },
                }
                match live.reload() {
                    Ok(tokens) => {
                        tracing::info!(tokens, path = %live.path.display(), "ACL reloaded")
                    }
                    Err(error) => tracing::error!("ACL not reloaded, the old one stays: {error}"),
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> ServiceName {
        name.parse().expect("valid name")
    }

    const FILE: &str = r#"
        [[tokens]]
        token = "ratings-team-secret-0001"
        services = ["ratings", "batch-*"]

        [[tokens]]
        token = "operators-secret-000001"
        admin = true
    "#;

    #[test]
    fn a_token_writes_its_services_and_prefixes_only() {
        let acl = Acl::parse(FILE).expect("valid");
        let team = acl.grant("ratings-team-secret-0001").expect("a token");
        assert!(team.may_write(&service("ratings")));
        assert!(team.may_write(&service("batch-7")));
        assert!(!team.may_write(&service("market")));
        assert!(!team.may_write(&service("ratings-2")));
        let admin = acl.grant("operators-secret-000001").expect("a token");
        assert_eq!(admin, &Grant::Admin);
        assert!(acl.grant("ratings-team-secret-000").is_none());
        assert!(acl.grant("").is_none());
    }

    #[test]
    fn bad_files_are_refused_with_the_entry_named() {
        for (text, says) in [
            ("[[tokens]]\ntoken = \"short\"\nadmin = true", "at least 16"),
            (
                "[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"\nadmin = true\nservices = [\"x\"]",
                "give it no",
            ),
            ("[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"", "could write nothing"),
            (
                "[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"\nservices = [\"Bad Name\"]",
                "Bad Name",
            ),
            (
                "[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"\nservices = [\"a/b*\"]",
                "prefix",
            ),
            (
                "[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"\nadmin = true\n[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"\nadmin = true",
                "twice",
            ),
            ("[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"\nadmn = true", "admn"),
            ("tokens = 3", "invalid type"),
        ] {
            let error = Acl::parse(text).expect_err(text);
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_reload_that_fails_keeps_the_acl_in_force() {
        let dir = std::env::temp_dir().join(format!("beacon-acl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("acl.toml");
        std::fs::write(&path, FILE).expect("write");
        let live = LiveAcl::load(&path).expect("loads");
        assert_eq!(live.current().len(), 2);
        std::fs::write(&path, "[[tokens]]\ntoken = \"x\"").expect("write");
        assert!(live.reload().is_err());
        assert_eq!(live.current().len(), 2, "the old ACL stays");
        std::fs::write(
            &path,
            "[[tokens]]\ntoken = \"aaaaaaaaaaaaaaaa\"\nadmin = true",
        )
        .expect("write");
        assert_eq!(live.reload().expect("reloads"), 1);
        assert!(live.current().grant("aaaaaaaaaaaaaaaa").is_some());
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
