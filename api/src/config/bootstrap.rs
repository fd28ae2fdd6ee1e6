//! First run with nothing configured: the data dir gets a generated master key
//! and a generated JWT HS256 key (mode 0600, created once, never overwritten).
//! Only the embedded SQLite set-up does this; with PostgreSQL every key must be
//! given, so several instances never disagree about them.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

use super::raw::RawSettings;
use super::{Backend, ConfigError, JwtKey};
use crate::crypto::MasterKey;

pub const MASTER_KEY_FILE: &str = "master.key";
pub const JWT_KEY_FILE: &str = "jwt-hs256.key";

pub struct Bootstrap<'a> {
    data_dir: &'a Path,
    embedded: bool,
    /// Files created by this run.
    pub generated: Vec<PathBuf>,
}

impl<'a> Bootstrap<'a> {
    pub fn new(data_dir: &'a Path, backend: Backend) -> Self {
        Self {
            data_dir,
            embedded: backend == Backend::Sqlite,
            generated: Vec::new(),
        }
    }

    /// `INBOXLINK_MASTER_KEY` (`given`): base64 32-byte keys separated by commas; the first encrypts.
    pub(super) fn master_keys(
        &mut self,
        given: Option<&SecretString>,
    ) -> Result<Vec<MasterKey>, ConfigError> {
        let var = "MASTER_KEY";
        let value = self.given_or_generated(
            given,
            MASTER_KEY_FILE,
            var,
            "required with PostgreSQL (one or more base64-encoded 32-byte keys, comma-separated; \
             generate one with `head -c32 /dev/urandom | base64`)",
        )?;
        parse_master_keys(value.expose_secret()).map_err(|p| ConfigError::new(var, p))
    }

    /// One of `INBOXLINK_JWT_HS256_SECRET` (`hs256`, as read),
    /// `INBOXLINK_JWT_PUBLIC_KEY_FILE`, `INBOXLINK_JWT_JWKS_URL`.
    pub(super) fn jwt_key(
        &mut self,
        raw: &RawSettings,
        hs256: Option<&SecretString>,
    ) -> Result<JwtKey, ConfigError> {
        let given = [
            ("JWT_HS256_SECRET", hs256.is_some()),
            ("JWT_PUBLIC_KEY_FILE", raw.jwt_public_key_file.is_some()),
            ("JWT_JWKS_URL", raw.jwt_jwks_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(var, set)| set.then_some(var))
        .collect::<Vec<_>>();
        if given.len() > 1 {
            return Err(ConfigError::new(
                given[1],
                format!(
                    "set only one of the JWT keys (INBOXLINK_{} is set too)",
                    given[0]
                ),
            ));
        }
        if let Some(path) = &raw.jwt_public_key_file {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::new("JWT_PUBLIC_KEY_FILE", format!("cannot read {path}: {e}"))
            })?;
            return Ok(JwtKey::PublicKeyPem {
                path: path.into(),
                pem,
            });
        }
        if let Some(url) = &raw.jwt_jwks_url {
            let url = Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| ConfigError::new("JWT_JWKS_URL", "must be an http(s) URL"))?;
            return Ok(JwtKey::JwksUrl(url));
        }
        let var = "JWT_HS256_SECRET";
        let secret = self.given_or_generated(
            hs256,
            JWT_KEY_FILE,
            var,
            "with PostgreSQL one of INBOXLINK_JWT_HS256_SECRET, INBOXLINK_JWT_PUBLIC_KEY_FILE \
             or INBOXLINK_JWT_JWKS_URL is required",
        )?;
        let secret = secret.expose_secret();
        if secret.len() < 32 {
            return Err(ConfigError::new(var, "must be at least 32 bytes"));
        }
        Ok(JwtKey::Hs256(SecretBox::new(Box::new(
            secret.as_bytes().to_vec(),
        ))))
    }

    /// The secret `given`; else with SQLite the one kept in `file` (see
    /// [`Self::generated_secret`]); else, with PostgreSQL, the error
    /// `required` (which names what to set).
    fn given_or_generated(
        &mut self,
        given: Option<&SecretString>,
        file: &str,
        var: &str,
        required: &str,
    ) -> Result<SecretString, ConfigError> {
        match given {
            Some(v) => Ok(v.clone()),
            None if self.embedded => self.generated_secret(file, var),
            None => Err(ConfigError::new(var, required)),
        }
    }

    /// Reads `file` in the data dir, creating it with a fresh random key first if needed.
    fn generated_secret(&mut self, file: &str, var: &str) -> Result<SecretString, ConfigError> {
        let path = self.data_dir.join(file);
        let fail = |what: &str, e: std::io::Error| {
            ConfigError::new(var, format!("not set, and {what} {}: {e}", path.display()))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.data_dir)
            .map_err(|e| fail("cannot create the data dir for", e))?;
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        // Written in full to a private temp file, then published under its name
        // with a hard link, which fails if the name exists: a process starting
        // at the same moment never reads a half-written key, and an existing
        // key is never overwritten.
        let tmp = self
            .data_dir
            .join(format!(".{file}.{}", uuid::Uuid::new_v4().simple()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(STANDARD.encode(key).as_bytes())
                    .and_then(|_| f.sync_all())
            });
        let published = written.and_then(|_| std::fs::hard_link(&tmp, &path));
        let _ = std::fs::remove_file(&tmp);
        match published {
            Ok(()) => self.generated.push(path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail("cannot create", e)),
        }
        std::fs::read_to_string(&path)
            .map(|s| SecretString::from(s.trim()))
            .map_err(|e| fail("cannot read", e))
    }
}

pub fn parse_master_keys(value: &str) -> Result<Vec<MasterKey>, String> {
    let keys = value
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .enumerate()
        .map(|(i, k)| {
            let bytes = STANDARD
                .decode(k)
                .map_err(|_| format!("key {} is not valid base64", i + 1))?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| format!("key {} is {} bytes, expected 32", i + 1, b.len()))?;
            Ok(MasterKey::new(bytes))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if keys.is_empty() {
        return Err("no key given".into());
    }
    Ok(keys)
}
