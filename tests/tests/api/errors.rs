//! Malformed requests get a problem document with a stable code, never 500,
//! and change nothing.

use serde_json::json;

use crate::helpers::{
    Api, ORG, PLACEHOLDER_CLIENT_ID, TestAppBuilder, backend_tests, new_secret, send,
};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

/// `request` with `body` as a body of `content_type`.
fn raw(
    request: reqwest::RequestBuilder,
    content_type: &str,
    body: &'static str,
) -> reqwest::RequestBuilder {
    request.header("content-type", content_type).body(body)
}

backend_tests!(malformed_requests_are_refused_clearly);
async fn malformed_requests_are_refused_clearly(app: TestAppBuilder) {
    let app = app.start().await;
    let token = app.token(ORG, &["admin"]);
    let valid = json!({
        "name": "Cred",
        "client_id": PLACEHOLDER_CLIENT_ID,
        "tenant_id": "contoso.onmicrosoft.com",
        "client_secret": new_secret(),
    });
    let mut unknown_field = valid.clone();
    unknown_field["org"] = json!("globex");
    let mut wrong_type = valid.clone();
    wrong_type["name"] = json!(42);
    let big = json!({ "name": "x".repeat(70 * 1024) });
    let create = || app.request("POST", "/app-credentials");
    let get = |path| app.request("GET", path);
    let cases = [
        (
            "unknown field",
            422,
            "invalid_body",
            create().json(&unknown_field),
        ),
        (
            "wrong type",
            422,
            "invalid_body",
            create().json(&wrong_type),
        ),
        (
            "malformed JSON",
            400,
            "malformed_json",
            raw(create(), JSON, "{\"name\":"),
        ),
        ("too large", 413, "payload_too_large", create().json(&big)),
        (
            "not JSON",
            415,
            "unsupported_media_type",
            raw(create(), TEXT, "name=x"),
        ),
        ("bad id", 400, "invalid_id", get("/mailboxes/not-a-uuid")),
        (
            "bad query",
            400,
            "invalid_query",
            get("/mailboxes?limit=many"),
        ),
        (
            "unknown status",
            400,
            "invalid_query",
            get("/mailboxes?status=sleeping"),
        ),
        ("unknown route", 404, "route_not_found", get("/mailbox")),
        (
            "wrong method",
            405,
            "method_not_allowed",
            app.request("PUT", "/mailboxes").json(&json!({})),
        ),
    ];
    for (case, status, code, request) in cases {
        let answer = send(request.bearer_auth(&token)).await;
        assert_eq!(answer.status, status, "{case}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{case}"
        );
        let problem = &answer.body;
        assert_eq!(problem["code"], code, "{case}: {problem}");
        assert_eq!(
            problem["type"],
            format!("urn:inboxlink:problem:{code}"),
            "{case}"
        );
    }
    let list = app.call_as(&token, "GET", "/app-credentials", None).await;
    assert_eq!(list.body["items"], json!([]), "nothing was stored");
}

backend_tests!(every_body_is_checked_on_every_operation);
/// The optional bodies (refresh, check) and the other write operations are
/// checked as strictly as app-credential creation: a body that is there must
/// fit, or the call is refused and changes nothing.
async fn every_body_is_checked_on_every_operation(app: TestAppBuilder) {
    let app = app.with_mailbox().start().await;
    let token = app.token(ORG, &["admin"]);
    let sdk = app.admin();
    let (cred, id) = (app.app_credential_id(), app.mailbox_id());
    let (refresh, check) = (
        format!("/mailboxes/{id}/refresh"),
        format!("/mailboxes/{id}/check"),
    );
    let big = json!({ "return_url": "x".repeat(70 * 1024) });
    let post = |path: &str| app.request("POST", path);
    let mailbox = app.request("PATCH", &format!("/mailboxes/{id}"));
    let create = json!({ "email": "info@contoso.cz", "app_credential_id": cred, "org": "globex" });
    let cases = [
        (
            "refresh: unknown field",
            422,
            "invalid_body",
            post(&refresh).json(&json!({ "return_url": null, "scope": "Mail.ReadWrite" })),
        ),
        (
            "refresh: wrong type",
            422,
            "invalid_body",
            post(&refresh).json(&json!({ "return_url": 7 })),
        ),
        (
            "refresh: malformed JSON",
            400,
            "malformed_json",
            raw(post(&refresh), JSON, "{"),
        ),
        (
            "refresh: not JSON",
            415,
            "unsupported_media_type",
            raw(post(&refresh), TEXT, "return_url=x"),
        ),
        (
            "refresh: too large",
            413,
            "payload_too_large",
            post(&refresh).json(&big),
        ),
        (
            "check: unknown field",
            422,
            "invalid_body",
            post(&check).json(&json!({ "send_test_message": false, "to": "x@y.cz" })),
        ),
        (
            "check: wrong type",
            422,
            "invalid_body",
            post(&check).json(&json!({ "send_test_message": "yes" })),
        ),
        (
            "mailbox update: unknown field",
            422,
            "invalid_body",
            mailbox.json(&json!({ "status": "active" })),
        ),
        (
            "mailbox create: unknown field",
            422,
            "invalid_body",
            post("/mailboxes").json(&create),
        ),
    ];
    for (case, status, code, request) in cases {
        let answer = send(request.bearer_auth(&token)).await;
        assert_eq!(answer.status, status, "{case}");
        assert_eq!(answer.body["code"], code, "{case}: {:?}", answer.body);
    }
    // Nothing changed: no sign-in was started, the mailbox is as created, no second mailbox.
    let after = sdk.mailbox(id).await;
    assert_eq!(after.status, inboxlink_sdk::types::MailboxStatus::Inactive);
    assert!(after.last_check.is_none(), "no check ran");
    assert_eq!(sdk.mailboxes(None).await.len(), 1);
    let audit = app.call_as(&token, "GET", "/audit-events", None).await.body;
    assert!(
        !audit.to_string().contains("sign_in_started"),
        "no sign-in was started: {audit}"
    );
    // And no body at all still works for the two operations whose body is optional.
    let started = app
        .request("POST", &refresh)
        .bearer_auth(&token)
        .send()
        .await
        .expect("refresh");
    assert_eq!(started.status(), 200, "refresh without a body");
}
