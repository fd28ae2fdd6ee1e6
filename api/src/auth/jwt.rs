//! Bearer token verification.
//!
//! One key source is configured: an HS256 secret, an RSA/EC/Ed25519 public key
//! (PEM), or a JWKS URL. The accepted algorithms are pinned to the key type,
//! so a token cannot choose its own (`alg: none`, HS256 signed with a public
//! key, ...). `exp`, `iss` and `aud` are required, `nbf` is honoured, with a
//! small leeway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::RwLock;
use url::Url;

use super::{Principal, Role};
use crate::config::{JwtKey, JwtSettings};
use crate::domain::OrgId;
use crate::error::Error;

/// How the keys of a JWKS URL are refreshed. Not configurable: the defaults
/// are the contract; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct JwksRefresh {
    /// How long fetched keys are used before they are fetched again.
    pub ttl: Duration,
    /// Keys fetched longer ago than this are not used, even when the URL fails.
    pub max_stale: Duration,
    /// The URL is fetched at most this often (an unknown `kid`, a failing URL).
    pub min_refetch: Duration,
}

impl Default for JwksRefresh {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            max_stale: Duration::from_secs(24 * 3600),
            min_refetch: Duration::from_secs(30),
        }
    }
}

pub struct Verifier {
    keys: Keys,
    issuer: String,
    audience: String,
    sub_claim: String,
    org_claim: String,
    roles_claim: String,
    leeway: u64,
}

enum Keys {
    Static {
        key: DecodingKey,
        algorithms: Vec<Algorithm>,
    },
    Jwks {
        url: Url,
        http: reqwest::Client,
        cache: RwLock<JwksCache>,
        refresh: JwksRefresh,
    },
}

/// A verification key and the algorithms accepted with it.
type KeyEntry = (Arc<DecodingKey>, Vec<Algorithm>);

#[derive(Default)]
struct JwksCache {
    keys: HashMap<String, KeyEntry>,
    /// The last successful fetch.
    fetched: Option<Instant>,
    /// The last attempt, successful or not.
    attempted: Option<Instant>,
}

impl Verifier {
    /// Builds the verifier; a key that cannot be used is a configuration error.
    pub fn new(
        settings: &JwtSettings,
        http: reqwest::Client,
    ) -> Result<Self, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let keys = match &settings.key {
            JwtKey::Hs256(secret) => Keys::Static {
                key: DecodingKey::from_secret(secret.expose_secret()),
                algorithms: vec![Algorithm::HS256],
            },
            JwtKey::PublicKeyPem { path, pem } => {
                let (key, algorithms) = public_key_from_pem(pem).ok_or_else(|| {
                    ConfigError::new(
                        "JWT_PUBLIC_KEY_FILE",
                        format!(
                            "{} is not an RSA, EC or Ed25519 public key in PEM",
                            path.display()
                        ),
                    )
                })?;
                Keys::Static { key, algorithms }
            }
            JwtKey::JwksUrl(url) => Keys::Jwks {
                url: url.clone(),
                http,
                cache: RwLock::default(),
                refresh: settings.jwks_refresh,
            },
        };
        Ok(Self {
            keys,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            sub_claim: settings.sub_claim.clone(),
            org_claim: settings.org_claim.clone(),
            roles_claim: settings.roles_claim.clone(),
            leeway: settings.leeway.as_secs(),
        })
    }

    /// Verifies a bearer token and returns the caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, Error> {
        let header =
            decode_header(token).map_err(|_| invalid("the token is not a well-formed JWT"))?;
        let (key, algorithms) = match &self.keys {
            Keys::Static { key, algorithms } => (KeyRef::Borrowed(key), algorithms.clone()),
            Keys::Jwks { .. } => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| invalid("the token has no key id (kid)"))?;
                let (key, algs) = self.jwks_key(kid).await?;
                (KeyRef::Shared(key), algs)
            }
        };
        if !algorithms.contains(&header.alg) {
            return Err(invalid("the token's algorithm is not accepted"));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = algorithms;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let data =
            decode::<HashMap<String, Value>>(token, key.get(), &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind::*;
                invalid(match e.kind() {
                    ExpiredSignature => "the token has expired",
                    ImmatureSignature => "the token is not valid yet (nbf)",
                    InvalidIssuer => "the token's issuer is not accepted",
                    InvalidAudience => "the token's audience is not accepted",
                    InvalidSignature => "the token's signature is invalid",
                    MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss, aud)",
                    InvalidClaimFormat(_) => "a claim of the token has the wrong type",
                    InvalidAlgorithm => "the token's algorithm is not accepted",
                    _ => "the token is invalid",
                })
            })?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &HashMap<String, Value>) -> Result<Principal, Error> {
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let subject = text(&self.sub_claim)
            .ok_or_else(|| invalid(format!("the token has no `{}` claim", self.sub_claim)))?
            .to_owned();
        let org = text(&self.org_claim)
            .ok_or_else(|| invalid(format!("the token has no `{}` claim", self.org_claim)))?;
        let org = OrgId::parse(org).map_err(|e| invalid(e.message))?;
        let roles = match claims.get(&self.roles_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Role::parse)
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().filter_map(Role::parse).collect(),
            _ => Vec::new(),
        };
        Ok(Principal {
            subject,
            org,
            roles,
        })
    }

    async fn jwks_key(&self, kid: &str) -> Result<KeyEntry, Error> {
        let Keys::Jwks {
            url,
            http,
            cache,
            refresh,
        } = &self.keys
        else {
            unreachable!("only called for JWKS")
        };
        {
            let c = cache.read().await;
            if let Some(answer) = c.answer(kid, refresh) {
                return answer;
            }
        }
        let mut c = cache.write().await;
        // Another request may have fetched while this one waited for the lock.
        if let Some(answer) = c.answer(kid, refresh) {
            return answer;
        }
        c.attempted = Some(Instant::now());
        match fetch_jwks(http, url).await {
            Ok(keys) => {
                c.keys = keys;
                c.fetched = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, jwks_url = %url, "cannot fetch the JWKS"),
        }
        c.answer(kid, refresh)
            .unwrap_or_else(|| Err(invalid("the token's key id is unknown")))
    }
}

