//! Malformed requests get a problem document with a stable code, never 500,
//! and change nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, app_credential_body, backend_tests, http, mailbox_body, new_secret};

backend_tests!(
    malformed_requests_are_refused_clearly,
    every_body_is_checked_on_every_operation
);

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

/// The optional bodies (refresh, check) and the other write operations are
/// checked as strictly as app-credential creation: a body that is there must
/// fit, or the call is refused and changes nothing.
async fn every_body_is_checked_on_every_operation(app: TestApp) {
    let token = app.token("acme", &["admin"]);
    let sdk = app.admin("acme");
    let cred = sdk
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred");
    let mailbox = sdk
        .mailbox_create()
        .body(mailbox_body("podatelna@contoso.cz", cred.id))
        .send()
        .await
        .expect("mailbox");
    let id = mailbox.id;
    let big = json!({ "return_url": "x".repeat(70 * 1024) });
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "refresh: unknown field",
            http()
                .post(app.url(&format!("/mailboxes/{id}/refresh")))
                .json(&json!({ "return_url": null, "scope": "Mail.ReadWrite" })),
            422,
            "invalid_body",
        ),
        (
            "refresh: wrong type",
            http()
                .post(app.url(&format!("/mailboxes/{id}/refresh")))
                .json(&json!({ "return_url": 7 })),
            422,
            "invalid_body",
        ),
        (
            "refresh: malformed JSON",
            http()
                .post(app.url(&format!("/mailboxes/{id}/refresh")))
                .header("content-type", "application/json")
                .body("{"),
            400,
            "malformed_json",
        ),
        (
            "refresh: not JSON",
            http()
                .post(app.url(&format!("/mailboxes/{id}/refresh")))
                .header("content-type", "text/plain")
                .body("return_url=x"),
            415,
            "unsupported_media_type",
        ),
        (
            "refresh: too large",
            http()
                .post(app.url(&format!("/mailboxes/{id}/refresh")))
                .json(&big),
            413,
            "payload_too_large",
        ),
        (
            "check: unknown field",
            http()
                .post(app.url(&format!("/mailboxes/{id}/check")))
                .json(&json!({ "send_test_message": false, "to": "x@y.cz" })),
            422,
            "invalid_body",
        ),
        (
            "check: wrong type",
            http()
                .post(app.url(&format!("/mailboxes/{id}/check")))
                .json(&json!({ "send_test_message": "yes" })),
            422,
            "invalid_body",
        ),
        (
            "mailbox update: unknown field",
            http()
                .patch(app.url(&format!("/mailboxes/{id}")))
                .json(&json!({ "status": "active" })),
            422,
            "invalid_body",
        ),
        (
            "mailbox create: unknown field",
            http().post(app.url("/mailboxes")).json(&json!({
                "email": "info@contoso.cz", "app_credential_id": cred.id, "org": "globex"
            })),
            422,
            "invalid_body",
        ),
    ];
    for (case, request, status, code) in cases {
        let response = request.bearer_auth(&token).send().await.expect("response");
        assert_eq!(response.status().as_u16(), status, "{case}");
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["code"], code, "{case}: {problem}");
    }
    // Nothing changed: no sign-in was started, the mailbox is as created, no second mailbox.
    let after = sdk.mailbox_get().id(id).send().await.expect("get");
    assert_eq!(after.status, inboxlink_sdk::types::MailboxStatus::Inactive);
    assert!(after.last_check.is_none(), "no check ran");
    let list = sdk.mailbox_list().send().await.expect("list");
    assert_eq!(list.items.len(), 1);
    let audit: Value = http()
        .get(app.url("/audit-events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert!(
        !audit.to_string().contains("sign_in_started"),
        "no sign-in was started: {audit}"
    );
    // And no body at all still works for the two operations whose body is optional.
    let started = http()
        .post(app.url(&format!("/mailboxes/{id}/refresh")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("refresh");
    assert_eq!(started.status(), 200, "refresh without a body");
}
