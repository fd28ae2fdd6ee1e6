//! Configuration: the contract in the README's configuration table.
//!
//! Two steps. [`source`] reads the environment and the TOML file into one
//! [`RawSettings`] (the list of variables is its fields; anything else is
//! refused). [`validate`] then checks every value once, in one place, and
//! stops with a [`ConfigError`] naming the variable at the first missing or
//! malformed one. With nothing configured it sets up an embedded,
//! single-organisation service in the data dir (see [`bootstrap`]);
//! production settings (given keys, PostgreSQL) never generate anything.

pub mod bootstrap;
pub mod bridge;
mod de;
mod jwt;
pub mod notify;
pub mod protection;
mod raw;
pub mod source;
pub(crate) mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

use crate::crypto::MasterKey;
pub use jwt::MAX_LIFETIME_SECONDS;
pub use raw::RawSettings;
/// The name callers have long used for [`RawSettings`].
pub use raw::RawSettings as Source;

/// A configuration value that is missing or malformed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    /// `variable` is a whole variable name (`INBOXLINK_BIND`, left as it is) or
    /// one without the prefix, in either case (`BIND`, `bind`).
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        let variable = if variable.starts_with(source::PREFIX) {
            variable.to_owned()
        } else {
            format!("{}{}", source::PREFIX, variable.to_ascii_uppercase())
        };
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Everything the service needs, checked.
#[derive(Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    pub public_url: Url,
    /// Whether `INBOXLINK_PUBLIC_URL` was given (else it follows the bound address).
    pub public_url_explicit: bool,
    pub data_dir: PathBuf,
    pub database: DatabaseSettings,
    pub master_keys: Vec<MasterKey>,
    pub jwt: JwtSettings,
    /// `INBOXLINK_MS_AUTHORITY`, `INBOXLINK_IMAP_ENDPOINT`,
    /// `INBOXLINK_SMTP_ENDPOINT` (and `INBOXLINK_GRAPH_ENDPOINT`): when set, they replace the endpoints of
    /// every cloud; `None`: each app credential's cloud decides
    /// ([`crate::domain::CloudEndpoints`]).
    pub ms_authority: Option<Url>,
    pub imap_endpoint: Option<Endpoint>,
    pub smtp_endpoint: Option<Endpoint>,
    /// `INBOXLINK_GRAPH_ENDPOINT`: Microsoft Graph's base URL (without
    /// `/v1.0`) for every cloud; `None`: each cloud's own.
    pub graph_endpoint: Option<Url>,
    pub extra_root_ca: Option<PathBuf>,
    /// Timeout of each step of a connection check.
    pub check_step_timeout: Duration,
    pub log: LogSettings,
    pub tokens: TokenSettings,
    /// Where the OAuth callback may send the browser back to (origin + path prefix).
    pub return_url_allowlist: Vec<Url>,
    /// Files written by the first-run bootstrap, to tell the user about them.
    pub generated: Vec<PathBuf>,
    /// Metrics access, rate limits, the cap on requests to Microsoft.
    pub protection: protection::Protection,
    /// The `INBOXLINK_*_FILE` secrets read, by variable (their modes are checked).
    pub secret_files: Vec<(String, PathBuf)>,
    /// Events, webhooks and e-mail alerts.
    pub notify: notify::NotifySettings,
    /// The bridge's listeners for legacy IMAP and SMTP clients.
    pub bridge: bridge::BridgeSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug)]
pub struct DatabaseSettings {
    pub backend: Backend,
    /// A PostgreSQL URL (may hold a password) or a SQLite file path.
    pub url: SecretString,
    pub pool_size: u32,
}

/// How bearer tokens are verified.
pub enum JwtKey {
    Hs256(SecretBox<Vec<u8>>),
    PublicKeyPem { path: PathBuf, pem: Vec<u8> },
    JwksUrl(Url),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::Hs256(_) => f.write_str("Hs256([REDACTED])"),
            JwtKey::PublicKeyPem { path, .. } => write!(f, "PublicKeyPem({})", path.display()),
            JwtKey::JwksUrl(url) => write!(f, "JwksUrl({url})"),
        }
    }
}

#[derive(Debug)]
pub struct JwtSettings {
    pub key: JwtKey,
    pub issuer: String,
    pub audience: String,
    pub sub_claim: String,
    pub org_claim: String,
    pub roles_claim: String,
    pub leeway: Duration,
    /// The header `typ` every token must carry (`INBOXLINK_JWT_TYPE`; compared
    /// case-insensitively, `application/` optional); `None`: not checked.
    pub token_type: Option<String>,
    /// The longest lifetime (`exp - iat`) accepted; `None`: no bound, `iat` optional.
    pub max_lifetime: Option<Duration>,
    /// How JWKS keys are cached (fixed; tests shorten it).
    pub jwks_refresh: crate::auth::JwksRefresh,
}

