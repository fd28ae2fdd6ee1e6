//! A delegated sign-in through the fake Entra ID: what the authorization URL
//! asks for, what is stored (encrypted) and audited, whose identity counts,
//! and when a grant ends.

use std::time::Duration;

use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::MailboxStatus;
use inboxlink_tests::fake_entra::SignIn;
use serde_json::Value;

use crate::helpers::{
    Api, CLIENT_ID, MAILBOX, SECRET, TENANT, TestAppBuilder, assert_status, backend_tests, follow,
    logs,
};

backend_tests!(sign_in_activates_the_mailbox);
async fn sign_in_activates_the_mailbox(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    let started = app.admin().refresh(id).await.expect("refresh");
    let url = started.authorization_url.clone().expect("url");
    assert!(
        started.expires_at.expect("expiry") > chrono::Utc::now() + chrono::Duration::minutes(9)
    );
    let parsed = url::Url::parse(&url).expect("url");
    assert_eq!(parsed.path(), format!("/{TENANT}/oauth2/v2.0/authorize"));
    let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], app.url("/oauth/callback"));
    assert_eq!(q["response_mode"], "query");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["prompt"], "select_account");
    assert_eq!(q["login_hint"], MAILBOX);
    for scope in [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
        "openid",
    ] {
        assert!(q["scope"].split(' ').any(|s| s == scope), "scope {scope}");
    }
    assert!(q["state"].len() >= 22, "at least 128 bits of state");
    assert!(!q["nonce"].is_empty());

    // The PKCE verifier is stored encrypted: it decrypts to the verifier of the URL's challenge.
    let verifier = app.stored_verifier().await;
    assert_eq!(
        inboxlink_tests::fake_entra::pkce_s256(&verifier),
        q["code_challenge"]
    );
    let pending = app.stored_dump("authorizations").await;
    assert!(
        !pending.contains(&verifier),
        "the verifier is encrypted at rest"
    );

    let page = follow(&url).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.contains("connected"), "{page}");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(page.headers["cache-control"], "no-store");
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(app.fake().token_calls("authorization_code"), 1);

    let mailbox = app.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Active);
    assert_eq!(mailbox.validity_days, Some(90));
    assert_eq!(mailbox.authorized_as.as_deref(), Some(MAILBOX));
    assert!(mailbox.status_detail.is_none());
    assert!(mailbox.last_refresh_at.is_some());

    let token = app.service().access_token(id).await.expect("token");
    assert_eq!(
        (token.imap_user.as_str(), token.smtp_user.as_str()),
        (MAILBOX, MAILBOX)
    );
    assert!(token.expires_at > chrono::Utc::now() + chrono::Duration::minutes(5));
    let introspected: Value = reqwest::Client::new()
        .post(app.fake().introspection_url())
        .form(&[("token", token.access_token.as_str())])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(introspected["active"], true, "a real token of the mailbox");
    assert_eq!(introspected["email"], MAILBOX);
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        0,
        "a fresh token is reused, not refreshed"
    );

    // Tokens, the state and the verifier are stored encrypted.
    let stored = app.stored_dump("mailboxes").await + &app.stored_dump("authorizations").await;
    assert!(
        !stored.contains(&token.access_token),
        "the access token is encrypted at rest"
    );
    assert!(!stored.contains(&q["state"]), "the state is stored hashed");
    let refresh_token = app.stored_refresh_token(id).await;
    assert!(
        !stored.contains(&refresh_token),
        "the refresh token is encrypted at rest"
    );
    let logged = logs();
    for (what, secret) in [
        ("access token", token.access_token.as_str()),
        ("refresh token", refresh_token.as_str()),
        ("PKCE verifier", verifier.as_str()),
        ("state", q["state"].as_str()),
        ("client secret", SECRET),
    ] {
        assert!(!logged.contains(secret), "no {what} in the logs");
    }

    let events = app.admin().audit().await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "app_credential.created",
        "mailbox.created",
        "mailbox.sign_in_started",
        "mailbox.signed_in",
        "mailbox.access_token_issued",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let signed_in = events
        .iter()
        .find(|e| e.action == "mailbox.signed_in")
        .expect("event");
    assert_eq!(
        signed_in.detail.as_ref().expect("detail")["signed_in_as"],
        MAILBOX
    );
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains(&token.access_token)
    );
}

