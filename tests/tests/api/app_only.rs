//! App-only mailboxes: no sign-in, a token by client credentials at once;
//! verify, the setup view, and a wrong secret explained on the mailbox.

use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::{AccessMode, MailboxStatus};

use crate::helpers::{Api, CLIENT_ID, TENANT, TestAppBuilder, assert_status, backend_tests};

backend_tests!(app_only_mailbox_and_verify);
async fn app_only_mailbox_and_verify(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let (admin, cred) = (app.admin(), app.app_credential_id());
    let verified = admin.verify(cred).await;
    assert!(verified.ok, "{verified:?}");
    let id = app
        .new_mailbox_with("robot@contoso.cz", |b| b.access_mode(AccessMode::AppOnly))
        .await;
    let refreshed = admin.refresh(id).await.expect("refresh");
    assert!(refreshed.authorization_url.is_none());
    assert_eq!(refreshed.mailbox.status, MailboxStatus::Active);
    let validity = refreshed
        .mailbox
        .validity_days
        .expect("the secret's days left");
    assert!((199..=200).contains(&validity), "{validity}");
    assert_eq!(app.fake().token_calls("client_credentials"), 2);
    let token = app.service().access_token(id).await.expect("token");
    assert_eq!(token.smtp_user, "robot@contoso.cz");

    let setup = admin.setup(cred).await;
    assert_eq!(setup.redirect_uri, app.url("/oauth/callback"));
    let consent = admin.consent_url(cred).await.expect("consent link");
    assert!(consent.contains(&format!("/{TENANT}/v2.0/adminconsent")));
    assert!(
        setup
            .powershell
            .iter()
            .any(|l| l.contains(&format!("New-ServicePrincipal -AppId '{CLIENT_ID}'")))
    );
    assert!(
        setup
            .powershell
            .iter()
            .any(|l| l.contains("Add-MailboxPermission -Identity 'robot@contoso.cz'"))
    );

    // A wrong secret is explained, and the credential says so.
    let wrong = "Wrong~secret.value.123".to_owned();
    let updated = admin.update_app_credential(cred, |b| b.client_secret(wrong));
    updated.await.expect("update");
    let verified = admin.verify(cred).await;
    assert!(!verified.ok);
    assert_eq!(verified.code, "invalid_client_secret");
    assert_eq!(verified.aadsts, Some(7000215));
    assert!(verified.hint.expect("hint").contains("Value"));
    let setup = admin.setup(cred).await;
    assert_eq!(
        setup.problem.expect("flagged").code,
        "invalid_client_secret"
    );
    // Its app-only mailbox says why, and a new refresh fails the same way, audited.
    assert_status(
        &app.mailbox(id).await,
        MailboxStatus::Error,
        "invalid_client_secret",
    );
    let err = admin.refresh(id).await.expect_err("the secret is wrong");
    assert_eq!(err.code(), Some("app_credential_invalid"));
    let events = admin.audit().await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "mailbox.app_only_token_failed"
                && e.outcome == "invalid_client_secret"),
        "the failed app-only refresh is audited"
    );
}
