//! Tests of the fake Entra ID itself (`inboxlink_tests::fake_entra`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use inboxlink_tests::fake_entra::client::{
    self, DELEGATED_SCOPE as SCOPE, REDIRECT_URI as REDIRECT, VERIFIER,
};
use inboxlink_tests::fake_entra::{FakeEntra, Fault, SignIn, id_token_claims, pkce_s256};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use serde_json::Value;

const TENANT: &str = "4f8c2d1a-6b3e-4c5f-9a7d-2e1b0c9d8f7a";
const OTHER_TENANT: &str = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
const DOMAIN: &str = "contoso.example";
const CLIENT_ID: &str = "11111111-2222-4333-8444-555555555555";
const SECRET: &str = "s3cret~value";
const USER: &str = "alice.smith@contoso.example";
const APP_SCOPE: &str = "https://outlook.office365.com/.default";

async fn setup() -> (FakeEntra, reqwest::Client) {
    let entra = FakeEntra::start().await;
    entra.register_app(TENANT, CLIENT_ID, SECRET);
    entra.add_domain(TENANT, DOMAIN);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client");
    (entra, http)
}

/// Authorize request parameters as the service sends them; `overrides`
/// replace or add (an empty value removes the parameter).
fn authorize_params(overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params = client::authorize_query(CLIENT_ID, USER);
    for (k, v) in overrides {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push((k.to_string(), v.to_string()));
        }
    }
    params
}

async fn authorize(
    entra: &FakeEntra,
    http: &reqwest::Client,
    tenant: &str,
    overrides: &[(&str, &str)],
) -> reqwest::Response {
    http.get(format!(
        "{}/{tenant}/oauth2/v2.0/authorize",
        entra.authority()
    ))
    .query(&authorize_params(overrides))
    .send()
    .await
    .expect("authorize request")
}

/// Query parameters of a 302's Location, after checking it goes to `REDIRECT`.
fn redirect_query(resp: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()[LOCATION].to_str().expect("ASCII Location");
    let url = url::Url::parse(location).expect("absolute Location");
    assert_eq!(
        format!("{}{}", &url[..url::Position::BeforePath], url.path()),
        REDIRECT
    );
    url.query_pairs().into_owned().collect()
}

/// Signs in (approving as `USER` unless a `SignIn` is queued) and returns the code.
async fn sign_in(entra: &FakeEntra, http: &reqwest::Client) -> String {
    let resp = authorize(entra, http, TENANT, &[]).await;
    let q = redirect_query(&resp);
    assert_eq!(q["state"], "state-123");
    q["code"].clone()
}

/// Signs in and redeems the code: the tokens of a fresh sign-in.
async fn signed_in(entra: &FakeEntra, http: &reqwest::Client) -> TokenResponse {
    let code = sign_in(entra, http).await;
    redeem(entra, http, &code).await
}

struct TokenResponse {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn token(
    entra: &FakeEntra,
    http: &reqwest::Client,
    tenant: &str,
    form: &[(&str, &str)],
) -> TokenResponse {
    let resp = http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", entra.authority()))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let json = resp.json().await.expect("token endpoint answers JSON");
    TokenResponse {
        status,
        headers,
        json,
    }
}

/// The code redemption as the service sends it; `overrides` replace fields.
fn redeem_form<'a>(code: &'a str, overrides: &[(&str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    let mut form = client::redeem_form(CLIENT_ID, SECRET, code);
    for (name, value) in overrides {
        let field = form.iter_mut().find(|(n, _)| n == name).expect("a field");
        field.1 = value;
    }
    form
}

async fn redeem(entra: &FakeEntra, http: &reqwest::Client, code: &str) -> TokenResponse {
    token(entra, http, TENANT, &redeem_form(code, &[])).await
}

async fn refresh(entra: &FakeEntra, http: &reqwest::Client, refresh_token: &str) -> TokenResponse {
    token(
        entra,
        http,
        TENANT,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("refresh_token", refresh_token),
            ("scope", SCOPE),
        ],
    )
    .await
}

async fn introspect(entra: &FakeEntra, http: &reqwest::Client, access_token: &str) -> Value {
    let resp = http
        .post(entra.introspection_url())
        .form(&[("token", access_token)])
        .send()
        .await
        .expect("introspection request");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.expect("introspection answers JSON")
}

/// Checks a Microsoft-style error body and returns its description.
fn assert_ms_error(resp: &TokenResponse, status: u16, error: &str, code: u64) -> String {
    assert_eq!(resp.status.as_u16(), status, "{}", resp.json);
    assert_eq!(resp.json["error"], error, "{}", resp.json);
    assert_eq!(resp.json["error_codes"], serde_json::json!([code]));
    let description = resp.json["error_description"]
        .as_str()
        .expect("error_description is a string")
        .to_owned();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: "), "{description}");
    assert!(
        description.contains("\r\nCorrelation ID: "),
        "{description}"
    );
    assert!(description.contains("\r\nTimestamp: "), "{description}");
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(resp.json[field].is_string(), "{field} missing");
    }
    description
}

