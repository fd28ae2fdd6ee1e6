//! Every configuration value as given, before it is checked. One field per
//! variable, named as the variable without `INBOXLINK_` in lower case: the
//! struct is the list of variables the service understands (serde refuses any
//! other), and a field's name is also its key in the TOML file.
//!
//! [`super::source`] fills it from the environment and the file; [`super::validate`]
//! turns it into [`super::Settings`]. Values stay text here, so each check can
//! say what it expects in its own words, naming the variable.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;
use super::source::PREFIX;

/// The values given, by variable. An empty value counts as not given.
///
/// The secrets (`SecretString`, never printed by `Debug`) may instead be given
/// as a path in the `_file` field next to them; [`RawSettings::secrets`] reads them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSettings {
    /// The TOML file to read as well (`--config` wins over it).
    pub(super) config: Option<String>,
    pub(super) database_url: Option<SecretString>,
    pub(super) database_url_file: Option<String>,
    pub(super) database_pool_size: Option<String>,
    pub(super) bind: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) data_dir: Option<String>,
    pub(super) master_key: Option<SecretString>,
    pub(super) master_key_file: Option<String>,
    pub(super) jwt_hs256_secret: Option<SecretString>,
    pub(super) jwt_hs256_secret_file: Option<String>,
    /// A PEM public key (a path, but not a secret: no `_file_file` form).
    pub(super) jwt_public_key_file: Option<String>,
    pub(super) jwt_jwks_url: Option<String>,
    pub(super) jwt_jwks_allow_http: Option<String>,
    pub(super) jwt_issuer: Option<String>,
    pub(super) jwt_audience: Option<String>,
    pub(super) jwt_sub_claim: Option<String>,
    pub(super) jwt_org_claim: Option<String>,
    pub(super) jwt_roles_claim: Option<String>,
    pub(super) jwt_leeway_seconds: Option<String>,
    pub(super) jwt_type: Option<String>,
    pub(super) jwt_max_lifetime_seconds: Option<String>,
    pub(super) ms_authority: Option<String>,
    pub(super) imap_endpoint: Option<String>,
    pub(super) smtp_endpoint: Option<String>,
    pub(super) graph_endpoint: Option<String>,
    pub(super) extra_root_ca: Option<String>,
    pub(super) log: Option<String>,
    pub(super) log_format: Option<String>,
    pub(super) return_url_allowlist: Option<String>,
    pub(super) refresh_token_lifetime_days: Option<String>,
    pub(super) expiring_days: Option<String>,
    pub(super) refresh_lease_seconds: Option<String>,
    pub(super) check_timeout_seconds: Option<String>,
    pub(super) keepalive_interval_seconds: Option<String>,
    pub(super) keepalive_after_days: Option<String>,
    pub(super) keepalive_concurrency: Option<String>,
    pub(super) metrics_token: Option<SecretString>,
    pub(super) metrics_token_file: Option<String>,
    pub(super) metrics_bind: Option<String>,
    pub(super) metrics_cache_seconds: Option<String>,
    pub(super) rate_limits: Option<String>,
    pub(super) idp_max_concurrency: Option<String>,
    pub(super) event_retention_days: Option<String>,
    pub(super) webhook_retry_schedule: Option<String>,
    pub(super) webhook_allow_private: Option<String>,
    pub(super) webhook_disable_after_hours: Option<String>,
    pub(super) delivery_poll_ms: Option<String>,
    pub(super) delivery_concurrency: Option<String>,
    pub(super) delivery_endpoint_concurrency: Option<String>,
    pub(super) delivery_lease_seconds: Option<String>,
    pub(super) frontend_url: Option<String>,
    pub(super) bridge_imap_bind: Option<String>,
    pub(super) bridge_smtp_bind: Option<String>,
    pub(super) bridge_smtps_bind: Option<String>,
    /// PEM paths, read at start-up (the key is not a `_FILE` secret form).
    pub(super) bridge_tls_cert_file: Option<String>,
    pub(super) bridge_tls_key_file: Option<String>,
    pub(super) bridge_sessions_per_mailbox: Option<String>,
    pub(super) bridge_imap_idle_seconds: Option<String>,
}

/// A value with the key it was given under (a field name of [`RawSettings`]),
/// so that an error about it names the right variable. Made by [`given!`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Given<'a> {
    pub key: &'static str,
    pub value: Option<&'a str>,
}

