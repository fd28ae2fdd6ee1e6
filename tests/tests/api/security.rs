//! The findings of the outside security review, each reproduced as the
//! reviewer described the attack: every test here failed before its fix.

use std::time::Duration;

use diesel::RunQueryDsl;
use inboxlink::config::Backend;
use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::{AccessMode, AdminConsentRequest, AdminConsentStatus, MailboxStatus};
use inboxlink_tests::fake_entra::Fault;
use serde_json::{Value, json};

use crate::helpers::{TestApp, backend_tests, http, logs};
use crate::signin::{CLIENT_ID, MAILBOX, SECRET, TENANT, World, browser, callback, follow, world};

backend_tests!(
    stored_addresses_from_before_the_strict_parse_are_marked_and_never_handed_out,
    front_channel_errors_concern_the_attempt_only,
    consent_links_are_minted_by_admins_and_held_to_the_tenant,
    a_domain_tenant_learns_its_guid_and_holds_consent_to_it,
    a_settings_change_during_the_code_redemption_wins,
    a_settings_change_during_an_app_only_refresh_wins,
    a_lost_race_in_the_keeper_is_a_conflict,
    a_recreated_account_with_the_same_name_is_refused,
    editing_the_app_credential_cancels_its_pending_sign_ins,
    a_change_is_never_without_its_audit_row,
);

/// Characters that mean something to a shell, PowerShell, an SMTP or IMAP
/// command line or a header: none may reach a PowerShell line's values or an
/// access-token field.
const DANGEROUS: &[char] = &['"', '`', '$', '\r', '\n', '\0', '<', '>', ' ', ';'];

#[tokio::test]
async fn display_names_and_shell_characters_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.admin("acme");
    let cred = admin
        .app_credential_create()
        .body(crate::helpers::app_credential_body(
            "E-filing",
            &crate::helpers::new_secret(),
        ))
        .send()
        .await
        .expect("cred")
        .id;
    let token = app.token("acme", &["admin"]);
    let create = |email: &str| {
        http()
            .post(app.url("/mailboxes"))
            .bearer_auth(&token)
            .json(&json!({ "email": email, "app_credential_id": cred }))
            .send()
    };
    assert_eq!(
        create("podatelna@contoso.cz")
            .await
            .expect("create")
            .status(),
        201
    );
    for bad in [
        "Podatelna <podatelna@contoso.cz>",
        "x\" -AccessRights FullAccess; Remove-Mailbox -Identity \"ceo@contoso.cz",
        "a$(Get-Mailbox)@contoso.cz",
        "a`whoami`@contoso.cz",
        "a\r\nRCPT TO:<x@evil.example>@contoso.cz",
        "a\u{0}@contoso.cz",
        "\"quoted\"@contoso.cz",
        "a@[10.0.0.1]",
        "jiří@contoso.cz",
    ] {
        let response = create(bad).await.expect("create");
        assert_eq!(response.status(), 422, "{bad:?}");
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["errors"][0]["code"], "invalid_email", "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains('\r') && !message.contains('\n'),
            "{message:?}"
        );
    }
    let page = admin
        .mailbox_list()
        .send()
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.items.len(), 1, "nothing else was stored");
}

/// An app-only mailbox with a token, then its stored address replaced the
/// way an older version would have stored it.
async fn tampered_app_only_mailbox(w: &World, stored: &str) -> uuid::Uuid {
    let id = w
        .mailbox("robot@contoso.cz", AccessMode::AppOnly, false)
        .await;
    w.admin
        .mailbox_refresh()
        .id(id)
        .body(inboxlink_sdk::types::RefreshRequest { return_url: None })
        .send()
        .await
        .expect("app-only refresh");
    let (mid, stored) = (id.to_string(), stored.to_owned());
    w.app
        .services
        .store
        .query(move |c| {
            use diesel::prelude::*;
            use inboxlink::store::schema::mailboxes::dsl::*;
            diesel::update(mailboxes.filter(id.eq(mid)))
                .set(email.eq(stored))
                .execute(c)?;
            Ok(())
        })
        .await
        .expect("tamper");
    id
}

