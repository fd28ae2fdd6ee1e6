//! The public surface: the served spec is the committed one, the docs and
//! health endpoints answer.

use inboxlink::config::Backend;
use serde_json::Value;

use crate::helpers::{METRICS_TOKEN, TestApp, backend_tests, http};

backend_tests!(ready_when_the_database_answers);

#[tokio::test]
async fn served_spec_is_the_committed_spec() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served: Value = http()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/inboxlink.json");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("committed spec"))
            .expect("json");
    assert_eq!(served, committed);
}

#[tokio::test]
async fn interactive_docs_are_served_offline() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = http().get(app.url("/docs/")).send().await.expect("docs");
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "Swagger UI page");
    let js = http()
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .expect("bundle");
    assert_eq!(js.status(), 200, "the bundle is vendored into the binary");
    let init = http()
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("init")
        .text()
        .await
        .expect("js");
    assert!(init.contains("/openapi.json"), "the docs load our spec");
}

async fn ready_when_the_database_answers(app: TestApp) {
    let health: Value = http()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let ready = http().get(app.url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
}

/// `X-Content-Type-Options: nosniff` on every answer (problems, pages, the
/// spec and the docs included) and `Cache-Control: no-store` on every JSON
/// answer and every answer to a request with credentials: every operation
/// of the committed spec, with and without a token, and what is not an
/// operation. (Successful authenticated answers: roles.rs.)
#[tokio::test]
async fn security_headers_on_every_answer() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/inboxlink.json");
    let spec: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("committed spec"))
        .expect("json");
    let admin = app.token("acme", &["admin"]);
    let missing = uuid::Uuid::new_v4().to_string();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let id = op["operationId"].as_str().expect("operationId");
            let bearer = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            let url = app.url(&path.replace("{id}", &missing));
            let url = if id == "oauth_callback" {
                format!("{url}?state=unknown-state&code=x")
            } else {
                url
            };
            let mut tokens: Vec<Option<&str>> = vec![None];
            if bearer {
                tokens.push(Some(&admin));
            } else if id == "metrics" {
                tokens.push(Some(METRICS_TOKEN));
            }
            for token in tokens {
                let mut request =
                    http().request(method.to_uppercase().parse().expect("method"), &url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if op.get("requestBody").is_some() {
                    request = request.json(&serde_json::json!({}));
                }
                let response = request.send().await.expect("response");
                assert_secure(
                    &response,
                    token.is_some(),
                    &format!("{id} (token: {})", token.is_some()),
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked}");
    for (method, path, credentials) in [
        ("GET", "/openapi.json", false),
        ("GET", "/docs", false),
        ("GET", "/docs/", false),
        ("GET", "/docs/swagger-ui-bundle.js", false),
        ("GET", "/no-such-route", false),
        ("PUT", "/healthz", false),
        ("GET", "/no-such-route", true),
    ] {
        // Not following redirects: the redirect itself is an answer too.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut request = client.request(method.parse().expect("method"), app.url(path));
        if credentials {
            request = request.bearer_auth(&admin);
        }
        let response = request.send().await.expect("response");
        assert_secure(&response, credentials, &format!("{method} {path}"));
    }
}

fn assert_secure(response: &reqwest::Response, credentials: bool, what: &str) {
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}: {}",
        response.status()
    );
    let json = header("content-type").is_some_and(|t| t.contains("json"));
    let spec = response.url().path() == "/openapi.json";
    if credentials || (json && !spec) {
        assert_eq!(
            header("cache-control").as_deref(),
            Some("no-store"),
            "{what}: {}",
            response.status()
        );
    }
}
