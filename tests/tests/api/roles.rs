//! Every role against every authenticated operation of the spec.

use serde_json::{Value, json};

use crate::helpers::{
    ORG, PLACEHOLDER_CLIENT_ID, TestApp, TestAppBuilder, app_credential_body, assert_problem,
    backend_tests, new_secret,
};
use crate::operations::{scrape, value};

/// Who may call each operation (the README's role table).
const ALLOWED: &[(&str, &[&str])] = &[
    ("app_credential_list", &["admin", "operator", "viewer"]),
    ("app_credential_get", &["admin", "operator", "viewer"]),
    ("app_credential_create", &["admin"]),
    ("app_credential_update", &["admin"]),
    ("app_credential_delete", &["admin"]),
    ("mailbox_list", &["admin", "operator", "viewer", "service"]),
    ("mailbox_get", &["admin", "operator", "viewer", "service"]),
    ("mailbox_create", &["admin", "operator"]),
    ("mailbox_update", &["admin", "operator"]),
    ("mailbox_delete", &["admin"]),
    ("mailbox_refresh", &["admin", "operator"]),
    ("mailbox_check", &["admin", "operator"]),
    ("mailbox_access_token", &["admin", "service"]),
    ("app_credential_verify", &["admin"]),
    ("app_credential_setup", &["admin", "operator", "viewer"]),
    ("app_credential_admin_consent", &["admin"]),
    ("app_credential_certificate", &["admin"]),
    ("audit_event_list", &["admin"]),
    ("event_list", &["admin", "operator", "viewer", "service"]),
    ("webhook_list", &["admin"]),
    ("webhook_create", &["admin"]),
    ("webhook_get", &["admin"]),
    ("webhook_update", &["admin"]),
    ("webhook_delete", &["admin"]),
    ("webhook_rotate_secret", &["admin"]),
    ("webhook_test", &["admin"]),
    ("webhook_deliveries", &["admin"]),
    ("webhook_retry", &["admin"]),
    ("email_alert_list", &["admin"]),
    ("email_alert_create", &["admin"]),
    ("email_alert_get", &["admin"]),
    ("email_alert_update", &["admin"]),
    ("email_alert_delete", &["admin"]),
    ("bridge_get", &["admin", "operator", "viewer", "service"]),
    ("bridge_password_list", &["admin", "operator"]),
    ("bridge_password_create", &["admin", "operator"]),
    ("bridge_password_get", &["admin", "operator"]),
    ("bridge_password_delete", &["admin", "operator"]),
];

/// Where webhooks of this test go: nothing listens there, so a delivery fails.
const NOWHERE: &str = "http://127.0.0.1:9/hook";

struct Operation {
    id: String,
    method: String,
    path: String,
}

fn secured_operations() -> Vec<Operation> {
    let spec: Value = serde_json::from_str(&inboxlink::openapi::spec_json()).expect("spec");
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if secured {
                let id = op["operationId"].as_str().expect("operationId").to_owned();
                ops.push(Operation {
                    id,
                    method: method.to_uppercase(),
                    path: path.clone(),
                });
            }
        }
    }
    ops
}

