//! Driving the service and the fake as a client and a browser do: app
//! credentials and mailboxes created over the API, sign-ins through the
//! fake's authorize page, and the same token request made directly.

use futures_util::StreamExt;
use inboxlink_tests::fake_entra::FakeEntra;
use serde_json::{Value, json};

use crate::service::Service;
use crate::{CLIENT_ID, SCOPES, SECRET, TENANT};

pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = http.get(url).bearer_auth(token).send().await.expect("GET");
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.expect("json")
}

pub async fn post_json(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> Value {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("POST");
    assert!(r.status().is_success(), "POST {url}: {}", r.status());
    r.json().await.expect("json")
}

pub async fn create_credential(http: &reqwest::Client, s: &Service, fake: &FakeEntra) -> String {
    // Each instance listens on its own port: register its redirect URI.
    fake.add_redirect_uri(CLIENT_ID, &format!("{}/oauth/callback", s.base));
    let body = json!({ "name": "Bench", "client_id": CLIENT_ID, "tenant_id": TENANT, "client_secret": SECRET });
    let url = format!("{}/app-credentials", s.base);
    let r = post_json(http, &url, &s.admin, &body).await;
    r["id"].as_str().expect("id").to_owned()
}

/// Creates `n` mailboxes (16 requests at a time); returns their ids.
pub async fn create_mailboxes(
    http: &reqwest::Client,
    s: &Service,
    credential: &str,
    n: usize,
    prefix: &str,
) -> Vec<String> {
    create_mailboxes_as(http, s, credential, n, prefix, "delegated").await
}

/// [`create_mailboxes`] with an access mode (`delegated`, `app_only`).
pub async fn create_mailboxes_as(
    http: &reqwest::Client,
    s: &Service,
    credential: &str,
    n: usize,
    prefix: &str,
    access_mode: &'static str,
) -> Vec<String> {
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (http, base, token, credential) = (
                http.clone(),
                s.base.clone(),
                s.admin.clone(),
                credential.to_owned(),
            );
            let email = format!("{prefix}{i}@contoso.cz");
            async move {
                let body = json!({
                    "email": email, "app_credential_id": credential, "access_mode": access_mode,
                });
                let r = post_json(&http, &format!("{base}/mailboxes"), &token, &body).await;
                r["id"].as_str().expect("id").to_owned()
            }
        })
        .buffered(16)
        .collect()
        .await
}

/// Refresh, then the browser's two hops: the fake's redirect and the callback.
pub async fn sign_in(http: &reqwest::Client, browser: &reqwest::Client, s: &Service, id: &str) {
    let url = format!("{}/mailboxes/{id}/refresh", s.base);
    let r = post_json(http, &url, &s.admin, &json!({})).await;
    let url = r["authorization_url"].as_str().expect("a sign-in URL");
    let hop = browser.get(url).send().await.expect("authorize");
    let location = hop.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let page = browser.get(location).send().await.expect("callback");
    assert_eq!(page.status(), 200, "the sign-in completes");
}

const VERIFIER: &str = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

/// The fake's sign-in for `user` done by hand; returns the code.
pub async fn authorize_directly(
    browser: &reqwest::Client,
    fake: &FakeEntra,
    redirect_uri: &str,
    user: &str,
) -> String {
    let challenge = inboxlink_tests::fake_entra::pkce_s256(VERIFIER);
    let mut url = url::Url::parse(&format!(
        "{}/{TENANT}/oauth2/v2.0/authorize",
        fake.authority()
    ))
    .expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_mode", "query")
        .append_pair("scope", SCOPES)
        .append_pair("state", "bench")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("nonce", "bench")
        .append_pair("login_hint", user);
    let hop = browser.get(url).send().await.expect("authorize");
    let location =
        url::Url::parse(hop.headers()["location"].to_str().expect("location")).expect("url");
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

/// The authorization-code token request, as the service makes it.
pub async fn redeem_directly(
    http: &reqwest::Client,
    fake: &FakeEntra,
    redirect_uri: &str,
    code: &str,
) {
    let r = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", fake.authority()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token");
    assert!(r.status().is_success(), "the fake redeemed the code");
    let _: Value = r.json().await.expect("tokens");
}
