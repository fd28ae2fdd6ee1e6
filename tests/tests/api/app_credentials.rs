//! `/app-credentials` through the SDK.

use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::{AppCredentialUpdate, MailboxCreate};

use crate::helpers::{TestApp, app_credential_body, backend_tests, new_secret};

backend_tests!(
    create_get_list_update_delete,
    deleting_a_used_credential_names_its_mailboxes,
    invalid_fields_are_all_reported
);

async fn create_get_list_update_delete(app: TestApp) {
    let sdk = app.admin("acme");
    let secret = new_secret();
    let mut body = app_credential_body("E-filing office", &secret);
    body.secret_expires_at = Some(chrono::Utc::now().date_naive() + chrono::Days::new(30));
    let created = sdk
        .app_credential_create()
        .body(body)
        .send()
        .await
        .expect("created")
        .into_inner();
    assert_eq!(created.name, "E-filing office");
    assert_eq!(created.provider, inboxlink_sdk::types::Provider::Microsoft);
    assert_eq!(
        created.secret_hint,
        format!("...{}", &secret[secret.len() - 4..])
    );
    assert_eq!(created.secret_days_left, Some(30));
    assert_eq!(created.redirect_uri, format!("{}/oauth/callback", app.base));

    let fetched = sdk
        .app_credential_get()
        .id(created.id)
        .send()
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched.id, created.id);
    assert_eq!(fetched.client_id, "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f");

    let second = sdk
        .app_credential_create()
        .body(app_credential_body("Second", &new_secret()))
        .send()
        .await
        .expect("second");
    let page = sdk
        .app_credential_list()
        .limit(1)
        .send()
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, created.id, "creation order");
    let cursor = page.next_cursor.expect("a next page");
    let page2 = sdk
        .app_credential_list()
        .limit(1)
        .cursor(cursor)
        .send()
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(page2.items[0].id, second.id);

    let new_secret_value = new_secret();
    let update = AppCredentialUpdate {
        name: Some("Renamed".into()),
        client_secret: Some(new_secret_value.clone()),
        tenant_id: Some("5F4D7E3C-1B2A-4C5D-8E9F-0A1B2C3D4E60".into()),
        ..Default::default()
    };
    let updated = sdk
        .app_credential_update()
        .id(created.id)
        .body(update)
        .send()
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(
        updated.tenant_id, "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e60",
        "GUIDs are stored lower case"
    );
    assert_eq!(
        updated.secret_hint,
        format!("...{}", &new_secret_value[new_secret_value.len() - 4..])
    );
    assert!(updated.updated_at > created.updated_at);
    let org = inboxlink::domain::OrgId::parse("acme").expect("org");
    let stored = app
        .services
        .app_credential_with_secret(&org, created.id.into())
        .await
        .map(|(_, secret)| secret)
        .expect("decrypts");
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&stored),
        new_secret_value,
        "the new secret replaced the old"
    );

    sdk.app_credential_delete()
        .id(created.id)
        .send()
        .await
        .expect("deleted");
    let err = sdk
        .app_credential_get()
        .id(created.id)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(404), Some("not_found"))
    );
}

async fn deleting_a_used_credential_names_its_mailboxes(app: TestApp) {
    let sdk = app.admin("acme");
    let cred = sdk
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred");
    for email in ["b@contoso.cz", "a@contoso.cz"] {
        let body = MailboxCreate {
            email: email.into(),
            app_credential_id: cred.id,
            access_mode: None,
            shared: None,
        };
        sdk.mailbox_create()
            .body(body)
            .send()
            .await
            .expect("mailbox");
    }
    let err = sdk
        .app_credential_delete()
        .id(cred.id)
        .send()
        .await
        .expect_err("in use");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(409), Some("app_credential_in_use"))
    );
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
    sdk.app_credential_get()
        .id(cred.id)
        .send()
        .await
        .expect("still there");
}

async fn invalid_fields_are_all_reported(app: TestApp) {
    let sdk = app.admin("acme");
    let mut body = app_credential_body(" ", "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f");
    body.client_id = "my-app".into();
    body.tenant_id = "common".into();
    let err = sdk
        .app_credential_create()
        .body(body)
        .send()
        .await
        .expect_err("invalid");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(422), Some("validation_failed"))
    );
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
    let list = sdk
        .app_credential_list()
        .send()
        .await
        .expect("list")
        .into_inner();
    assert!(list.items.is_empty(), "nothing was stored");
}
