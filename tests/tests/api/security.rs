//! The findings of the outside security review, each reproduced as the
//! reviewer described the attack: every test here failed before its fix.

use std::time::Duration;

use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::{AccessMode, AdminConsentStatus, MailboxStatus};
use inboxlink_tests::fake_entra::Fault;
use serde_json::json;

use crate::helpers::{
    Api, CLIENT_ID, MAILBOX, ORG, TENANT, TENANT_DOMAIN, TestApp, TestAppBuilder, assert_status,
    authorize, backend_tests, callback, fake_app_credential_body, follow, logs, mailbox_body,
    state_of,
};

/// Characters that mean something to a shell, PowerShell, an SMTP or IMAP
/// command line or a header: none may reach a PowerShell line's values or an
/// access-token field.
const DANGEROUS: &[char] = &['"', '`', '$', '\r', '\n', '\0', '<', '>', ' ', ';'];

/// The service with the fake Entra ID and its app as the app credential.
async fn with_entra(app: TestAppBuilder) -> TestApp {
    app.with_fake_entra().with_app_credential().start().await
}

/// A new app-only mailbox of `app`'s app credential.
/// Another app-only mailbox.
async fn robot_named(app: &TestApp, email: &str) -> uuid::Uuid {
    app.new_mailbox_with(email, |b| b.access_mode(AccessMode::AppOnly))
        .await
}

async fn robot(app: &TestApp) -> uuid::Uuid {
    app.new_mailbox_with("robot@contoso.cz", |b| b.access_mode(AccessMode::AppOnly))
        .await
}

#[tokio::test]
async fn display_names_and_shell_characters_are_refused() {
    let app = TestApp::new().with_app_credential().start().await;
    let cred = app.app_credential_id();
    let token = app.token(ORG, &["admin"]);
    let create = async |email: &str| {
        let body = json!({ "email": email, "app_credential_id": cred });
        app.call_as(&token, "POST", "/mailboxes", Some(&body)).await
    };
    assert_eq!(create("podatelna@contoso.cz").await.status, 201);
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
        let answer = create(bad).await;
        assert_eq!(answer.status, 422, "{bad:?}");
        let problem = &answer.body;
        assert_eq!(problem["errors"][0]["code"], "invalid_email", "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains('\r') && !message.contains('\n'),
            "{message:?}"
        );
    }
    let page = app.admin().mailboxes(None).await;
    assert_eq!(page.len(), 1, "nothing else was stored");
}

/// An app-only mailbox with a token, then its stored address replaced the
/// way an older version would have stored it.
async fn tampered_app_only_mailbox(app: &TestApp, stored: &str) -> uuid::Uuid {
    let id = robot(app).await;
    app.admin().refresh(id).await.expect("app-only refresh");
    app.set_stored_email(id, stored).await;
    id
}

backend_tests!(stored_addresses_from_before_the_strict_parse_are_marked_and_never_handed_out);
async fn stored_addresses_from_before_the_strict_parse_are_marked_and_never_handed_out(
    app: TestAppBuilder,
) {
    let app = with_entra(app).await;
    let evil = "robot\" -AccessRights FullAccess; Remove-Mailbox -Identity \"ceo@contoso.cz";
    let id = tampered_app_only_mailbox(&app, evil).await;
    // A valid one beside it keeps its line, quoted.
    robot_named(&app, "robot2@contoso.cz").await;

    // Even before anything marked it: no token, no PowerShell with its text.
    let err = app.service().access_token(id).await.expect_err("refused");
    assert_eq!(err.code(), Some("mailbox_address_invalid"));
    let setup = app.admin().setup(app.app_credential_id()).await;
    let text = setup.powershell.join("\n");
    assert!(!text.contains("Remove-Mailbox"), "{text}");
    assert!(text.contains("# 1 mailbox(es) left out"), "{text}");
    assert!(text.contains("-Identity 'robot2@contoso.cz'"), "{text}");
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
    app.revert_migration("2026-12-02-000004_security_review", "20261202000004")
        .await;
    let restarted = app.sibling().await;
    let mailbox = restarted.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Error);
    let detail = mailbox.status_detail.expect("detail");
    assert_eq!(detail.code, "invalid_address");
    assert!(logs().contains("a stored mailbox address is not valid"));
    let err = restarted.service().access_token(id).await;
    assert_eq!(
        err.expect_err("refused").code(),
        Some("mailbox_address_invalid")
    );

    // Correcting the address makes the mailbox usable again after a sign-in.
    let admin = restarted.admin();
    let corrected = admin.update_mailbox(id, |b| b.email("robot@contoso.cz".to_owned()));
    corrected.await.expect("corrected");
    let refreshed = admin.refresh(id).await.expect("refresh");
    assert_eq!(refreshed.mailbox.status, MailboxStatus::Active);
    let token = restarted.service().access_token(id).await.expect("token");
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

