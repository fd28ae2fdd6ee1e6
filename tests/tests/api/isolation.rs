//! Organisation isolation: every `{id}` route of the spec, called by another
//! organisation's admin, answers exactly like an id that does not exist, and
//! changes nothing.

use inboxlink_sdk::ProblemExt;
use serde_json::{Value, json};

use crate::helpers::{Api, TestApp, TestAppBuilder, backend_tests, mailbox_body};

/// Every (method, path template) with an `{id}` in the committed spec.
fn id_routes() -> Vec<(String, String)> {
    let spec: Value = serde_json::from_str(&inboxlink::openapi::spec_json()).expect("spec");
    let mut routes = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if path.contains("{id}") {
            for method in item.as_object().expect("item").keys() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes.sort();
    assert!(
        routes.len() >= 6,
        "the matrix covers the id routes: {routes:?}"
    );
    routes
}

/// The app credential and the mailbox of `with_mailbox` as `acme`'s admin sees them.
async fn acme_view(app: &TestApp) -> (Value, Value) {
    let acme = app.admin();
    let cred = acme.app_credential(app.app_credential_id()).await;
    let mailbox = acme.mailbox(app.mailbox_id()).await;
    (
        serde_json::to_value(cred).expect("json"),
        serde_json::to_value(mailbox).expect("json"),
    )
}

backend_tests!(other_orgs_ids_are_not_found_on_every_route);
async fn other_orgs_ids_are_not_found_on_every_route(app: TestAppBuilder) {
    let app = app.with_mailbox().start().await;
    let hook = app.new_webhook("http://127.0.0.1:9/hook", None).await;
    let alert = app
        .admin_call(
            "POST",
            "/email-alerts",
            Some(&json!({ "to": ["it@contoso.cz"], "sender_mailbox_id": app.mailbox_id() })),
        )
        .await;
    assert_eq!(alert.status, 201, "{:?}", alert.body);
    let alert: uuid::Uuid = alert.body["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let hook_id: uuid::Uuid = hook.id.parse().expect("uuid");
    let password = crate::bridge::new_password_of(&app, "acme", app.mailbox_id(), "Scanner").await;
    let password_id = password["id"].as_str().expect("id").to_owned();
    let before = acme_view(&app).await;
    let hook_before = app.webhook(&hook.id).await;

    let globex = app.token("globex", &["admin"]);
    for (method, template) in id_routes() {
        let acme_id = if template.starts_with("/app-credentials") {
            app.app_credential_id()
        } else if template.starts_with("/webhooks") {
            hook_id
        } else if template.starts_with("/email-alerts") {
            alert
        } else {
            app.mailbox_id()
        };
        let body = if template.ends_with("/bridge-passwords") {
            // A valid body: the answer must not be the body's refusal.
            Some(json!({ "name": "Scanner" }))
        } else {
            (method != "GET" && method != "DELETE").then(|| json!({}))
        };
        let mut answers = Vec::new();
        for id in [acme_id, uuid::Uuid::now_v7()] {
            let path = template
                .replace("{id}", &id.to_string())
                .replace("{delivery_id}", &uuid::Uuid::now_v7().to_string())
                .replace("{password_id}", &password_id);
            let answer = app.call_as(&globex, &method, &path, body.as_ref());
            let answer = answer.await;
            assert!(answer.body.is_object(), "problem json");
            answers.push((
                answer.status,
                answer.body["code"].clone(),
                answer.body["detail"].clone(),
            ));
        }
        assert_eq!(
            answers[0].0, 404,
            "{method} {template}: another org's id must be 404, got {answers:?}"
        );
        assert_eq!(
            answers[0], answers[1],
            "{method} {template}: indistinguishable from a missing id"
        );
    }
    assert_eq!(before, acme_view(&app).await, "nothing changed");
    assert_eq!(hook_before, app.webhook(&hook.id).await, "nothing changed");
    let passwords = app
        .admin_call(
            "GET",
            &format!("/mailboxes/{}/bridge-passwords", app.mailbox_id()),
            None,
        )
        .await;
    let items = passwords.body["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        1,
        "globex created none and revoked none: {items:?}"
    );
    assert_eq!(items[0]["id"], password["id"]);
    assert!(
        app.events_of("globex", None).await.is_empty(),
        "globex sees no event of acme"
    );
    let globex_sdk = app.sdk(&globex);
    assert!(globex_sdk.mailboxes(None).await.is_empty());
    let credentials = globex_sdk.app_credential_list().send().await;
    assert!(credentials.expect("list").items.is_empty());
}

backend_tests!(other_orgs_app_credential_cannot_be_used);
async fn other_orgs_app_credential_cannot_be_used(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let acme_cred = app.app_credential_id();
    let globex = app.admin_of("globex");
    let body = mailbox_body("info@globex.cz", acme_cred);
    let err = globex.mailbox_create().body(body).send().await;
    let err = err.expect_err("not globex's credential");
    assert_eq!(err.code(), Some("validation_failed"));

    let own = crate::helpers::app_credential_body("Globex", &crate::helpers::new_secret());
    let own = globex.create_app_credential(own).await;
    let mailbox = globex
        .create_mailbox(mailbox_body("info@globex.cz", own))
        .await;
    let err = globex
        .update_mailbox(mailbox, |b| b.app_credential_id(acme_cred))
        .await;
    let err = err.expect_err("not globex's credential");
    assert_eq!(err.code(), Some("validation_failed"));
    assert_eq!(globex.mailbox(mailbox).await.app_credential_id, own);
}
