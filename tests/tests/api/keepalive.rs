//! The keep-alive renews grants before they age out, without anyone asking
//! for a token, and finds broken grants on its own.

use std::time::{Duration, Instant};

use inboxlink_sdk::types::{AccessMode, MailboxStatus};

use crate::helpers::{TestApp, backend_tests};
use crate::signin::{MAILBOX, World, restart_with, world};

backend_tests!(
    old_grants_are_renewed_and_young_ones_left_alone,
    a_revoked_grant_is_found_by_the_sweep,
    instances_sweeping_together_renew_each_grant_once,
    the_background_sweep_runs_at_start_up,
    a_graceful_stop_lets_a_refresh_in_flight_finish,
);

/// Pretends the mailbox's refresh token was issued `days` ago.
pub(crate) async fn age(w: &World, mailbox: uuid::Uuid, days: i64) {
    let mid = mailbox.to_string();
    w.app
        .services
        .store
        .query(move |c| {
            use diesel::prelude::*;
            use inboxlink::store::schema::mailboxes::dsl::*;
            let issued = chrono::Utc::now().naive_utc() - chrono::Duration::days(days);
            diesel::update(mailboxes.filter(id.eq(&mid)))
                .set(refresh_token_issued_at.eq(Some(issued)))
                .execute(c)
                .expect("age");
            Ok(())
        })
        .await
        .expect("aged");
}

async fn signed_in(w: &World, email: &str) -> uuid::Uuid {
    let id = w.mailbox(email, AccessMode::Delegated, false).await;
    let (status, _, page) = w.sign_in(id).await;
    assert_eq!(status, 200, "{page}");
    id
}

async fn old_grants_are_renewed_and_young_ones_left_alone(app: TestApp) {
    let w = world(app).await;
    let old = signed_in(&w, MAILBOX).await;
    let young = signed_in(&w, "info@contoso.cz").await;
    age(&w, old, 30).await;
    age(&w, young, 3).await;
    assert_eq!(w.status(old).await.validity_days, Some(60));

    let sweep = w.app.services.keepalive_sweep().await.expect("sweep");
    assert_eq!((sweep.due, sweep.renewed, sweep.failed), (1, 1, 0));
    assert_eq!(w.fake.token_calls("refresh_token"), 1, "only the old grant");
    let renewed = w.status(old).await;
    assert_eq!(renewed.status, MailboxStatus::Active);
    assert_eq!(renewed.validity_days, Some(90), "a new refresh token");
    assert_eq!(w.status(young).await.validity_days, Some(87));

    // Nothing is due any more.
    let again = w.app.services.keepalive_sweep().await.expect("sweep");
    assert_eq!(again.due, 0);
    assert_eq!(w.fake.token_calls("refresh_token"), 1);
}

async fn a_revoked_grant_is_found_by_the_sweep(app: TestApp) {
    let w = world(app).await;
    let id = signed_in(&w, MAILBOX).await;
    age(&w, id, 30).await;
    w.fake.revoke_user(MAILBOX);
    let sweep = w.app.services.keepalive_sweep().await.expect("sweep");
    assert_eq!((sweep.due, sweep.failed), (1, 1));
    let mailbox = w.status(id).await;
    assert_eq!(
        mailbox.status,
        MailboxStatus::ReauthRequired,
        "nobody asked for a token, yet the mailbox says it needs a sign-in"
    );
    assert!(mailbox.status_detail.is_some());
    // A mailbox that needs a sign-in is not swept again.
    assert_eq!(
        w.app.services.keepalive_sweep().await.expect("sweep").due,
        0
    );
}

async fn instances_sweeping_together_renew_each_grant_once(app: TestApp) {
    let w = world(app).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = signed_in(&w, &format!("box{i}@contoso.cz")).await;
        age(&w, id, 30).await;
        ids.push(id);
    }
    let other = w.app.sibling().await;
    w.fake.set_latency(Duration::from_millis(50));
    let (a, b) = tokio::join!(
        w.app.services.keepalive_sweep(),
        other.services.keepalive_sweep()
    );
    w.fake.set_latency(Duration::ZERO);
    let (a, b) = (a.expect("sweep"), b.expect("sweep"));
    assert_eq!(a.failed + b.failed, 0);
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        ids.len(),
        "each grant renewed exactly once across both instances"
    );
    for id in ids {
        assert_eq!(w.status(id).await.validity_days, Some(90));
    }
}

async fn the_background_sweep_runs_at_start_up(app: TestApp) {
    let w = world(app).await;
    let id = signed_in(&w, MAILBOX).await;
    age(&w, id, 30).await;
    let _instance = restart_with(
        &w.app,
        &[
            ("INBOXLINK_MS_AUTHORITY", w.fake.authority()),
            ("INBOXLINK_KEEPALIVE_INTERVAL_SECONDS", "3600".into()),
        ],
    )
    .await;
    let started = Instant::now();
    while w.fake.token_calls("refresh_token") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the keep-alive did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while w.status(id).await.validity_days != Some(90) {
        assert!(started.elapsed() < Duration::from_secs(15), "not renewed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(w.fake.token_calls("refresh_token"), 1);
}

/// SIGTERM (a graceful stop) lets a request that waits for Microsoft finish
/// and commit its rotated tokens; new connections are refused meanwhile.
async fn a_graceful_stop_lets_a_refresh_in_flight_finish(app: TestApp) {
    let w = world(app).await;
    let id = crate::signin::signed_in_with_stale_token(&w).await;
    w.fake.set_latency(Duration::from_millis(1500));
    let service = w.service();
    let in_flight = tokio::spawn(async move { service.mailbox_access_token().id(id).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::spawn(w.app.handle.stop(true));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        reqwest::get(w.app.url("/healthz")).await.is_err(),
        "a stopping instance takes no new connections"
    );
    let token = in_flight
        .await
        .expect("task")
        .expect("the refresh in flight finished")
        .into_inner();
    stopping.await.expect("stopped");
    w.fake.set_latency(Duration::ZERO);
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        1,
        "the token request was not cut and retried"
    );
    // The rotated tokens were committed: the next instance hands out the same token.
    let next = w.app.sibling().await;
    let again = next
        .sdk(&next.token("acme", &["service"]))
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("token")
        .into_inner();
    assert_eq!(again.access_token, token.access_token);
    assert_eq!(w.fake.token_calls("refresh_token"), 1, "no second refresh");
}
