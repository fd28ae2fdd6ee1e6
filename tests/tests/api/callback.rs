//! The OAuth callback: a state is single use, expires, and must be known
//! before any token request; PKCE binds the code to the sign-in that asked.

use inboxlink_sdk::types::MailboxStatus;

use crate::helpers::{
    Api, TestApp, TestAppBuilder, assert_status, authorize, backend_tests, callback, follow,
};

backend_tests!(state_replay_and_expiry_never_reach_the_token_endpoint);
async fn state_replay_and_expiry_never_reach_the_token_endpoint(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    let callback_url = authorize(&app.admin().sign_in_url(id).await).await;
    assert_eq!(callback(&callback_url).await.status, 200);
    assert_eq!(app.fake().token_calls("authorization_code"), 1);
    let page = callback(&callback_url).await;
    assert_eq!(page.status, 400, "a replayed state");
    assert!(page.contains("state_unknown"), "{page}");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(
        app.fake().token_calls("authorization_code"),
        1,
        "no token call for a replay"
    );

    // An expired state.
    let callback_url = authorize(&app.admin().sign_in_url(id).await).await;
    app.execute("UPDATE authorizations SET expires_at = created_at")
        .await;
    let page = callback(&callback_url).await;
    assert_eq!(page.status, 400);
    assert!(page.contains("state_expired"), "{page}");
    let page = callback(&app.url("/oauth/callback?code=x&state=forged")).await;
    assert_eq!(page.status, 400);
    assert!(page.contains("state_unknown"), "{page}");
    assert_eq!(
        app.fake().token_calls("authorization_code"),
        1,
        "no token call for expired or unknown states"
    );
}

backend_tests!(tampered_pkce_fails_at_the_token_endpoint);
async fn tampered_pkce_fails_at_the_token_endpoint(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    let mut url = url::Url::parse(&app.admin().sign_in_url(id).await).expect("url");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "code_challenge" {
                (k, "A".repeat(43))
            } else {
                (k, v)
            }
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let page = follow(url.as_str()).await;
    assert_eq!(page.status, 200);
    assert!(page.contains("pkce_mismatch"), "{page}");
    assert_eq!(
        app.fake().token_calls("authorization_code"),
        1,
        "the fake refused the verifier"
    );
    assert_status(
        &app.mailbox(id).await,
        MailboxStatus::Inactive,
        "pkce_mismatch",
    );
}

#[tokio::test]
async fn callback_without_state_is_refused() {
    let app = TestApp::new().start().await;
    let page = callback(&app.url("/oauth/callback?code=abc")).await;
    assert_eq!(page.status, 400);
    assert!(page.contains("invalid_state"));
    assert_eq!(page.headers["cache-control"], "no-store");
}
