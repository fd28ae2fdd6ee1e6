//! The mail servers down or dropping connections while checks run: nothing
//! listening, a server that accepts and closes at once, one that resets the
//! connection, and one that accepts and never speaks. Every check answers
//! in time with the failed step explained (a code and a hint), no mailbox
//! changes status, and the service's file descriptors come back to where
//! they were: no connection or task is left behind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::peers::{Mode, bad_server, closed_port};
use super::{Service, census, figure, ms, percentile, sized};
use crate::helpers::{TestAppBuilder, backend_tests};

/// One check: its HTTP status, the first failed step's `name code`, and
/// whether that step has a hint.
async fn check(client: &reqwest::Client, service: &Service, id: uuid::Uuid) -> (u16, String, bool) {
    let r = client
        .post(service.url(&format!("/mailboxes/{id}/check")))
        .bearer_auth(&service.token)
        .json(&serde_json::json!({}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the check answered");
    let status = r.status().as_u16();
    let report: serde_json::Value = r.json().await.expect("a JSON report");
    let failed = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["status"] == "failed");
    match failed {
        Some(step) => (
            status,
            format!(
                "{} {}",
                step["name"].as_str().unwrap_or("?"),
                step["code"].as_str().unwrap_or("no code")
            ),
            step["hint"].as_str().is_some_and(|h| !h.is_empty()),
        ),
        None => (status, format!("no failed step: {report}"), false),
    }
}

/// Open descriptors once they settle (a closed socket may take a moment).
async fn settled_fds(service: &Service, at_most: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fds = service.fds();
        if fds <= at_most || Instant::now() > deadline {
            return fds;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

backend_tests!(checks_against_failing_mail_servers_explain_and_leak_nothing);
async fn checks_against_failing_mail_servers_explain_and_leak_nothing(app: TestAppBuilder) {
    let rounds = sized(24, 300);
    let parallel = 8;
    let app = app.with_fake_entra().with_mailbox().start().await;
    app.sign_in_ok(app.mailbox_id()).await;
    let id = app.mailbox_id();
    app.stop(true).await;

    let mode = Arc::new(AtomicU8::new(Mode::AcceptClose as u8));
    let bad = bad_server(mode.clone());
    let closed = closed_port();
    // IMAP at the misbehaving server, SMTP where nothing listens.
    let service = Service::start(
        &app,
        &[
            ("INBOXLINK_IMAP_ENDPOINT", bad.clone()),
            ("INBOXLINK_SMTP_ENDPOINT", closed.clone()),
            ("INBOXLINK_CHECK_TIMEOUT_SECONDS", "2".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let before = census(&service.base(), &service.token).await;
    // Warm-up: as many checks at once as the rounds make, so the database
    // pool has opened what they need; then idle past the HTTP keep-alive
    // (5 s), so the callers' connections are closed when counted.
    for _ in 0..2 {
        futures_util::future::join_all((0..parallel).map(|_| check(&client, &service, id))).await;
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    let fds_before = service.fds();
    let threads_before = service.threads();
    let rss_before = service.rss_kib();

    let mut answers = BTreeMap::<String, usize>::new();
    let mut latencies = Vec::new();
    for m in Mode::ALL {
        mode.store(m as u8, Ordering::SeqCst);
        let results: Vec<_> = futures_util::stream::iter(0..rounds)
            .map(|_| {
                let (client, service) = (&client, &service);
                async move {
                    let started = Instant::now();
                    let answer = check(client, service, id).await;
                    (answer, started.elapsed())
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        for ((status, failed, hinted), took) in results {
            assert_eq!(status, 200, "a check answers its report: {failed}");
            assert!(hinted, "the failed step says what to do: {failed}");
            *answers
                .entry(format!("{}: {failed}", m.name()))
                .or_default() += 1;
            latencies.push(took);
        }
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    let fds_after = settled_fds(&service, fds_before + 2).await;
    let threads_after = service.threads();
    let rss_after = service.rss_kib();
    let after = census(&service.base(), &service.token).await;

    let scenario = format!(
        "checks against failing mail servers, {} checks, {parallel} at once ({})",
        rounds * Mode::ALL.len(),
        super::backend(&app)
    );
    for (answer, count) in &answers {
        figure(&scenario, &format!("IMAP {answer}"), count);
    }
    figure(&scenario, "check p50", ms(percentile(&mut latencies, 50.0)));
    figure(
        &scenario,
        "check max",
        ms(percentile(&mut latencies, 100.0)),
    );
    figure(
        &scenario,
        "open descriptors before -> after",
        format!("{fds_before} -> {fds_after}"),
    );
    figure(
        &scenario,
        "threads before -> after",
        format!("{threads_before} -> {threads_after}"),
    );
    figure(
        &scenario,
        "resident memory before -> after",
        format!("{rss_before} -> {rss_after} KiB"),
    );

    for answer in answers.keys() {
        let code = answer.rsplit(' ').next().unwrap_or_default();
        assert!(
            answer.contains(": imap_")
                && ["tls_failed", "imap_no_greeting", "timeout", "unreachable"].contains(&code),
            "the IMAP step fails with a connection code: {answers:?}"
        );
    }
    assert!(
        answers.keys().any(|a| a.ends_with(" timeout")),
        "the silent server is a timeout: {answers:?}"
    );
    let max = percentile(&mut latencies, 100.0);
    assert!(
        max < Duration::from_secs(20),
        "every check answers within its step timeouts: {}",
        ms(max)
    );
    assert!(
        fds_after <= fds_before + 2,
        "no descriptor left behind: {fds_before} -> {fds_after}"
    );
    assert_eq!(after.mailboxes, before.mailboxes, "no status changed");
}