/// `given!(raw.bind)`: the field's value with the field's own name.
macro_rules! given {
    ($raw:ident . $field:ident) => {
        $crate::config::raw::Given {
            key: stringify!($field),
            value: $raw.$field.as_deref(),
        }
    };
}
pub(super) use given;

/// The secrets, each read from its `<NAME>_FILE` when it was given that way.
#[derive(Debug, Default)]
pub(super) struct Secrets {
    pub database_url: Option<SecretString>,
    pub master_key: Option<SecretString>,
    pub jwt_hs256_secret: Option<SecretString>,
    pub metrics_token: Option<SecretString>,
    /// The `INBOXLINK_*_FILE` variables read, with their paths (their modes are checked).
    pub files: Vec<(String, PathBuf)>,
}

impl RawSettings {
    /// The secrets, reading those given as `<NAME>_FILE` (their trimmed
    /// contents). Giving both forms of one secret is refused.
    pub(super) fn secrets(&self) -> Result<Secrets, ConfigError> {
        let mut files = Vec::new();
        let mut read = |key: &str, direct: &Option<SecretString>, file: &Option<String>| {
            let var = format!("{PREFIX}{}", key.to_ascii_uppercase());
            let file_var = format!("{var}_FILE");
            match (direct, file) {
                (Some(_), Some(_)) => Err(ConfigError::new(
                    &var,
                    format!("set either {var} or {file_var}, not both"),
                )),
                (Some(value), None) => Ok(Some(value.clone())),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        ConfigError::new(&file_var, format!("cannot read {path}: {e}"))
                    })?;
                    files.push((file_var, PathBuf::from(path)));
                    Ok(Some(SecretString::from(text.trim())))
                }
                (None, None) => Ok(None),
            }
        };
        Ok(Secrets {
            database_url: read(
                stringify!(database_url),
                &self.database_url,
                &self.database_url_file,
            )?,
            master_key: read(
                stringify!(master_key),
                &self.master_key,
                &self.master_key_file,
            )?,
            jwt_hs256_secret: read(
                stringify!(jwt_hs256_secret),
                &self.jwt_hs256_secret,
                &self.jwt_hs256_secret_file,
            )?,
            metrics_token: read(
                stringify!(metrics_token),
                &self.metrics_token,
                &self.metrics_token_file,
            )?,
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn both_forms_at_once_are_refused() {
        let s = RawSettings::from_pairs([
            ("INBOXLINK_MASTER_KEY", "a"),
            ("INBOXLINK_MASTER_KEY_FILE", "/k"),
        ])
        .unwrap();
        let err = s.secrets().unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_MASTER_KEY", "{err}");
    }

    /// Each secret's `_FILE` variable fills that secret (and only it), and is
    /// listed for the mode check.
    #[test]
    fn file_form_over_nothing_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  from-the-file\n").unwrap();
        let path = path.to_str().unwrap();
        let get = |s: &Secrets, name: &str| match name {
            "DATABASE_URL" => s.database_url.clone(),
            "MASTER_KEY" => s.master_key.clone(),
            "JWT_HS256_SECRET" => s.jwt_hs256_secret.clone(),
            "METRICS_TOKEN" => s.metrics_token.clone(),
            _ => unreachable!(),
        };
        let names = [
            "DATABASE_URL",
            "MASTER_KEY",
            "JWT_HS256_SECRET",
            "METRICS_TOKEN",
        ];
        for name in names {
            let var = format!("INBOXLINK_{name}_FILE");
            let secrets = RawSettings::from_pairs([(var.as_str(), path)])
                .unwrap()
                .secrets()
                .unwrap();
            for other in names {
                let value = get(&secrets, other);
                if other == name {
                    assert_eq!(value.unwrap().expose_secret(), "from-the-file");
                } else {
                    assert!(value.is_none(), "{var} fills only {name}, not {other}");
                }
            }
            assert_eq!(secrets.files, [(var.clone(), PathBuf::from(path))]);
        }
        let missing = dir.path().join("missing");
        let err =
            RawSettings::from_pairs([("INBOXLINK_MASTER_KEY_FILE", missing.to_str().unwrap())])
                .unwrap()
                .secrets()
                .unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_MASTER_KEY_FILE", "{err}");
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let s = RawSettings::from_pairs([
            ("INBOXLINK_MASTER_KEY", "master-key-value"),
            ("INBOXLINK_BIND", "127.0.0.1:1"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("master-key-value"), "{shown}");
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
    }
}
