//! Minting HS256 tokens with the configured key (`inboxlink token`).

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use crate::config::{ConfigError, JwtSettings, hs256_secret};

/// What the token says about its holder.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub subject: String,
    pub org: String,
    pub roles: Vec<String>,
    pub ttl: Duration,
}

/// A signed JWT accepted by a service configured with the same settings.
pub fn mint(settings: &JwtSettings, request: &TokenRequest) -> Result<String, ConfigError> {
    let secret = hs256_secret(settings).ok_or_else(|| {
        ConfigError::new(
            "JWT_HS256_SECRET",
            "minting tokens needs the HS256 secret; with a public key or JWKS URL, tokens come from your identity provider",
        )
    })?;
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::Map::new();
    claims.insert("iss".into(), json!(settings.issuer));
    claims.insert("aud".into(), json!(settings.audience));
    claims.insert("iat".into(), json!(now));
    claims.insert("nbf".into(), json!(now));
    claims.insert("exp".into(), json!(now + request.ttl.as_secs() as i64));
    claims.insert(settings.sub_claim.clone(), json!(request.subject));
    claims.insert(settings.org_claim.clone(), json!(request.org));
    claims.insert(settings.roles_claim.clone(), json!(request.roles));
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| ConfigError::new("JWT_HS256_SECRET", format!("cannot sign: {e}")))
}
