//! Minting HS256 tokens with the configured key (`inboxlink token`, the
//! sandbox). A minted token passes the configured checks: its `typ` is
//! `INBOXLINK_JWT_TYPE` when set, and a lifetime beyond
//! `INBOXLINK_JWT_MAX_LIFETIME_SECONDS` is refused rather than cut short.

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
///
/// # Errors
/// Without the HS256 secret, or when `request.ttl` exceeds the lifetime bound.
pub fn mint(settings: &JwtSettings, request: &TokenRequest) -> Result<String, ConfigError> {
    let secret = hs256_secret(settings).ok_or_else(|| {
        ConfigError::new(
            "JWT_HS256_SECRET",
            "minting tokens needs the HS256 secret; with a public key or JWKS URL, tokens come from your identity provider",
        )
    })?;
    if let Some(max) = settings.max_lifetime
        && request.ttl > max
    {
        return Err(ConfigError::new(
            "JWT_MAX_LIFETIME_SECONDS",
            format!(
                "the service refuses tokens valid for more than {} ({} s), so it would refuse one valid for {}: ask for a shorter lifetime, or raise the bound",
                humantime::format_duration(max),
                max.as_secs(),
                humantime::format_duration(request.ttl),
            ),
        ));
    }
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
    let header = Header {
        typ: Some(settings.token_type.clone().unwrap_or_else(|| "JWT".into())),
        ..Header::default()
    };
    encode(&header, &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| ConfigError::new("JWT_HS256_SECRET", format!("cannot sign: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Verifier;
    use crate::config::JwtKey;

    fn settings(max_lifetime: Option<u64>, token_type: Option<&str>) -> JwtSettings {
        JwtSettings {
            key: JwtKey::Hs256(secrecy::SecretBox::new(Box::new(
                b"mint-test-secret-0123456789abcdef".to_vec(),
            ))),
            issuer: "inboxlink".into(),
            audience: "inboxlink".into(),
            sub_claim: "sub".into(),
            org_claim: "org".into(),
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(30),
            token_type: token_type.map(str::to_owned),
            max_lifetime: max_lifetime.map(Duration::from_secs),
            jwks_refresh: Default::default(),
        }
    }

    fn request(ttl: u64) -> TokenRequest {
        TokenRequest {
            subject: "cli".into(),
            org: "acme".into(),
            roles: vec!["admin".into()],
            ttl: Duration::from_secs(ttl),
        }
    }

    #[tokio::test]
    #[expect(
        clippy::disallowed_methods,
        reason = "a test: a plain client (HS256 fetches nothing)"
    )]
    async fn minted_tokens_pass_the_checks() {
        for s in [
            settings(Some(86_400), None),
            settings(Some(3600), Some("at+jwt")),
            settings(None, Some("application/at+jwt")),
        ] {
            let ttl = s.max_lifetime.map_or(365 * 86_400, |d| d.as_secs());
            let token = mint(&s, &request(ttl)).expect("mint");
            let verifier = Verifier::new(&s, reqwest::Client::new()).expect("verifier");
            let who = verifier.verify(&token).await.expect("accepted");
            assert_eq!(who.subject, "cli");
        }
    }

    #[test]
    fn a_lifetime_beyond_the_bound_is_refused() {
        let err = mint(&settings(Some(86_400), None), &request(86_401)).unwrap_err();
        assert_eq!(err.variable, "INBOXLINK_JWT_MAX_LIFETIME_SECONDS");
        assert!(err.problem.contains("1day"), "{err}");
    }
}
