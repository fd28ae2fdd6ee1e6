//! Bearer token verification.
//!
//! One key source is configured: an HS256 secret, an RSA/EC/Ed25519 public key
//! (PEM), or a JWKS URL. The accepted algorithms are pinned to the key type,
//! so a token cannot choose its own (`alg: none`, HS256 signed with a public
//! key, ...). `exp`, `iss` and `aud` are required, `nbf` is honoured, with a
//! small leeway. Beyond the signature (RFC 8725): a `crit` header is refused
//! (no extension is understood), `typ` is checked when tokens are typed, the
//! lifetime `exp - iat` is bounded, `iss` is one string, and `sub` is checked
//! and never the name of one of the service's own actors.

use crate::codes::Code;
use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::cache::{self, JwksKey, TokenCache, Verified};
use super::jwks::{JWKS_ALGORITHMS, Jwks};
use super::{Principal, Role};
use crate::config::{JwtKey, JwtSettings};
use crate::domain::OrgId;
use crate::error::Error;

pub struct Verifier {
    keys: Keys,
    issuer: String,
    audience: String,
    sub_claim: String,
    org_claim: String,
    roles_claim: String,
    leeway: u64,
    /// The expected `typ`, normalised by [`media_type`].
    token_type: Option<String>,
    /// The longest `exp - iat`, in seconds.
    max_lifetime: Option<u64>,
    /// Tokens accepted lately, by their hash, until they expire.
    cache: TokenCache,
}

/// The longest subject accepted, in characters.
const MAX_SUBJECT_CHARS: usize = 256;

enum Keys {
    Static {
        key: DecodingKey,
        algorithms: Vec<Algorithm>,
    },
    Jwks(Jwks),
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
            JwtKey::JwksUrl(url) => Keys::Jwks(Jwks::new(url.clone(), http, settings.jwks_refresh)),
        };
        Ok(Self {
            keys,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            sub_claim: settings.sub_claim.clone(),
            org_claim: settings.org_claim.clone(),
            roles_claim: settings.roles_claim.clone(),
            leeway: settings.leeway.as_secs(),
            token_type: settings.token_type.as_deref().map(media_type),
            max_lifetime: settings.max_lifetime.map(|d| d.as_secs()),
            cache: TokenCache::default(),
        })
    }

    /// Verifies a bearer token and returns the caller: a token accepted
    /// before and not expired yet from the cache ([`cache`]), while a JWKS
    /// token's key is still the one it was verified with.
    pub async fn verify(&self, token: &str) -> Result<Principal, Error> {
        let hash = cache::hash(token);
        let now = chrono::Utc::now().timestamp() as f64;
        if let Some(hit) = self.cache.get(&hash, now) {
            match (&hit.jwks_key, &self.keys) {
                (None, Keys::Static { .. }) => return Ok(hit.principal),
                (Some(was), Keys::Jwks(jwks)) => {
                    if let Ok((key, _)) = jwks.key(&was.kid).await
                        && Arc::ptr_eq(&key, &was.key)
                    {
                        return Ok(hit.principal);
                    }
                    self.cache.remove(&hash);
                }
                _ => self.cache.remove(&hash),
            }
        }
        let verified = self.verify_fully(token).await?;
        let principal = verified.principal.clone();
        self.cache.insert(hash, verified, now);
        Ok(principal)
    }

    /// Every check, with the key of the configuration or the JWKS URL.
    async fn verify_fully(&self, token: &str) -> Result<Verified, Error> {
        let header =
            decode_header(token).map_err(|_| invalid("the token is not a well-formed JWT"))?;
        self.check_header(&header)?;
        let (key, algorithms) = match &self.keys {
            Keys::Static { key, algorithms } => (KeyRef::Borrowed(key), algorithms.clone()),
            Keys::Jwks(jwks) => {
                // Before any fetch: only what a JWKS key can verify.
                if !JWKS_ALGORITHMS.contains(&header.alg) {
                    return Err(invalid("the token's algorithm is not accepted"));
                }
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| invalid("the token has no key id (kid)"))?;
                let (key, algs) = jwks.key(kid).await?;
                (
                    KeyRef::Shared(JwksKey {
                        kid: kid.to_owned(),
                        key,
                    }),
                    algs,
                )
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
        self.check_claims(&data.claims)?;
        let principal = self.principal(&data.claims)?;
        Ok(Verified {
            principal,
            // A number: jsonwebtoken checked it.
            expires: data
                .claims
                .get("exp")
                .and_then(Value::as_f64)
                .unwrap_or(f64::NEG_INFINITY),
            jwks_key: match key {
                KeyRef::Shared(k) => Some(k),
                KeyRef::Borrowed(_) => None,
            },
        })
    }

    /// What the header must (not) say, before any key is looked up.
    fn check_header(&self, header: &Header) -> Result<(), Error> {
        // RFC 7515 4.1.11: extensions named in `crit` must be understood, and
        // this service understands none (an empty list is malformed).
        if header.crit.is_some() {
            return Err(invalid(
                "the token's header names critical extensions (crit), which are not supported",
            ));
        }
        if let Some(expected) = &self.token_type
            && header.typ.as_deref().map(media_type).as_ref() != Some(expected)
        {
            return Err(invalid(format!(
                "the token's type (typ header) must be `{expected}`"
            )));
        }
        Ok(())
    }

    /// The checks on signed claims that jsonwebtoken does not make.
    fn check_claims(&self, claims: &HashMap<String, Value>) -> Result<(), Error> {
        // jsonwebtoken accepts an `iss` array with one matching element.
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(_)) => return Err(invalid("the token's issuer is not accepted")),
            _ => return Err(invalid("the token's issuer (iss) must be a single string")),
        }
        let iat = match claims.get("iat") {
            None => None,
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| invalid("a claim of the token has the wrong type (iat)"))?,
            ),
        };
        let now = chrono::Utc::now().timestamp() as f64;
        if iat.is_some_and(|iat| iat > now + self.leeway as f64) {
            return Err(invalid("the token's issue time (iat) lies in the future"));
        }
        if let Some(max) = self.max_lifetime {
            let iat = iat.ok_or_else(|| {
                invalid("the token lacks the issue time (iat) its lifetime is bounded by")
            })?;
            // `exp` is there and a number: jsonwebtoken checked it.
            let exp = claims
                .get("exp")
                .and_then(Value::as_f64)
                .unwrap_or(f64::MAX);
            if exp - iat > max as f64 {
                return Err(invalid(format!(
                    "the token's lifetime (exp - iat) exceeds {max} seconds"
                )));
            }
        }
        Ok(())
    }

    fn principal(&self, claims: &HashMap<String, Value>) -> Result<Principal, Error> {
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let subject = text(&self.sub_claim)
            .ok_or_else(|| invalid(format!("the token has no `{}` claim", self.sub_claim)))?;
        check_subject(subject, &self.sub_claim)?;
        let subject = subject.to_owned();
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
}

