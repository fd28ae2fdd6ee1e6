//! Where configuration values come from: the process environment first, then
//! an optional TOML file whose keys are the variable names without the
//! `INBOXLINK_` prefix, in lower case (`database_url = "..."`). Secrets may be
//! given as `<NAME>_FILE`, a path whose contents (trimmed) are the value.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;

/// Prefix shared by every variable the service reads.
pub const PREFIX: &str = "INBOXLINK_";

/// Every variable the service understands. Anything else with the prefix stops start-up.
pub const KNOWN: &[&str] = &[
    "CONFIG",
    "DATABASE_URL",
    "DATABASE_POOL_SIZE",
    "BIND",
    "PUBLIC_URL",
    "DATA_DIR",
    "MASTER_KEY",
    "JWT_HS256_SECRET",
    "JWT_PUBLIC_KEY_FILE",
    "JWT_JWKS_URL",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_SUB_CLAIM",
    "JWT_ORG_CLAIM",
    "JWT_ROLES_CLAIM",
    "JWT_LEEWAY_SECONDS",
    "JWT_TYPE",
    "JWT_MAX_LIFETIME_SECONDS",
    "JWT_JWKS_ALLOW_HTTP",
    "MS_AUTHORITY",
    "IMAP_ENDPOINT",
    "SMTP_ENDPOINT",
    "EXTRA_ROOT_CA",
    "LOG",
    "LOG_FORMAT",
    "RETURN_URL_ALLOWLIST",
    "REFRESH_TOKEN_LIFETIME_DAYS",
    "EXPIRING_DAYS",
    "REFRESH_LEASE_SECONDS",
    "CHECK_TIMEOUT_SECONDS",
    "KEEPALIVE_INTERVAL_SECONDS",
    "KEEPALIVE_AFTER_DAYS",
    "KEEPALIVE_CONCURRENCY",
    "METRICS_TOKEN",
    "METRICS_BIND",
    "METRICS_CACHE_SECONDS",
    "RATE_LIMITS",
    "IDP_MAX_CONCURRENCY",
];

/// Variables that hold secrets and may therefore also be given as `<NAME>_FILE`.
pub const SECRET: &[&str] = &[
    "DATABASE_URL",
    "MASTER_KEY",
    "JWT_HS256_SECRET",
    "METRICS_TOKEN",
];

/// The raw values, keyed by their full variable name.
#[derive(Default, Clone)]
pub struct Source {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: show only which variables are set.
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Source {
    /// Values from the process environment, plus the file named by `INBOXLINK_CONFIG`
    /// (or `config_file`) for whatever the environment does not set.
    pub fn from_env(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = std::env::vars().filter(|(k, _)| k.starts_with(PREFIX));
        let mut source = Self::from_pairs(env)?;
        let file = config_file
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| source.values.get("INBOXLINK_CONFIG").cloned());
        if let Some(file) = file {
            source.add_file(Path::new(&file))?;
        }
        Ok(source)
    }

    /// Values given as `(VARIABLE, value)` pairs; unknown variables are refused.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for (key, value) in pairs {
            let key = key.into();
            check_known(&key)?;
            values.insert(key, value.into());
        }
        Ok(Self { values })
    }

    fn add_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let var = "INBOXLINK_CONFIG";
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(var, format!("cannot read {}: {e}", path.display())))?;
        let table: toml::Table = text.parse().map_err(|e| {
            ConfigError::new(var, format!("{} is not valid TOML: {e}", path.display()))
        })?;
        for (key, value) in table {
            let name = format!("{PREFIX}{}", key.to_ascii_uppercase());
            check_known(&name).map_err(|_| {
                ConfigError::new(var, format!("{}: unknown key `{key}`", path.display()))
            })?;
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::new(
                        &name,
                        format!(
                            "{}: `{key}` must be a string or a number, not {}",
                            path.display(),
                            other.type_str()
                        ),
                    ));
                }
            };
            self.values.entry(name).or_insert(value);
        }
        Ok(())
    }

    /// The value of `INBOXLINK_<name>`, reading `INBOXLINK_<name>_FILE` for secrets.
    pub fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        let var = format!("{PREFIX}{name}");
        let direct = self.values.get(&var).filter(|v| !v.is_empty()).cloned();
        let file_var = format!("{var}_FILE");
        let from_file = self.values.get(&file_var).filter(|v| !v.is_empty());
        match (direct, from_file) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                &var,
                format!("set either {var} or {file_var}, not both"),
            )),
            (Some(v), None) => Ok(Some(v)),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|e| ConfigError::new(&file_var, format!("cannot read {path}: {e}"))),
            (None, None) => Ok(None),
        }
    }

    /// The files secrets are read from: each `INBOXLINK_<name>_FILE` of
    /// [`SECRET`] that is set, with that variable's name.
    pub fn secret_files(&self) -> Vec<(String, std::path::PathBuf)> {
        SECRET
            .iter()
            .map(|name| format!("{PREFIX}{name}_FILE"))
            .filter_map(|var| {
                let path = self.values.get(&var).filter(|v| !v.is_empty())?.into();
                Some((var, path))
            })
            .collect()
    }

    /// Whether `INBOXLINK_<name>` (or its `_FILE` form) is set.
    pub fn is_set(&self, name: &str) -> bool {
        let var = format!("{PREFIX}{name}");
        self.values.contains_key(&var) || self.values.contains_key(&format!("{var}_FILE"))
    }
}

fn check_known(var: &str) -> Result<(), ConfigError> {
    let Some(name) = var.strip_prefix(PREFIX) else {
        return Err(ConfigError::new(var, "not an Inboxlink variable"));
    };
    let base = name.strip_suffix("_FILE").filter(|b| SECRET.contains(b));
    if KNOWN.contains(&name) || base.is_some() {
        Ok(())
    } else {
        Err(ConfigError::new(
            var,
            "unknown variable (see the configuration table in the README)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_variables_are_refused_by_name() {
        let err = Source::from_pairs([("INBOXLINK_DATABASE_URI", "x")]).unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_DATABASE_URI");
    }

    #[test]
    fn file_form_only_for_secrets() {
        assert!(Source::from_pairs([("INBOXLINK_MASTER_KEY_FILE", "/k")]).is_ok());
        assert!(Source::from_pairs([("INBOXLINK_BIND_FILE", "/k")]).is_err());
    }

    #[test]
    fn both_forms_at_once_are_refused() {
        let s = Source::from_pairs([
            ("INBOXLINK_MASTER_KEY", "a"),
            ("INBOXLINK_MASTER_KEY_FILE", "/k"),
        ])
        .unwrap();
        assert!(s.get("MASTER_KEY").is_err());
    }
}
