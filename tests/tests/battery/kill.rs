//! SIGKILL in the middle of concurrent refreshes, then a restart: every
//! mailbox still `active` with a working token, no event lost, and no
//! refresh token replayed at the identity provider but the answers the kill
//! cut off (the fake counts every refresh token redeemed more than once).

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::{Service, census, figure, sized};
use crate::helpers::{TestApp, TestAppBuilder, backend_tests};

/// `count` mailboxes of `app`, signed in (16 at a time), their access tokens
/// short-lived, so the next access-token call of each refreshes.
pub async fn stale_mailboxes(app: &TestApp, count: usize) -> Vec<uuid::Uuid> {
    app.fake().set_access_token_ttl(60);
    let ids: Vec<uuid::Uuid> = futures_util::stream::iter(0..count)
        .map(|i| async move { app.signed_in_mailbox(&format!("box{i}@contoso.cz")).await })
        .buffer_unordered(16)
        .collect()
        .await;
    app.fake().set_access_token_ttl(3600);
    ids
}

/// A builder whose in-process instance signs in many mailboxes quickly.
pub fn unlimited(app: TestAppBuilder) -> TestAppBuilder {
    app.with_settings(|s| {
        s.protection.rate_limits =
            inboxlink::limits::RateLimits::parse("refresh=off,access_token=off").expect("limits");
    })
}

/// `GET /mailboxes/{id}/access-token`: the HTTP status, or `None` when the
/// connection broke (the process was killed).
async fn access_token(
    client: &reqwest::Client,
    service_base: &str,
    token: &str,
    id: uuid::Uuid,
) -> (Option<u16>, Option<String>) {
    let sent = client
        .get(format!("{service_base}/mailboxes/{id}/access-token"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(60))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (
                Some(status),
                body["access_token"].as_str().map(str::to_owned),
            )
        }
        Err(_) => (None, None),
    }
}

backend_tests!(a_kill_during_refreshes_loses_nothing);
async fn a_kill_during_refreshes_loses_nothing(app: TestAppBuilder) {
    let n = sized(150, 1000);
    let app = unlimited(app)
        .with_fake_entra()
        .with_app_credential()
        .start()
        .await;
    let ids = stale_mailboxes(&app, n).await;
    let fake = app.fake().clone();
    app.stop(true).await;

    let mut service =
        Service::start(&app, &[("INBOXLINK_REFRESH_LEASE_SECONDS", "5".into())]).await;
    let before = census(&service.base(), &service.token).await;
    assert_eq!(before.in_status("active"), n, "{before}");

    // Every mailbox refreshes at once, each answer 20 ms away.
    fake.set_latency(Duration::from_millis(20));
    let redeemed = fake.refresh_token_redemptions();
    let client = reqwest::Client::new();
    let base = service.base();
    let calls: Vec<_> = ids
        .iter()
        .map(|id| {
            let (client, base, token, id) =
                (client.clone(), base.clone(), service.token.clone(), *id);
            tokio::spawn(async move { access_token(&client, &base, &token, id).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while fake.refresh_token_redemptions() - redeemed < n / 3 {
        assert!(Instant::now() < deadline, "the refreshes did not start");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(service.running(), "the service ran until the kill");
    service.kill();
    let at_kill = fake.refresh_token_redemptions() - redeemed;
    // The token requests the service had sent still get their answers (to
    // nobody): what the identity provider redeemed in all before the restart.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let redeemed_before_restart = fake.refresh_token_redemptions() - redeemed;
    let mut answered = 0;
    let mut server_errors = 0;
    for call in calls {
        match call.await.expect("joined") {
            (Some(200), _) => answered += 1,
            (Some(s), _) if s >= 500 => server_errors += 1,
            (Some(s), _) => panic!("an access-token call answered {s}"),
            (None, _) => {}
        }
    }
    assert!(
        at_kill < n,
        "the kill came in the middle ({at_kill} of {n})"
    );
    assert_eq!(server_errors, 0, "no 5xx before the kill");

    fake.set_latency(Duration::ZERO);
    let restarted = Instant::now();
    service.restart().await;
    let started_in = restarted.elapsed();
    // Every mailbox gives a token the identity provider accepts.
    let tokens: Vec<_> = futures_util::stream::iter(ids.iter().copied())
        .map(|id| {
            let (client, base, token) = (client.clone(), base.clone(), service.token.clone());
            async move { (id, access_token(&client, &base, &token, id).await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut working = 0;
    for (id, (status, token)) in &tokens {
        assert_eq!(*status, Some(200), "mailbox {id} after the restart");
        let token = token.as_deref().expect("an access token");
        assert!(
            fake.access_token_scope(token).is_some(),
            "a live token for {id}"
        );
        working += 1;
    }
    let after = census(&service.base(), &service.token).await;
    let (tokens_reused, reuses) = fake.refresh_token_reuses();

    let scenario = format!("kill during {n} refreshes ({})", super::backend(&app));
    figure(&scenario, "census before", &before);
    figure(&scenario, "refreshes done at the kill", at_kill);
    figure(&scenario, "calls answered 200 before the kill", answered);
    figure(
        &scenario,
        "start to /readyz after the kill",
        super::ms(started_in),
    );
    figure(&scenario, "mailboxes with a working token after", working);
    figure(&scenario, "census after", &after);
    figure(
        &scenario,
        "refreshes redeemed before the restart",
        redeemed_before_restart,
    );
    figure(&scenario, "refresh tokens redeemed twice", tokens_reused);
    assert_eq!(
        after, before,
        "nothing lost or changed: {before} -> {after}"
    );
    assert_eq!(working, n);
    // Only an answer the kill cut off (the identity provider rotated, the
    // service died before it committed the new token: in flight, or
    // received and waiting for its commit) makes the service use its stored
    // token once more, which Microsoft accepts (it does not revoke the old
    // one). Never a token a third time, never an older one over a newer one
    // (that would be a token used again after its successor was used), and
    // never more reuses than answers the kill cut off.
    assert_eq!(tokens_reused, reuses, "no refresh token used three times");
    let cut_off = redeemed_before_restart.saturating_sub(answered);
    assert!(
        reuses <= cut_off,
        "only the answers the kill cut off are redone: {reuses} reuses, {cut_off} cut off"
    );
    assert!(
        fake.refresh_token_successor_reuses() == 0,
        "no refresh token used after its successor was"
    );
}