async fn stored_addresses_from_before_the_strict_parse_are_marked_and_never_handed_out(
    app: TestApp,
) {
    let w = world(app).await;
    let evil = "robot\" -AccessRights FullAccess; Remove-Mailbox -Identity \"ceo@contoso.cz";
    let id = tampered_app_only_mailbox(&w, evil).await;

    // Even before anything marked it: no token, no PowerShell with its text.
    let err = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("mailbox_address_invalid"));
    let setup = w
        .admin
        .app_credential_setup()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("setup")
        .into_inner();
    let text = setup.powershell.join("\n");
    assert!(!text.contains("Remove-Mailbox"), "{text}");
    assert!(text.contains("# 1 mailbox(es) left out"), "{text}");
    for line in &setup.powershell {
        // Every value but the placeholder for the administrator to replace.
        for v in quoted_values(line) {
            if v != "<object id of the enterprise application>" {
                assert!(!v.contains(DANGEROUS), "{line}");
            }
        }
        assert!(!line.contains(['"', '`', '$']), "{line}");
    }

    // The migration that introduced the strict parse marks such rows: undo
    // it, and let an instance starting on the database apply it again.
    revert_security_migration(&w.app).await;
    let restarted = w.app.sibling().await;
    let mailbox = restarted
        .admin("acme")
        .mailbox_get()
        .id(id)
        .send()
        .await
        .expect("mailbox")
        .into_inner();
    assert_eq!(mailbox.status, MailboxStatus::Error);
    let detail = mailbox.status_detail.expect("detail");
    assert_eq!(detail.code, "invalid_address");
    assert!(logs().contains("a stored mailbox address is not valid"));
    let err = restarted
        .sdk(&restarted.token("acme", &["service"]))
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some("mailbox_address_invalid"));

    // Correcting the address makes the mailbox usable again after a sign-in.
    restarted
        .admin("acme")
        .mailbox_update()
        .id(id)
        .body(inboxlink_sdk::types::MailboxUpdate {
            email: Some("robot@contoso.cz".into()),
            ..Default::default()
        })
        .send()
        .await
        .expect("corrected");
    let refreshed = restarted
        .admin("acme")
        .mailbox_refresh()
        .id(id)
        .body(inboxlink_sdk::types::RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner();
    assert_eq!(refreshed.mailbox.status, MailboxStatus::Active);
    let token = restarted
        .sdk(&restarted.token("acme", &["service"]))
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("token")
        .into_inner();
    for field in [&token.mailbox, &token.imap_user, &token.smtp_user] {
        assert!(!field.contains(DANGEROUS), "{field}");
    }
}

/// The `'...'` literals of a PowerShell line, unquoted.
fn quoted_values(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                Some('\'') | None => break,
                Some(c) => value.push(c),
            }
        }
        out.push(value);
    }
    out
}

/// Runs the down migration of the security review's migration and forgets
/// that it was applied, as a database of the version before would be.
async fn revert_security_migration(app: &TestApp) {
    let dialect = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let down = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(dialect)
            .join("2026-12-02-000004_security_review/down.sql"),
    )
    .expect("down.sql");
    app.services
        .store
        .query(move |c| {
            use diesel::connection::SimpleConnection;
            c.batch_execute(&down)?;
            diesel::sql_query(
                "DELETE FROM __diesel_schema_migrations WHERE version = '20261202000004'",
            )
            .execute(c)?;
            Ok(())
        })
        .await
        .expect("revert");
}

