//! Configuration: the contract in the README's configuration table.
//!
//! [`Settings::load`] reads every value once, checks it, and stops with a
//! [`ConfigError`] naming the variable at the first missing or malformed one.
//! With nothing configured it sets up an embedded, single-organisation service
//! in the data dir (see [`bootstrap`]); production settings (given keys,
//! PostgreSQL) never generate anything.

pub mod bootstrap;
mod jwt;
pub mod protection;
pub mod source;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

use crate::crypto::MasterKey;
pub use jwt::MAX_LIFETIME_SECONDS;
pub use source::Source;

/// A configuration value that is missing or malformed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        let variable = if variable.starts_with(source::PREFIX) {
            variable.to_owned()
        } else {
            format!("{}{variable}", source::PREFIX)
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
    pub ms_authority: Url,
    pub imap_endpoint: Endpoint,
    pub smtp_endpoint: Endpoint,
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
    pub const MS_AUTHORITY: &str = "https://login.microsoftonline.com";
    pub const IMAP_ENDPOINT: &str = "outlook.office365.com:993";
    pub const SMTP_ENDPOINT: &str = "smtp.office365.com:587";
    pub const JWT_ISSUER: &str = "inboxlink";
    pub const JWT_AUDIENCE: &str = "inboxlink";
    pub const LOG: &str = "info";
    pub const SQLITE_FILE: &str = "inboxlink.sqlite3";
}

impl Settings {
    /// Reads the environment (and the config file it names), bootstrapping an
    /// embedded set-up in the data dir when nothing is configured.
    pub fn load(config_file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Self::from_source(&Source::from_env(config_file)?)
    }

    /// Same as [`Settings::load`] over explicit values (tests use this).
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let bind: SocketAddr = parse(src, "BIND", defaults::BIND, |v| {
            v.parse().map_err(|_| {
                "not a socket address (expected host:port, e.g. 127.0.0.1:8080)".into()
            })
        })?;
        let public_default = format!("http://{bind}");
        let public_url = parse(src, "PUBLIC_URL", &public_default, parse_public_url)?;
        let public_url_explicit = src.is_set("PUBLIC_URL");
        if bind.ip().is_unspecified() && !public_url_explicit {
            return Err(ConfigError::new(
                "PUBLIC_URL",
                format!(
                    "required when listening on all addresses ({bind}): the URL users reach the service at, e.g. https://inboxlink.example.org"
                ),
            ));
        }
        let data_dir = PathBuf::from(
            src.get("DATA_DIR")?
                .unwrap_or_else(|| defaults::DATA_DIR.into()),
        );
        let ms_authority = parse(src, "MS_AUTHORITY", defaults::MS_AUTHORITY, parse_http_url)?;
        let imap_endpoint = parse(
            src,
            "IMAP_ENDPOINT",
            defaults::IMAP_ENDPOINT,
            parse_endpoint,
        )?;
        let smtp_endpoint = parse(
            src,
            "SMTP_ENDPOINT",
            defaults::SMTP_ENDPOINT,
            parse_endpoint,
        )?;
        let extra_root_ca = match src.get("EXTRA_ROOT_CA")? {
            None => None,
            Some(path) => {
                let path = PathBuf::from(path);
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new(
                        "EXTRA_ROOT_CA",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(ConfigError::new(
                        "EXTRA_ROOT_CA",
                        format!("{} holds no PEM certificate", path.display()),
                    ));
                }
                Some(path)
            }
        };
        let log = LogSettings {
            filter: src.get("LOG")?.unwrap_or_else(|| defaults::LOG.into()),
            format: parse(src, "LOG_FORMAT", "text", |v| match v {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("must be `text` or `json`".into()),
            })?,
        };
        tracing_subscriber::EnvFilter::try_new(&log.filter)
            .map_err(|e| ConfigError::new("LOG", format!("not a valid log filter: {e}")))?;

