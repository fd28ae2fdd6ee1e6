//! The one place where [`RawSettings`] become [`Settings`]: [`validate`]
//! checks the groups in turn (listener and public URL, mail endpoints, log,
//! tokens and keep-alive, return URLs, protection, database, keys, JWT) and
//! stops at the first missing or malformed value with a [`ConfigError`]
//! naming its variable. Defaults are applied here too.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::raw::{Given, RawSettings, Secrets, given};
use super::{
    Backend, ConfigError, DatabaseSettings, Endpoint, LogFormat, LogSettings, Settings,
    TokenSettings, bootstrap, bridge, defaults, jwt, notify, protection,
};

/// Checks every value (reading the `_FILE` secrets), generating the keys of
/// an embedded set-up on its first run.
pub(super) fn validate(raw: &RawSettings) -> Result<Settings, ConfigError> {
    let secrets = raw.secrets()?;
    let listener = listener(raw)?;
    let data_dir = PathBuf::from(or_default(given!(raw.data_dir), defaults::DATA_DIR));
    let mail = mail(raw)?;
    let log = log(raw)?;
    let tokens = tokens(raw)?;
    let return_url_allowlist = return_urls(raw)?;
    let protection = protection::validate(raw, secrets.metrics_token.as_ref(), listener.bind)?;
    let notify = notify::validate(raw)?;
    let bridge = bridge::validate(raw, listener.bind)?;
    let database = database(raw, secrets.database_url.as_ref(), &data_dir)?;
    let mut boot = bootstrap::Bootstrap::new(&data_dir, database.backend);
    let master_keys = boot.master_keys(secrets.master_key.as_ref())?;
    let jwt_key = boot.jwt_key(raw, secrets.jwt_hs256_secret.as_ref())?;
    let jwt = jwt::validate(raw, jwt_key)?;
    let generated = boot.generated;
    let Secrets { mut files, .. } = secrets;
    if let bridge::BridgeCertificate::Files { key, .. } = &bridge.certificate {
        files.push(("INBOXLINK_BRIDGE_TLS_KEY_FILE".to_owned(), key.clone()));
    }
    Ok(Settings {
        bind: listener.bind,
        public_url: listener.public_url,
        public_url_explicit: listener.public_url_explicit,
        data_dir,
        database,
        master_keys,
        jwt,
        ms_authority: mail.ms_authority,
        imap_endpoint: mail.imap_endpoint,
        smtp_endpoint: mail.smtp_endpoint,
        graph_endpoint: mail.graph_endpoint,
        extra_root_ca: mail.extra_root_ca,
        check_step_timeout: mail.check_step_timeout,
        log,
        tokens,
        return_url_allowlist,
        generated,
        protection,
        secret_files: files,
        notify,
        bridge,
    })
}

struct Listener {
    bind: SocketAddr,
    public_url: Url,
    public_url_explicit: bool,
}

/// `INBOXLINK_BIND` and `INBOXLINK_PUBLIC_URL` (required on a wildcard address).
fn listener(raw: &RawSettings) -> Result<Listener, ConfigError> {
    let bind = parse(
        given!(raw.bind),
        defaults::BIND,
        socket_addr("127.0.0.1:8080"),
    )?;
    let public_url_explicit = raw.public_url.is_some();
    let public_url = parse(
        given!(raw.public_url),
        &format!("http://{bind}"),
        parse_public_url,
    )?;
    if bind.ip().is_unspecified() && !public_url_explicit {
        return Err(ConfigError::new(
            "PUBLIC_URL",
            format!(
                "required when listening on all addresses ({bind}): the URL users reach the service at, e.g. https://inboxlink.example.org"
            ),
        ));
    }
    Ok(Listener {
        bind,
        public_url,
        public_url_explicit,
    })
}

/// Microsoft and the mail servers: where, with which extra root, how patiently.
struct Mail {
    ms_authority: Option<Url>,
    imap_endpoint: Option<Endpoint>,
    smtp_endpoint: Option<Endpoint>,
    graph_endpoint: Option<Url>,
    extra_root_ca: Option<PathBuf>,
    check_step_timeout: Duration,
}

fn mail(raw: &RawSettings) -> Result<Mail, ConfigError> {
    // Each unset: the app credential's cloud decides.
    let ms_authority = optional(given!(raw.ms_authority), parse_http_url)?;
    let imap_endpoint = optional(given!(raw.imap_endpoint), parse_endpoint)?;
    let smtp_endpoint = optional(given!(raw.smtp_endpoint), parse_endpoint)?;
    let graph_endpoint = optional(given!(raw.graph_endpoint), parse_graph_endpoint)?;
    let extra_root_ca = match &raw.extra_root_ca {
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
    let check_step_timeout = seconds(given!(raw.check_timeout_seconds), "10", 1..=120)?;
    Ok(Mail {
        ms_authority,
        imap_endpoint,
        smtp_endpoint,
        graph_endpoint,
        extra_root_ca,
        check_step_timeout,
    })
}

/// `INBOXLINK_LOG` (an `EnvFilter`) and `INBOXLINK_LOG_FORMAT`.
fn log(raw: &RawSettings) -> Result<LogSettings, ConfigError> {
    let log = LogSettings {
        filter: or_default(given!(raw.log), defaults::LOG),
        format: parse(given!(raw.log_format), "text", |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be `text` or `json`".into()),
        })?,
    };
    tracing_subscriber::EnvFilter::try_new(&log.filter)
        .map_err(|e| ConfigError::new("LOG", format!("not a valid log filter: {e}")))?;
    Ok(log)
}

