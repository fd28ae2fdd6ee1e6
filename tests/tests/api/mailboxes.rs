//! `/mailboxes` through the SDK.

use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::{AccessMode, MailboxStatus};

use crate::helpers::{
    Api, ORG, TestAppBuilder, app_credential_body, assert_problem, backend_tests,
    mailbox_body as mailbox, new_secret,
};

backend_tests!(create_get_update_delete);
async fn create_get_update_delete(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let sdk = app.admin();
    let body = mailbox(" Podatelna@Contoso.CZ ", app.app_credential_id());
    let created = sdk.mailbox_create().body(body).send().await;
    let created = created.expect("created").into_inner();
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

    let fetched = sdk.mailbox(created.id).await;
    assert_eq!(fetched.email, created.email);

    let other = app.new_app_credential().await;
    let updated = sdk
        .update_mailbox(created.id, |b| {
            b.access_mode(AccessMode::AppOnly)
                .shared(true)
                .app_credential_id(other)
        })
        .await
        .expect("update");
    assert_eq!(updated.access_mode, AccessMode::AppOnly);
    assert!(updated.shared);
    assert_eq!(updated.app_credential_id, other);
    assert_eq!(updated.status, MailboxStatus::Inactive);

    let deleted = sdk.mailbox_delete().id(created.id).send().await;
    deleted.expect("deleted");
    let err = sdk.mailbox_get().id(created.id).send().await;
    assert_eq!(err.expect_err("gone").code(), Some("not_found"));
    // With its mailbox gone, the credential can be deleted.
    let deleted = sdk.app_credential_delete().id(other).send().await;
    deleted.expect("credential deleted");
}

backend_tests!(addresses_are_unique_per_org);
async fn addresses_are_unique_per_org(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let (acme, cred) = (app.admin(), app.app_credential_id());
    let first = acme.create_mailbox(mailbox("info@contoso.cz", cred)).await;
    let err = acme.mailbox_create().body(mailbox("INFO@contoso.cz", cred));
    assert_problem(&err.send().await.expect_err("taken"), 409, "mailbox_exists");
    let second = acme.create_mailbox(mailbox("other@contoso.cz", cred)).await;
    let err = acme
        .update_mailbox(second, |b| b.email("info@contoso.cz".to_owned()))
        .await;
    assert_eq!(err.expect_err("taken").code(), Some("mailbox_exists"));
    assert_eq!(acme.mailbox(second).await.email, "other@contoso.cz");
    assert_eq!(acme.mailbox(first).await.email, "info@contoso.cz");

    // Another organisation may connect the same address.
    let globex = app.admin_of("globex");
    let body = app_credential_body("Cred", &new_secret());
    let cred = globex.create_app_credential(body).await;
    let same = globex
        .mailbox_create()
        .body(mailbox("info@contoso.cz", cred));
    same.send().await.expect("same address, other org");
}

backend_tests!(list_pages_and_filters);
async fn list_pages_and_filters(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let (sdk, cred) = (app.admin(), app.app_credential_id());
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = mailbox(&format!("m{i}@contoso.cz"), cred);
        ids.push(sdk.create_mailbox(body).await);
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
    let inactive = sdk.mailboxes(Some(MailboxStatus::Inactive)).await;
    assert_eq!(inactive.len(), 5);
    let active = sdk.mailboxes(Some(MailboxStatus::Active)).await;
    assert!(active.is_empty());
    // The SDK refuses limit 0 before sending (the spec says minimum 1); the API answers 422.
    let err = sdk.mailbox_list().limit(0).send().await;
    let err = err.expect_err("limit 0");
    assert!(err.http_status().is_none(), "refused client-side");
    let token = app.token(ORG, &["admin"]);
    let answer = app.call_as(&token, "GET", "/mailboxes?limit=0", None);
    let answer = answer.await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.body["errors"][0]["field"], "limit");
}

backend_tests!(unknown_app_credential_is_refused);
async fn unknown_app_credential_is_refused(app: TestAppBuilder) {
    let app = app.start().await;
    let sdk = app.admin();
    let body = mailbox("a@contoso.cz", uuid::Uuid::now_v7());
    let err = sdk.mailbox_create().body(body).send().await;
    let err = err.expect_err("unknown");
    assert_problem(&err, 422, "validation_failed");
    assert_eq!(
        err.problem().expect("problem").errors[0].field,
        "app_credential_id"
    );
    let body = mailbox("not-an-address", uuid::Uuid::now_v7());
    let err = sdk.mailbox_create().body(body).send().await;
    let err = err.expect_err("bad email");
    assert_eq!(
        err.problem().expect("problem").errors[0].code,
        "invalid_email"
    );
    assert!(sdk.mailboxes(None).await.is_empty(), "nothing was stored");
}
