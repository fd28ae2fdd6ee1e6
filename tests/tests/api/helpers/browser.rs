//! The browser's side of a sign-in: the fake's authorize endpoint redirects
//! to the service's callback, which answers a page.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// A browser that does not follow redirects (each hop is looked at).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// What the callback answered.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl std::ops::Deref for Page {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Opens an authorization (or admin-consent) URL at the fake, which
/// answers with a redirect; returns where it redirects to (the callback).
pub async fn authorize(url: &str) -> String {
    let to_callback = browser().get(url).send().await.expect("authorize");
    assert_eq!(
        to_callback.status(),
        302,
        "the fake redirects to the callback"
    );
    let location = to_callback.headers()["location"].to_str();
    location.expect("location").to_owned()
}

/// Opens the callback URL in English.
pub async fn callback(url: &str) -> Page {
    callback_in(url, "en").await
}

/// Opens the callback URL with `Accept-Language: language`.
pub async fn callback_in(url: &str, language: &str) -> Page {
    let response = browser()
        .get(url)
        .header("Accept-Language", language)
        .send()
        .await
        .expect("callback");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.expect("page");
    Page {
        status,
        headers,
        text,
    }
}

/// Opens the URL at the fake and follows its redirect to the callback.
pub async fn follow(url: &str) -> Page {
    callback(&authorize(url).await).await
}

/// The `state` parameter of a sign-in or consent URL.
pub fn state_of(url: &str) -> String {
    let url = url::Url::parse(url).expect("url");
    let mut pairs = url.query_pairs();
    let state = pairs
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    state.expect("state")
}
