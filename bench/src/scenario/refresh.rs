//! The keep-alive refreshing every grant at once through the token keeper,
//! against the fake's 20 ms per token request: wall time against the floor.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use inboxlink_tests::fake_entra::FakeEntra;

use crate::api::{browser, create_credential, create_mailboxes, sign_in};
use crate::table::{Goal, Table};
use crate::{Args, launch};

/// Part 3 of the issue: the keep-alive refreshing every grant at once, through the token keeper,
/// against the fake with 20 ms latency per token request.
pub async fn refresh_at_scale(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("refresh at scale:");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut l = launch(a, dir.path(), None, fake);
    let s = l.start().await;
    let http = reqwest::Client::new();
    let browser = browser();
    let credential = create_credential(&http, &s, fake).await;
    let ids = create_mailboxes(&http, &s, &credential, a.mailboxes, "scale").await;
    // Signed in with access tokens that are stale at once (60 s < the 5-minute margin).
    fake.set_access_token_ttl(60);
    futures_util::stream::iter(ids.iter())
        .map(|id| sign_in(&http, &browser, &s, id))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    fake.set_access_token_ttl(3600);
    drop(s);
    fake.set_latency(Duration::from_millis(20));
    for &concurrency in &a.concurrencies {
        // A new instance whose start-up sweep finds every grant due (older than 0 days).
        let before = fake.token_calls("refresh_token");
        l.set("INBOXLINK_KEEPALIVE_INTERVAL_SECONDS", "3600")
            .set("INBOXLINK_KEEPALIVE_AFTER_DAYS", "0")
            .set("INBOXLINK_KEEPALIVE_CONCURRENCY", concurrency.to_string())
            // As many token requests in flight as the sweep runs refreshes.
            .set("INBOXLINK_IDP_MAX_CONCURRENCY", concurrency.to_string());
        let s = l.start().await;
        let waited = Instant::now();
        while s
            .metric("inboxlink_keepalive_sweeps_total")
            .await
            .unwrap_or(0.0)
            < 1.0
        {
            assert!(
                waited.elapsed() < Duration::from_secs(900),
                "the sweep did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wall = s
            .metric("inboxlink_keepalive_last_sweep_seconds")
            .await
            .expect("sweep duration");
        let failed = s
            .metric("inboxlink_keepalive_failed_total")
            .await
            .unwrap_or(f64::NAN);
        let calls = fake.token_calls("refresh_token") - before;
        let floor = 0.020 * a.mailboxes as f64 / concurrency as f64;
        let section = "refresh at scale";
        t.add(
            section,
            format!(
                "concurrency {concurrency}: wall time for {} grants",
                a.mailboxes
            ),
            wall,
            "s",
        );
        t.add(
            section,
            format!(
                "concurrency {concurrency}: floor {} x 20 ms / {concurrency}",
                a.mailboxes
            ),
            floor,
            "s",
        );
        t.goal(
            section,
            format!("concurrency {concurrency}: wall / floor"),
            wall / floor,
            "x",
            Goal::AtMost(1.25),
        );
        t.goal(
            section,
            format!("concurrency {concurrency}: token calls at the fake / grants"),
            calls as f64 / a.mailboxes as f64,
            "x",
            Goal::Exactly(1.0),
        );
        t.goal(
            section,
            format!("concurrency {concurrency}: refreshes failed"),
            failed,
            "count",
            Goal::Exactly(0.0),
        );
        if concurrency == a.concurrencies[0] {
            t.goal(
                "resources",
                format!(
                    "resident memory with {} mailboxes, after the refresh run",
                    a.mailboxes
                ),
                s.rss_mib(),
                "MiB",
                Goal::AtMost(64.0),
            );
        }
    }
    fake.set_latency(Duration::ZERO);
}