backend_tests!(wrong_user_is_not_activated);
async fn wrong_user_is_not_activated(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    app.fake()
        .next_sign_in(SignIn::As("jan.novak@contoso.cz".into()));
    let page = app.sign_in(id).await;
    assert_eq!(page.status, 200);
    assert!(
        page.contains("identity_mismatch") && page.contains("jan.novak@contoso.cz"),
        "{page}"
    );
    assert_status(
        &app.mailbox(id).await,
        MailboxStatus::Inactive,
        "identity_mismatch",
    );
    let err = app.service().access_token(id).await.expect_err("no token");
    assert_eq!(err.code(), Some("mailbox_not_authorized"));

    // A shared mailbox records the delegate who signed in.
    let shared = app
        .new_mailbox_with("info@contoso.cz", |b| b.shared(true))
        .await;
    app.fake()
        .next_sign_in(SignIn::As("Jan.Novak@contoso.cz".into()));
    app.sign_in_ok(shared).await;
    let mailbox = app.mailbox(shared).await;
    assert_eq!(mailbox.status, MailboxStatus::Active);
    assert_eq!(
        mailbox.authorized_as.as_deref(),
        Some("jan.novak@contoso.cz")
    );
    let token = app.service().access_token(shared).await.expect("token");
    assert_eq!(token.imap_user, "info@contoso.cz");
    assert_eq!(
        token.smtp_user, "jan.novak@contoso.cz",
        "SMTP authenticates as the delegate"
    );
}

backend_tests!(expiring_when_the_refresh_token_nears_its_end);
async fn expiring_when_the_refresh_token_nears_its_end(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    assert_eq!(app.sign_in(id).await.status, 200);
    app.age_grant(id, 80).await;
    let mailbox = app.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Expiring);
    assert_eq!(mailbox.validity_days, Some(10));
    let admin = app.admin();
    assert_eq!(
        admin.mailboxes(Some(MailboxStatus::Expiring)).await.len(),
        1
    );
    assert!(
        admin
            .mailboxes(Some(MailboxStatus::Active))
            .await
            .is_empty()
    );
}

backend_tests!(changed_settings_end_the_grant);
/// Changing what a mailbox was authorized for (here: the shared flag, which
/// decides whose identity is pinned) ends its grant at once: a refresh that
/// was already under way cannot write the old grant's tokens back, and a
/// sign-in started before the change cannot complete.
async fn changed_settings_end_the_grant(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    let pending = app.admin().sign_in_url(id).await;

    app.fake().set_latency(Duration::from_millis(600));
    let service = app.service();
    let in_flight = tokio::spawn(async move { service.access_token(id).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let changed = app.admin().update_mailbox(id, |b| b.shared(true)).await;
    assert_eq!(changed.expect("update").status, MailboxStatus::Inactive);
    let _ = in_flight.await.expect("task");
    app.fake().set_latency(Duration::ZERO);
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "the refresh did run"
    );

    let mailbox = app.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Inactive, "{mailbox:?}");
    assert!(mailbox.authorized_as.is_none());
    let err = app
        .service()
        .access_token(id)
        .await
        .expect_err("no grant any more");
    assert_eq!(err.code(), Some("mailbox_not_authorized"));

    let codes_before = app.fake().token_calls("authorization_code");
    let page = follow(&pending).await;
    assert_eq!(page.status, 400, "the old sign-in is cancelled: {page}");
    assert_eq!(app.fake().token_calls("authorization_code"), codes_before);
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Inactive);
}