backend_tests!(every_role_against_every_operation);
async fn every_role_against_every_operation(app: TestAppBuilder) {
    let app = app.start().await;
    let ops = secured_operations();
    for op in &ops {
        assert!(
            ALLOWED.iter().any(|(id, _)| *id == op.id),
            "{}: add it to the role table of this test and the README",
            op.id
        );
    }
    let admin = app.token(ORG, &["admin"]);
    // A webhook with a delivery that failed, for the retry.
    let failed = app.new_webhook(NOWHERE, None).await;
    let queued = app
        .admin_call("POST", &format!("/webhooks/{}/test", failed.id), None)
        .await;
    assert_eq!(queued.status, 202, "{:?}", queued.body);
    let delivery = failed_delivery(&app, &failed.id).await;
    for role in ["admin", "operator", "viewer", "service"] {
        let token = app.token(ORG, &[role]);
        for op in &ops {
            // Fresh resources for every call, so deletes and updates have something to act on.
            let cred = create(&app, &admin, "/app-credentials", credential_body()).await;
            let mailbox = create(&app, &admin, "/mailboxes", mailbox_body(&cred)).await;
            let hook = app.new_webhook(NOWHERE, None).await.id;
            let alert = create(
                &app,
                &admin,
                "/email-alerts",
                json!({ "to": ["it@contoso.cz"], "sender_mailbox_id": mailbox }),
            )
            .await;
            let id = if op.path.starts_with("/app-credentials") {
                &cred
            } else if op.id == "webhook_retry" {
                &failed.id
            } else if op.path.starts_with("/webhooks") {
                &hook
            } else if op.path.starts_with("/email-alerts") {
                &alert
            } else {
                &mailbox
            };
            let target = if op.id == "app_credential_delete" {
                // A credential nobody uses, so an allowed delete succeeds.
                create(&app, &admin, "/app-credentials", credential_body()).await
            } else {
                id.clone()
            };
            let password =
                if op.id.starts_with("bridge_password_") && op.path.contains("{password_id}") {
                    let path = format!("/mailboxes/{mailbox}/bridge-passwords");
                    create(&app, &admin, &path, json!({ "name": "Scanner" })).await
                } else {
                    String::new()
                };
            let path = op
                .path
                .replace("{id}", &target)
                .replace("{delivery_id}", &delivery)
                .replace("{password_id}", &password);
            let body = match op.id.as_str() {
                "app_credential_create" => Some(credential_body()),
                "mailbox_create" => Some(mailbox_body(&cred)),
                "webhook_create" => Some(json!({ "url": NOWHERE })),
                "bridge_password_create" => Some(json!({ "name": "Scanner" })),
                "email_alert_create" => {
                    Some(json!({ "to": ["it@contoso.cz"], "sender_mailbox_id": mailbox }))
                }
                "app_credential_update"
                | "mailbox_update"
                | "webhook_update"
                | "email_alert_update" => Some(json!({})),
                _ => None,
            };
            let answer = app.call_as(&token, &op.method, &path, body.as_ref()).await;
            let (status, code) = (answer.status, answer.code());
            // Every authenticated answer, whatever it is, is never cached or sniffed.
            assert_eq!(
                (
                    answer.header("x-content-type-options"),
                    answer.header("cache-control")
                ),
                (Some("nosniff"), Some("no-store")),
                "{role} {}: {status}",
                op.id
            );
            let allowed = ALLOWED
                .iter()
                .find(|(id, _)| *id == op.id)
                .expect("listed")
                .1
                .contains(&role);
            if allowed {
                // Allowed: it succeeds; only a token for a mailbox nobody signed in
                // to is refused, and for that reason alone.
                let not_signed_in = op.id == "mailbox_access_token"
                    && status == 409
                    && code == Some("mailbox_not_authorized");
                // The walk's credential has a secret: making a certificate for
                // it is refused, after the role was let through.
                let of_type_secret = op.id == "app_credential_certificate"
                    && status == 422
                    && code == Some("validation_failed");
                assert!(
                    (200..300).contains(&status) || not_signed_in || of_type_secret,
                    "{role} may call {}: got {status} {code:?}",
                    op.id
                );
            } else {
                assert_eq!(status, 403, "{role} may not call {}", op.id);
            }
        }
    }
    // A token without any known role may do nothing.
    let nobody = app.token(ORG, &["auditor"]);
    let answer = app.call_as(&nobody, "GET", "/mailboxes", None).await;
    assert_eq!(answer.status, 403);
}

