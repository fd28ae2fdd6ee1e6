//! HTTP handlers of the fake: authorize, token, admin consent, introspection.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use url::Url;
use uuid::Uuid;

use super::support::{
    TokenError, error_json, error_page, form_decode, ms_timestamp, ok_json, parse_form, pkce_s256,
    random_token, redirect, unix_now,
};
use super::{
    AccessGrant, AuthCode, CODE_TTL, Fault, ID_TOKEN_TTL_SECS, REFRESH_TOKEN_TTL, RedirectUse,
    RefreshGrant, SignIn, State, TenantPath,
};

type Shared = web::Data<Mutex<State>>;

/// The scopes the fake accepts for client credentials: Exchange Online's
/// and Microsoft Graph's.
const APP_ONLY_SCOPES: [&str; 2] = [
    "https://outlook.office365.com/.default",
    "https://graph.microsoft.com/.default",
];
/// OpenID Connect scopes, which name no resource.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// Length of authorization codes and refresh tokens.
const GRANT_LENGTH: usize = 96;

/// Mounts the fake's endpoints.
pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/introspect", web::post().to(introspect))
        .route("/introspect", web::get().to(introspect))
        .route("/{tenant}/oauth2/v2.0/authorize", web::get().to(authorize))
        .route("/{tenant}/oauth2/v2.0/token", web::post().to(token))
        .route("/{tenant}/v2.0/adminconsent", web::get().to(admin_consent))
        .configure(super::graph::routes)
        .configure(super::device::routes);
}

pub(super) fn lock(data: &Shared) -> MutexGuard<'_, State> {
    data.lock().unwrap_or_else(PoisonError::into_inner)
}

/// First non-empty value of a parameter.
pub(super) fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// Whether every resource scope of `requested` was consented in the grant
/// (`consented`, the scopes of the sign-in); OpenID Connect scopes need no
/// consent. Microsoft answers a scope never consented with AADSTS65001.
pub(super) fn consented(consented: &str, requested: &str) -> Result<(), TokenError> {
    let missing: Vec<&str> = requested
        .split_ascii_whitespace()
        .filter(|s| resource_of(s).is_some() && !has_scope(consented, s))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(TokenError::invalid_grant(
        65_001,
        format!(
            "The user or administrator has not consented to use the application. Send an interactive \
             authorization request for this user and resource. Missing: {}.",
            missing.join(" ")
        ),
    ))
}

pub(super) fn has_scope(scope: &str, wanted: &str) -> bool {
    scope
        .split_ascii_whitespace()
        .any(|s| s.eq_ignore_ascii_case(wanted))
}

/// The resource a scope belongs to (`None` for OpenID Connect scopes).
/// Exchange Online's two hosts count as one resource; bare names like
/// `User.Read` are Microsoft Graph, like at Microsoft.
pub(super) fn resource_of(scope: &str) -> Option<String> {
    if OIDC_SCOPES.iter().any(|s| s.eq_ignore_ascii_case(scope)) {
        return None;
    }
    let lower = scope.to_ascii_lowercase();
    let resource = match lower.rsplit_once('/') {
        Some((resource, _)) if lower.contains("://") => resource.to_owned(),
        _ => "https://graph.microsoft.com".to_owned(),
    };
    Some(match resource.as_str() {
        "https://outlook.office.com" | "https://outlook.office365.com" => {
            "exchange-online".to_owned()
        }
        "https://graph.microsoft.com" | "https://graph.microsoft.com/" => "graph".to_owned(),
        _ => resource,
    })
}

/// The scopes of the one resource a token is for (Microsoft leaves the
/// OpenID Connect scopes out of the token response's `scope`), or
/// `invalid_scope` AADSTS28000 if they name more than one resource.
pub(super) fn resource_scope(scope: &str) -> Result<String, TokenError> {
    let mut resources: Vec<String> = scope
        .split_ascii_whitespace()
        .filter_map(resource_of)
        .collect();
    resources.sort();
    resources.dedup();
    if resources.len() > 1 {
        return Err(TokenError::new(
            400,
            "invalid_scope",
            28_000,
            format!(
                "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
            ),
        ));
    }
    let resource_scopes: Vec<&str> = scope
        .split_ascii_whitespace()
        .filter(|s| resource_of(s).is_some())
        .collect();
    Ok(if resource_scopes.is_empty() {
        scope.to_owned()
    } else {
        resource_scopes.join(" ")
    })
}

