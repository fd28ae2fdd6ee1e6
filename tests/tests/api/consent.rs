//! Consent: a user who declines is told why (in their language), a sign-in
//! may send the browser back to an allowed return URL, and an admin-consent
//! link is reported by the browser and confirmed by verify.

use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::AdminConsentStatus;
use inboxlink_tests::fake_entra::SignIn;

use crate::helpers::{
    Api, TENANT, TestAppBuilder, authorize, backend_tests, browser, callback_in, follow,
};

backend_tests!(declined_consent_is_explained);
async fn declined_consent_is_explained(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    app.fake().next_sign_in(SignIn::Error {
        error: "access_denied".into(),
        description: "AADSTS65004: User declined to consent to access the app.".into(),
    });
    let location = authorize(&app.admin().sign_in_url(id).await).await;
    let page = callback_in(&location, "cs-CZ,cs;q=0.9").await;
    assert!(
        page.contains("lang=\"cs\"") && page.contains("Souhlas"),
        "a Czech page: {page}"
    );
    let detail = app.mailbox(id).await.status_detail.expect("detail");
    assert_eq!(detail.code, "consent_declined");
    assert!(detail.message.contains("AADSTS65004"), "{}", detail.message);
    assert!(detail.hint.is_some());
    assert_eq!(app.fake().token_calls("authorization_code"), 0);
}

backend_tests!(return_url_and_admin_consent);
async fn return_url_and_admin_consent(app: TestAppBuilder) {
    let allowed = url::Url::parse("https://portal.example.cz/mailboxes").expect("url");
    let app = app
        .with_fake_entra()
        .with_mailbox()
        .with_settings(move |s| s.return_url_allowlist = vec![allowed.clone()])
        .start()
        .await;
    let (admin, id, cred) = (app.admin(), app.mailbox_id(), app.app_credential_id());
    let err = admin
        .refresh_to(id, Some("https://evil.example.com/"))
        .await;
    let err = err.expect_err("not allowed");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(422), Some("validation_failed"))
    );
    let started = admin.refresh_to(id, Some("https://portal.example.cz/mailboxes/done"));
    let url = started.await.expect("allowed").authorization_url;
    let location = authorize(&url.expect("url")).await;
    let back = browser().get(location).send().await.expect("callback");
    assert_eq!(back.status(), 303);
    let target = back.headers()["location"].to_str().expect("location");
    assert!(
        target.starts_with("https://portal.example.cz/mailboxes/done?"),
        "{target}"
    );
    assert!(
        target.contains(&format!("mailbox_id={id}")) && target.contains("outcome=signed_in"),
        "{target}"
    );

    let page = follow(&admin.consent_url(cred).await.expect("consent link")).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.contains("admin_consent_granted"), "{page}");
    let setup = admin.setup(cred).await;
    // Reported by the browser; verify confirms it with a token request.
    assert_eq!(setup.admin_consent.status, AdminConsentStatus::Reported);
    assert_eq!(setup.admin_consent.tenant.as_deref(), Some(TENANT));
    assert!(setup.admin_consent.established_at.is_none());
    let verified = admin.verify(cred).await;
    assert!(verified.ok);
    assert_eq!(
        verified.admin_consent.status,
        AdminConsentStatus::Established
    );
    let setup = admin.setup(cred).await;
    assert_eq!(setup.admin_consent.status, AdminConsentStatus::Established);
    assert!(setup.admin_consent.established_at.is_some());
}