enum KeyRef<'a> {
    Borrowed(&'a DecodingKey),
    Shared(JwksKey),
}

impl KeyRef<'_> {
    fn get(&self) -> &DecodingKey {
        match self {
            KeyRef::Borrowed(k) => k,
            KeyRef::Shared(k) => &k.key,
        }
    }
}

/// A subject the audit log can show as it is, and that no one else can be.
fn check_subject(subject: &str, claim: &str) -> Result<(), Error> {
    let readable = subject.chars().count() <= MAX_SUBJECT_CHARS
        && !subject
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || is_invisible(c));
    if !readable {
        return Err(invalid(format!(
            "the token's `{claim}` claim must be 1-{MAX_SUBJECT_CHARS} characters without whitespace, control or invisible formatting characters"
        )));
    }
    if super::is_reserved_actor(subject) {
        return Err(invalid(format!(
            "the token's subject (`{claim}`) is reserved for the service's own audit actors"
        )));
    }
    Ok(())
}

/// Format characters that change how a text is shown without showing
/// themselves (zero-width, bidirectional overrides and isolates, the soft
/// hyphen, the byte order mark): a subject holding them could pass for another
/// in the audit log.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

/// A `typ` value as compared: lower case, without the `application/` prefix
/// (RFC 8725 3.11, RFC 7515 4.1.9).
fn media_type(typ: &str) -> String {
    let typ = typ.trim().to_ascii_lowercase();
    match typ.strip_prefix("application/") {
        Some(bare) => bare.to_owned(),
        None => typ,
    }
}

pub(super) fn invalid(detail: impl Into<String>) -> Error {
    Error::refused(Code::InvalidToken, detail)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_compare_without_case_and_prefix() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            " Application/At+JWT ",
        ] {
            assert_eq!(media_type(typ), "at+jwt", "{typ}");
        }
        assert_eq!(media_type("application/jwt"), "jwt");
    }

    #[test]
    fn subjects() {
        for ok in ["u", "jane@contoso.cz", "systematic", &"ž".repeat(256)] {
            assert!(check_subject(ok, "sub").is_ok(), "{ok}");
        }
        for bad in [
            "jane doe",
            "a\u{0}",
            "a\u{200b}\u{2028}",
            "admin\u{200b}",
            "\u{202e}nimda",
            "a\u{feff}",
            &"a".repeat(257),
            "Microsoft",
            "system:x",
        ] {
            assert!(check_subject(bad, "sub").is_err(), "{bad:?}");
        }
    }
}