/// The id of the first delivery of webhook `id` that was attempted.
async fn failed_delivery(app: &TestApp, id: &str) -> String {
    for _ in 0..500 {
        let page = app
            .admin_call("GET", &format!("/webhooks/{id}/deliveries"), None)
            .await;
        if let Some(d) = page.body["items"][0]["delivery_id"].as_str() {
            return d.to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no delivery attempt of webhook {id}");
}

fn credential_body() -> Value {
    json!({
        "name": "Cred",
        "client_id": PLACEHOLDER_CLIENT_ID,
        "tenant_id": "contoso.onmicrosoft.com",
        "client_secret": new_secret(),
    })
}

fn mailbox_body(cred: &str) -> Value {
    json!({ "email": format!("{}@contoso.cz", uuid::Uuid::new_v4().simple()), "app_credential_id": cred })
}

async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> String {
    let created = app.call_as(token, "POST", path, Some(&body)).await;
    assert_eq!(created.status, 201, "create {path}");
    created.body["id"].as_str().expect("id").to_owned()
}

/// The SDK surfaces 401 and 403 as typed problems.
#[tokio::test]
async fn sdk_errors_are_typed() {
    let app = TestApp::new().start().await;
    let err = app.sdk("not-a-token").mailbox_list().send().await;
    assert_problem(&err.expect_err("401"), 401, "invalid_token");
    let viewer = app.client(ORG, "viewer");
    let body = app_credential_body("x", &new_secret());
    let err = viewer.app_credential_create().body(body).send().await;
    assert_problem(&err.expect_err("403"), 403, "forbidden");
}

backend_tests!(refusals_are_counted_and_forbidden_is_audited);
/// Refused tokens and 403s are counted by reason; each 403 is in the
/// caller's organisation's audit log with the route and the missing permission.
async fn refusals_are_counted_and_forbidden_is_audited(app: TestAppBuilder) {
    let app = app.start().await;
    let series = |reason: &str| format!(r#"inboxlink_auth_refusals_total{{reason="{reason}"}}"#);
    let before = scrape(&app).await;
    let missing = app.call("GET", "/mailboxes", None).await;
    assert_eq!(missing.status, 401);
    let invalid = app.call_as("not-a-jwt", "GET", "/mailboxes", None).await;
    assert_eq!(invalid.status, 401);
    let viewer = app.token_with(json!({ "sub": "viewer-jane", "org": ORG, "roles": ["viewer"] }));
    let body = credential_body();
    let create = app.call_as(&viewer, "POST", "/app-credentials", Some(&body));
    assert_eq!(create.await.status, 403);
    let operator =
        app.token_with(json!({ "sub": "operator-joe", "org": ORG, "roles": ["operator"] }));
    let path = format!("/mailboxes/{}", uuid::Uuid::new_v4());
    let delete = app.call_as(&operator, "DELETE", &path, None).await;
    assert_eq!(delete.status, 403);

    let after = scrape(&app).await;
    for (reason, more) in [
        ("missing_token", 1.0),
        ("invalid_token", 1.0),
        ("forbidden", 2.0),
    ] {
        assert_eq!(
            value(&after, &series(reason)),
            value(&before, &series(reason)) + more,
            "{reason}: {after}"
        );
    }

    let admin = app.token(ORG, &["admin"]);
    let events = app.call_as(&admin, "GET", "/audit-events", None).await.body;
    let mut forbidden: Vec<&Value> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "request.forbidden")
        .collect();
    forbidden.sort_by_key(|e| e["actor"].as_str().map(str::to_owned));
    assert_eq!(forbidden.len(), 2, "{events}");
    for (event, actor, route, method, permission) in [
        (
            forbidden[0],
            "operator-joe",
            "/mailboxes/{id}",
            "DELETE",
            "mailboxes.delete",
        ),
        (
            forbidden[1],
            "viewer-jane",
            "/app-credentials",
            "POST",
            "app_credentials.write",
        ),
    ] {
        assert_eq!(event["actor"], actor, "{event}");
        assert_eq!(event["target_type"], "route", "{event}");
        assert_eq!(event["target_id"], route, "{event}");
        assert_eq!(event["outcome"], "forbidden", "{event}");
        assert_eq!(
            event["detail"],
            json!({ "method": method, "permission": permission }),
            "{event}"
        );
    }
    let other = app.token("other", &["admin"]);
    let elsewhere = app.call_as(&other, "GET", "/audit-events", None).await;
    assert_eq!(
        elsewhere.body["items"],
        json!([]),
        "only the caller's organisation sees it"
    );
}
