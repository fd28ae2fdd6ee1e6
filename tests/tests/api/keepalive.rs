//! The keep-alive renews grants before they age out, without anyone asking
//! for a token, and finds broken grants on its own.

use std::time::{Duration, Instant};

use inboxlink_sdk::types::MailboxStatus;

use crate::helpers::{Api, MAILBOX, TestAppBuilder, backend_tests};

backend_tests!(old_grants_are_renewed_and_young_ones_left_alone);
async fn old_grants_are_renewed_and_young_ones_left_alone(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let old = app.signed_in_mailbox(MAILBOX).await;
    let young = app.signed_in_mailbox("info@contoso.cz").await;
    app.age_grant(old, 30).await;
    app.age_grant(young, 3).await;
    assert_eq!(app.mailbox(old).await.validity_days, Some(60));

    let sweep = app.keepalive_sweep().await;
    assert_eq!((sweep.due, sweep.renewed, sweep.failed), (1, 1, 0));
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "only the old grant"
    );
    let renewed = app.mailbox(old).await;
    assert_eq!(renewed.status, MailboxStatus::Active);
    assert_eq!(renewed.validity_days, Some(90), "a new refresh token");
    assert_eq!(app.mailbox(young).await.validity_days, Some(87));

    // Nothing is due any more.
    assert_eq!(app.keepalive_sweep().await.due, 0);
    assert_eq!(app.fake().token_calls("refresh_token"), 1);
}

backend_tests!(a_revoked_grant_is_found_by_the_sweep);
async fn a_revoked_grant_is_found_by_the_sweep(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let id = app.signed_in_mailbox(MAILBOX).await;
    app.age_grant(id, 30).await;
    app.fake().revoke_user(MAILBOX);
    let sweep = app.keepalive_sweep().await;
    assert_eq!((sweep.due, sweep.failed), (1, 1));
    let mailbox = app.mailbox(id).await;
    assert_eq!(
        mailbox.status,
        MailboxStatus::ReauthRequired,
        "nobody asked for a token, yet the mailbox says it needs a sign-in"
    );
    assert!(mailbox.status_detail.is_some());
    // A mailbox that needs a sign-in is not swept again.
    assert_eq!(app.keepalive_sweep().await.due, 0);
}

backend_tests!(instances_sweeping_together_renew_each_grant_once);
async fn instances_sweeping_together_renew_each_grant_once(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let ids = app.aged_mailboxes(12, 30).await;
    let other = app.sibling().await;
    app.fake().set_latency(Duration::from_millis(50));
    let (a, b) = tokio::join!(app.keepalive_sweep(), other.keepalive_sweep());
    app.fake().set_latency(Duration::ZERO);
    assert_eq!(a.failed + b.failed, 0);
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        ids.len(),
        "each grant renewed exactly once across both instances"
    );
    for id in ids {
        assert_eq!(app.mailbox(id).await.validity_days, Some(90));
    }
}

backend_tests!(the_background_sweep_runs_at_start_up);
async fn the_background_sweep_runs_at_start_up(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let id = app.signed_in_mailbox(MAILBOX).await;
    app.age_grant(id, 30).await;
    let _instance = app
        .restart()
        .with_settings(|s| s.tokens.keepalive_interval = Some(Duration::from_secs(3600)))
        .start()
        .await;
    let started = Instant::now();
    while app.fake().token_calls("refresh_token") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the keep-alive did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while app.mailbox(id).await.validity_days != Some(90) {
        assert!(started.elapsed() < Duration::from_secs(15), "not renewed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.fake().token_calls("refresh_token"), 1);
}

backend_tests!(a_graceful_stop_lets_a_refresh_in_flight_finish);
/// SIGTERM (a graceful stop) lets a request that waits for Microsoft finish
/// and commit its rotated tokens; new connections are refused meanwhile.
async fn a_graceful_stop_lets_a_refresh_in_flight_finish(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    app.fake().set_latency(Duration::from_millis(1500));
    let service = app.service();
    let in_flight = tokio::spawn(async move { service.access_token(id).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::spawn(app.stop(true));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        reqwest::get(app.url("/healthz")).await.is_err(),
        "a stopping instance takes no new connections"
    );
    let token = in_flight.await.expect("task");
    let token = token.expect("the refresh in flight finished");
    stopping.await.expect("stopped");
    app.fake().set_latency(Duration::ZERO);
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "the token request was not cut and retried"
    );
    // The rotated tokens were committed: the next instance hands out the same token.
    let next = app.sibling().await;
    let again = next.service().access_token(id).await.expect("token");
    assert_eq!(again.access_token, token.access_token);
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "no second refresh"
    );
}
