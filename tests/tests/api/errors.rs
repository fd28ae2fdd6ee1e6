//! Malformed requests get a problem document with a stable code, never 500,
//! and change nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, backend_tests, http, new_secret};

backend_tests!(malformed_requests_are_refused_clearly);

async fn malformed_requests_are_refused_clearly(app: TestApp) {
    let token = app.token("acme", &["admin"]);
    let valid = json!({
        "name": "Cred",
        "client_id": "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_secret": new_secret(),
    });
    let mut unknown_field = valid.clone();
    unknown_field["org"] = json!("globex");
    let mut wrong_type = valid.clone();
    wrong_type["name"] = json!(42);
    let big = json!({ "name": "x".repeat(70 * 1024) });
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "unknown field",
            http()
                .post(app.url("/app-credentials"))
                .json(&unknown_field),
            422,
            "invalid_body",
        ),
        (
            "wrong type",
            http().post(app.url("/app-credentials")).json(&wrong_type),
            422,
            "invalid_body",
        ),
        (
            "malformed JSON",
            http()
                .post(app.url("/app-credentials"))
                .header("content-type", "application/json")
                .body("{\"name\":"),
            400,
            "malformed_json",
        ),
        (
            "too large",
            http().post(app.url("/app-credentials")).json(&big),
            413,
            "payload_too_large",
        ),
        (
            "not JSON",
            http()
                .post(app.url("/app-credentials"))
                .header("content-type", "text/plain")
                .body("name=x"),
            415,
            "unsupported_media_type",
        ),
        (
            "bad id",
            http().get(app.url("/mailboxes/not-a-uuid")),
            400,
            "invalid_id",
        ),
        (
            "bad query",
            http().get(app.url("/mailboxes?limit=many")),
            400,
            "invalid_query",
        ),
        (
            "unknown status",
            http().get(app.url("/mailboxes?status=sleeping")),
            400,
            "invalid_query",
        ),
        (
            "unknown route",
            http().get(app.url("/mailbox")),
            404,
            "route_not_found",
        ),
        (
            "wrong method",
            http().put(app.url("/mailboxes")).json(&json!({})),
            405,
            "method_not_allowed",
        ),
    ];
    for (case, request, status, code) in cases {
        let response = request.bearer_auth(&token).send().await.expect("response");
        assert_eq!(response.status().as_u16(), status, "{case}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{case}"
        );
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["code"], code, "{case}: {problem}");
        assert_eq!(
            problem["type"],
            format!("urn:inboxlink:problem:{code}"),
            "{case}"
        );
    }
    let list: Value = http()
        .get(app.url("/app-credentials"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"], json!([]), "nothing was stored");
}
