//! The token keeper: refreshes when a token is asked for, once for many
//! callers and across instances, survives crashes, throttling and outages,
//! and says when a grant or the app credential is broken.

use std::time::{Duration, Instant};

use inboxlink_sdk::types::MailboxStatus;
use inboxlink_tests::fake_entra::Fault;

use crate::helpers::{
    Api, CLIENT_ID, MAILBOX, SECRET, TENANT, TestAppBuilder, assert_problem, backend_tests,
};

backend_tests!(revoked_grant_requires_reauthorization);
async fn revoked_grant_requires_reauthorization(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    app.fake().revoke_user(MAILBOX);
    let err = app.service().access_token(id).await.expect_err("revoked");
    assert_problem(&err, 409, "reauth_required");
    let mailbox = app.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::ReauthRequired);
    let detail = mailbox.status_detail.expect("detail");
    assert_eq!(detail.code, "grant_revoked");
    assert!(detail.message.contains("AADSTS50173"), "{}", detail.message);
    // Signing in again makes it active.
    assert_eq!(app.sign_in(id).await.status, 200);
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
}

backend_tests!(throttling_is_waited_out);
async fn throttling_is_waited_out(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    app.fake().inject(Fault::TooManyRequests {
        retry_after_secs: 1,
    });
    let started = Instant::now();
    let token = app.service().access_token(id).await;
    let token = token.expect("token after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert!(!token.access_token.is_empty());
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        2,
        "one throttled call, one successful"
    );
    assert_eq!(
        app.mailbox(id).await.status,
        MailboxStatus::Active,
        "throttling is not an authorization failure"
    );
}

backend_tests!(fifty_callers_one_refresh);
async fn fifty_callers_one_refresh(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    app.fake().set_latency(Duration::from_millis(200));
    let service = app.service();
    let calls = (0..50).map(|_| access_token(&service, id));
    let tokens = futures_util::future::join_all(calls).await;
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "exactly one refresh for 50 callers"
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all got the same token"
    );
}

async fn access_token(client: &inboxlink_sdk::Client, id: uuid::Uuid) -> String {
    let token = client.access_token(id).await.expect("token");
    token.access_token
}

backend_tests!(two_instances_one_refresh);
async fn two_instances_one_refresh(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    let other = app.sibling().await;
    app.fake().set_latency(Duration::from_millis(300));
    let clients: Vec<_> = (0..50)
        .map(|i| match i % 2 {
            0 => app.service(),
            _ => other.service(),
        })
        .collect();
    let calls = clients.iter().map(|sdk| access_token(sdk, id));
    let tokens = futures_util::future::join_all(calls).await;
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "one refresh across two instances"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

backend_tests!(crash_before_commit_recovers);
async fn crash_before_commit_recovers(app: TestAppBuilder) {
    let (app, id) = app
        // The crashed instance holds the refresh lease until it lapses: short, so the test is quick.
        .with_settings(|s| s.tokens.refresh_lease = Duration::from_secs(2))
        .start_with_stale_token()
        .await;
    app.crash_before_commit();
    let err = app.service().access_token(id).await.expect_err("crashed");
    assert_eq!(inboxlink_sdk::ProblemExt::http_status(&err), Some(500));
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "Microsoft answered; nothing was stored"
    );
    // "After restart": another instance (the crashed one still holds the lease until it lapses).
    let restarted = app.sibling().await;
    let token = restarted.service().access_token(id).await;
    let token = token.expect("refreshes after the lease lapsed");
    assert!(!token.access_token.is_empty());
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        2,
        "the old refresh token still works"
    );
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
}

backend_tests!(a_caller_that_goes_away_mid_refresh_loses_no_refresh_token);
/// The caller that started a refresh goes away while Microsoft is answering
/// (its future is dropped: a bridge login refused meanwhile, a request
/// cancelled): the rotated refresh token Microsoft issued is still stored,
/// and the next refresh presents it (the fake refuses a refresh token used
/// twice).
async fn a_caller_that_goes_away_mid_refresh_loses_no_refresh_token(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    let before = app.stored_refresh_token(id).await;
    // The refreshed access token is short-lived too: the next call refreshes again.
    app.fake().set_access_token_ttl(60);
    app.fake().set_latency(Duration::from_millis(1200));
    app.abandon_access_token(id, Duration::from_millis(300))
        .await;
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "Microsoft was asked"
    );
    // Microsoft answers after its latency; the refresh commits without its caller.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.stored_refresh_token(id).await == before {
        assert!(
            Instant::now() < deadline,
            "the rotated refresh token was never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.fake().set_latency(Duration::ZERO);
    let token = app.service().access_token(id).await;
    token.expect("a refresh with the rotated refresh token");
    assert_eq!(app.fake().token_calls("refresh_token"), 2);
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
}

backend_tests!(a_caller_that_goes_away_while_taking_the_lease_leaves_none_behind);
/// The caller goes away while its claim of the refresh lease waits for the
/// database (here: a row lock held elsewhere). The claim still commits once
/// the database is free; the refresh under it must run too, or the lease
/// would stand for its whole duration (120 s) and every other caller wait.
/// (On PostgreSQL the claim commits after its caller went away, which this
/// test fails without the fix; on SQLite it passes either way.)
async fn a_caller_that_goes_away_while_taking_the_lease_leaves_none_behind(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    let before = app.stored_refresh_token(id).await;
    let release = app.hold_mailbox_row(id).await;
    app.abandon_access_token(id, Duration::from_millis(500))
        .await;
    assert_eq!(app.fake().token_calls("refresh_token"), 0, "not asked yet");
    drop(release);
    let started = Instant::now();
    let service = app.service();
    let token = tokio::time::timeout(Duration::from_secs(20), service.access_token(id)).await;
    let token = token.expect("the next caller is not held up by a lease nobody uses");
    token.expect("a token");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        1,
        "one refresh in all"
    );
    assert_ne!(app.stored_refresh_token(id).await, before);
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
}

