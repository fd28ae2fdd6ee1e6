//! Where configuration values come from: the process environment first, then
//! an optional TOML file whose keys are the variable names without the
//! `INBOXLINK_` prefix, in lower case (`database_url = "..."`), for whatever
//! the environment does not set.
//!
//! Both are read into one [`RawSettings`] through serde (see [`super::de`]
//! for how errors keep naming the variable).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::de::{self, Origin, Value};
use super::raw::RawSettings;

/// Prefix shared by every variable the service reads.
pub const PREFIX: &str = "INBOXLINK_";

/// The variable naming the TOML file (and errors about the file as a whole).
pub(super) const CONFIG: &str = "INBOXLINK_CONFIG";

impl RawSettings {
    /// Values from the process environment, plus the file named by `config_file`
    /// (else by `INBOXLINK_CONFIG`) for whatever the environment does not set.
    pub fn from_env(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut env = Vec::new();
        for (var, value) in std::env::vars_os() {
            let Some(var) = var.to_str().filter(|v| v.starts_with(PREFIX)) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::new(var, "not valid UTF-8"))?;
            env.push((var.to_owned(), value));
        }
        Self::read(env, config_file)
    }

    /// Values given as `(VARIABLE, value)` pairs; unknown variables are refused.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        Entries::from_vars(pairs)?.deserialize()
    }

    /// The variables `env`, then the TOML file `config_file` (else the one
    /// `INBOXLINK_CONFIG` names) under them.
    fn read(
        env: impl IntoIterator<Item = (String, String)>,
        config_file: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let mut entries = Entries::from_vars(env)?;
        // The environment alone first: it is checked before any file is read,
        // and it may name the file.
        let raw = entries.clone().deserialize()?;
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| raw.config.clone().map(PathBuf::from));
        let Some(file) = file else {
            return Ok(raw);
        };
        entries.add_file(&file)?;
        entries.deserialize()
    }
}

/// The values given, by field name of [`RawSettings`].
#[derive(Debug, Clone, Default)]
struct Entries(BTreeMap<String, (Origin, Value)>);

impl Entries {
    fn from_vars<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let mut entries = Self::default();
        for (var, value) in pairs {
            let var = var.into();
            let Some(name) = var.strip_prefix(PREFIX) else {
                return Err(ConfigError::new(&var, "not an Inboxlink variable"));
            };
            let field = name.to_ascii_lowercase();
            let origin = Origin::Env(var.clone());
            // Variables are upper case; `INBOXLINK_bind` is not `INBOXLINK_BIND`.
            if name != name.to_ascii_uppercase() {
                return Err(origin.unknown());
            }
            entries.0.insert(field, (origin, Value::Text(value.into())));
        }
        Ok(entries)
    }

    /// The keys of the TOML file at `path`, where the environment has not set them.
    fn add_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(CONFIG, format!("cannot read {}: {e}", path.display()))
        })?;
        let table: toml::Table = text.parse().map_err(|e| {
            ConfigError::new(CONFIG, format!("{} is not valid TOML: {e}", path.display()))
        })?;
        for (key, value) in table {
            let origin = Origin::File {
                path: path.to_owned(),
                key: key.clone(),
            };
            self.0
                .entry(key.to_ascii_lowercase())
                .or_insert((origin, Value::Toml(value)));
        }
        Ok(())
    }

    fn deserialize(self) -> Result<RawSettings, ConfigError> {
        de::raw_settings(self.0)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn with_file(toml: &str, env: &[(&str, &str)]) -> Result<RawSettings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inboxlink.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        RawSettings::read(env, Some(&path))
    }

    #[test]
    fn unknown_variables_are_refused_by_name() {
        for var in [
            "INBOXLINK_DATABASE_URI",
            "INBOXLINK_database_url",
            "INBOXLINK_Bind",
            "INBOXLINK_",
        ] {
            let err = RawSettings::from_pairs([(var, "x")]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(err.problem.contains("unknown variable"), "{err}");
        }
        let err = RawSettings::from_pairs([("DATABASE_URL", "x")]).unwrap_err();
        assert!(err.problem.contains("not an Inboxlink variable"), "{err}");
    }

    #[test]
    fn file_form_only_for_secrets() {
        assert!(RawSettings::from_pairs([("INBOXLINK_MASTER_KEY_FILE", "/k")]).is_ok());
        assert!(RawSettings::from_pairs([("INBOXLINK_BIND_FILE", "/k")]).is_err());
        assert!(RawSettings::from_pairs([("INBOXLINK_JWT_PUBLIC_KEY_FILE_FILE", "/k")]).is_err());
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_naming_it() {
        let err = with_file("bind = \"127.0.0.1:1\"\ndatabse_url = \"x\"\n", &[]).unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_CONFIG", "{err}");
        assert!(
            err.problem
                .ends_with("inboxlink.toml: unknown key `databse_url`"),
            "{err}"
        );
        // A section is not a way around it.
        let err = with_file("[jwt]\nissuer = \"x\"\n", &[]).unwrap_err();
        assert!(err.problem.ends_with("unknown key `jwt`"), "{err}");
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let raw = with_file(
            "bind = \"127.0.0.1:1\"\nlog = \"debug\"\ndatabase_pool_size = 4\nJWT_JWKS_ALLOW_HTTP = true\n",
            &[("INBOXLINK_BIND", "127.0.0.1:2")],
        )
        .unwrap();
        assert_eq!(raw.bind.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(raw.log.as_deref(), Some("debug"));
        assert_eq!(raw.database_pool_size.as_deref(), Some("4"));
        assert_eq!(raw.jwt_jwks_allow_http.as_deref(), Some("true"));
        // Empty is not set, but still the environment's: the file's value is not used.
        let raw = with_file("log = \"debug\"\n", &[("INBOXLINK_LOG", "")]).unwrap();
        assert_eq!(raw.log, None);
    }

    #[test]
    fn the_file_may_give_a_secret_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        std::fs::write(&key, "a-key\n").unwrap();
        let raw = with_file(
            &format!("master_key_file = {:?}\n", key.to_str().unwrap()),
            &[],
        )
        .unwrap();
        let secrets = raw.secrets().unwrap();
        assert_eq!(secrets.master_key.unwrap().expose_secret(), "a-key");
        assert_eq!(secrets.files[0].0, "INBOXLINK_MASTER_KEY_FILE");
    }

    #[test]
    fn a_wrong_type_in_the_file_names_the_variable() {
        for (toml, var, found) in [
            (
                "database_pool_size = 1.5",
                "INBOXLINK_DATABASE_POOL_SIZE",
                "float",
            ),
            ("bind = [\"127.0.0.1:1\"]", "INBOXLINK_BIND", "array"),
            ("master_key = { a = 1 }", "INBOXLINK_MASTER_KEY", "table"),
            ("log = 1979-05-27", "INBOXLINK_LOG", "datetime"),
        ] {
            let err = with_file(toml, &[]).unwrap_err();
            assert_eq!(err.variable, var, "{err}");
            assert!(
                err.problem
                    .ends_with(&format!("must be a string or a number, not {found}")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_file_errors_name_the_config_variable() {
        let err = with_file("bind = ", &[]).unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_CONFIG");
        assert!(err.problem.contains("is not valid TOML"), "{err}");
        let env = [(
            "INBOXLINK_CONFIG".to_owned(),
            "/nonexistent/inboxlink.toml".to_owned(),
        )];
        let err = RawSettings::read(env, None).unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_CONFIG");
        assert!(
            err.problem
                .starts_with("cannot read /nonexistent/inboxlink.toml"),
            "{err}"
        );
    }
}
