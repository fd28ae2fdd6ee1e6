//! Webhook delivery: from a mailbox's status change to the receiver's 2xx,
//! and deliveries per second, each against the same signed POST made
//! directly to the same receiver ([`crate::post`]).
//!
//! The status changes go through the service's own paths, on app-only
//! mailboxes: `POST /mailboxes/{id}/refresh` gets a token from the fake
//! Entra ID (`inactive` -> `active`) and a `PATCH` of `shared` ends the grant
//! (`active` -> `inactive`); each commits a `mailbox.status_changed` event
//! and its delivery in the transaction of the change. The webhook takes only
//! that type. The service runs with the default poll and concurrency.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::receiver::{Received, Receiver};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::api::{create_credential, create_mailboxes_as, post_json};
use crate::service::{Launch, Service};
use crate::table::{Goal, Table};
use crate::{Args, launch, post};

/// The rate of status changes in the latency run: far more than an
/// organisation's mailboxes change (10,000 mailboxes changing once an hour
/// make 3 a second), and below what the service delivers, so the figure is
/// the latency of a delivery, not the wait in a queue.
const CHANGES_PER_SECOND: f64 = 100.0;
/// Mailboxes changed once each before the latency run (their bodies are the
/// direct POSTs' bodies).
const WARM_UP: usize = 20;
const SECTION: &str = "webhooks";

/// The service's defaults: the poll the latency goal is set for, and the
/// deliveries in flight (the baseline's requests in flight too).
fn defaults() -> (Duration, usize) {
    let d = inboxlink::config::notify::NotifySettings::default();
    (d.poll, d.concurrency)
}

/// Both runs, on SQLite.
pub async fn webhooks(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("webhook delivery:");
    latency(a, fake, t).await;
    throughput(a, fake, t).await;
}

/// What a change needs of the service: owned, so each change can be a task.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    admin: String,
}

impl Api {
    fn of(s: &Service) -> Self {
        Api {
            http: reqwest::Client::new(),
            base: s.base.clone(),
            admin: s.admin.clone(),
        }
    }

    /// A status change of mailbox `id`: in even rounds a refresh (to
    /// `active`), in odd ones a settings change (to `inactive`). Returns when
    /// the answer was read.
    async fn change(&self, id: &str, round: usize) -> Instant {
        let (request, to) = if round.is_multiple_of(2) {
            let url = format!("{}/mailboxes/{id}/refresh", self.base);
            (self.http.post(url).json(&json!({})), "active")
        } else {
            let url = format!("{}/mailboxes/{id}", self.base);
            let shared = round % 4 == 1;
            (
                self.http.patch(url).json(&json!({ "shared": shared })),
                "inactive",
            )
        };
        let r = request
            .bearer_auth(&self.admin)
            .send()
            .await
            .expect("a change");
        assert!(r.status().is_success(), "a change answered {}", r.status());
        let v: Value = r.json().await.expect("json");
        let returned = Instant::now();
        let status = v.get("mailbox").unwrap_or(&v)["status"].clone();
        assert_eq!(status, to, "the change of {id} in round {round}");
        returned
    }
}

/// The webhook for status changes; returns its secret.
async fn create_webhook(http: &reqwest::Client, s: &Service, url: &str) -> String {
    let body = json!({ "url": url, "events": ["mailbox.status_changed"] });
    let r = post_json(http, &format!("{}/webhooks", s.base), &s.admin, &body).await;
    r["secret"].as_str().expect("the secret").to_owned()
}

/// An instance that may post webhooks to the receiver on 127.0.0.1.
fn webhook_launch(a: &Args, dir: &std::path::Path, fake: &FakeEntra) -> Launch {
    let mut l = launch(a, dir, None, fake);
    l.set("INBOXLINK_WEBHOOK_ALLOW_PRIVATE", "true");
    l
}

/// Deliveries on `path` in order of arrival, each event once; and how many arrived again.
fn distinct(receiver: &Receiver, path: &str) -> (Vec<Received>, usize) {
    let mut seen = HashSet::new();
    let all = receiver.received_on(path);
    let total = all.len();
    let once: Vec<Received> = all
        .into_iter()
        .filter(|r| seen.insert(r.header("webhook-id").unwrap_or("").to_owned()))
        .collect();
    let again = total - once.len();
    (once, again)
}

fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The event's `timestamp` (its `occurred_at`, written in the transaction of the change).
fn occurred_micros(body: &Value) -> i64 {
    let text = body["timestamp"].as_str().expect("a timestamp");
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 timestamp")
        .timestamp_micros()
}

/// The `p`-quantile of unsorted milliseconds.
fn quantile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// What one change needs to find its delivery: when it was sent (on both
/// clocks, to place the event's wall-clock time on the receiver's), and
/// when its answer was read.
struct Sent {
    mailbox: usize,
    round: usize,
    at: Instant,
    at_wall: i64,
    returned: Instant,
}

