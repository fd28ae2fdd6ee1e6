//! Organisation isolation: every `{id}` route of the spec, called by another
//! organisation's admin, answers exactly like an id that does not exist, and
//! changes nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, app_credential_body, backend_tests, http, new_secret};

backend_tests!(
    other_orgs_ids_are_not_found_on_every_route,
    other_orgs_app_credential_cannot_be_used
);

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

async fn other_orgs_ids_are_not_found_on_every_route(app: TestApp) {
    let acme = app.admin("acme");
    let cred = acme
        .app_credential_create()
        .body(app_credential_body("Acme", &new_secret()))
        .send()
        .await
        .expect("cred");
    let mailbox = acme
        .mailbox_create()
        .body(inboxlink_sdk::types::MailboxCreate {
            email: "podatelna@acme.cz".into(),
            app_credential_id: cred.id,
            access_mode: None,
            shared: None,
        })
        .send()
        .await
        .expect("mailbox")
        .into_inner();
    let before = (
        serde_json::to_value(
            acme.app_credential_get()
                .id(cred.id)
                .send()
                .await
                .expect("get")
                .into_inner(),
        )
        .expect("json"),
        serde_json::to_value(
            acme.mailbox_get()
                .id(mailbox.id)
                .send()
                .await
                .expect("get")
                .into_inner(),
        )
        .expect("json"),
    );

    let globex = app.token("globex", &["admin"]);
    for (method, template) in id_routes() {
        let acme_id = if template.starts_with("/app-credentials") {
            cred.id
        } else {
            mailbox.id
        };
        let mut answers = Vec::new();
        for id in [acme_id, uuid::Uuid::now_v7()] {
            let url = app.url(&template.replace("{id}", &id.to_string()));
            let request = http()
                .request(method.parse().expect("method"), url)
                .bearer_auth(&globex);
            let request = if method == "GET" || method == "DELETE" {
                request
            } else {
                request.json(&json!({}))
            };
            let response = request.send().await.expect("response");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("problem json");
            answers.push((status, body["code"].clone(), body["detail"].clone()));
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
    let after = (
        serde_json::to_value(
            acme.app_credential_get()
                .id(cred.id)
                .send()
                .await
                .expect("get")
                .into_inner(),
        )
        .expect("json"),
        serde_json::to_value(
            acme.mailbox_get()
                .id(mailbox.id)
                .send()
                .await
                .expect("get")
                .into_inner(),
        )
        .expect("json"),
    );
    assert_eq!(before, after, "nothing changed");
    let globex_sdk = app.sdk(&globex);
    assert!(
        globex_sdk
            .mailbox_list()
            .send()
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert!(
        globex_sdk
            .app_credential_list()
            .send()
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

async fn other_orgs_app_credential_cannot_be_used(app: TestApp) {
    let acme = app.admin("acme");
    let acme_cred = acme
        .app_credential_create()
        .body(app_credential_body("Acme", &new_secret()))
        .send()
        .await
        .expect("cred");
    let globex = app.admin("globex");
    let body = inboxlink_sdk::types::MailboxCreate {
        email: "info@globex.cz".into(),
        app_credential_id: acme_cred.id,
        access_mode: None,
        shared: None,
    };
    let err = globex
        .mailbox_create()
        .body(body.clone())
        .send()
        .await
        .expect_err("not globex's credential");
    assert_eq!(
        inboxlink_sdk::ProblemExt::code(&err),
        Some("validation_failed")
    );

    let own = globex
        .app_credential_create()
        .body(app_credential_body("Globex", &new_secret()))
        .send()
        .await
        .expect("cred");
    let mailbox = globex
        .mailbox_create()
        .body(inboxlink_sdk::types::MailboxCreate {
            app_credential_id: own.id,
            ..body
        })
        .send()
        .await
        .expect("mailbox");
    let update = inboxlink_sdk::types::MailboxUpdate {
        app_credential_id: Some(acme_cred.id),
        ..Default::default()
    };
    let err = globex
        .mailbox_update()
        .id(mailbox.id)
        .body(update)
        .send()
        .await
        .expect_err("not globex's credential");
    assert_eq!(
        inboxlink_sdk::ProblemExt::code(&err),
        Some("validation_failed")
    );
    assert_eq!(
        globex
            .mailbox_get()
            .id(mailbox.id)
            .send()
            .await
            .expect("get")
            .app_credential_id,
        own.id
    );
}