async fn page_text(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(LOCATION).is_none());
    resp.text().await.expect("page body")
}

#[tokio::test(flavor = "multi_thread")]
async fn code_flow_with_pkce_returns_tokens_and_id_token_claims() {
    let (entra, http) = setup().await;
    // The verified domain routes to the tenant.
    let resp = authorize(&entra, &http, DOMAIN, &[]).await;
    let q = redirect_query(&resp);
    assert_eq!(q["state"], "state-123");
    let code = &q["code"];

    let sent = entra.last_authorize_query().unwrap();
    assert_eq!(sent["code_challenge"], pkce_s256(VERIFIER));
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_eq!(sent["prompt"], "select_account");
    assert_eq!(sent["login_hint"], USER);

    let t = redeem(&entra, &http, code).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.json);
    assert_eq!(t.json["token_type"], "Bearer");
    assert_eq!(t.json["expires_in"], 3600);
    assert_eq!(t.json["ext_expires_in"], 3600);
    assert_eq!(
        t.json["scope"],
        "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
    );
    assert_eq!(t.json["access_token"].as_str().unwrap().len(), 40);
    assert!(t.json["refresh_token"].as_str().unwrap().len() >= 32);

    let claims = id_token_claims(t.json["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(
        claims["iss"],
        format!("{}/{TENANT}/v2.0", entra.authority())
    );
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["oid"], entra.user_oid(USER));
    assert_eq!(claims["preferred_username"], USER);
    assert_eq!(claims["email"], USER);
    assert_eq!(claims["name"], "Alice Smith");
    assert_eq!(claims["nonce"], "nonce-456");
    assert!(claims["sub"].as_str().unwrap().len() >= 20);
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["nbf"].as_u64().unwrap(), iat);
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 3600);

    // oid is stable per user; HTTP Basic client authentication works too.
    let code = sign_in(&entra, &http).await;
    let resp = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", entra.authority()))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let json: Value = resp.json().await.unwrap();
    let claims2 = id_token_claims(json["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims2["oid"], claims["oid"]);
    assert_eq!(claims2["sub"], claims["sub"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn pkce_mismatch_is_rejected_with_501481() {
    let (entra, http) = setup().await;
    let code = sign_in(&entra, &http).await;
    let form = |verifier: &'static str| redeem_form(&code, &[("code_verifier", verifier)]);
    let other = form("a-different-verifier-that-is-long-enough-0123456789");
    let t = token(&entra, &http, TENANT, &other).await;
    assert_ms_error(&t, 400, "invalid_grant", 501_481);

    // Without a verifier at all.
    let t = token(&entra, &http, TENANT, &form("")[..5]).await;
    assert_ms_error(&t, 400, "invalid_grant", 501_481);
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_code_errors() {
    let (entra, http) = setup().await;
    let code = sign_in(&entra, &http).await;
    assert_eq!(redeem(&entra, &http, &code).await.status, StatusCode::OK);

    // Reuse.
    let t = redeem(&entra, &http, &code).await;
    assert_ms_error(&t, 400, "invalid_grant", 54_005);

    // Unknown code.
    let t = redeem(&entra, &http, "not-a-code").await;
    assert_ms_error(&t, 400, "invalid_grant", 70_000);

    // redirect_uri not byte-identical.
    let code = sign_in(&entra, &http).await;
    let form = redeem_form(
        &code,
        &[("redirect_uri", "http://localhost:8080/oauth/callback/")],
    );
    let t = token(&entra, &http, TENANT, &form).await;
    assert_ms_error(&t, 400, "invalid_grant", 500_117);

    // Expired after 10 minutes.
    entra.advance_time(Duration::from_secs(601));
    let t = redeem(&entra, &http, &code).await;
    assert_ms_error(&t, 400, "invalid_grant", 70_008);

    // Wrong secret, unknown client.
    let code = sign_in(&entra, &http).await;
    let form = redeem_form(&code, &[("client_secret", "the-secret-id-not-the-value")]);
    let t = token(&entra, &http, TENANT, &form).await;
    assert_ms_error(&t, 401, "invalid_client", 7_000_215);
    let t = token(&entra, &http, OTHER_TENANT, &redeem_form(&code, &[])).await;
    assert_ms_error(&t, 400, "invalid_client", 700_016);

    // Expired secret.
    entra.expire_secret(CLIENT_ID, SECRET);
    let t = redeem(&entra, &http, &code).await;
    assert_ms_error(&t, 401, "invalid_client", 7_000_222);
}

#[tokio::test(flavor = "multi_thread")]
async fn mixing_resources_in_one_request_fails_with_28000() {
    let (entra, http) = setup().await;
    let scope = format!("{SCOPE} User.Read");
    let resp = authorize(&entra, &http, TENANT, &[("scope", scope.as_str())]).await;
    let code = redirect_query(&resp)["code"].clone();
    let t = redeem(&entra, &http, &code).await;
    assert_ms_error(&t, 400, "invalid_scope", 28_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn authorize_errors_are_pages_or_redirects() {
    let (entra, http) = setup().await;

    // Unknown client / tenant: a page, no redirect.
    let resp = authorize(&entra, &http, TENANT, &[("client_id", "unknown-app")]).await;
    assert!(page_text(resp).await.contains("AADSTS700016"));
    let resp = authorize(&entra, &http, OTHER_TENANT, &[]).await;
    assert!(page_text(resp).await.contains("AADSTS700016"));

    // PKCE and response_type are required.
    for overrides in [
        [("code_challenge", "")],
        [("code_challenge_method", "plain")],
        [("code_challenge_method", "")],
        [("response_type", "token")],
        [("response_type", "")],
    ] {
        let resp = authorize(&entra, &http, TENANT, &overrides).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{overrides:?}");
    }

    // The first redirect URI is remembered; another one is refused.
    sign_in(&entra, &http).await;
    let resp = authorize(
        &entra,
        &http,
        TENANT,
        &[("redirect_uri", "https://evil.example/cb")],
    )
    .await;
    assert!(page_text(resp).await.contains("AADSTS50011"));

    // A queued sign-in error goes back to the client.
    entra.next_sign_in(SignIn::Error {
        error: "access_denied".into(),
        description: "AADSTS65004: User declined to consent to access the app.".into(),
    });
    let resp = authorize(&entra, &http, TENANT, &[]).await;
    let q = redirect_query(&resp);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(
        q["error_description"],
        "AADSTS65004: User declined to consent to access the app."
    );
    assert_eq!(q["state"], "state-123");
    assert!(!q.contains_key("code"));

    // A queued account overrides login_hint (the wrong account signed in).
    entra.next_sign_in(SignIn::As("bob@contoso.example".into()));
    let t = signed_in(&entra, &http).await;
    let claims = id_token_claims(t.json["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["preferred_username"], "bob@contoso.example");
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotates_and_old_token_stays_valid() {
    let (entra, http) = setup().await;
    let first = signed_in(&entra, &http).await;
    let rt1 = first.json["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(entra.refresh_token_count_valid(), 1);

    let second = refresh(&entra, &http, &rt1).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.json);
    let rt2 = second.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert_ne!(second.json["access_token"], first.json["access_token"]);
    let claims = id_token_claims(second.json["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["preferred_username"], USER);

    // Microsoft does not revoke the old refresh token.
    let third = refresh(&entra, &http, &rt1).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.json);
    assert_eq!(entra.refresh_token_count_valid(), 3);

    // Refresh tokens live 90 days, each one from its own issue time.
    entra.advance_time(Duration::from_secs(89 * 86_400));
    let fourth = refresh(&entra, &http, &rt2).await;
    assert_eq!(fourth.status, StatusCode::OK, "{}", fourth.json);
    let rt4 = fourth.json["refresh_token"].as_str().unwrap().to_owned();
    entra.advance_time(Duration::from_secs(2 * 86_400));
    let t = refresh(&entra, &http, &rt1).await;
    assert_ms_error(&t, 400, "invalid_grant", 700_082);
    assert_eq!(refresh(&entra, &http, &rt4).await.status, StatusCode::OK);

    // Unknown refresh token.
    let t = refresh(&entra, &http, "nope").await;
    assert_eq!(t.json["error"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_user_makes_refresh_fail_with_50173_and_access_tokens_inactive() {
    let (entra, http) = setup().await;
    let t = signed_in(&entra, &http).await;
    let rt = t.json["refresh_token"].as_str().unwrap().to_owned();
    let at = t.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&entra, &http, &at).await["active"], true);

    entra.revoke_user("Alice.Smith@contoso.example");
    let t = refresh(&entra, &http, &rt).await;
    assert_ms_error(&t, 400, "invalid_grant", 50_173);
    assert_eq!(
        introspect(&entra, &http, &at).await,
        serde_json::json!({"active": false})
    );
    assert_eq!(entra.refresh_token_count_valid(), 0);

    // Signing in again gives working tokens.
    let t = signed_in(&entra, &http).await;
    let rt = t.json["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(&entra, &http, &rt).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults() {
    let (entra, http) = setup().await;
    let code = sign_in(&entra, &http).await;
    let rt = redeem(&entra, &http, &code).await.json["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    entra.inject(Fault::TooManyRequests {
        retry_after_secs: 7,
    });
    entra.inject(Fault::ServerError);
    entra.inject(Fault::Error {
        status: 400,
        error: "invalid_grant".into(),
        aadsts: 50_076,
        description: "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication.".into(),
    });
    entra.inject(Fault::Delay(Duration::from_millis(300)));

    let t = refresh(&entra, &http, &rt).await;
    assert_eq!(t.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(t.headers[RETRY_AFTER], "7");
    assert_eq!(t.json["error"], "temporarily_unavailable");

    let t = refresh(&entra, &http, &rt).await;
    assert_eq!(t.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(t.json["error"], "server_error");

    let t = refresh(&entra, &http, &rt).await;
    assert_ms_error(&t, 400, "invalid_grant", 50_076);

    let started = Instant::now();
    let t = refresh(&entra, &http, &rt).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(t.status, StatusCode::OK, "{}", t.json);

    // Latency applies to every call.
    entra.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(refresh(&entra, &http, &rt).await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));

    assert_eq!(entra.token_calls("refresh_token"), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials() {
    let (entra, http) = setup().await;
    let creds = |scope: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", scope),
        ]
    };
    for tenant in [TENANT, DOMAIN] {
        let t = token(&entra, &http, tenant, &creds(APP_SCOPE)).await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.json);
        assert_eq!(t.json["token_type"], "Bearer");
        assert_eq!(t.json["expires_in"], 3600);
        assert!(t.json.get("refresh_token").is_none());
        assert!(t.json.get("id_token").is_none());
        let info = introspect(&entra, &http, t.json["access_token"].as_str().unwrap()).await;
        assert_eq!(info["active"], true);
        assert!(info.get("email").is_none());
        assert_eq!(info["client_id"], CLIENT_ID);
        assert_eq!(info["tid"], TENANT);
    }

    let delegated = creds("https://outlook.office.com/IMAP.AccessAsUser.All");
    let t = token(&entra, &http, TENANT, &delegated).await;
    assert_ms_error(&t, 400, "invalid_scope", 1_002_012);

    let t = token(&entra, &http, "common", &creds(APP_SCOPE)).await;
    assert_ms_error(&t, 400, "invalid_request", 9_001_023);

    // Another tenant that does not have the app.
    entra.register_app(OTHER_TENANT, "other-app", "x");
    let t = token(&entra, &http, OTHER_TENANT, &creds(APP_SCOPE)).await;
    assert_ms_error(&t, 400, "invalid_client", 700_016);

    assert_eq!(entra.token_calls("client_credentials"), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn introspection_reports_active_and_inactive_tokens() {
    let (entra, http) = setup().await;
    entra.set_token_length(2000);
    entra.set_access_token_ttl(120);
    let t = signed_in(&entra, &http).await;
    assert_eq!(t.json["expires_in"], 120);
    let at = t.json["access_token"].as_str().unwrap().to_owned();
    assert_eq!(at.len(), 2000);
    assert!(
        at.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );

    let info = introspect(&entra, &http, &at).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["email"], USER);
    assert_eq!(info["sub"], entra.user_oid(USER));
    assert_eq!(info["client_id"], CLIENT_ID);
    assert_eq!(
        info["scope"],
        "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
    );

    // Unknown tokens and missing tokens: still 200.
    assert_eq!(
        introspect(&entra, &http, "garbage").await,
        serde_json::json!({"active": false})
    );
    let resp = http.post(entra.introspection_url()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Expired.
    entra.advance_time(Duration::from_secs(121));
    assert_eq!(introspect(&entra, &http, &at).await["active"], false);
}

// Also works on the current-thread runtime.
#[tokio::test]
async fn token_calls_are_counted_per_grant_type() {
    let (entra, http) = setup().await;
    assert_eq!(entra.token_calls("authorization_code"), 0);
    let code = sign_in(&entra, &http).await;
    entra.inject(Fault::ServerError);
    assert_eq!(
        redeem(&entra, &http, &code).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let t = redeem(&entra, &http, &code).await;
    let rt = t.json["refresh_token"].as_str().unwrap().to_owned();
    redeem(&entra, &http, &code).await; // 54005, still counted
    refresh(&entra, &http, &rt).await;
    assert_eq!(entra.token_calls("authorization_code"), 3);
    assert_eq!(entra.token_calls("refresh_token"), 1);
    assert_eq!(entra.token_calls("client_credentials"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_consent() {
    let (entra, http) = setup().await;
    let consent = |client_id: &'static str| {
        let url = format!("{}/{DOMAIN}/v2.0/adminconsent", entra.authority());
        http.get(url)
            .query(&[
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("state", "consent-state"),
                ("scope", APP_SCOPE),
            ])
            .send()
    };
    let resp = consent(CLIENT_ID).await.unwrap();
    let q = redirect_query(&resp);
    assert_eq!(q["admin_consent"], "True");
    assert_eq!(q["tenant"], TENANT);
    assert_eq!(q["state"], "consent-state");
    assert_eq!(
        entra.last_admin_consent_query().unwrap()["client_id"],
        CLIENT_ID
    );

    // Unknown app: a page, unless a sign-in error is queued.
    let resp = consent("unknown-app").await.unwrap();
    assert!(page_text(resp).await.contains("AADSTS700016"));
    entra.next_sign_in(SignIn::Error {
        error: "access_denied".into(),
        description: "AADSTS65004: The admin declined.".into(),
    });
    let resp = consent("unknown-app").await.unwrap();
    let q = redirect_query(&resp);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "consent-state");
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_are_independent_and_stop_when_dropped() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    send_sync_clone::<FakeEntra>();
    let (a, http) = setup().await;
    let b = FakeEntra::start().await;
    assert_ne!(a.authority(), b.authority());
    let authority = b.authority();
    drop(b);
    // The port stops answering shortly after the last handle is gone.
    let mut stopped = false;
    for _ in 0..50 {
        let url = format!("{authority}/introspect");
        if http.post(url).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped);
    assert_eq!(introspect(&a, &http, "x").await["active"], false);
}

/// A key pair and a self-signed certificate for client assertions, made
/// with rcgen (not with the service's code).
fn certificate() -> (String, jsonwebtoken::EncodingKey, String) {
    use base64::Engine;
    use sha2::Digest;
    let (pem, key) = FakeEntra::new_certificate();
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(&der.contents));
    let signing = jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).expect("signing key");
    (pem, signing, x5t)
}

fn unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A client assertion: `claims` replace the valid defaults (`null` removes one).
fn assertion(key: &jsonwebtoken::EncodingKey, x5t: &str, aud: &str, claims: Value) -> String {
    let now = unix();
    let mut all = serde_json::json!({
        "aud": aud, "iss": CLIENT_ID, "sub": CLIENT_ID,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now, "iat": now, "exp": now + 300,
    });
    for (k, v) in claims.as_object().expect("an object") {
        all[k] = v.clone();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
    header.x5t_s256 = Some(x5t.to_owned());
    jsonwebtoken::encode(&header, &all, key).expect("signed")
}

async fn with_assertion(entra: &FakeEntra, http: &reqwest::Client, jwt: &str) -> TokenResponse {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("scope", APP_SCOPE),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", jwt),
    ];
    token(entra, http, TENANT, &form).await
}

#[tokio::test]
async fn client_assertions_are_checked_as_microsoft_checks_them() {
    let (entra, http) = setup().await;
    let (pem, key, x5t) = certificate();
    let aud = format!("{}/{TENANT}/oauth2/v2.0/token", entra.authority());
    let good = assertion(&key, &x5t, &aud, serde_json::json!({}));
    // Not uploaded yet: the key is not found.
    let resp = with_assertion(&entra, &http, &good).await;
    let text = assert_ms_error(&resp, 401, "invalid_client", 700_027);
    assert!(text.contains("key was not found"), "{text}");

    entra.add_certificate(TENANT, CLIENT_ID, &pem);
    let fresh = assertion(&key, &x5t, &aud, serde_json::json!({}));
    let resp = with_assertion(&entra, &http, &fresh).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.json);
    assert!(resp.json["access_token"].is_string());

    // Each defect on its own, and the error Microsoft gives for it.
    let (_, other_key, _) = certificate();
    let now = unix();
    let cases: Vec<(&str, String, u16, &str, u64)> = vec![
        (
            "another key, this thumbprint",
            assertion(&other_key, &x5t, &aud, serde_json::json!({})),
            401,
            "invalid_client",
            700_027,
        ),
        (
            "an unknown thumbprint",
            assertion(&key, "AAAA", &aud, serde_json::json!({})),
            401,
            "invalid_client",
            700_027,
        ),
        (
            "another audience",
            assertion(
                &key,
                &x5t,
                "https://login.microsoftonline.com/x/oauth2/v2.0/token",
                serde_json::json!({}),
            ),
            400,
            "invalid_request",
            50_027,
        ),
        (
            "expired",
            assertion(
                &key,
                &x5t,
                &aud,
                serde_json::json!({"nbf": now - 900, "exp": now - 60}),
            ),
            401,
            "invalid_client",
            700_024,
        ),
        (
            "not valid yet",
            assertion(
                &key,
                &x5t,
                &aud,
                serde_json::json!({"nbf": now + 300, "exp": now + 600}),
            ),
            401,
            "invalid_client",
            700_024,
        ),
        (
            "longer than 10 minutes",
            assertion(&key, &x5t, &aud, serde_json::json!({"exp": now + 3600})),
            401,
            "invalid_client",
            700_024,
        ),
        (
            "another issuer",
            assertion(&key, &x5t, &aud, serde_json::json!({"iss": "someone"})),
            400,
            "invalid_request",
            50_027,
        ),
        (
            "the same jti again",
            fresh.clone(),
            400,
            "invalid_request",
            50_027,
        ),
    ];
    for (what, jwt, status, error, code) in cases {
        let resp = with_assertion(&entra, &http, &jwt).await;
        assert_eq!(resp.status.as_u16(), status, "{what}: {}", resp.json);
        assert_ms_error(&resp, status, error, code);
    }
    // Without a client_assertion or a secret, as before.
    let bare = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("scope", APP_SCOPE),
    ];
    let resp = token(&entra, &http, TENANT, &bare).await;
    assert_ms_error(&resp, 401, "invalid_client", 7_000_218);
}
