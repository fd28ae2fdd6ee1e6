//! The fake's device-code flow (RFC 8628, Microsoft's
//! `POST {tenant}/oauth2/v2.0/devicecode`, then the token endpoint with
//! `grant_type=urn:ietf:params:oauth:grant-type:device_code`). There is no
//! device login page: a test approves a code as a user
//! ([`super::FakeEntra::approve_device_code`]), makes it expire, or asks
//! for one `slow_down`. Until approved, a poll answers
//! `authorization_pending` (AADSTS70016); an expired code `expired_token`
//! (AADSTS70020). Public client flows must be allowed for the app
//! ([`super::FakeEntra::allow_public_client_flows`]), else the poll is
//! refused as a confidential client without a secret (AADSTS7000218).

use std::collections::HashMap;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::endpoints::{UserGrant, consented, has_scope, issue_user_tokens, param, resource_scope};
use super::support::{TokenError, ok_json, parse_form, random_token};
use super::{DeviceGrant, State};

type Shared = web::Data<std::sync::Mutex<State>>;

/// `urn:ietf:params:oauth:grant-type:device_code`.
pub(super) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const LIFETIME_SECS: u64 = 900;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/{tenant}/oauth2/v2.0/devicecode",
        web::post().to(devicecode),
    );
}

async fn devicecode(
    data: Shared,
    tenant: web::Path<String>,
    _req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form = parse_form(&body);
    let mut st = super::endpoints::lock(&data);
    let authority = st.authority.clone();
    let answer = (|| {
        let client_id =
            param(&form, "client_id").ok_or_else(|| TokenError::missing("client_id"))?;
        let scope = param(&form, "scope").ok_or_else(|| TokenError::missing("scope"))?;
        let tenants = super::endpoints::client_tenants(&st, &tenant, client_id);
        let Some(tenant) = tenants.into_iter().next() else {
            return Err(TokenError::new(
                400,
                "unauthorized_client",
                700_016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory."
                ),
            ));
        };
        let device_code = random_token(64);
        let user_code = random_token(9)
            .to_ascii_uppercase()
            .replace(['-', '_'], "X");
        let issued = st.now();
        st.device_codes.insert(
            device_code.clone(),
            DeviceGrant {
                client_id: client_id.to_owned(),
                tenant,
                scope: scope.to_owned(),
                user_code: user_code.clone(),
                issued,
                approved_by: None,
                expired: false,
                slow_down: false,
                used: false,
                polls: Vec::new(),
            },
        );
        Ok(json!({
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": LIFETIME_SECS,
            "interval": st.device_interval,
            "message": format!("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."),
        }))
    })();
    match answer {
        Ok(body) => ok_json(&body),
        Err(e) => e.into_response(&authority),
    }
}

/// A poll of the token endpoint with a device code.
pub(super) fn grant(
    st: &mut State,
    client_id: &str,
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    if !st.public_clients.contains(client_id) {
        return Err(TokenError::new(
            401,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    let code = param(form, "device_code").ok_or_else(|| TokenError::missing("device_code"))?;
    let now = st.now();
    let Some(grant) = st.device_codes.get_mut(code) else {
        return Err(TokenError::invalid_grant(
            70_000,
            "The provided value for the input parameter 'device_code' is not valid.",
        ));
    };
    grant.polls.push(now);
    if grant.client_id != client_id || grant.used {
        return Err(TokenError::invalid_grant(
            70_000,
            "The provided value for the input parameter 'device_code' is not valid.",
        ));
    }
    if grant.expired || now.saturating_sub(grant.issued) > Duration::from_secs(LIFETIME_SECS) {
        return Err(TokenError::new(
            400,
            "expired_token",
            70_020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        ));
    }
    if std::mem::take(&mut grant.slow_down) {
        return Err(TokenError::new(
            400,
            "slow_down",
            70_016,
            "OAuth 2.0 device flow error. Authorization is pending. Poll less often.",
        ));
    }
    let Some(user) = grant.approved_by.clone() else {
        return Err(TokenError::new(
            400,
            "authorization_pending",
            70_016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        ));
    };
    grant.used = true;
    let grant = grant.clone();
    let scope = param(form, "scope").unwrap_or(&grant.scope).to_owned();
    consented(&grant.scope, &scope)?;
    let token_scope = resource_scope(&scope)?;
    Ok(issue_user_tokens(
        st,
        UserGrant {
            client_id,
            tenant: &grant.tenant,
            user: &user,
            scope: &grant.scope,
            nonce: None,
        },
        &token_scope,
        has_scope(&grant.scope, "offline_access"),
        has_scope(&grant.scope, "openid"),
    ))
}
