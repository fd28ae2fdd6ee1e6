//! The public surface: the served spec is the committed one, the docs and
//! health endpoints answer.

use serde_json::Value;

use crate::helpers::{METRICS_TOKEN, ORG, TestApp, TestAppBuilder, backend_tests, browser};

/// `openapi/inboxlink.json`.
fn committed_spec() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/inboxlink.json");
    let text = std::fs::read_to_string(path).expect("committed spec");
    serde_json::from_str(&text).expect("json")
}

#[tokio::test]
async fn served_spec_is_the_committed_spec() {
    let app = TestApp::new().start().await;
    let served = app.call("GET", "/openapi.json", None).await;
    assert!(served.body.is_object(), "json");
    assert_eq!(served.body, committed_spec());
}

#[tokio::test]
async fn interactive_docs_are_served_offline() {
    let app = TestApp::new().start().await;
    let text = async |path: &'static str| {
        let response = app.request("GET", path).send().await.expect(path);
        let status = response.status();
        (status, response.text().await.expect("text"))
    };
    let (status, html) = text("/docs/").await;
    assert_eq!(status, 200);
    assert!(html.contains("swagger-ui"), "Swagger UI page");
    let (status, _) = text("/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, 200, "the bundle is vendored into the binary");
    let (_, init) = text("/docs/swagger-initializer.js").await;
    assert!(init.contains("/openapi.json"), "the docs load our spec");
}

backend_tests!(ready_when_the_database_answers);
async fn ready_when_the_database_answers(app: TestAppBuilder) {
    let app = app.start().await;
    let health = app.call("GET", "/healthz", None).await;
    assert_eq!(health.body["status"], "ok");
    assert_eq!(app.call("GET", "/readyz", None).await.status, 200);
}

/// `X-Content-Type-Options: nosniff` on every answer (problems, pages, the
/// spec and the docs included) and `Cache-Control: no-store` on every JSON
/// answer and every answer to a request with credentials: every operation
/// of the committed spec, with and without a token, and what is not an
/// operation. (Successful authenticated answers: roles.rs.)
#[tokio::test]
async fn security_headers_on_every_answer() {
    let app = TestApp::new().start().await;
    let spec = committed_spec();
    let admin = app.token(ORG, &["admin"]);
    let missing = uuid::Uuid::new_v4().to_string();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let id = op["operationId"].as_str().expect("operationId");
            let bearer = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            let path = path.replace("{id}", &missing);
            let path = if id == "oauth_callback" {
                format!("{path}?state=unknown-state&code=x")
            } else {
                path
            };
            let mut tokens: Vec<Option<&str>> = vec![None];
            if bearer {
                tokens.push(Some(&admin));
            } else if id == "metrics" {
                tokens.push(Some(METRICS_TOKEN));
            }
            for token in tokens {
                let mut request = app.request(&method.to_uppercase(), &path);
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
        let verb = method.parse().expect("method");
        let mut request = browser().request(verb, app.url(path));
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