// ---------------------------------------------------------------- authorize

async fn authorize(data: Shared, tenant: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let q = parse_form(req.query_string().as_bytes());
    let mut st = lock(&data);
    st.last_authorize_query = Some(q.clone());
    authorize_inner(&mut st, &tenant, &q)
}

fn page_missing(name: &str) -> HttpResponse {
    error_page(
        Some(900_144),
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

fn page_app_not_found(client_id: &str, tenant: &str) -> HttpResponse {
    error_page(
        Some(700_016),
        &format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. \
             This can happen if the application has not been installed by the administrator of the \
             tenant or consented to by any user in the tenant. You may have sent your authentication \
             request to the wrong tenant."
        ),
    )
}

fn page_redirect_mismatch(client_id: &str, redirect_uri: &str) -> HttpResponse {
    error_page(
        Some(50_011),
        &format!(
            "The redirect URI '{redirect_uri}' specified in the request does not match the redirect \
             URIs configured for the application '{client_id}'. Make sure the redirect URI sent in \
             the request matches one added to your application in the Azure portal."
        ),
    )
}

/// Tenants the path allows for this client: the tenant itself if the client
/// is registered there, every tenant of the client for `common`/`organizations`.
pub(super) fn client_tenants(st: &State, tenant_segment: &str, client_id: &str) -> Vec<String> {
    match st.resolve_tenant(tenant_segment) {
        TenantPath::Id(t) if st.app(&t, client_id).is_some() => vec![t],
        TenantPath::Multi => st.tenants_of_client(client_id),
        _ => Vec::new(),
    }
}

/// `redirect_uri` with `pairs` appended to its query, as a `302`.
fn redirect_with(url: &Url, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut url = url.clone();
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    redirect(url.as_str())
}

/// Redirect carrying a sign-in error (and the client's `state`).
fn redirect_error(url: &Url, error: &str, description: &str, state: Option<&str>) -> HttpResponse {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    redirect_with(url, &pairs)
}

fn is_pkce_string(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn authorize_inner(
    st: &mut State,
    tenant_segment: &str,
    q: &HashMap<String, String>,
) -> HttpResponse {
    let Some(client_id) = param(q, "client_id") else {
        return page_missing("client_id");
    };
    let tenants = client_tenants(st, tenant_segment, client_id);
    if tenants.is_empty() {
        return page_app_not_found(client_id, tenant_segment);
    }
    let Some(redirect_uri) = param(q, "redirect_uri") else {
        return page_missing("redirect_uri");
    };
    let Ok(redirect_url) = Url::parse(redirect_uri) else {
        return error_page(
            Some(90_102),
            "'redirect_uri' value must be a valid absolute URI.",
        );
    };
    match param(q, "response_type") {
        Some("code") => {}
        None => return page_missing("response_type"),
        Some(other) => {
            return error_page(
                Some(70_005),
                &format!(
                    "The application requested an unsupported response type '{other}'. \
                     This fake supports only 'code'."
                ),
            );
        }
    }
    match param(q, "response_mode") {
        None | Some("query") => {}
        Some(other) => {
            return error_page(
                None,
                &format!("Fake Entra ID supports only response_mode=query, not '{other}'."),
            );
        }
    }
    let Some(scope) = param(q, "scope") else {
        return page_missing("scope");
    };
    let Some(code_challenge) = param(q, "code_challenge") else {
        return error_page(
            Some(900_144),
            "The request body must contain the following parameter: 'code_challenge'. \
             (Fake Entra ID requires PKCE with S256 on every authorization request.)",
        );
    };
    if !is_pkce_string(code_challenge) {
        return error_page(Some(501_491), "Invalid size of Code_Challenge parameter.");
    }
    if param(q, "code_challenge_method") != Some("S256") {
        return error_page(
            None,
            "invalid_request: code_challenge_method must be 'S256' (fake Entra ID rejects 'plain' and a missing method).",
        );
    }
    if !st.redirect_allowed(client_id, RedirectUse::Authorize, redirect_uri) {
        return page_redirect_mismatch(client_id, redirect_uri);
    }
    st.remember_redirect(client_id, RedirectUse::Authorize, redirect_uri);

    let state = param(q, "state");
    let user = match st.sign_ins.pop_front() {
        Some(SignIn::Error { error, description }) => {
            return redirect_error(&redirect_url, &error, &description, state);
        }
        Some(SignIn::As(user)) => user,
        None => match param(q, "login_hint") {
            Some(hint) => hint.to_owned(),
            None => {
                return error_page(
                    None,
                    "Fake Entra ID has nobody to sign in: send login_hint or queue FakeEntra::next_sign_in.",
                );
            }
        },
    };
    // For common/organizations the user's home tenant decides (by domain).
    let tenant = user
        .rsplit_once('@')
        .and_then(|(_, domain)| match st.resolve_tenant(domain) {
            TenantPath::Id(t) if tenants.contains(&t) => Some(t),
            _ => None,
        })
        .unwrap_or_else(|| tenants[0].clone());

    let code = random_token(GRANT_LENGTH);
    let issued = st.now();
    st.oid_of(&user);
    st.codes.insert(
        code.clone(),
        AuthCode {
            client_id: client_id.to_owned(),
            tenant,
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: code_challenge.to_owned(),
            scope: scope.to_owned(),
            nonce: param(q, "nonce").map(str::to_owned),
            user,
            issued,
            used: false,
        },
    );
    let session_state = Uuid::new_v4().to_string();
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("session_state", &session_state));
    redirect_with(&redirect_url, &pairs)
}

// ------------------------------------------------------------ admin consent

async fn admin_consent(data: Shared, tenant: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let q = parse_form(req.query_string().as_bytes());
    let mut st = lock(&data);
    st.last_admin_consent_query = Some(q.clone());
    admin_consent_inner(&mut st, &tenant, &q)
}

fn admin_consent_inner(
    st: &mut State,
    tenant_segment: &str,
    q: &HashMap<String, String>,
) -> HttpResponse {
    let client_id = param(q, "client_id").unwrap_or_default();
    let state = param(q, "state");
    let redirect_url = param(q, "redirect_uri").and_then(|u| Url::parse(u).ok());
    let queued_error = match st.sign_ins.front() {
        Some(SignIn::Error { error, description }) => Some((error.clone(), description.clone())),
        _ => None,
    };
    let tenants = client_tenants(st, tenant_segment, client_id);
    if tenants.is_empty() {
        // Unknown app: only a queued error (the admin cancelled) goes back to the client.
        return match (queued_error, &redirect_url) {
            (Some((error, description)), Some(url)) => {
                st.sign_ins.pop_front();
                redirect_error(url, &error, &description, state)
            }
            _ if client_id.is_empty() => page_missing("client_id"),
            _ => page_app_not_found(client_id, tenant_segment),
        };
    }
    let Some(redirect_uri) = param(q, "redirect_uri") else {
        return page_missing("redirect_uri");
    };
    let Some(redirect_url) = redirect_url else {
        return error_page(
            Some(90_102),
            "'redirect_uri' value must be a valid absolute URI.",
        );
    };
    if !st.redirect_allowed(client_id, RedirectUse::AdminConsent, redirect_uri) {
        return page_redirect_mismatch(client_id, redirect_uri);
    }
    st.remember_redirect(client_id, RedirectUse::AdminConsent, redirect_uri);
    if let Some((error, description)) = queued_error {
        st.sign_ins.pop_front();
        return redirect_error(&redirect_url, &error, &description, state);
    }
    let mut pairs = vec![("admin_consent", "True"), ("tenant", tenants[0].as_str())];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    if let Some(scope) = param(q, "scope") {
        pairs.push(("scope", scope));
    }
    redirect_with(&redirect_url, &pairs)
}

// -------------------------------------------------------------------- token

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

async fn token(
    data: Shared,
    tenant: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    // A body that is not a form reads as empty, so it lacks grant_type (AADSTS900144).
    let form = if is_form(&req) {
        parse_form(&body)
    } else {
        HashMap::new()
    };
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let (latency, authority) = {
        let mut st = lock(&data);
        *st.calls.entry(grant_type).or_default() += 1;
        st.in_flight += 1;
        st.max_in_flight = st.max_in_flight.max(st.in_flight);
        (st.latency, st.authority.clone())
    };
    // Until this call is answered (whichever way it returns).
    let _in_flight = InFlight(data.clone(), Instant::now());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = {
        let mut st = lock(&data);
        if st.outage.is_empty() {
            st.faults.pop_front()
        } else {
            let next = st.outage_next % st.outage.len();
            st.outage_next = next + 1;
            Some(st.outage[next].clone())
        }
    };
    match fault {
        None => {}
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Error {
            status,
            error,
            aadsts,
            description,
        }) => return error_json(status, &error, aadsts, &description, &authority, None),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            return error_json(
                429,
                "temporarily_unavailable",
                90_033,
                "A transient error has occurred. Please try again.",
                &authority,
                Some(retry_after_secs),
            );
        }
        Some(Fault::Redirect { status, location }) => {
            return HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::TEMPORARY_REDIRECT),
            )
            .insert_header((header::LOCATION, location))
            .finish();
        }
        Some(Fault::ServerError) => {
            return error_json(
                500,
                "server_error",
                90_033,
                "A transient error has occurred. Please try again.",
                &authority,
                None,
            );
        }
    }
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut st = lock(&data);
    match token_inner(&mut st, &tenant, &form, basic) {
        Ok(mut body) => {
            // A server that says something absurd about lifetimes (tests of clamping).
            if let Some(n) = st.reported_expires_in {
                body["expires_in"] = serde_json::json!(n);
            }
            ok_json(&body)
        }
        Err(e) => e.into_response(&authority),
    }
}

