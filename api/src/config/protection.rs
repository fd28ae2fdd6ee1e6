//! Protection settings (README, "Security"): who may read the metrics and
//! where, how long the metrics' database counts are cached, the per-caller
//! rate limits, and the cap on concurrent requests to Microsoft.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::raw::{RawSettings, given};
use super::validate::{number_in, parse, seconds, socket_addr};
use crate::limits::RateLimits;

/// The shortest metrics token accepted.
pub const METRICS_TOKEN_MIN_CHARS: usize = 32;

#[derive(Debug)]
pub struct Protection {
    pub metrics: MetricsSettings,
    pub rate_limits: RateLimits,
    /// At most this many requests to the identity provider at once (per instance).
    pub idp_max_concurrency: usize,
}

/// Where `/metrics` is served, and to whom.
#[derive(Debug)]
pub struct MetricsSettings {
    /// Scrapers send it as `Authorization: Bearer <token>`.
    pub token: Option<SecretString>,
    /// A second listener serving only `/metrics` (then not on the main one).
    pub bind: Option<SocketAddr>,
    /// How long the mailbox counts of one scrape are reused.
    pub cache: Duration,
}

/// Checks the protection settings; `token` is `INBOXLINK_METRICS_TOKEN` as read.
pub(super) fn validate(
    raw: &RawSettings,
    token: Option<&SecretString>,
    main_bind: SocketAddr,
) -> Result<Protection, ConfigError> {
    let token = match token {
        None => None,
        Some(token) => {
            // Never echo the value: it is a secret.
            let text = token.expose_secret();
            if text.chars().count() < METRICS_TOKEN_MIN_CHARS {
                return Err(ConfigError::new(
                    "METRICS_TOKEN",
                    format!(
                        "must be at least {METRICS_TOKEN_MIN_CHARS} characters (e.g. `openssl rand -base64 32`)"
                    ),
                ));
            }
            if !text.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ConfigError::new(
                    "METRICS_TOKEN",
                    "must be printable ASCII without spaces (it is sent in an HTTP header)",
                ));
            }
            Some(token.clone())
        }
    };
    let bind = match raw.metrics_bind {
        None => None,
        Some(_) => {
            let addr = parse(given!(raw.metrics_bind), "", socket_addr("10.0.0.5:9464"))?;
            if addr == main_bind && addr.port() != 0 {
                return Err(ConfigError::new(
                    "METRICS_BIND",
                    format!("must differ from INBOXLINK_BIND (both are {addr})"),
                ));
            }
            Some(addr)
        }
    };
    let cache = seconds(given!(raw.metrics_cache_seconds), "15", 0..=3600)?;
    let rate_limits = parse(given!(raw.rate_limits), "", RateLimits::parse)?;
    let idp_max_concurrency = parse(
        given!(raw.idp_max_concurrency),
        "32",
        number_in(1..=1024, ""),
    )?;
    Ok(Protection {
        metrics: MetricsSettings { token, bind, cache },
        rate_limits,
        idp_max_concurrency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protection(pairs: &[(&str, &str)]) -> Result<Protection, ConfigError> {
        let raw = RawSettings::from_pairs(pairs.iter().copied()).expect("known");
        let secrets = raw.secrets()?;
        validate(
            &raw,
            secrets.metrics_token.as_ref(),
            "127.0.0.1:8080".parse().expect("addr"),
        )
    }

    #[test]
    fn defaults() {
        let p = protection(&[]).expect("valid");
        assert!(p.metrics.token.is_none() && p.metrics.bind.is_none());
        assert_eq!(p.metrics.cache, Duration::from_secs(15));
        assert_eq!(p.idp_max_concurrency, 32);
        assert_eq!(p.rate_limits, RateLimits::default());
    }

    #[test]
    fn malformed_values_name_their_variable_and_never_echo_the_token() {
        let short = "too-short-metrics-token";
        let err = protection(&[("INBOXLINK_METRICS_TOKEN", short)]).unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_METRICS_TOKEN");
        assert!(!err.to_string().contains(short), "{err}");
        for (var, value) in [
            (
                "INBOXLINK_METRICS_TOKEN",
                "with spaces with spaces with spaces with",
            ),
            ("INBOXLINK_METRICS_BIND", "localhost"),
            ("INBOXLINK_METRICS_BIND", "127.0.0.1:8080"),
            ("INBOXLINK_METRICS_CACHE_SECONDS", "-1"),
            ("INBOXLINK_RATE_LIMITS", "check=lots"),
            ("INBOXLINK_IDP_MAX_CONCURRENCY", "0"),
        ] {
            let err = protection(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{err}");
        }
    }

    #[test]
    fn the_token_may_come_from_a_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("metrics-token");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").expect("write");
        let p = protection(&[(
            "INBOXLINK_METRICS_TOKEN_FILE",
            path.to_str().expect("utf-8"),
        )])
        .expect("valid");
        assert_eq!(
            p.metrics.token.expect("set").expose_secret(),
            "0123456789abcdef0123456789abcdef"
        );
    }
}