impl JwksCache {
    /// The answer from the cache, or `None` when the keys should be fetched first.
    fn answer(&self, kid: &str, refresh: &JwksRefresh) -> Option<Result<KeyEntry, Error>> {
        let age = |t: Option<Instant>| t.map(|t| t.elapsed());
        let found = self.keys.get(kid).cloned();
        let fresh = age(self.fetched).is_some_and(|a| a < refresh.ttl);
        let usable = age(self.fetched).is_some_and(|a| a < refresh.max_stale);
        let tried_recently = age(self.attempted).is_some_and(|a| a < refresh.min_refetch);
        match found {
            Some(key) if fresh || (tried_recently && usable) => Some(Ok(key)),
            _ if !tried_recently => None,
            _ if self.fetched.is_none() || !usable => Some(Err(Error::Unavailable(
                "the token signing keys cannot be fetched".into(),
            ))),
            _ => Some(Err(invalid("the token's key id is unknown"))),
        }
    }
}

enum KeyRef<'a> {
    Borrowed(&'a DecodingKey),
    Shared(Arc<DecodingKey>),
}

impl KeyRef<'_> {
    fn get(&self) -> &DecodingKey {
        match self {
            KeyRef::Borrowed(k) => k,
            KeyRef::Shared(k) => k,
        }
    }
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::Unauthorized {
        code: "invalid_token",
        detail: detail.into(),
    }
}

fn public_key_from_pem(pem: &[u8]) -> Option<(DecodingKey, Vec<Algorithm>)> {
    use Algorithm::*;
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Some((k, vec![RS256, RS384, RS512, PS256, PS384, PS512]));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Some((k, vec![ES256, ES384]));
    }
    DecodingKey::from_ed_pem(pem).ok().map(|k| (k, vec![EdDSA]))
}

async fn fetch_jwks(
    http: &reqwest::Client,
    url: &Url,
) -> anyhow::Result<HashMap<String, KeyEntry>> {
    use Algorithm::*;
    let set: JwkSet = http
        .get(url.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let algorithms = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => vec![RS256, RS384, RS512, PS256, PS384, PS512],
            AlgorithmParameters::EllipticCurve(_) => vec![ES256, ES384],
            AlgorithmParameters::OctetKeyPair(_) => vec![EdDSA],
            // Symmetric keys are never accepted from a JWKS URL.
            _ => continue,
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid, (Arc::new(key), algorithms));
        }
    }
    Ok(keys)
}
