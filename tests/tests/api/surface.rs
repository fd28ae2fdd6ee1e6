//! The public surface: the served spec is the committed one, the docs and
//! health endpoints answer.

use inboxlink::config::Backend;
use serde_json::Value;

use crate::helpers::{TestApp, backend_tests, http};

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
