//! Webhook receivers that hang, reset connections or answer slowly, beside
//! a healthy one: the healthy endpoint's deliveries are not held up by the
//! others' (each event reaches it about as fast as with no bad receiver),
//! and every bad endpoint still gets its attempts.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::{Duration, Instant};

use inboxlink::hooks::schedule::Schedule;
use inboxlink_tests::receiver::Receiver;

use super::peers::{Mode, bad_server};
use super::{figure, ms, percentile, sized};
use crate::helpers::{Api, TestAppBuilder, backend_tests, mailbox_body};

/// A bad receiver that keeps one behaviour: `http://` at a [`bad_server`].
fn bad_receiver(mode: Mode) -> String {
    format!(
        "http://{}/hook",
        bad_server(Arc::new(AtomicU8::new(mode as u8)))
    )
}

backend_tests!(bad_receivers_do_not_hold_up_a_healthy_one);
async fn bad_receivers_do_not_hold_up_a_healthy_one(app: TestAppBuilder) {
    let n = sized(40, 400);
    let app = app
        .with_app_credential()
        .with_settings(|s| s.notify.schedule = Schedule::parse("30s").expect("schedule"))
        .start()
        .await;
    let healthy = Receiver::start().await;
    let slow = Receiver::start().await;
    // Under the delivery deadline (10 s): answered, late.
    slow.set_delay(Duration::from_secs(8));
    let events = Some(&["mailbox.created"][..]);
    app.new_webhook(&healthy.url("/healthy"), events).await;
    app.new_webhook(&slow.url("/slow"), events).await;
    for mode in Mode::ALL {
        app.new_webhook(&bad_receiver(mode), events).await;
    }

    let admin = app.admin();
    let mut created = HashMap::new();
    for i in 0..n {
        let id = admin
            .create_mailbox(mailbox_body(
                &format!("hook{i}@contoso.cz"),
                app.app_credential_id(),
            ))
            .await;
        created.insert(id.to_string(), Instant::now());
    }
    let got = healthy
        .wait_for("/healthy", n, Duration::from_secs(120))
        .await;
    let mut latencies: Vec<Duration> = got
        .iter()
        .map(|r| {
            let id = r.json()["data"]["mailbox_id"]
                .as_str()
                .expect("a mailbox id")
                .to_owned();
            r.at.saturating_duration_since(created[&id])
        })
        .collect();
    // The slow receiver answers its first attempts 8 s after they came.
    let slow_got = slow
        .wait_for("/slow", 1, Duration::from_secs(30))
        .await
        .len();

    let scenario = format!(
        "webhooks: {n} events to a healthy receiver beside one 8 s slow, one hanging, one resetting, one closing ({})",
        super::backend(&app)
    );
    figure(&scenario, "delivered to the healthy receiver", got.len());
    figure(
        &scenario,
        "healthy delivery p50",
        ms(percentile(&mut latencies, 50.0)),
    );
    figure(
        &scenario,
        "healthy delivery p99",
        ms(percentile(&mut latencies, 99.0)),
    );
    figure(
        &scenario,
        "healthy delivery max",
        ms(percentile(&mut latencies, 100.0)),
    );
    figure(
        &scenario,
        "answered by the slow receiver within 30 s",
        slow_got,
    );

    assert_eq!(got.len(), n, "every event reached the healthy receiver");
    // Short form: 40 events, nothing to wait for but the poll. Long form:
    // 400 created at once queue behind each other at the healthy endpoint's
    // own 4 slots, yet never wait for a bad receiver's 8-10 s attempt.
    let p99 = percentile(&mut latencies, 99.0);
    assert!(
        p99 < sized(Duration::from_secs(3), Duration::from_secs(8)),
        "the healthy receiver is not held up by the others: p99 {}",
        ms(p99)
    );
    assert!(slow_got > 0, "the slow receiver gets its attempts too");
}