/// The state of a fresh sign-in URL, and the URL.
async fn start_sign_in(w: &World, id: uuid::Uuid) -> (String, String) {
    let started = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(inboxlink_sdk::types::RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner();
    let url = started.authorization_url.expect("url");
    let state = url::Url::parse(&url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    (state, url)
}

async fn audit(w: &World) -> Vec<inboxlink_sdk::types::AuditEvent> {
    w.admin
        .audit_event_list()
        .limit(200u32)
        .send()
        .await
        .expect("audit")
        .into_inner()
        .items
}

async fn front_channel_errors_concern_the_attempt_only(app: TestApp) {
    let w = world(app).await;
    let a = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let b = w
        .mailbox("urad@contoso.cz", AccessMode::Delegated, false)
        .await;
    for id in [a, b] {
        let (status, _, page) = w.sign_in(id).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(w.status(id).await.status, MailboxStatus::Active);
    }
    // Anyone holding an unused sign-in link answers for Microsoft.
    for (error, description) in [
        (
            "invalid_client",
            "AADSTS7000222: The provided client secret keys are expired.",
        ),
        (
            "invalid_grant",
            "AADSTS50173: The provided grant has expired due to it being revoked.",
        ),
    ] {
        let (state, _) = start_sign_in(&w, a).await;
        let mut forged = url::Url::parse(&w.app.url("/oauth/callback")).expect("url");
        forged
            .query_pairs_mut()
            .append_pair("state", &state)
            .append_pair("error", error)
            .append_pair("error_description", description);
        let (status, _, page) = callback(forged.as_str()).await;
        assert_eq!(status, 200, "{page}");
        for id in [a, b] {
            assert_eq!(w.status(id).await.status, MailboxStatus::Active, "{error}");
        }
        let detail = w
            .status(a)
            .await
            .status_detail
            .expect("the attempt is recorded");
        assert!(
            ["client_secret_expired", "grant_revoked"].contains(&detail.code.as_str()),
            "{detail:?}"
        );
        let cred = w
            .admin
            .app_credential_get()
            .id(w.app_credential_id)
            .send()
            .await
            .expect("cred")
            .into_inner();
        assert!(cred.problem.is_none(), "the app credential is not flagged");
    }
    let failed: Vec<_> = audit(&w)
        .await
        .into_iter()
        .filter(|e| e.action == "mailbox.sign_in_failed")
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e.actor == "browser"), "{failed:?}");
    // The grant was never ended.
    w.service()
        .mailbox_access_token()
        .id(a)
        .send()
        .await
        .expect("a still works");
}

