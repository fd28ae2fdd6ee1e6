//! Every role against every authenticated operation of the spec.

use serde_json::{Value, json};

use crate::helpers::{TestApp, backend_tests, http, new_secret};
use crate::operations::{scrape, value};

backend_tests!(
    every_role_against_every_operation,
    refusals_are_counted_and_forbidden_is_audited
);

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
    ("audit_event_list", &["admin"]),
];

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

async fn every_role_against_every_operation(app: TestApp) {
    let ops = secured_operations();
    for op in &ops {
        assert!(
            ALLOWED.iter().any(|(id, _)| *id == op.id),
            "{}: add it to the role table of this test and the README",
            op.id
        );
    }
    let admin = app.token("acme", &["admin"]);
    for role in ["admin", "operator", "viewer", "service"] {
        let token = app.token("acme", &[role]);
        for op in &ops {
            // Fresh resources for every call, so deletes and updates have something to act on.
            let cred = create(&app, &admin, "/app-credentials", credential_body()).await;
            let mailbox = create(&app, &admin, "/mailboxes", mailbox_body(&cred)).await;
            let id = if op.path.starts_with("/app-credentials") {
                &cred
            } else {
                &mailbox
            };
            let target = if op.id == "app_credential_delete" {
                // A credential nobody uses, so an allowed delete succeeds.
                create(&app, &admin, "/app-credentials", credential_body()).await
            } else {
                id.clone()
            };
            let url = app.url(&op.path.replace("{id}", &target));
            let body = match op.id.as_str() {
                "app_credential_create" => Some(credential_body()),
                "mailbox_create" => Some(mailbox_body(&cred)),
                "app_credential_update" | "mailbox_update" => Some(json!({})),
                _ => None,
            };
            let mut request = http()
                .request(op.method.parse().expect("method"), url)
                .bearer_auth(&token);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("response");
            let status = response.status().as_u16();
            // Every authenticated answer, whatever it is, is never cached or sniffed.
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            assert_eq!(
                (header("x-content-type-options"), header("cache-control")),
                (Some("nosniff".into()), Some("no-store".into())),
                "{role} {}: {status}",
                op.id
            );
            let code = response
                .json::<Value>()
                .await
                .ok()
                .and_then(|p| p["code"].as_str().map(str::to_owned));
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
                    && code.as_deref() == Some("mailbox_not_authorized");
                assert!(
                    (200..300).contains(&status) || not_signed_in,
                    "{role} may call {}: got {status} {code:?}",
                    op.id
                );
            } else {
                assert_eq!(status, 403, "{role} may not call {}", op.id);
            }
        }
    }
    // A token without any known role may do nothing.
    let nobody = app.token("acme", &["auditor"]);
    let status = http()
        .get(app.url("/mailboxes"))
        .bearer_auth(&nobody)
        .send()
        .await
        .expect("response")
        .status();
    assert_eq!(status, 403);
}

fn credential_body() -> Value {
    json!({
        "name": "Cred",
        "client_id": "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f",
        "tenant_id": "contoso.onmicrosoft.com",
        "client_secret": new_secret(),
    })
}

fn mailbox_body(cred: &str) -> Value {
    json!({ "email": format!("{}@contoso.cz", uuid::Uuid::new_v4().simple()), "app_credential_id": cred })
}

async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> String {
    let response = http()
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 201, "create {path}");
    let created: Value = response.json().await.expect("json");
    created["id"].as_str().expect("id").to_owned()
}

/// The SDK surfaces 401 and 403 as typed problems.
#[tokio::test]
async fn sdk_errors_are_typed() {
    use inboxlink_sdk::ProblemExt;
    let app = TestApp::spawn(inboxlink::config::Backend::Sqlite).await;
    let err = app
        .sdk("not-a-token")
        .mailbox_list()
        .send()
        .await
        .expect_err("401");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(401), Some("invalid_token"))
    );
    let viewer = app.sdk(&app.token("acme", &["viewer"]));
    let body = inboxlink_sdk::types::AppCredentialCreate {
        name: "x".into(),
        provider: None,
        client_id: "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f".into(),
        tenant_id: "contoso.onmicrosoft.com".into(),
        client_secret: new_secret(),
        secret_expires_at: None,
    };
    let err = viewer
        .app_credential_create()
        .body(body)
        .send()
        .await
        .expect_err("403");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(403), Some("forbidden"))
    );
}

/// Refused tokens and 403s are counted by reason; each 403 is in the
/// caller's organisation's audit log with the route and the missing permission.
async fn refusals_are_counted_and_forbidden_is_audited(app: TestApp) {
    let series = |reason: &str| format!(r#"inboxlink_auth_refusals_total{{reason="{reason}"}}"#);
    let before = scrape(&app).await;
    let status = |r: reqwest::Response| r.status().as_u16();
    let missing = http()
        .get(app.url("/mailboxes"))
        .send()
        .await
        .expect("response");
    assert_eq!(status(missing), 401);
    let invalid = http()
        .get(app.url("/mailboxes"))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .expect("response");
    assert_eq!(status(invalid), 401);
    let viewer =
        app.token_with(json!({ "sub": "viewer-jane", "org": "acme", "roles": ["viewer"] }));
    let create = http()
        .post(app.url("/app-credentials"))
        .bearer_auth(&viewer)
        .json(&credential_body())
        .send()
        .await
        .expect("response");
    assert_eq!(status(create), 403);
    let operator =
        app.token_with(json!({ "sub": "operator-joe", "org": "acme", "roles": ["operator"] }));
    let id = uuid::Uuid::new_v4();
    let delete = http()
        .delete(app.url(&format!("/mailboxes/{id}")))
        .bearer_auth(&operator)
        .send()
        .await
        .expect("response");
    assert_eq!(status(delete), 403);

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

    let events: Value = http()
        .get(app.url("/audit-events"))
        .bearer_auth(app.token("acme", &["admin"]))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
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
    let elsewhere: Value = http()
        .get(app.url("/audit-events"))
        .bearer_auth(app.token("other", &["admin"]))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(
        elsewhere["items"],
        json!([]),
        "only the caller's organisation sees it"
    );
}
