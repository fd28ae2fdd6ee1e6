//! `/app-credentials` through the SDK.

use inboxlink_sdk::ProblemExt;

use crate::helpers::{
    Api, PLACEHOLDER_CLIENT_ID, TestAppBuilder, app_credential_body, assert_problem, backend_tests,
    mailbox_body, new_secret,
};

/// The `...` hint of a secret: its last 4 characters.
fn hint(secret: &str) -> String {
    format!("...{}", &secret[secret.len() - 4..])
}

backend_tests!(create_get_list_update_delete);
async fn create_get_list_update_delete(app: TestAppBuilder) {
    let app = app.start().await;
    let sdk = app.admin();
    let secret = new_secret();
    let body = app_credential_body("E-filing office", &secret)
        .secret_expires_at(chrono::Utc::now().date_naive() + chrono::Days::new(30));
    let created = sdk.app_credential_create().body(body).send().await;
    let created = created.expect("created").into_inner();
    assert_eq!(created.name, "E-filing office");
    assert_eq!(created.provider, inboxlink_sdk::types::Provider::Microsoft);
    assert_eq!(created.secret_hint, hint(&secret));
    assert_eq!(created.secret_days_left, Some(30));
    assert_eq!(created.redirect_uri, app.url("/oauth/callback"));

    let fetched = sdk.app_credential(created.id).await;
    assert_eq!(fetched.id, created.id);
    assert_eq!(fetched.client_id, PLACEHOLDER_CLIENT_ID);

    let second = app_credential_body("Second", &new_secret());
    let second = sdk.create_app_credential(second).await;
    let page = sdk.app_credential_list().limit(1).send().await;
    let page = page.expect("list").into_inner();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, created.id, "creation order");
    let cursor = page.next_cursor.expect("a next page");
    let page2 = sdk.app_credential_list().limit(1).cursor(cursor).send();
    let page2 = page2.await.expect("page 2").into_inner();
    assert_eq!(page2.items[0].id, second);

    let new_secret_value = new_secret();
    let updated = sdk
        .update_app_credential(created.id, |b| {
            b.name("Renamed".to_owned())
                .client_secret(new_secret_value.clone())
                .tenant_id("5F4D7E3C-1B2A-4C5D-8E9F-0A1B2C3D4E60".to_owned())
        })
        .await
        .expect("update");
    assert_eq!(updated.name, "Renamed");
    assert_eq!(
        updated.tenant_id, "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e60",
        "GUIDs are stored lower case"
    );
    assert_eq!(updated.secret_hint, hint(&new_secret_value));
    assert!(updated.updated_at > created.updated_at);
    let stored = app.stored_client_secret(created.id).await;
    assert_eq!(
        stored.expect("decrypts"),
        new_secret_value,
        "the new secret replaced the old"
    );

    let deleted = sdk.app_credential_delete().id(created.id).send().await;
    deleted.expect("deleted");
    let err = sdk.app_credential_get().id(created.id).send().await;
    assert_problem(&err.expect_err("gone"), 404, "not_found");
}

backend_tests!(deleting_a_used_credential_names_its_mailboxes);
async fn deleting_a_used_credential_names_its_mailboxes(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let (sdk, cred) = (app.admin(), app.app_credential_id());
    for email in ["b@contoso.cz", "a@contoso.cz"] {
        sdk.create_mailbox(mailbox_body(email, cred)).await;
    }
    let err = sdk.app_credential_delete().id(cred).send().await;
    let err = err.expect_err("in use");
    assert_problem(&err, 409, "app_credential_in_use");
    let problem = err.problem().expect("problem");
    assert_eq!(
        problem.mailboxes,
        vec!["a@contoso.cz".to_owned(), "b@contoso.cz".to_owned()]
    );
    assert!(
        problem.detail.contains("a@contoso.cz"),
        "{}",
        problem.detail
    );
    let kept = sdk.app_credential_get().id(cred).send().await;
    kept.expect("still there");
}

backend_tests!(invalid_fields_are_all_reported);
async fn invalid_fields_are_all_reported(app: TestAppBuilder) {
    let app = app.start().await;
    let sdk = app.admin();
    let body = app_credential_body(" ", PLACEHOLDER_CLIENT_ID)
        .client_id("my-app")
        .tenant_id("common");
    let err = sdk.app_credential_create().body(body).send().await;
    let err = err.expect_err("invalid");
    assert_problem(&err, 422, "validation_failed");
    let mut fields: Vec<(String, String)> = err
        .problem()
        .expect("problem")
        .errors
        .iter()
        .map(|e| (e.field.clone(), e.code.clone()))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("client_id".to_owned(), "invalid_client_id".to_owned()),
            (
                "client_secret".to_owned(),
                "client_secret_is_secret_id".to_owned()
            ),
            ("name".to_owned(), "invalid_name".to_owned()),
            ("tenant_id".to_owned(), "invalid_tenant_id".to_owned()),
        ]
    );
    let list = sdk.app_credential_list().send().await;
    assert!(list.expect("list").items.is_empty(), "nothing was stored");
}