async fn consent_links_are_minted_by_admins_and_held_to_the_tenant(app: TestApp) {
    let w = world(app).await;
    for role in ["viewer", "operator"] {
        let sdk = w.app.sdk(&w.app.token("acme", &[role]));
        sdk.app_credential_setup()
            .id(w.app_credential_id)
            .send()
            .await
            .expect("the setup view is readable");
        let err = sdk
            .app_credential_admin_consent()
            .id(w.app_credential_id)
            .body(AdminConsentRequest { return_url: None })
            .send()
            .await
            .expect_err("only admins mint consent links");
        assert_eq!(err.code(), Some("forbidden"), "{role}");
    }
    assert_eq!(
        pending_authorizations(&w.app).await,
        0,
        "reading wrote nothing"
    );

    // A consent answer naming another tenant is refused and records nothing.
    let link = w
        .admin
        .app_credential_admin_consent()
        .id(w.app_credential_id)
        .body(AdminConsentRequest { return_url: None })
        .send()
        .await
        .expect("link")
        .into_inner();
    let state = url::Url::parse(&link.admin_consent_url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let mut forged = url::Url::parse(&w.app.url("/oauth/callback")).expect("url");
    forged
        .query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("admin_consent", "True")
        .append_pair("tenant", "00000000-0000-4000-8000-000000000000");
    let (status, _, page) = callback(forged.as_str()).await;
    assert_eq!(status, 200);
    assert!(page.contains("consent_tenant_mismatch"), "{page}");
    let setup = w
        .admin
        .app_credential_setup()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("setup")
        .into_inner();
    assert_eq!(setup.admin_consent.status, AdminConsentStatus::None);
    let events = audit(&w).await;
    let started = events
        .iter()
        .find(|e| e.action == "app_credential.admin_consent_started")
        .expect("minting is audited");
    assert_eq!(started.actor, "tester");
    let answer = events
        .iter()
        .find(|e| e.action == "app_credential.admin_consent")
        .expect("the answer is audited");
    assert_eq!(answer.actor, "browser");
    assert_eq!(answer.outcome, "consent_tenant_mismatch");
}

async fn pending_authorizations(app: &TestApp) -> i64 {
    app.services
        .store
        .query(|c| {
            use diesel::QueryDsl;
            use inboxlink::store::schema::authorizations::dsl::*;
            Ok(authorizations.count().get_result::<i64>(c)?)
        })
        .await
        .expect("count")
}

async fn a_domain_tenant_learns_its_guid_and_holds_consent_to_it(app: TestApp) {
    let w = world(app).await;
    // The same app registration, entered by its tenant's domain.
    let cred = w
        .admin
        .app_credential_create()
        .body(inboxlink_sdk::types::AppCredentialCreate {
            name: "By domain".into(),
            provider: None,
            client_id: CLIENT_ID.into(),
            tenant_id: "contoso.cz".into(),
            client_secret: SECRET.into(),
            secret_expires_at: None,
        })
        .send()
        .await
        .expect("cred")
        .id;
    // Before the GUID is known, a consent answer naming some other tenant is
    // only reported: verify cannot get a token there, so it is not established.
    let link = w
        .admin
        .app_credential_admin_consent()
        .id(cred)
        .body(AdminConsentRequest { return_url: None })
        .send()
        .await
        .expect("link")
        .into_inner();
    let state = url::Url::parse(&link.admin_consent_url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let mut forged = url::Url::parse(&w.app.url("/oauth/callback")).expect("url");
    let elsewhere = "00000000-0000-4000-8000-000000000000";
    forged
        .query_pairs_mut()
        .append_pair("state", &state)
        .append_pair("admin_consent", "True")
        .append_pair("tenant", elsewhere);
    callback(forged.as_str()).await;
    let verified = w
        .admin
        .app_credential_verify()
        .id(cred)
        .send()
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.ok, "the credential itself works");
    assert_eq!(verified.admin_consent.status, AdminConsentStatus::Reported);
    assert_eq!(verified.admin_consent.tenant.as_deref(), Some(elsewhere));

    // A sign-in teaches the credential its tenant's GUID ...
    let body = inboxlink_sdk::types::MailboxCreate {
        email: MAILBOX.into(),
        app_credential_id: cred,
        access_mode: None,
        shared: None,
    };
    let id = w
        .admin
        .mailbox_create()
        .body(body)
        .send()
        .await
        .expect("mb")
        .id;
    let (status, _, page) = w.sign_in(id).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("signed_in"), "{page}");
    let learned = w
        .admin
        .app_credential_get()
        .id(cred)
        .send()
        .await
        .expect("cred");
    assert_eq!(learned.tenant_guid.as_deref(), Some(TENANT));
    // ... and a consent answer for another tenant is now refused outright.
    let link = w
        .admin
        .app_credential_admin_consent()
        .id(cred)
        .body(AdminConsentRequest { return_url: None })
        .send()
        .await
        .expect("link")
        .into_inner();
    let to_callback = browser()
        .get(&link.admin_consent_url)
        .send()
        .await
        .expect("consent");
    let real = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let wrong = real.replace(TENANT, elsewhere);
    let (_, _, page) = callback(&wrong).await;
    assert!(page.contains("consent_tenant_mismatch"), "{page}");
}