        let tokens = TokenSettings {
            refresh_token_lifetime_days: parse(src, "REFRESH_TOKEN_LIFETIME_DAYS", "90", |v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|d| (1..=3650).contains(d))
                    .ok_or_else(|| "must be 1..=3650 days".into())
            })?,
            expiring_days: parse(src, "EXPIRING_DAYS", "14", |v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|d| (0..=365).contains(d))
                    .ok_or_else(|| "must be 0..=365 days".into())
            })?,
            refresh_lease: Duration::from_secs(parse(src, "REFRESH_LEASE_SECONDS", "120", |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or_else(|| "must be 1..=3600 seconds".into())
            })?),
            keepalive_interval: match parse(src, "KEEPALIVE_INTERVAL_SECONDS", "3600", |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|s| *s == 0 || (10..=86_400).contains(s))
                    .ok_or_else(|| "must be 0 (off) or 10..=86400 seconds".into())
            })? {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            keepalive_after_days: parse(src, "KEEPALIVE_AFTER_DAYS", "7", |v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|d| (0..=365).contains(d))
                    .ok_or_else(|| "must be 0..=365 days".into())
            })?,
            keepalive_concurrency: parse(src, "KEEPALIVE_CONCURRENCY", "16", |v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| "must be 1..=256".into())
            })?,
        };
        if tokens.keepalive_after_days >= tokens.refresh_token_lifetime_days {
            return Err(ConfigError::new(
                "KEEPALIVE_AFTER_DAYS",
                "must be less than INBOXLINK_REFRESH_TOKEN_LIFETIME_DAYS, or grants die before they are renewed",
            ));
        }
        let return_url_allowlist = match src.get("RETURN_URL_ALLOWLIST")? {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| {
                    parse_public_url(u).map_err(|p| {
                        ConfigError::new("RETURN_URL_ALLOWLIST", format!("`{u}`: {p}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let check_step_timeout =
            Duration::from_secs(parse(src, "CHECK_TIMEOUT_SECONDS", "10", |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|s| (1..=120).contains(s))
                    .ok_or_else(|| "must be 1..=120 seconds".into())
            })?);
        let protection = protection::from_source(src, bind)?;
        let database = database_settings(src, &data_dir)?;
        let mut boot = bootstrap::Bootstrap::new(&data_dir, database.backend, src);
        let master_keys = boot.master_keys()?;
        let jwt_key = boot.jwt_key()?;
        let generated = std::mem::take(&mut boot.generated);
        let jwt = jwt::jwt_settings(src, jwt_key)?;
        Ok(Self {
            bind,
            public_url,
            public_url_explicit,
            data_dir,
            database,
            master_keys,
            jwt,
            ms_authority,
            imap_endpoint,
            smtp_endpoint,
            extra_root_ca,
            check_step_timeout,
            log,
            tokens,
            return_url_allowlist,
            generated,
            protection,
            secret_files: src.secret_files(),
        })
    }

    /// The redirect URI to register in Entra ID.
    pub fn redirect_uri(&self) -> String {
        format!(
            "{}/oauth/callback",
            self.public_url.as_str().trim_end_matches('/')
        )
    }
}

fn database_settings(
    src: &Source,
    data_dir: &std::path::Path,
) -> Result<DatabaseSettings, ConfigError> {
    let pool_size = parse(src, "DATABASE_POOL_SIZE", "8", |v| {
        v.parse::<u32>()
            .ok()
            .filter(|n| (1..=256).contains(n))
            .ok_or_else(|| "must be 1..=256".into())
    })?;
    let Some(url) = src.get("DATABASE_URL")? else {
        let path = data_dir.join(defaults::SQLITE_FILE);
        return Ok(DatabaseSettings {
            backend: Backend::Sqlite,
            url: SecretString::from(path.to_string_lossy().into_owned()),
            pool_size,
        });
    };
    let (backend, url) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        if !cfg!(feature = "postgres") {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "a PostgreSQL URL, but this inboxlink was built without PostgreSQL support: \
                 build it with `cargo build --release -p inboxlink --features postgres` \
                 (needs libpq-dev), or use SQLite (unset it, or sqlite://<path>)",
            ));
        }
        (Backend::Postgres, url)
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "sqlite: URL without a file path",
            ));
        }
        (Backend::Sqlite, path.to_owned())
    } else {
        return Err(ConfigError::new(
            "DATABASE_URL",
            "unsupported scheme (expected postgres://... or sqlite://<path>)",
        ));
    };
    Ok(DatabaseSettings {
        backend,
        url: SecretString::from(url),
        pool_size,
    })
}

fn parse<T>(
    src: &Source,
    name: &str,
    default: &str,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let raw = src.get(name)?;
    let value = raw.as_deref().unwrap_or(default).trim();
    f(value).map_err(|problem| ConfigError::new(name, format!("{problem} (got `{value}`)")))
}

fn nonempty(src: &Source, name: &str, default: &str) -> Result<String, ConfigError> {
    Ok(src.get(name)?.unwrap_or_else(|| default.to_owned()))
}

fn parse_http_url(v: &str) -> Result<Url, String> {
    let url = Url::parse(v).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) URL with a host".into());
    }
    Ok(url)
}

fn parse_public_url(v: &str) -> Result<Url, String> {
    let url = parse_http_url(v)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url)
}

fn parse_endpoint(v: &str) -> Result<Endpoint, String> {
    let (host, port) = v.rsplit_once(':').ok_or("expected host:port")?;
    let port: u16 = port
        .parse()
        .map_err(|_| "the port must be a number 1..=65535".to_string())?;
    if host.is_empty() || port == 0 {
        return Err("expected host:port".into());
    }
    Ok(Endpoint {
        host: host.trim_matches(['[', ']']).to_owned(),
        port,
    })
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
            ("INBOXLINK_DATABASE_URL", "mysql://x"),
            ("INBOXLINK_LOG_FORMAT", "xml"),
            ("INBOXLINK_JWT_LEEWAY_SECONDS", "-1"),
            ("INBOXLINK_KEEPALIVE_INTERVAL_SECONDS", "5"),
            ("INBOXLINK_KEEPALIVE_AFTER_DAYS", "90"),
            ("INBOXLINK_KEEPALIVE_CONCURRENCY", "0"),
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