/// The latency run: `a.webhook_changes` status changes at a fixed rate
/// round the mailboxes, each interleaved with a direct POST of a delivered
/// body to the same receiver.
async fn latency(a: &Args, fake: &FakeEntra, t: &mut Table) {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = webhook_launch(a, dir.path(), fake).start().await;
    let api = Api::of(&s);
    let receiver = Receiver::start().await;
    let credential = create_credential(&api.http, &s, fake).await;
    let warm = create_mailboxes_as(&api.http, &s, &credential, WARM_UP, "warm", "app_only").await;
    let ids = create_mailboxes_as(
        &api.http,
        &s,
        &credential,
        a.webhook_mailboxes,
        "hook",
        "app_only",
    )
    .await;
    let secret = SecretString::from(create_webhook(&api.http, &s, &receiver.url("/hook")).await);

    for id in &warm {
        api.change(id, 0).await;
    }
    let bodies: Vec<Vec<u8>> = receiver
        .wait_for("/hook", WARM_UP, Duration::from_secs(30))
        .await
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(bodies.len(), WARM_UP, "the warm-up's deliveries arrived");
    let direct_http = post::client();
    post::send(
        &direct_http,
        &receiver.url("/warm"),
        &secret,
        bodies[0].clone(),
    )
    .await;

    let n = a.webhook_changes;
    let start = Instant::now() + Duration::from_millis(20);
    let (mut changes, mut directs) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / CHANGES_PER_SECOND);
        tokio::time::sleep_until(due.into()).await;
        let (mailbox, round) = (i % ids.len(), i / ids.len());
        let (api, id) = (api.clone(), ids[mailbox].clone());
        changes.push(tokio::spawn(async move {
            let (at, at_wall) = (Instant::now(), unix_micros(SystemTime::now()));
            let returned = api.change(&id, round).await;
            Sent {
                mailbox,
                round,
                at,
                at_wall,
                returned,
            }
        }));
        let (http, url, key, body) = (
            direct_http.clone(),
            receiver.url("/direct"),
            secret.clone(),
            bodies[i % bodies.len()].clone(),
        );
        directs.push(tokio::spawn(async move {
            post::send(&http, &url, &key, body).await
        }));
    }
    let mut sent = Vec::with_capacity(n);
    for c in changes {
        sent.push(c.await.expect("a change"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut started = HashMap::with_capacity(n);
    for d in directs {
        let (id, at) = d.await.expect("a direct POST");
        started.insert(id, at);
    }
    receiver
        .wait_for("/hook", WARM_UP + n, Duration::from_secs(60))
        .await;
    let (delivered, again) = distinct(&receiver, "/hook");

    // Each mailbox's deliveries in order of arrival are its changes in order
    // (the service delivers an entity's events in order).
    let mut by_mailbox: HashMap<String, Vec<&Received>> = HashMap::new();
    for r in &delivered {
        let id = r.json()["data"]["mailbox_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        by_mailbox.entry(id).or_default().push(r);
    }
    let (mut from_change, mut from_answer, mut missing) = (Vec::new(), Vec::new(), 0);
    for c in &sent {
        let Some(r) = by_mailbox.get(&ids[c.mailbox]).and_then(|v| v.get(c.round)) else {
            missing += 1;
            continue;
        };
        let body = r.json();
        let to = if c.round.is_multiple_of(2) {
            "active"
        } else {
            "inactive"
        };
        assert_eq!(body["data"]["to"], to, "deliveries follow the changes");
        // The event's time on the monotonic clock, placed by the wall-clock
        // reading taken with `c.at` (so clock drift over the run cannot add up).
        let occurred_after_send = (occurred_micros(&body) - c.at_wall) as f64 / 1000.0;
        let arrived_after_send = r.at.saturating_duration_since(c.at).as_secs_f64() * 1000.0;
        from_change.push(arrived_after_send - occurred_after_send);
        from_answer.push(signed_ms(r.at, c.returned));
    }
    let mut direct: Vec<f64> = receiver
        .received_on("/direct")
        .iter()
        .filter_map(|r| {
            let id = r.header("webhook-id")?;
            Some(signed_ms(r.at, *started.get(id)?))
        })
        .collect();
    assert_eq!(direct.len(), n, "every direct POST arrived once");
    drop(s);

    let (d50, d99) = (
        quantile(&mut from_change, 0.5),
        quantile(&mut from_change, 0.99),
    );
    let (a50, a99) = (
        quantile(&mut from_answer, 0.5),
        quantile(&mut from_answer, 0.99),
    );
    let (b50, b99) = (quantile(&mut direct, 0.5), quantile(&mut direct, 0.99));
    t.add(
        SECTION,
        format!(
            "{n} status changes at {CHANGES_PER_SECOND:.0}/s round {} mailboxes: rate achieved",
            ids.len()
        ),
        n as f64 / elapsed,
        "changes/s",
    );
    t.add(SECTION, "transition -> receiver, p50", d50, "ms");
    t.add(SECTION, "transition -> receiver, p99", d99, "ms");
    t.add(SECTION, "answer to the change -> receiver, p50", a50, "ms");
    t.add(SECTION, "answer to the change -> receiver, p99", a99, "ms");
    t.add(
        SECTION,
        "direct POST of the same body -> receiver, p50",
        b50,
        "ms",
    );
    t.add(
        SECTION,
        "direct POST of the same body -> receiver, p99",
        b99,
        "ms",
    );
    t.add(
        SECTION,
        "added latency (delivered - direct), p50",
        d50 - b50,
        "ms",
    );
    t.goal(
        SECTION,
        format!(
            "added latency (delivered - direct), p99, poll {} ms",
            defaults().0.as_millis()
        ),
        d99 - b99,
        "ms",
        Goal::AtMost(1000.0),
    );
    t.goal(
        SECTION,
        "status changes without their delivery",
        missing as f64,
        "count",
        Goal::Exactly(0.0),
    );
    t.add(SECTION, "deliveries received twice", again as f64, "count");
}

/// `later - earlier` in milliseconds, negative when `later` was not later.
fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(earlier.duration_since(later).as_secs_f64() * 1000.0),
    }
}

/// `(n - 1)` over the time from the first arrival to the last: the rate
/// at which they came.
fn rate(arrived: &[Received]) -> f64 {
    let (Some(first), Some(last)) = (
        arrived.iter().map(|r| r.at).min(),
        arrived.iter().map(|r| r.at).max(),
    ) else {
        return f64::NAN;
    };
    (arrived.len() as f64 - 1.0) / last.duration_since(first).as_secs_f64()
}

/// The throughput run: `a.webhook_burst` deliveries queued while no
/// instance delivers, then drained by an instance with the default poll and
/// concurrency; against the same bodies posted directly, as many at a time,
/// from core 0.
///
/// The queue is built by an instance whose worker looks for due deliveries
/// every 60 s (`INBOXLINK_DELIVERY_POLL_MS=60000`: its one look is at its
/// start, before the changes), and the run checks that nothing arrived
/// before the draining instance started.
async fn throughput(a: &Args, fake: &FakeEntra, t: &mut Table) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut l = webhook_launch(a, dir.path(), fake);
    let s = l.start().await;
    let api = Api::of(&s);
    let receiver = Receiver::start().await;
    let credential = create_credential(&api.http, &s, fake).await;
    let ids = create_mailboxes_as(
        &api.http,
        &s,
        &credential,
        a.webhook_burst / 2,
        "burst",
        "app_only",
    )
    .await;
    let secret = create_webhook(&api.http, &s, &receiver.url("/hook")).await;
    drop(s);

    l.set("INBOXLINK_DELIVERY_POLL_MS", "60000");
    let s = l.start().await;
    let queueing = Instant::now();
    let api = Api::of(&s);
    futures_util::stream::iter(&ids)
        .map(|id| {
            let api = api.clone();
            async move {
                api.change(id, 0).await;
                api.change(id, 1).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let n = ids.len() * 2;
    assert_eq!(
        receiver.count_on("/hook"),
        0,
        "deliveries arrived while the queue was built ({:.0} s): make fewer with --webhook-burst",
        queueing.elapsed().as_secs_f64()
    );
    drop(s);

    l.unset("INBOXLINK_DELIVERY_POLL_MS");
    let s = l.start().await;
    let cpu_before = s.cpu_seconds();
    receiver
        .wait_for("/hook", n, Duration::from_secs(900))
        .await;
    let cpu = s.cpu_seconds() - cpu_before;
    drop(s);
    let (delivered, again) = distinct(&receiver, "/hook");
    let delivered_rate = rate(&delivered);

    let bodies = dir.path().join("bodies.jsonl");
    let lines: Vec<String> = delivered
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    std::fs::write(&bodies, lines.join("\n")).expect("write the bodies");
    let url = receiver.url("/direct");
    let concurrency = defaults().1;
    tokio::task::spawn_blocking(move || post::in_child(&url, &secret, &bodies, concurrency))
        .await
        .expect("the child")
        .expect("the direct POSTs");
    let direct = receiver.received_on("/direct");
    assert_eq!(direct.len(), delivered.len(), "every direct POST arrived");
    let direct_rate = rate(&direct);

    t.add(
        SECTION,
        format!("direct POSTs of the same bodies, {concurrency} at a time (baseline)"),
        direct_rate,
        "req/s",
    );
    t.add(
        SECTION,
        format!("deliveries of a queue of {n}, default concurrency {concurrency}"),
        delivered_rate,
        "req/s",
    );
    t.add(
        SECTION,
        "service CPU time per delivery while draining the queue",
        cpu * 1000.0 / n as f64,
        "ms",
    );
    t.goal(
        SECTION,
        "delivery rate / direct POST rate",
        delivered_rate / direct_rate,
        "x",
        Goal::AtLeast(0.5),
    );
    t.goal(
        SECTION,
        "queued status changes without their delivery",
        n.saturating_sub(delivered.len()) as f64,
        "count",
        Goal::Exactly(0.0),
    );
    t.add(
        SECTION,
        "queued deliveries received twice",
        again as f64,
        "count",
    );
}