/// Token lifetimes, the refresh lease and the keep-alive.
fn tokens(raw: &RawSettings) -> Result<TokenSettings, ConfigError> {
    let tokens = TokenSettings {
        refresh_token_lifetime_days: parse(
            given!(raw.refresh_token_lifetime_days),
            "90",
            number_in(1..=3650, " days"),
        )?,
        expiring_days: parse(given!(raw.expiring_days), "14", number_in(0..=365, " days"))?,
        refresh_lease: seconds(given!(raw.refresh_lease_seconds), "120", 1..=3600)?,
        keepalive_interval: match parse(given!(raw.keepalive_interval_seconds), "3600", |v| {
            v.parse::<u64>()
                .ok()
                .filter(|s| *s == 0 || (10..=86_400).contains(s))
                .ok_or_else(|| "must be 0 (off) or 10..=86400 seconds".into())
        })? {
            0 => None,
            s => Some(Duration::from_secs(s)),
        },
        keepalive_after_days: parse(
            given!(raw.keepalive_after_days),
            "7",
            number_in(0..=365, " days"),
        )?,
        keepalive_concurrency: parse(
            given!(raw.keepalive_concurrency),
            "16",
            number_in(1..=256, ""),
        )?,
    };
    if tokens.keepalive_after_days >= tokens.refresh_token_lifetime_days {
        return Err(ConfigError::new(
            "KEEPALIVE_AFTER_DAYS",
            "must be less than INBOXLINK_REFRESH_TOKEN_LIFETIME_DAYS, or grants die before they are renewed",
        ));
    }
    Ok(tokens)
}

/// `INBOXLINK_RETURN_URL_ALLOWLIST`: comma-separated URLs.
fn return_urls(raw: &RawSettings) -> Result<Vec<Url>, ConfigError> {
    let Some(list) = &raw.return_url_allowlist else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            parse_public_url(u)
                .map_err(|p| ConfigError::new("RETURN_URL_ALLOWLIST", format!("`{u}`: {p}")))
        })
        .collect()
}

/// The backend from `INBOXLINK_DATABASE_URL` (SQLite in the data dir by default).
fn database(
    raw: &RawSettings,
    url: Option<&SecretString>,
    data_dir: &Path,
) -> Result<DatabaseSettings, ConfigError> {
    let pool_size = parse(given!(raw.database_pool_size), "8", number_in(1..=256, ""))?;
    let Some(url) = url.map(ExposeSecret::expose_secret) else {
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
        (Backend::Sqlite, path)
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

/// The value (else `default`), trimmed, through `f`; its complaint names the
/// variable and shows the value (so never use it for a secret).
pub(super) fn parse<T>(
    given: Given<'_>,
    default: &str,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let value = given.value.unwrap_or(default).trim();
    f(value).map_err(|problem| ConfigError::new(given.key, format!("{problem} (got `{value}`)")))
}

/// The value parsed, if one was given.
pub(super) fn optional<T>(
    given: Given<'_>,
    f: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    match given.value {
        None => Ok(None),
        Some(value) => {
            let value = value.trim();
            f(value).map(Some).map_err(|problem| {
                ConfigError::new(given.key, format!("{problem} (got `{value}`)"))
            })
        }
    }
}

/// The value as given, else `default`.
pub(super) fn or_default(given: Given<'_>, default: &str) -> String {
    given.value.unwrap_or(default).to_owned()
}

/// A number in `range`: "must be 1..=256{unit}" otherwise.
pub(crate) fn number_in<T>(
    range: RangeInclusive<T>,
    unit: &'static str,
) -> impl FnOnce(&str) -> Result<T, String>
where
    T: FromStr + PartialOrd + std::fmt::Display,
{
    move |v| {
        v.parse::<T>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| format!("must be {}..={}{unit}", range.start(), range.end()))
    }
}

/// A number of seconds in `range`.
pub(super) fn seconds(
    given: Given<'_>,
    default: &str,
    range: RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    parse(given, default, number_in(range, " seconds")).map(Duration::from_secs)
}

/// A `host:port` socket address.
pub(crate) fn socket_addr(
    example: &'static str,
) -> impl FnOnce(&str) -> Result<SocketAddr, String> {
    move |v| {
        v.parse()
            .map_err(|_| format!("not a socket address (expected host:port, e.g. {example})"))
    }
}

pub(crate) fn parse_http_url(v: &str) -> Result<Url, String> {
    let url = Url::parse(v).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) URL with a host".into());
    }
    Ok(url)
}

/// Graph's base URL, like `https://graph.microsoft.com`: the service adds
/// `/v1.0/...` itself.
pub(crate) fn parse_graph_endpoint(v: &str) -> Result<Url, String> {
    let url = parse_public_url(v)?;
    if url.path().trim_end_matches('/').ends_with("/v1.0") {
        return Err("give the base URL without /v1.0, like https://graph.microsoft.com".into());
    }
    Ok(url)
}

pub(crate) fn parse_public_url(v: &str) -> Result<Url, String> {
    let url = parse_http_url(v)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url)
}

pub(crate) fn parse_endpoint(v: &str) -> Result<Endpoint, String> {
    let (host, port) = v.rsplit_once(':').ok_or("expected host:port")?;
    let port: u16 = port
        .parse()
        .map_err(|_| "the port must be a number 1..=65535".to_string())?;
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() || port == 0 {
        return Err("expected host:port".into());
    }
    Ok(Endpoint {
        host: host.to_owned(),
        port,
    })
}