backend_tests!(rotated_refresh_tokens_are_used);
async fn rotated_refresh_tokens_are_used(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_mailbox().start().await;
    let id = app.mailbox_id();
    // Access tokens live 60 s, so every access-token call refreshes.
    app.fake().set_access_token_ttl(60);
    assert_eq!(app.sign_in(id).await.status, 200);
    let first = app.stored_refresh_token(id).await;
    let service = app.service();
    service.access_token(id).await.expect("refresh 1");
    let second = app.stored_refresh_token(id).await;
    assert_ne!(first, second, "the rotated refresh token is stored");
    // 60 days on, then 60 more: the first refresh token (120 days old) would be
    // expired (AADSTS700082); each refresh must present the newest one.
    app.fake().advance_time(Duration::from_secs(60 * 86_400));
    service.access_token(id).await.expect("refresh 2");
    app.fake().advance_time(Duration::from_secs(60 * 86_400));
    let third = service.access_token(id).await;
    third.expect("refresh 3 with the newest token");
    assert_eq!(app.fake().token_calls("refresh_token"), 3);
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
}

backend_tests!(outage_keeps_status_and_records_the_error);
async fn outage_keeps_status_and_records_the_error(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    for _ in 0..3 {
        app.fake().inject(Fault::ServerError);
    }
    let err = app.service().access_token(id).await;
    assert_problem(&err.expect_err("Microsoft is down"), 503, "unavailable");
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        3,
        "bounded retries"
    );
    let mailbox = app.mailbox(id).await;
    assert_eq!(
        mailbox.status,
        MailboxStatus::Active,
        "an outage is not an authorization failure"
    );
    assert_eq!(
        mailbox.last_error.expect("recorded").code,
        "microsoft_unavailable"
    );
    app.service().access_token(id).await.expect("works again");
    assert!(
        app.mailbox(id).await.last_error.is_none(),
        "cleared by the next success"
    );
}

backend_tests!(a_broken_app_credential_shows_on_all_its_mailboxes);
/// Microsoft refusing the app credential during a refresh flags the
/// credential, and every mailbox using it says why; once Microsoft accepts
/// the fixed credential again (verify), they are all active again.
async fn a_broken_app_credential_shows_on_all_its_mailboxes(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let cred = app.app_credential_id();
    let first = app.signed_in_with_stale_token().await;
    let second = app.new_mailbox("info@contoso.cz").await;
    app.sign_in_ok(second).await;
    app.fake().expire_secret(CLIENT_ID, SECRET);

    let err = app.service().access_token(first).await;
    let err = err.expect_err("the secret expired");
    assert_problem(&err, 409, "app_credential_invalid");
    for id in [first, second] {
        let mailbox = app.mailbox(id).await;
        assert_eq!(mailbox.status, MailboxStatus::Error, "{mailbox:?}");
        let detail = mailbox.status_detail.expect("says why");
        assert_eq!(detail.code, "client_secret_expired");
        assert!(detail.message.contains("7000222"), "{}", detail.message);
        assert!(detail.hint.is_some_and(|h| h.contains("new client secret")));
    }
    let credential = app.admin().app_credential(cred).await;
    let problem = credential.problem.expect("the credential is flagged");
    assert_eq!(problem.code, "client_secret_expired");
    let listed = app.admin().mailboxes(Some(MailboxStatus::Error)).await;
    assert_eq!(listed.len(), 2, "the status filter agrees");

    // The administrator creates a new secret, enters it and verifies it.
    let renewed = "Nw8~renewed.secret_value-for-the_fake";
    app.fake().register_app(TENANT, CLIENT_ID, renewed);
    let updated = app
        .admin()
        .update_app_credential(cred, |b| b.client_secret(renewed.to_owned()))
        .await;
    updated.expect("update");
    let verified = app.admin().verify(cred).await;
    assert!(verified.ok, "{verified:?}");
    for id in [first, second] {
        let mailbox = app.mailbox(id).await;
        assert_eq!(mailbox.status, MailboxStatus::Active, "{mailbox:?}");
        assert!(mailbox.status_detail.is_none());
    }
    assert!(app.admin().app_credential(cred).await.problem.is_none());
    let token = app.service().access_token(first).await;
    token.expect("tokens again with the new secret");
}

backend_tests!(callers_queued_behind_a_failed_refresh_share_its_answer);
/// During an outage, callers queued behind a refresh that failed (after its
/// bounded retries) get its answer: Microsoft is asked three times in all,
/// not three times per caller.
async fn callers_queued_behind_a_failed_refresh_share_its_answer(app: TestAppBuilder) {
    let (app, id) = app.start_with_stale_token().await;
    for _ in 0..30 {
        app.fake().inject(Fault::ServerError);
    }
    let service = app.service();
    let calls = (0..10).map(|_| service.access_token(id));
    let answers = futures_util::future::join_all(calls).await;
    for answer in answers {
        assert_problem(&answer.expect_err("Microsoft is down"), 503, "unavailable");
    }
    assert_eq!(
        app.fake().token_calls("refresh_token"),
        3,
        "one caller's bounded retries, shared by the others"
    );
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
}