/// Counts a token call as in flight until dropped, and keeps its span.
struct InFlight(Shared, Instant);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = lock(&self.0);
        st.in_flight = st.in_flight.saturating_sub(1);
        st.token_call_spans.push((self.1, Instant::now()));
    }
}

/// Client id and secret, from HTTP Basic (form-encoded parts, RFC 6749
/// section 2.3.1) or from the body.
fn client_auth(
    form: &HashMap<String, String>,
    basic: Option<&str>,
) -> Result<(String, Option<String>), TokenError> {
    if let Some(value) = basic {
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(id, secret)| (form_decode(id), form_decode(secret)))
                });
            let Some((id, secret)) = decoded else {
                return Err(TokenError::new(
                    401,
                    "invalid_client",
                    7_000_215,
                    "Invalid client secret provided. The Authorization header is not valid HTTP Basic.",
                ));
            };
            if let Some(body_id) = param(form, "client_id")
                && body_id != id
            {
                return Err(TokenError::invalid_request(
                    900_023,
                    "The client_id in the request body does not match the one in the Authorization header.",
                ));
            }
            return Ok((id, Some(secret)));
        }
    }
    let id = param(form, "client_id").ok_or_else(|| TokenError::missing("client_id"))?;
    Ok((
        id.to_owned(),
        param(form, "client_secret").map(str::to_owned),
    ))
}