/// A forged callback answering for Microsoft: `state` with `pairs`.
fn forged_callback(app: &TestApp, state: &str, pairs: &[(&str, &str)]) -> String {
    let mut forged = url::Url::parse(&app.url("/oauth/callback")).expect("url");
    forged
        .query_pairs_mut()
        .append_pair("state", state)
        .extend_pairs(pairs);
    forged.into()
}

backend_tests!(front_channel_errors_concern_the_attempt_only);
async fn front_channel_errors_concern_the_attempt_only(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let admin = app.admin();
    let a = app.mailbox_id();
    let b = app.new_mailbox("urad@contoso.cz").await;
    for id in [a, b] {
        app.sign_in_ok(id).await;
        assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
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
        let state = state_of(&admin.sign_in_url(a).await);
        let pairs = [("error", error), ("error_description", description)];
        let page = callback(&forged_callback(&app, &state, &pairs)).await;
        assert_eq!(page.status, 200, "{page}");
        for id in [a, b] {
            let status = app.mailbox(id).await.status;
            assert_eq!(status, MailboxStatus::Active, "{error}");
        }
        let detail = app.mailbox(a).await.status_detail;
        let detail = detail.expect("the attempt is recorded");
        assert!(
            ["client_secret_expired", "grant_revoked"].contains(&detail.code.as_str()),
            "{detail:?}"
        );
        let cred = admin.app_credential(app.app_credential_id()).await;
        assert!(cred.problem.is_none(), "the app credential is not flagged");
    }
    let failed: Vec<_> = admin
        .audit()
        .await
        .into_iter()
        .filter(|e| e.action == "mailbox.sign_in_failed")
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|e| e.actor == "browser"), "{failed:?}");
    // The grant was never ended.
    app.service().access_token(a).await.expect("a still works");
}

backend_tests!(consent_links_are_minted_by_admins_and_held_to_the_tenant);
async fn consent_links_are_minted_by_admins_and_held_to_the_tenant(app: TestAppBuilder) {
    let app = with_entra(app).await;
    let cred = app.app_credential_id();
    for role in ["viewer", "operator"] {
        let sdk = app.client(ORG, role);
        let setup = sdk.app_credential_setup().id(cred).send().await;
        setup.expect("the setup view is readable");
        let err = sdk.consent_url(cred).await;
        let err = err.expect_err("only admins mint consent links");
        assert_eq!(err.code(), Some("forbidden"), "{role}");
    }
    assert_eq!(app.pending_sign_ins().await, 0, "reading wrote nothing");

    // A consent answer naming another tenant is refused and records nothing.
    let admin = app.admin();
    let state = state_of(&admin.consent_url(cred).await.expect("link"));
    let pairs = [
        ("admin_consent", "True"),
        ("tenant", "00000000-0000-4000-8000-000000000000"),
    ];
    let page = callback(&forged_callback(&app, &state, &pairs)).await;
    assert_eq!(page.status, 200);
    assert!(page.contains("consent_tenant_mismatch"), "{page}");
    let setup = admin.setup(cred).await;
    assert_eq!(setup.admin_consent.status, AdminConsentStatus::None);
    let events = admin.audit().await;
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

backend_tests!(a_domain_tenant_learns_its_guid_and_holds_consent_to_it);
async fn a_domain_tenant_learns_its_guid_and_holds_consent_to_it(app: TestAppBuilder) {
    let app = app.with_fake_entra().start().await;
    let admin = app.admin();
    // The same app registration, entered by its tenant's domain.
    let body = fake_app_credential_body("By domain")
        .tenant_id(TENANT_DOMAIN)
        .secret_expires_at(None::<chrono::NaiveDate>);
    let cred = admin.create_app_credential(body).await;
    // Before the GUID is known, a consent answer naming some other tenant is
    // only reported: verify cannot get a token there, so it is not established.
    let state = state_of(&admin.consent_url(cred).await.expect("link"));
    let elsewhere = "00000000-0000-4000-8000-000000000000";
    let pairs = [("admin_consent", "True"), ("tenant", elsewhere)];
    callback(&forged_callback(&app, &state, &pairs)).await;
    let verified = admin.verify(cred).await;
    assert!(verified.ok, "the credential itself works");
    assert_eq!(verified.admin_consent.status, AdminConsentStatus::Reported);
    assert_eq!(verified.admin_consent.tenant.as_deref(), Some(elsewhere));

    // A sign-in teaches the credential its tenant's GUID ...
    let id = admin.create_mailbox(mailbox_body(MAILBOX, cred)).await;
    let page = app.sign_in(id).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.contains("signed_in"), "{page}");
    let learned = admin.app_credential(cred).await;
    assert_eq!(learned.tenant_guid.as_deref(), Some(TENANT));
    // ... and a consent answer for another tenant is now refused outright.
    let real = authorize(&admin.consent_url(cred).await.expect("link")).await;
    let wrong = real.replace(TENANT, elsewhere);
    let page = callback(&wrong).await;
    assert!(page.contains("consent_tenant_mismatch"), "{page}");
}

