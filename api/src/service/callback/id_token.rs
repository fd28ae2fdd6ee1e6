//! What the id_token of a sign-in says, checked against the app credential
//! that asked for it. It comes straight from the token endpoint over TLS
//! (the back channel), so its claims are checked, not its signature.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::domain::{EmailAddress, TenantId};
use crate::service::app_credentials::AppCredential;

/// The id_token claims the service relies on.
#[derive(Debug)]
pub(crate) struct IdClaims {
    pub username: EmailAddress,
    pub oid: String,
    pub tid: String,
}

/// The claims of `token`, or why they are not the sign-in's: for the app
/// credential's client id and tenant, with the nonce sent, not expired (five
/// minutes of leeway), naming a user by address and an object id.
pub(crate) fn id_token_claims(
    token: &Option<SecretString>,
    app: &AppCredential,
    nonce: Option<&str>,
    now_unix: i64,
) -> std::result::Result<IdClaims, &'static str> {
    let token = token.as_ref().ok_or("no id_token")?;
    let payload = token
        .expose_secret()
        .split('.')
        .nth(1)
        .ok_or("malformed id_token")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "malformed id_token")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "malformed id_token")?;
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str());
    let audience_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => *a == app.client_id,
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| *v == app.client_id),
        _ => false,
    };
    if !audience_ok {
        return Err("the id_token is for another app (aud)");
    }
    let tid = text("tid").ok_or("the id_token names no tenant (tid)")?;
    let expected_tid = match TenantId::parse(&app.tenant_id) {
        Ok(t) if t.is_guid() => Some(t.as_str().to_owned()),
        _ => app.tenant_guid.clone(),
    };
    match expected_tid {
        Some(t) if !t.eq_ignore_ascii_case(tid) => {
            return Err("the id_token is from another tenant (tid)");
        }
        None if TenantId::parse(tid).map_or(true, |t| !t.is_guid()) => {
            return Err("the id_token's tenant (tid) is not a tenant id");
        }
        _ => {}
    }
    if nonce.is_some() && text("nonce") != nonce {
        return Err("the id_token's nonce does not match");
    }
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_i64())
        .ok_or("the id_token has no expiry")?;
    if exp.saturating_add(300) < now_unix {
        return Err("the id_token has expired");
    }
    let username = text("preferred_username")
        .or_else(|| text("email"))
        .ok_or("the id_token names no user")?;
    let username =
        EmailAddress::parse(username).map_err(|_| "the id_token's user name is not an address")?;
    let oid = text("oid")
        .and_then(|o| Uuid::try_parse(o).ok())
        .ok_or("the id_token has no object id (oid)")?;
    Ok(IdClaims {
        username,
        oid: oid.hyphenated().to_string(),
        tid: tid.to_ascii_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(tenant: &str, guid: Option<&str>) -> AppCredential {
        serde_json::from_value(serde_json::json!({
            "id": "0193a1b2-0000-7000-8000-000000000001",
            "name": "x",
            "provider": "microsoft",
            "cloud": "global",
            "credential_type": "secret",
            "graph": false,
            "previous_certificate_thumbprint_sha256": null,
            "client_id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "tenant_id": tenant,
            "tenant_guid": guid,
            "secret_hint": "****",
            "secret_expires_at": null,
            "secret_days_left": null,
            "redirect_uri": "http://x/oauth/callback",
            "problem": null,
            "created_at": "2026-12-01T00:00:00Z",
            "updated_at": "2026-12-01T00:00:00Z",
        }))
        .unwrap()
    }

    const TID: &str = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c";

    fn token(claims: serde_json::Value) -> Option<SecretString> {
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        Some(SecretString::from(format!("e30.{payload}.sig")))
    }

    fn base(exp: i64) -> serde_json::Value {
        serde_json::json!({
            "aud": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "tid": TID,
            "oid": "11111111-2222-4333-8444-555555555555",
            "preferred_username": "a@contoso.cz", "exp": exp,
        })
    }

    #[test]
    fn a_huge_expiry_does_not_overflow() {
        let claims = id_token_claims(&token(base(i64::MAX)), &app(TID, None), None, 0).unwrap();
        assert_eq!(claims.username.as_str(), "a@contoso.cz");
        let past = id_token_claims(&token(base(i64::MIN)), &app(TID, None), None, 1_000_000);
        assert!(past.is_err());
    }

    #[test]
    fn the_tenant_is_held_to_the_credential_or_its_learned_guid() {
        let other = "00000000-0000-4000-8000-000000000000";
        let mut c = base(i64::MAX);
        assert!(id_token_claims(&token(c.clone()), &app(other, None), None, 0).is_err());
        assert!(id_token_claims(&token(c.clone()), &app("contoso.cz", None), None, 0).is_ok());
        assert!(id_token_claims(&token(c.clone()), &app("contoso.cz", Some(TID)), None, 0).is_ok());
        assert!(
            id_token_claims(&token(c.clone()), &app("contoso.cz", Some(other)), None, 0).is_err()
        );
        c["preferred_username"] = "Name <a@contoso.cz>".into();
        assert!(id_token_claims(&token(c), &app(TID, None), None, 0).is_err());
    }
}
