//! The identity provider failing for minutes under load: 429 with
//! `Retry-After`, 500, 503 and answers slower than the service waits, in
//! turn. No mailbox leaves `active` for a transient reason, callers get 503
//! problem documents (never a 500, never an answer after the deadline), the
//! token requests in flight stay within the global cap, and everything works
//! again when the identity provider does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inboxlink_tests::fake_entra::Fault;

use super::kill::{stale_mailboxes, unlimited};
use super::{Service, census, figure, ms, percentile, sized};
use crate::helpers::backend_tests;

/// The longest a caller may wait for an answer: the service gives a token
/// call 20 s in all (its attempts and the waits between them), and a caller
/// queued behind the refresh of the same mailbox shares its answer; the
/// rest is room for the database and the queue.
const DEADLINE: Duration = Duration::from_secs(30);

backend_tests!(an_identity_provider_outage_changes_no_mailbox);
async fn an_identity_provider_outage_changes_no_mailbox(app: crate::helpers::TestAppBuilder) {
    let n = sized(40, 200);
    let outage = sized(Duration::from_secs(15), Duration::from_secs(300));
    let workers = sized(40, 48);
    let app = unlimited(app)
        .with_fake_entra()
        .with_app_credential()
        .start()
        .await;
    let ids = Arc::new(stale_mailboxes(&app, n).await);
    let fake = app.fake().clone();
    // Every token the fake issues now is stale at once (under the keeper's
    // five minutes): every access-token call asks the identity provider.
    fake.set_access_token_ttl(60);
    app.stop(true).await;
    let service = Service::start(&app, &[]).await;
    let before = census(&service.base(), &service.token).await;

    fake.start_outage(vec![
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Fault::ServerError,
        Fault::Error {
            status: 503,
            error: "temporarily_unavailable".into(),
            aadsts: 90_033,
            description: "A transient error has occurred. Please try again.".into(),
        },
        // Past the service's 15-second timeout.
        Fault::Delay(Duration::from_secs(17)),
    ]);
    let statuses = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let stop_at = Instant::now() + outage;
    let load: Vec<_> = (0..workers)
        .map(|w| {
            let (ids, statuses, latencies) = (ids.clone(), statuses.clone(), latencies.clone());
            let (base, token) = (service.base(), service.token.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut i = w;
                while Instant::now() < stop_at {
                    let id = ids[i % ids.len()];
                    i += workers;
                    let started = Instant::now();
                    let sent = client
                        .get(format!("{base}/mailboxes/{id}/access-token"))
                        .bearer_auth(&token)
                        .timeout(DEADLINE)
                        .send()
                        .await;
                    let key = match sent {
                        Ok(r) => super::tally(r).await.1,
                        Err(e) if e.is_timeout() => "no answer within the deadline".to_owned(),
                        Err(e) => format!("transport error: {e}"),
                    };
                    latencies.lock().expect("lock").push(started.elapsed());
                    *statuses.lock().expect("lock").entry(key).or_default() += 1;
                }
            })
        })
        .collect();
    for worker in load {
        worker.await.expect("a load worker");
    }
    let during = census(&service.base(), &service.token).await;
    fake.end_outage();
    fake.set_access_token_ttl(3600);

    // Recovered: every mailbox gets a token within a minute of the end.
    let recovered = Instant::now();
    let client = reqwest::Client::new();
    for id in ids.iter() {
        loop {
            let r = client
                .get(service.url(&format!("/mailboxes/{id}/access-token")))
                .bearer_auth(&service.token)
                .send()
                .await
                .expect("answered");
            if r.status() == 200 {
                break;
            }
            assert!(
                recovered.elapsed() < Duration::from_secs(60),
                "mailbox {id} still answers {} a minute after the outage",
                r.status()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let recovered_in = recovered.elapsed();
    let after = census(&service.base(), &service.token).await;
    let statuses = statuses.lock().expect("lock").clone();
    let mut latencies = latencies.lock().expect("lock").clone();
    // The service gives a token request at most 15 s from taking its slot;
    // a call the fake delays past that goes on at the fake without the
    // service, which has given its slot to the next call, as a real server
    // would. The fake counts from the call's arrival, a little after the
    // slot was taken: 14.5 s of each call are surely the service's.
    let at_the_fake = fake.max_token_calls_in_flight();
    let cap_seen = fake.max_token_calls_in_flight_within(Duration::from_millis(14_500));

    let scenario = format!(
        "identity provider outage, {}s, {n} mailboxes, {workers} callers ({})",
        outage.as_secs(),
        super::backend(&app)
    );
    figure(&scenario, "census before", &before);
    for (status, count) in &statuses {
        figure(&scenario, &format!("answers {status}"), count);
    }
    figure(
        &scenario,
        "answer p50",
        ms(percentile(&mut latencies, 50.0)),
    );
    figure(
        &scenario,
        "answer p99",
        ms(percentile(&mut latencies, 99.0)),
    );
    figure(
        &scenario,
        "answer max",
        ms(percentile(&mut latencies, 100.0)),
    );
    figure(
        &scenario,
        "token calls in flight at most, the first 14.5 s of each (cap 32)",
        cap_seen,
    );
    figure(
        &scenario,
        "token calls in flight at the fake, counting those the service had given up",
        at_the_fake,
    );
    figure(
        &scenario,
        "all mailboxes served again after",
        ms(recovered_in),
    );
    figure(&scenario, "census after", &after);

    assert_eq!(
        during.mailboxes, before.mailboxes,
        "no status changed during"
    );
    assert_eq!(after.mailboxes, before.mailboxes, "no status changed after");
    assert!(cap_seen <= 32, "the global cap held: {cap_seen}");
    for status in statuses.keys() {
        assert!(
            status == "200" || status.starts_with("503 unavailable (application/problem+json"),
            "only tokens or 503 problem documents: {statuses:?}"
        );
    }
    assert!(
        statuses.keys().any(|s| s.starts_with("503")),
        "the outage was seen: {statuses:?}"
    );
}