backend_tests!(a_settings_change_during_the_code_redemption_wins);
async fn a_settings_change_during_the_code_redemption_wins(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    let location = authorize(&app.admin().sign_in_url(id).await).await;
    // The code redemption is slow; the mailbox is moved to another address meanwhile.
    app.fake().set_latency(Duration::from_millis(1500));
    let pending = tokio::spawn(async move { callback(&location).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let admin = app.admin();
    let moved = admin.update_mailbox(id, |b| b.email("jiny@contoso.cz".to_owned()));
    moved.await.expect("update during the sign-in");
    let page = pending.await.expect("callback");
    assert_eq!(page.status, 200);
    assert!(page.contains("settings_changed"), "{page}");
    let mailbox = app.mailbox(id).await;
    assert_eq!(mailbox.email, "jiny@contoso.cz");
    assert_eq!(mailbox.status, MailboxStatus::Inactive);
    assert!(mailbox.authorized_as.is_none());
    let err = app.service().access_token(id).await;
    let err = err.expect_err("no tokens of the old account");
    assert_eq!(err.code(), Some("mailbox_not_authorized"));
}

backend_tests!(a_settings_change_during_an_app_only_refresh_wins);
async fn a_settings_change_during_an_app_only_refresh_wins(app: TestAppBuilder) {
    let app = with_entra(app).await;
    let id = robot(&app).await;
    app.fake().set_latency(Duration::from_millis(1500));
    let admin = app.admin();
    let pending = tokio::spawn(async move { admin.refresh(id).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let changed = app
        .admin()
        .update_mailbox(id, |b| b.access_mode(AccessMode::Delegated))
        .await;
    changed.expect("update during the refresh");
    let err = pending.await.expect("task").expect_err("the change won");
    assert_eq!(err.code(), Some("settings_changed"));
    assert_eq!(err.http_status(), Some(409));
    let mailbox = app.mailbox(id).await;
    assert_eq!(mailbox.access_mode, AccessMode::Delegated);
    assert_eq!(mailbox.status, MailboxStatus::Inactive);
}

backend_tests!(a_lost_race_in_the_keeper_is_a_conflict);
async fn a_lost_race_in_the_keeper_is_a_conflict(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    app.fake().set_access_token_ttl(1);
    app.sign_in_ok(id).await;
    // The stored access token is stale: the next call refreshes, slowly.
    app.fake().set_latency(Duration::from_millis(1500));
    let service = app.service();
    let pending = tokio::spawn(async move { service.access_token(id).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let changed = app.admin().update_mailbox(id, |b| b.shared(true)).await;
    changed.expect("update during the refresh");
    let err = pending.await.expect("task").expect_err("the change won");
    assert_eq!(err.http_status(), Some(409), "{err:?}");
    assert_eq!(err.code(), Some("mailbox_not_authorized"));
}

backend_tests!(a_recreated_account_with_the_same_name_is_refused);
async fn a_recreated_account_with_the_same_name_is_refused(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    let page = app.sign_in(id).await;
    assert!(page.contains("signed_in"), "{page}");
    // Another account now carries the mailbox's user name.
    app.fake().recreate_user(MAILBOX);
    let page = app.sign_in(id).await;
    assert_eq!(page.status, 200);
    assert!(page.contains("identity_changed"), "{page}");
    // The old grant is kept.
    assert_status(
        &app.mailbox(id).await,
        MailboxStatus::Active,
        "identity_changed",
    );
    let refused = app
        .admin()
        .audit()
        .await
        .into_iter()
        .find(|e| e.action == "mailbox.sign_in_failed")
        .expect("audited");
    assert_eq!(refused.outcome, "identity_changed");
}

backend_tests!(editing_the_app_credential_cancels_its_pending_sign_ins);
async fn editing_the_app_credential_cancels_its_pending_sign_ins(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let (admin, id, cred) = (app.admin(), app.mailbox_id(), app.app_credential_id());
    let url = admin.sign_in_url(id).await;
    let link = admin.consent_url(cred).await.expect("link");
    assert_eq!(app.pending_sign_ins().await, 2);
    // A new secret (the fake accepts both).
    let rotated = "Zz9~rotated.secret_for-the_fake";
    app.fake().register_app(TENANT, CLIENT_ID, rotated);
    let updated = admin.update_app_credential(cred, |b| b.client_secret(rotated.to_owned()));
    updated.await.expect("update");
    assert_eq!(app.pending_sign_ins().await, 0);
    let page = follow(&url).await;
    assert_eq!(page.status, 400);
    assert!(page.contains("state_unknown"), "{page}");
    let page = follow(&link).await;
    assert_eq!(page.status, 400);
    assert!(page.contains("state_unknown"), "{page}");
    // A name change cancels nothing.
    let url = admin.sign_in_url(id).await;
    let renamed = admin.update_app_credential(cred, |b| b.name("Renamed".to_owned()));
    renamed.await.expect("rename");
    let page = follow(&url).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.contains("signed_in"), "{page}");
}

backend_tests!(a_change_is_never_without_its_audit_row);
async fn a_change_is_never_without_its_audit_row(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let (admin, cred) = (app.admin(), app.app_credential_id());
    app.execute("ALTER TABLE audit_events RENAME TO audit_events_away")
        .await;
    let err = admin
        .mailbox_create()
        .body(mailbox_body(MAILBOX, cred))
        .send();
    let err = err.await.expect_err("the audit row cannot be written");
    assert_eq!(err.http_status(), Some(500));
    assert!(
        admin.mailboxes(None).await.is_empty(),
        "rolled back at once"
    );
    let err = admin.app_credential_delete().id(cred).send().await;
    let err = err.expect_err("the audit row cannot be written");
    assert_eq!(err.http_status(), Some(500));
    app.execute("ALTER TABLE audit_events_away RENAME TO audit_events")
        .await;
    // Neither change happened without its audit row.
    let page = admin.mailboxes(None).await;
    assert!(page.is_empty(), "the mailbox was not created");
    let kept = admin.app_credential_get().id(cred).send().await;
    kept.expect("the credential was not deleted");
}

#[tokio::test]
async fn token_requests_follow_no_redirect() {
    let app = with_entra(TestApp::new()).await;
    let id = robot(&app).await;
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
        app.fake().inject(Fault::Redirect {
            status,
            location: stolen.clone(),
        });
    }
    let err = app.admin().refresh(id).await.expect_err("no token");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing was re-posted"
    );
    assert_eq!(err.http_status(), Some(503), "{err:?}");
    assert_eq!(app.fake().token_calls("client_credentials"), 3);
    // Microsoft answering normally again works.
    app.admin().refresh(id).await.expect("refresh");
}

#[tokio::test]
async fn absurd_token_lifetimes_are_clamped() {
    let app = with_entra(TestApp::new()).await;
    let id = robot(&app).await;
    for absurd in [1_000_000_000_000_000_u64, u64::MAX, 10 * 365 * 24 * 3600, 0] {
        app.fake().report_expires_in(Some(absurd));
        let refreshed = app.admin().refresh(id).await;
        let refreshed = refreshed.unwrap_or_else(|e| panic!("expires_in {absurd}: {e:?}"));
        assert_eq!(refreshed.mailbox.status, MailboxStatus::Active);
        let token = app.service().access_token(id).await.expect("token");
        let now = chrono::Utc::now();
        assert!(
            token.expires_at <= now + chrono::Duration::hours(24),
            "{absurd}"
        );
    }
    app.fake().report_expires_in(None);
    // The service is still serving (no worker died).
    assert_eq!(app.call("GET", "/healthz", None).await.status, 200);
}

backend_tests!(a_stored_authorized_as_from_before_the_strict_parse_is_never_handed_out);
async fn a_stored_authorized_as_from_before_the_strict_parse_is_never_handed_out(
    app: TestAppBuilder,
) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let id = app.signed_in_mailbox(MAILBOX).await;
    app.service()
        .access_token(id)
        .await
        .expect("a token while it is bare");
    app.execute(format!(
        "UPDATE mailboxes SET authorized_as = 'Podatelna <{MAILBOX}>' WHERE id = '{id}'"
    ))
    .await;
    let err = app.service().access_token(id).await.expect_err("refused");
    assert_eq!(err.code(), Some("mailbox_address_invalid"));
}