fn token_inner(
    st: &mut State,
    tenant_segment: &str,
    form: &HashMap<String, String>,
    basic: Option<&str>,
) -> Result<Value, TokenError> {
    let grant_type = param(form, "grant_type").ok_or_else(|| TokenError::missing("grant_type"))?;
    let (client_id, secret) = client_auth(form, basic)?;
    let tenants = client_tenants(st, tenant_segment, &client_id);
    if tenants.is_empty() {
        return Err(TokenError::new(
            400,
            "invalid_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_segment}'. \
                 This can happen if the application has not been installed by the administrator of the tenant \
                 or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        ));
    }
    if let Some(kind) = param(form, "client_assertion_type") {
        if kind != super::assertion::JWT_BEARER {
            return Err(TokenError::invalid_request(
                50_027,
                "The client_assertion_type is not urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ));
        }
        let jwt = param(form, "client_assertion")
            .ok_or_else(|| TokenError::missing("client_assertion"))?;
        let certificates: Vec<Vec<u8>> = tenants
            .iter()
            .filter_map(|t| st.app(t, &client_id))
            .flat_map(|app| app.certificates.iter().cloned())
            .collect();
        let endpoint = format!(
            "{}/{tenant_segment}/oauth2/v2.0/token",
            st.authority.trim_end_matches('/')
        );
        super::assertion::check(
            jwt,
            &client_id,
            &certificates,
            &endpoint,
            &mut st.assertion_ids,
        )?;
        return grant(st, grant_type, &client_id, &tenants, tenant_segment, form);
    }
    if grant_type == super::device::GRANT_TYPE && secret.is_none() {
        // A public client flow: no secret, no assertion.
        return super::device::grant(st, &client_id, form);
    }
    let Some(secret) = secret else {
        return Err(TokenError::new(
            401,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    };
    let expired = tenants
        .iter()
        .filter_map(|t| st.app(t, &client_id))
        .flat_map(|app| app.secrets.iter())
        .filter(|s| s.value == secret)
        .map(|s| s.expired)
        .min(); // any matching unexpired secret wins
    match expired {
        Some(false) => {}
        Some(true) => {
            return Err(TokenError::new(
                401,
                "invalid_client",
                7_000_222,
                format!(
                    "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal \
                     to create new keys for your app: https://aka.ms/NewClientSecret, or consider using \
                     certificate credentials for added security: https://aka.ms/certCreds."
                ),
            ));
        }
        None => {
            return Err(TokenError::new(
                401,
                "invalid_client",
                7_000_215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client \
                     secret value, not the client secret ID, for a secret added to app '{client_id}'."
                ),
            ));
        }
    }
    grant(st, grant_type, &client_id, &tenants, tenant_segment, form)
}

/// The grant, once the client is authenticated.
fn grant(
    st: &mut State,
    grant_type: &str,
    client_id: &str,
    tenants: &[String],
    tenant_segment: &str,
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    match grant_type {
        "authorization_code" => authorization_code_grant(st, client_id, tenants, form),
        "refresh_token" => refresh_token_grant(st, client_id, tenants, form),
        "client_credentials" => client_credentials_grant(st, client_id, tenant_segment, form),
        other => Err(TokenError::new(
            400,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn authorization_code_grant(
    st: &mut State,
    client_id: &str,
    tenants: &[String],
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    let code = param(form, "code").ok_or_else(|| TokenError::missing("code"))?;
    let Some(grant) = st.codes.get(code).cloned() else {
        return Err(TokenError::invalid_grant(
            70_000,
            "The provided value for the 'code' parameter is not valid.",
        ));
    };
    if grant.used {
        return Err(TokenError::invalid_grant(
            54_005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    let now = st.now();
    if now.saturating_sub(grant.issued) > CODE_TTL {
        return Err(TokenError::invalid_grant(
            70_008,
            "The provided authorization code or refresh token has expired due to inactivity. \
             Send a new interactive authorization request for this user and resource.",
        ));
    }
    if grant.client_id != client_id || !tenants.contains(&grant.tenant) {
        return Err(TokenError::invalid_grant(
            70_000,
            "The provided value for the 'code' parameter is not valid. The code was issued to a different client or tenant.",
        ));
    }
    if param(form, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(TokenError::invalid_grant(
            500_117,
            "The reply uri specified in the request does not match the reply uri used in the authorization code request.",
        ));
    }
    let verified = param(form, "code_verifier")
        .is_some_and(|verifier| pkce_s256(verifier) == grant.code_challenge);
    if !verified {
        return Err(TokenError::invalid_grant(
            501_481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        ));
    }
    // A sign-in may ask consent for several resources; the redemption's
    // `scope` (optional) picks the one resource the token is for.
    let token_scope = match param(form, "scope") {
        Some(requested) => {
            consented(&grant.scope, requested)?;
            resource_scope(requested)?
        }
        None => resource_scope(&grant.scope)?,
    };
    if let Some(c) = st.codes.get_mut(code) {
        c.used = true;
    }
    Ok(issue_user_tokens(
        st,
        UserGrant {
            client_id,
            tenant: &grant.tenant,
            user: &grant.user,
            scope: &grant.scope,
            nonce: grant.nonce.as_deref(),
        },
        &token_scope,
        has_scope(&grant.scope, "offline_access"),
        has_scope(&grant.scope, "openid"),
    ))
}

fn refresh_token_grant(
    st: &mut State,
    client_id: &str,
    tenants: &[String],
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    let token = param(form, "refresh_token").ok_or_else(|| TokenError::missing("refresh_token"))?;
    let Some(grant) = st.refresh_tokens.get(token).cloned() else {
        return Err(TokenError::invalid_grant(
            9_002_313,
            "Invalid request. Request is malformed or invalid.",
        ));
    };
    if grant.client_id != client_id || !tenants.contains(&grant.tenant) {
        return Err(TokenError::invalid_grant(
            70_000,
            "Provided grant is invalid or malformed. The refresh token was issued to a different client or tenant.",
        ));
    }
    let now = st.now();
    let age = now.saturating_sub(grant.issued);
    let issued_on = ms_timestamp(unix_now().saturating_sub(age.as_secs()));
    if grant.revoked {
        return Err(TokenError::invalid_grant(
            50_173,
            format!(
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. \
                 The user might have changed or reset their password. The grant was issued on '{issued_on}' \
                 and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
                ms_timestamp(unix_now())
            ),
        ));
    }
    if age > REFRESH_TOKEN_TTL {
        return Err(TokenError::invalid_grant(
            700_082,
            format!(
                "The refresh token has expired due to inactivity. The token was issued on {issued_on} \
                 and was inactive for 90.00:00:00."
            ),
        ));
    }
    let scope = param(form, "scope").unwrap_or(&grant.scope).to_owned();
    consented(&grant.scope, &scope)?;
    let token_scope = resource_scope(&scope)?;
    // Microsoft returns a new id_token when the original grant included `openid`.
    let with_id_token = has_scope(&grant.scope, "openid") || has_scope(&scope, "openid");
    *st.refresh_token_uses.entry(token.to_owned()).or_default() += 1;
    // A client that goes back to this token after it used the one this
    // token's refresh gave has written an older token over a newer one.
    if st
        .refresh_token_successor
        .get(token)
        .is_some_and(|next| st.refresh_token_uses.contains_key(next))
    {
        st.refresh_token_successor_reuses += 1;
    }
    let answer = issue_user_tokens(
        st,
        UserGrant {
            client_id,
            tenant: &grant.tenant,
            user: &grant.user,
            // The new refresh token carries the grant's consent, whatever
            // one resource this request asked a token for.
            scope: &grant.scope,
            nonce: None,
        },
        &token_scope,
        true,
        with_id_token,
    );
    if let Some(next) = answer["refresh_token"].as_str() {
        st.refresh_token_successor
            .insert(token.to_owned(), next.to_owned());
    }
    Ok(answer)
}

fn client_credentials_grant(
    st: &mut State,
    client_id: &str,
    tenant_segment: &str,
    form: &HashMap<String, String>,
) -> Result<Value, TokenError> {
    let tenant = match st.resolve_tenant(tenant_segment) {
        TenantPath::Id(t) => t,
        _ => {
            return Err(TokenError::invalid_request(
                9_001_023,
                "The grant type isn't supported over the /common or /consumers endpoints. \
                 Please use the tenant-specific endpoint.",
            ));
        }
    };
    let scope = param(form, "scope").ok_or_else(|| TokenError::missing("scope"))?;
    let Some(scope) = APP_ONLY_SCOPES.into_iter().find(|s| *s == scope.trim()) else {
        return Err(TokenError::new(
            400,
            "invalid_scope",
            1_002_012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope \
                 value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    };
    let (access_token, ttl) = new_access_token(st, client_id, &tenant, None, scope);
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": ttl,
        "ext_expires_in": ttl,
        "access_token": access_token,
    }))
}

/// Creates and records an access token; returns it and its `expires_in`.
fn new_access_token(
    st: &mut State,
    client_id: &str,
    tenant: &str,
    user: Option<&str>,
    scope: &str,
) -> (String, u64) {
    let ttl = st.access_token_ttl;
    let token = loop {
        let t = random_token(st.token_length);
        if !st.access_tokens.contains_key(&t) {
            break t;
        }
    };
    let now = st.now();
    st.access_tokens.insert(
        token.clone(),
        AccessGrant {
            client_id: client_id.to_owned(),
            tenant: tenant.to_owned(),
            user: user.map(str::to_owned),
            scope: scope.to_owned(),
            expires: now + Duration::from_secs(ttl),
            expires_unix: unix_now() + ttl,
            revoked: false,
        },
    );
    (token, ttl)
}

/// Who and what a user token response is for.
pub(super) struct UserGrant<'a> {
    pub(super) client_id: &'a str,
    pub(super) tenant: &'a str,
    pub(super) user: &'a str,
    /// Scope of the grant as requested (kept on a new refresh token).
    pub(super) scope: &'a str,
    /// `nonce` for the `id_token` (only on the authorization code grant).
    pub(super) nonce: Option<&'a str>,
}

/// Token response for a user: an access token for `token_scope`, plus a new
/// refresh token if `with_refresh`, plus an `id_token` if `with_id_token`.
pub(super) fn issue_user_tokens(
    st: &mut State,
    grant: UserGrant<'_>,
    token_scope: &str,
    with_refresh: bool,
    with_id_token: bool,
) -> Value {
    let (access_token, ttl) = new_access_token(
        st,
        grant.client_id,
        grant.tenant,
        Some(grant.user),
        token_scope,
    );
    let mut body = json!({
        "token_type": "Bearer",
        "scope": token_scope,
        "expires_in": ttl,
        "ext_expires_in": ttl,
        "access_token": access_token,
    });
    if with_refresh {
        let refresh_token = random_token(GRANT_LENGTH);
        let issued = st.now();
        st.refresh_tokens.insert(
            refresh_token.clone(),
            RefreshGrant {
                client_id: grant.client_id.to_owned(),
                tenant: grant.tenant.to_owned(),
                user: grant.user.to_owned(),
                scope: grant.scope.to_owned(),
                issued,
                revoked: false,
            },
        );
        body["refresh_token"] = Value::String(refresh_token);
    }
    if with_id_token {
        body["id_token"] = Value::String(id_token(st, &grant));
    }
    body
}

/// "alice.smith@x" -> "Alice Smith".
fn display_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .split(['.', '_', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An HS256-signed `id_token` with Microsoft's v2.0 claims.
fn id_token(st: &mut State, grant: &UserGrant<'_>) -> String {
    let UserGrant {
        client_id,
        tenant,
        user,
        nonce,
        ..
    } = *grant;
    let oid = st.oid_of(user).to_string();
    // Like Microsoft, `sub` is pairwise: stable per user and app.
    let sub = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{client_id}:{oid}").as_bytes()));
    let iat = unix_now();
    let mut claims = json!({
        "ver": "2.0",
        "iss": format!("{}/{tenant}/v2.0", st.authority),
        "aud": client_id,
        "iat": iat,
        "nbf": iat,
        "exp": iat + ID_TOKEN_TTL_SECS,
        "tid": tenant,
        "oid": oid,
        "sub": sub,
        "preferred_username": user,
        "email": user,
        "name": display_name(user),
        "uti": random_token(22),
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = Value::String(nonce.to_owned());
    }
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&st.jwt_secret),
    )
    .expect("HS256 signing of a JSON object does not fail")
}

// ------------------------------------------------------------ introspection

async fn introspect(data: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = parse_form(&body);
    let query = parse_form(req.query_string().as_bytes());
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let token = param(&form, "token")
        .or_else(|| param(&query, "token"))
        .map(str::to_owned)
        .or(bearer);
    let mut st = lock(&data);
    let body = token
        .and_then(|t| introspection_of(&mut st, &t))
        .unwrap_or_else(|| json!({ "active": false }));
    // Always 200: Dovecot treats a 4xx as a temporary failure.
    ok_json(&body)
}

fn introspection_of(st: &mut State, token: &str) -> Option<Value> {
    let now = st.now();
    let grant = st.access_tokens.get(token)?;
    if grant.revoked || now >= grant.expires {
        return None;
    }
    let grant = grant.clone();
    let mut body = json!({
        "active": true,
        "token_type": "Bearer",
        "scope": grant.scope,
        "client_id": grant.client_id,
        "tid": grant.tenant,
        "exp": grant.expires_unix,
    });
    if let Some(user) = &grant.user {
        body["email"] = Value::String(user.clone());
        body["sub"] = Value::String(st.oid_of(user).to_string());
    }
    Some(body)
}