async fn a_settings_change_during_the_code_redemption_wins(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let (_, url) = start_sign_in(&w, id).await;
    let to_callback = browser().get(&url).send().await.expect("authorize");
    let location = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    // The code redemption is slow; the mailbox is moved to another address meanwhile.
    w.fake.set_latency(Duration::from_millis(1500));
    let pending = tokio::spawn(async move { callback(&location).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    w.admin
        .mailbox_update()
        .id(id)
        .body(inboxlink_sdk::types::MailboxUpdate {
            email: Some("jiny@contoso.cz".into()),
            ..Default::default()
        })
        .send()
        .await
        .expect("update during the sign-in");
    let (status, _, page) = pending.await.expect("callback");
    assert_eq!(status, 200);
    assert!(page.contains("settings_changed"), "{page}");
    let mailbox = w.status(id).await;
    assert_eq!(mailbox.email, "jiny@contoso.cz");
    assert_eq!(mailbox.status, MailboxStatus::Inactive);
    assert!(mailbox.authorized_as.is_none());
    let err = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect_err("no tokens of the old account");
    assert_eq!(err.code(), Some("mailbox_not_authorized"));
}

async fn a_settings_change_during_an_app_only_refresh_wins(app: TestApp) {
    let w = world(app).await;
    let id = w
        .mailbox("robot@contoso.cz", AccessMode::AppOnly, false)
        .await;
    w.fake.set_latency(Duration::from_millis(1500));
    let admin = w.admin.clone();
    let pending = tokio::spawn(async move {
        admin
            .mailbox_refresh()
            .id(id)
            .body(inboxlink_sdk::types::RefreshRequest { return_url: None })
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    w.admin
        .mailbox_update()
        .id(id)
        .body(inboxlink_sdk::types::MailboxUpdate {
            access_mode: Some(AccessMode::Delegated),
            ..Default::default()
        })
        .send()
        .await
        .expect("update during the refresh");
    let err = pending.await.expect("task").expect_err("the change won");
    assert_eq!(err.code(), Some("settings_changed"));
    assert_eq!(err.http_status(), Some(409));
    let mailbox = w.status(id).await;
    assert_eq!(mailbox.access_mode, AccessMode::Delegated);
    assert_eq!(mailbox.status, MailboxStatus::Inactive);
}

async fn a_lost_race_in_the_keeper_is_a_conflict(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    w.fake.set_access_token_ttl(1);
    let (status, _, page) = w.sign_in(id).await;
    assert_eq!(status, 200, "{page}");
    // The stored access token is stale: the next call refreshes, slowly.
    w.fake.set_latency(Duration::from_millis(1500));
    let service = w.service();
    let pending = tokio::spawn(async move { service.mailbox_access_token().id(id).send().await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    w.admin
        .mailbox_update()
        .id(id)
        .body(inboxlink_sdk::types::MailboxUpdate {
            shared: Some(true),
            ..Default::default()
        })
        .send()
        .await
        .expect("update during the refresh");
    let err = pending.await.expect("task").expect_err("the change won");
    assert_eq!(err.http_status(), Some(409), "{err:?}");
    assert_eq!(err.code(), Some("mailbox_not_authorized"));
}

async fn a_recreated_account_with_the_same_name_is_refused(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let (_, _, page) = w.sign_in(id).await;
    assert!(page.contains("signed_in"), "{page}");
    // Another account now carries the mailbox's user name.
    w.fake.recreate_user(MAILBOX);
    let (status, _, page) = w.sign_in(id).await;
    assert_eq!(status, 200);
    assert!(page.contains("identity_changed"), "{page}");
    let mailbox = w.status(id).await;
    assert_eq!(
        mailbox.status,
        MailboxStatus::Active,
        "the old grant is kept"
    );
    assert_eq!(
        mailbox.status_detail.expect("detail").code,
        "identity_changed"
    );
    let refused = audit(&w)
        .await
        .into_iter()
        .find(|e| e.action == "mailbox.sign_in_failed")
        .expect("audited");
    assert_eq!(refused.outcome, "identity_changed");
}

async fn editing_the_app_credential_cancels_its_pending_sign_ins(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let (_, url) = start_sign_in(&w, id).await;
    let link = w
        .admin
        .app_credential_admin_consent()
        .id(w.app_credential_id)
        .body(AdminConsentRequest { return_url: None })
        .send()
        .await
        .expect("link")
        .into_inner();
    assert_eq!(pending_authorizations(&w.app).await, 2);
    // A new secret (the fake accepts both).
    let rotated = "Zz9~rotated.secret_for-the_fake";
    w.fake.register_app(TENANT, CLIENT_ID, rotated);
    w.admin
        .app_credential_update()
        .id(w.app_credential_id)
        .body(inboxlink_sdk::types::AppCredentialUpdate {
            client_secret: Some(rotated.into()),
            ..Default::default()
        })
        .send()
        .await
        .expect("update");
    assert_eq!(pending_authorizations(&w.app).await, 0);
    let (status, _, page) = follow(&url).await;
    assert_eq!(status, 400);
    assert!(page.contains("state_unknown"), "{page}");
    let to_callback = browser()
        .get(&link.admin_consent_url)
        .send()
        .await
        .expect("consent");
    let location = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let (status, _, page) = callback(&location).await;
    assert_eq!(status, 400);
    assert!(page.contains("state_unknown"), "{page}");
    // A name change cancels nothing.
    let (_, url) = start_sign_in(&w, id).await;
    w.admin
        .app_credential_update()
        .id(w.app_credential_id)
        .body(inboxlink_sdk::types::AppCredentialUpdate {
            name: Some("Renamed".into()),
            ..Default::default()
        })
        .send()
        .await
        .expect("rename");
    let (status, _, page) = follow(&url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("signed_in"), "{page}");
}

async fn a_change_is_never_without_its_audit_row(app: TestApp) {
    let admin = app.admin("acme");
    let cred = admin
        .app_credential_create()
        .body(crate::helpers::app_credential_body(
            "E-filing",
            &crate::helpers::new_secret(),
        ))
        .send()
        .await
        .expect("cred")
        .id;
    let break_audit = |sql: &'static str| {
        app.services.store.query(move |c| {
            diesel::sql_query(sql).execute(c)?;
            Ok(())
        })
    };
    break_audit("ALTER TABLE audit_events RENAME TO audit_events_away")
        .await
        .expect("rename");
    let err = admin
        .mailbox_create()
        .body(crate::helpers::mailbox_body(MAILBOX, cred))
        .send()
        .await
        .expect_err("the audit row cannot be written");
    assert_eq!(err.http_status(), Some(500));
    let err = admin
        .app_credential_delete()
        .id(cred)
        .send()
        .await
        .expect_err("the audit row cannot be written");
    assert_eq!(err.http_status(), Some(500));
    break_audit("ALTER TABLE audit_events_away RENAME TO audit_events")
        .await
        .expect("restore");
    // Neither change happened without its audit row.
    let page = admin
        .mailbox_list()
        .send()
        .await
        .expect("list")
        .into_inner();
    assert!(page.items.is_empty(), "the mailbox was not created");
    admin
        .app_credential_get()
        .id(cred)
        .send()
        .await
        .expect("the credential was not deleted");
}

#[tokio::test]
async fn token_requests_follow_no_redirect() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let w = world(app).await;
    let id = w
        .mailbox("robot@contoso.cz", AccessMode::AppOnly, false)
        .await;
    // Where a redirect would send the client secret.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let stolen = format!("http://{}/steal", listener.local_addr().expect("addr"));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            use tokio::io::AsyncWriteExt;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    for status in [307, 308, 302] {
        w.fake.inject(Fault::Redirect {
            status,
            location: stolen.clone(),
        });
    }
    let err = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(inboxlink_sdk::types::RefreshRequest { return_url: None })
        .send()
        .await
        .expect_err("no token");
    assert_eq!(err.http_status(), Some(503), "{err:?}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was re-posted"
    );
    assert_eq!(w.fake.token_calls("client_credentials"), 3);
    // Microsoft answering normally again works.
    w.admin
        .mailbox_refresh()
        .id(id)
        .body(inboxlink_sdk::types::RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh");
}

#[tokio::test]
async fn absurd_token_lifetimes_are_clamped() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let w = world(app).await;
    let id = w
        .mailbox("robot@contoso.cz", AccessMode::AppOnly, false)
        .await;
    for absurd in [1_000_000_000_000_000_u64, u64::MAX, 0] {
        w.fake.report_expires_in(Some(absurd));
        let refreshed = w
            .admin
            .mailbox_refresh()
            .id(id)
            .body(inboxlink_sdk::types::RefreshRequest { return_url: None })
            .send()
            .await
            .unwrap_or_else(|e| panic!("expires_in {absurd}: {e:?}"))
            .into_inner();
        assert_eq!(refreshed.mailbox.status, MailboxStatus::Active);
        let token = w
            .service()
            .mailbox_access_token()
            .id(id)
            .send()
            .await
            .expect("token")
            .into_inner();
        let now = chrono::Utc::now();
        assert!(
            token.expires_at <= now + chrono::Duration::hours(24),
            "{absurd}"
        );
    }
    w.fake.report_expires_in(None);
    // The service is still serving (no worker died).
    assert_eq!(
        http()
            .get(w.app.url("/healthz"))
            .send()
            .await
            .expect("health")
            .status(),
        200
    );
}
