//! `/mailboxes` through the SDK.

use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::{AccessMode, MailboxStatus, MailboxUpdate};

use crate::helpers::{
    TestApp, app_credential_body, backend_tests, mailbox_body as mailbox, new_secret,
};

backend_tests!(
    create_get_update_delete,
    addresses_are_unique_per_org,
    list_pages_and_filters,
    unknown_app_credential_is_refused
);

async fn create_get_update_delete(app: TestApp) {
    let sdk = app.admin("acme");
    let cred = sdk
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred");
    let created = sdk
        .mailbox_create()
        .body(mailbox(" Podatelna@Contoso.CZ ", cred.id))
        .send()
        .await
        .expect("created")
        .into_inner();
    assert_eq!(created.email, "podatelna@contoso.cz");
    assert_eq!(created.status, MailboxStatus::Inactive);
    assert_eq!(created.access_mode, AccessMode::Delegated);
    assert!(!created.shared);
    assert_eq!(created.validity_days, None);
    assert_eq!(created.authorized_as, None);
    assert!(created.last_refresh_at.is_none() && created.last_check.is_none());
    let detail = created
        .status_detail
        .clone()
        .expect("an inactive mailbox says why");
    assert_eq!(detail.code, "not_authorized");
    assert!(detail.hint.is_some());

    let fetched = sdk
        .mailbox_get()
        .id(created.id)
        .send()
        .await
        .expect("get")
        .into_inner();
    assert_eq!(fetched.email, created.email);

    let other = sdk
        .app_credential_create()
        .body(app_credential_body("Other", &new_secret()))
        .send()
        .await
        .expect("cred");
    let update = MailboxUpdate {
        access_mode: Some(AccessMode::AppOnly),
        shared: Some(true),
        app_credential_id: Some(other.id),
        ..Default::default()
    };
    let updated = sdk
        .mailbox_update()
        .id(created.id)
        .body(update)
        .send()
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.access_mode, AccessMode::AppOnly);
    assert!(updated.shared);
    assert_eq!(updated.app_credential_id, other.id);
    assert_eq!(updated.status, MailboxStatus::Inactive);

    sdk.mailbox_delete()
        .id(created.id)
        .send()
        .await
        .expect("deleted");
    let err = sdk
        .mailbox_get()
        .id(created.id)
        .send()
        .await
        .expect_err("gone");
    assert_eq!(err.code(), Some("not_found"));
    // With its mailbox gone, the credential can be deleted.
    sdk.app_credential_delete()
        .id(other.id)
        .send()
        .await
        .expect("credential deleted");
}

async fn addresses_are_unique_per_org(app: TestApp) {
    let acme = app.admin("acme");
    let cred = acme
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred");
    let first = acme
        .mailbox_create()
        .body(mailbox("info@contoso.cz", cred.id))
        .send()
        .await
        .expect("first");
    let err = acme
        .mailbox_create()
        .body(mailbox("INFO@contoso.cz", cred.id))
        .send()
        .await
        .expect_err("taken");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(409), Some("mailbox_exists"))
    );
    let second = acme
        .mailbox_create()
        .body(mailbox("other@contoso.cz", cred.id))
        .send()
        .await
        .expect("second");
    let update = MailboxUpdate {
        email: Some("info@contoso.cz".into()),
        ..Default::default()
    };
    let err = acme
        .mailbox_update()
        .id(second.id)
        .body(update)
        .send()
        .await
        .expect_err("taken");
    assert_eq!(err.code(), Some("mailbox_exists"));
    assert_eq!(
        acme.mailbox_get()
            .id(second.id)
            .send()
            .await
            .expect("unchanged")
            .email,
        "other@contoso.cz"
    );
    assert_eq!(
        acme.mailbox_get()
            .id(first.id)
            .send()
            .await
            .expect("unchanged")
            .email,
        "info@contoso.cz"
    );

    // Another organisation may connect the same address.
    let globex = app.admin("globex");
    let cred = globex
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred");
    globex
        .mailbox_create()
        .body(mailbox("info@contoso.cz", cred.id))
        .send()
        .await
        .expect("same address, other org");
}

async fn list_pages_and_filters(app: TestApp) {
    let sdk = app.admin("acme");
    let cred = sdk
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred");
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            sdk.mailbox_create()
                .body(mailbox(&format!("m{i}@contoso.cz"), cred.id))
                .send()
                .await
                .expect("m")
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = sdk.mailbox_list().limit(2);
        if let Some(c) = cursor.take() {
            request = request.cursor(c);
        }
        let page = request.send().await.expect("page").into_inner();
        seen.extend(page.items.iter().map(|m| m.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every mailbox once, in creation order");
    let inactive = sdk
        .mailbox_list()
        .status(MailboxStatus::Inactive)
        .send()
        .await
        .expect("filter")
        .into_inner();
    assert_eq!(inactive.items.len(), 5);
    let active = sdk
        .mailbox_list()
        .status(MailboxStatus::Active)
        .send()
        .await
        .expect("filter")
        .into_inner();
    assert!(active.items.is_empty());
    // The SDK refuses limit 0 before sending (the spec says minimum 1); the API answers 422.
    let err = sdk
        .mailbox_list()
        .limit(0)
        .send()
        .await
        .expect_err("limit 0");
    assert!(err.http_status().is_none(), "refused client-side");
    let response = crate::helpers::http()
        .get(app.url("/mailboxes?limit=0"))
        .bearer_auth(app.token("acme", &["admin"]))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.expect("problem");
    assert_eq!(problem["errors"][0]["field"], "limit");
}

async fn unknown_app_credential_is_refused(app: TestApp) {
    let sdk = app.admin("acme");
    let err = sdk
        .mailbox_create()
        .body(mailbox("a@contoso.cz", uuid::Uuid::now_v7()))
        .send()
        .await
        .expect_err("unknown");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(422), Some("validation_failed"))
    );
    assert_eq!(
        err.problem().expect("problem").errors[0].field,
        "app_credential_id"
    );
    let err = sdk
        .mailbox_create()
        .body(mailbox("not-an-address", uuid::Uuid::now_v7()))
        .send()
        .await
        .expect_err("bad email");
    assert_eq!(
        err.problem().expect("problem").errors[0].code,
        "invalid_email"
    );
    assert!(
        sdk.mailbox_list()
            .send()
            .await
            .expect("list")
            .items
            .is_empty(),
        "nothing was stored"
    );
}