/// A `host:port` pair for IMAP or SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// Token lifetimes and the refresh guard.
#[derive(Debug, Clone, Copy)]
pub struct TokenSettings {
    /// Lifetime of a refresh token after it was issued (Microsoft: 90 days).
    pub refresh_token_lifetime_days: i64,
    /// A mailbox is `expiring` this many days before its refresh token ends.
    pub expiring_days: i64,
    /// How long one instance may hold a mailbox's refresh lease.
    pub refresh_lease: Duration,
    /// How often the keep-alive looks for grants to renew; `None`: never.
    pub keepalive_interval: Option<Duration>,
    /// The keep-alive renews a delegated grant whose refresh token is older than this.
    pub keepalive_after_days: i64,
    /// How many grants the keep-alive renews at once.
    pub keepalive_concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
}

/// Defaults of the contract.
pub mod defaults {
    pub const BIND: &str = "127.0.0.1:8080";
    pub const DATA_DIR: &str = "./inboxlink-data";
    pub const JWT_ISSUER: &str = "inboxlink";
    pub const JWT_AUDIENCE: &str = "inboxlink";
    pub const LOG: &str = "info";
    pub const SQLITE_FILE: &str = "inboxlink.sqlite3";
}

impl Settings {
    /// Reads the environment (and the config file it names), bootstrapping an
    /// embedded set-up in the data dir when nothing is configured.
    pub fn load(config_file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Self::from_source(&RawSettings::from_env(config_file)?)
    }

    /// Same as [`Settings::load`] over values already read (tests use this).
    pub fn from_source(raw: &RawSettings) -> Result<Self, ConfigError> {
        validate::validate(raw)
    }

    /// The redirect URI to register in Entra ID.
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/oauth/callback",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

/// The HS256 secret, when the service verifies HS256 tokens (and can mint them).
pub fn hs256_secret(jwt: &JwtSettings) -> Option<&[u8]> {
    match &jwt.key {
        JwtKey::Hs256(secret) => Some(secret.expose_secret().as_slice()),
        _ => None,
    }
}

impl DatabaseSettings {
    /// A copy to move into a blocking task.
    pub fn clone_settings(&self) -> Self {
        Self {
            backend: self.backend,
            url: self.url.clone(),
            pool_size: self.pool_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_source(&Source::from_pairs(pairs.iter().copied()).unwrap())
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let dir = tempdir();
        let d = dir.to_str().unwrap();
        for (var, value) in [
            ("INBOXLINK_BIND", "localhost"),
            ("INBOXLINK_PUBLIC_URL", "ftp://x"),
            ("INBOXLINK_IMAP_ENDPOINT", "outlook.office365.com"),
            ("INBOXLINK_GRAPH_ENDPOINT", "graph.microsoft.com"),
            (
                "INBOXLINK_GRAPH_ENDPOINT",
                "https://graph.microsoft.com/v1.0",
            ),
            ("INBOXLINK_DATABASE_URL", "mysql://x"),
            ("INBOXLINK_LOG_FORMAT", "xml"),
            ("INBOXLINK_JWT_LEEWAY_SECONDS", "-1"),
            ("INBOXLINK_KEEPALIVE_INTERVAL_SECONDS", "5"),
            ("INBOXLINK_KEEPALIVE_AFTER_DAYS", "90"),
            ("INBOXLINK_KEEPALIVE_CONCURRENCY", "0"),
            ("INBOXLINK_WEBHOOK_RETRY_SCHEDULE", "5s,soon"),
            ("INBOXLINK_WEBHOOK_ALLOW_PRIVATE", "yes"),
            ("INBOXLINK_EVENT_RETENTION_DAYS", "0"),
            ("INBOXLINK_DELIVERY_LEASE_SECONDS", "5"),
            ("INBOXLINK_FRONTEND_URL", "inboxlink.example.org"),
        ] {
            let err = settings(&[("INBOXLINK_DATA_DIR", d), (var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{err}");
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_without_keys_generates_nothing() {
        let dir = tempdir();
        let err = settings(&[
            ("INBOXLINK_DATA_DIR", dir.to_str().unwrap()),
            ("INBOXLINK_DATABASE_URL", "postgres://localhost/x"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_MASTER_KEY");
        assert_eq!(std::fs::read_dir(&*dir).map(|d| d.count()).unwrap_or(0), 0);
    }

    #[test]
    fn embedded_first_run_generates_keys_once() {
        let dir = tempdir();
        let d = dir.to_str().unwrap();
        let first = settings(&[("INBOXLINK_DATA_DIR", d)]).unwrap();
        assert_eq!(first.generated.len(), 2);
        let second = settings(&[("INBOXLINK_DATA_DIR", d)]).unwrap();
        assert!(second.generated.is_empty());
        assert_eq!(first.master_keys[0].id(), second.master_keys[0].id());
        assert_eq!(hs256_secret(&first.jwt), hs256_secret(&second.jwt));
    }

    /// A data dir inside a temp dir that is removed when the test ends.
    fn tempdir() -> TempData {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        TempData(dir, data)
    }

    struct TempData(#[allow(dead_code)] tempfile::TempDir, PathBuf);

    impl std::ops::Deref for TempData {
        type Target = PathBuf;
        fn deref(&self) -> &PathBuf {
            &self.1
        }
    }
}
