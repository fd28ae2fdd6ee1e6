//! Malformed requests get a problem document with a stable code, never 500,
//! and change nothing.

use serde_json::json;

use crate::helpers::{
    Api, ORG, PLACEHOLDER_CLIENT_ID, TestAppBuilder, backend_tests, new_secret, send,
};

backend_tests!(
    malformed_requests_are_refused_clearly,
    every_body_is_checked_on_every_operation
);

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
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "unknown field",
            app.request("POST", "/app-credentials").json(&unknown_field),
            422,
            "invalid_body",
        ),
        (
            "wrong type",
            app.request("POST", "/app-credentials").json(&wrong_type),
            422,
            "invalid_body",
        ),
        (
            "malformed JSON",
            app.request("POST", "/app-credentials")
                .header("content-type", "application/json")
                .body("{\"name\":"),
            400,
            "malformed_json",
        ),
        (
            "too large",
            app.request("POST", "/app-credentials").json(&big),
            413,
            "payload_too_large",
        ),
        (
            "not JSON",
            app.request("POST", "/app-credentials")
                .header("content-type", "text/plain")
                .body("name=x"),
            415,
            "unsupported_media_type",
        ),
        (
            "bad id",
            app.request("GET", "/mailboxes/not-a-uuid"),
            400,
            "invalid_id",
        ),
        (
            "bad query",
            app.request("GET", "/mailboxes?limit=many"),
            400,
            "invalid_query",
        ),
        (
            "unknown status",
            app.request("GET", "/mailboxes?status=sleeping"),
            400,
            "invalid_query",
        ),
        (
            "unknown route",
            app.request("GET", "/mailbox"),
            404,
            "route_not_found",
        ),
        (
            "wrong method",
            app.request("PUT", "/mailboxes").json(&json!({})),
            405,
            "method_not_allowed",
        ),
    ];
    for (case, request, status, code) in cases {
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
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "refresh: unknown field",
            app.request("POST", &refresh)
                .json(&json!({ "return_url": null, "scope": "Mail.ReadWrite" })),
            422,
            "invalid_body",
        ),
        (
            "refresh: wrong type",
            app.request("POST", &refresh)
                .json(&json!({ "return_url": 7 })),
            422,
            "invalid_body",
        ),
        (
            "refresh: malformed JSON",
            app.request("POST", &refresh)
                .header("content-type", "application/json")
                .body("{"),
            400,
            "malformed_json",
        ),
        (
            "refresh: not JSON",
            app.request("POST", &refresh)
                .header("content-type", "text/plain")
                .body("return_url=x"),
            415,
            "unsupported_media_type",
        ),
        (
            "refresh: too large",
            app.request("POST", &refresh).json(&big),
            413,
            "payload_too_large",
        ),
        (
            "check: unknown field",
            app.request("POST", &check)
                .json(&json!({ "send_test_message": false, "to": "x@y.cz" })),
            422,
            "invalid_body",
        ),
        (
            "check: wrong type",
            app.request("POST", &check)
                .json(&json!({ "send_test_message": "yes" })),
            422,
            "invalid_body",
        ),
        (
            "mailbox update: unknown field",
            app.request("PATCH", &format!("/mailboxes/{id}"))
                .json(&json!({ "status": "active" })),
            422,
            "invalid_body",
        ),
        (
            "mailbox create: unknown field",
            app.request("POST", "/mailboxes").json(&json!({
                "email": "info@contoso.cz", "app_credential_id": cred, "org": "globex"
            })),
            422,
            "invalid_body",
        ),
    ];
    for (case, request, status, code) in cases {
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
