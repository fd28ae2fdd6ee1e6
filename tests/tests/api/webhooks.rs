//! Webhook deliveries against a real HTTP receiver: Standard Webhooks
//! signatures (checked with the `standardwebhooks` crate, written
//! independently of the service's signer), the retry schedule, `410`,
//! disabling, rotation, the URL policy, organisation isolation, and several
//! instances delivering each event once.

use std::collections::HashMap;
use std::time::Duration;

use inboxlink::hooks::schedule::Schedule;
use inboxlink_tests::receiver::{Received, Receiver};
use serde_json::{Value, json};

use crate::helpers::{Api, TestApp, TestAppBuilder, backend_tests, mailbox_body};
use crate::operations::{scrape, value};

const WAIT: Duration = Duration::from_secs(20);

/// Verifies a delivery as a receiver would, with the `standardwebhooks` crate.
fn verify(secret: &str, r: &Received) -> Result<(), standardwebhooks::WebhookError> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &r.headers {
        if let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    standardwebhooks::Webhook::new(secret)?.verify(&r.body, &headers)
}

/// Verifies a delivery with the README's Python receiver check
/// (`docs/verify_webhook.py`, the standard library's `hmac` only): true when
/// it exits 0.
fn verify_with_python(secret: &str, r: &Received) -> bool {
    use std::io::Write;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/verify_webhook.py");
    let header = |name: &str| r.header(name).unwrap_or_default().to_owned();
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .arg(secret)
        .env("WEBHOOK_ID", header("webhook-id"))
        .env("WEBHOOK_TIMESTAMP", header("webhook-timestamp"))
        .env("WEBHOOK_SIGNATURE", header("webhook-signature"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 docs/verify_webhook.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&r.body)
        .expect("the body to the verifier");
    let status = child.wait().expect("the verifier's exit");
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "usage error: {status}"
    );
    status.success()
}

fn schedule(
    text: &'static str,
) -> impl Fn(&mut inboxlink::config::Settings) + Send + Sync + 'static {
    move |s| s.notify.schedule = Schedule::parse(text).expect("schedule")
}

async fn create_mailbox(app: &TestApp, email: &str) -> uuid::Uuid {
    app.admin()
        .create_mailbox(mailbox_body(email, app.app_credential_id()))
        .await
}

backend_tests!(a_failing_receiver_gets_every_attempt_with_one_id_on_the_schedule);
async fn a_failing_receiver_gets_every_attempt_with_one_id_on_the_schedule(app: TestAppBuilder) {
    let app = app
        .with_app_credential()
        .with_settings(schedule("300ms,600ms,900ms"))
        .start()
        .await;
    let receiver = Receiver::start().await;
    receiver.answer_with(&[500, 500, 500]);
    let hook = app
        .new_webhook(&receiver.url("/hook"), Some(&["mailbox.created"]))
        .await;
    let id = create_mailbox(&app, "podatelna@contoso.cz").await;

    // While it waits for its retry, the queue shows it.
    receiver.wait_for("/hook", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let metrics = scrape(&app).await;
    assert_eq!(value(&metrics, "inboxlink_delivery_queue_depth"), 1.0);
    assert!(value(&metrics, "inboxlink_delivery_oldest_pending_seconds") > 0.0);
    let got = receiver.wait_for("/hook", 4, WAIT).await;
    assert_eq!(got.len(), 4, "three failures, then the success");
    let event = &app.events("mailbox.created").await[0];
    for r in &got {
        assert_eq!(
            r.header("webhook-id"),
            event["id"].as_str(),
            "stable across retries"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        verify(&hook.secret, r).expect("a valid signature");
        let body = r.json();
        assert_eq!(body["type"], "mailbox.created");
        assert_eq!(body["data"], event["data"]);
        assert_eq!(body["data"]["mailbox_id"], json!(id));
        let sent = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().expect("ts"));
        sent.expect("an RFC 3339 timestamp");
    }
    // The schedule's spacing, give or take its tenth of jitter.
    for (i, base) in [300u64, 600, 900].iter().enumerate() {
        let gap = got[i + 1].at - got[i].at;
        assert!(
            gap >= Duration::from_millis(base * 9 / 10)
                && gap < Duration::from_millis(base * 3 + 500),
            "gap {i}: {gap:?} for {base} ms"
        );
    }
    // The attempts as the API lists them, newest first.
    let page = app
        .admin_call("GET", &format!("/webhooks/{}/deliveries", hook.id), None)
        .await;
    let items = page.body["items"].as_array().expect("items").clone();
    let seen: Vec<(i64, i64)> = items
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().expect("n"),
                a["status_code"].as_i64().expect("status"),
            )
        })
        .collect();
    assert_eq!(seen, [(4, 200), (3, 500), (2, 500), (1, 500)]);
    assert!(items[0]["next_retry_at"].is_null(), "delivered");
    assert!(items[1]["next_retry_at"].is_string(), "a retry was due");
    assert_eq!(
        items[3]["response"], "answered 500",
        "the receiver's answer is kept"
    );
    assert_eq!(items[0]["event_id"], event["id"]);
    let hook_now = app.webhook(&hook.id).await;
    assert!(
        hook_now["failing_since"].is_null(),
        "the success ended the failures"
    );
}

backend_tests!(gone_disables_the_webhook_and_an_event_says_so);
async fn gone_disables_the_webhook_and_an_event_says_so(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let receiver = Receiver::start().await;
    receiver.answer_with(&[410]);
    let gone = app.new_webhook(&receiver.url("/gone"), None).await;
    let watcher = app
        .new_webhook(&receiver.url("/watch"), Some(&["webhook.disabled"]))
        .await;
    create_mailbox(&app, "podatelna@contoso.cz").await;

    let told = receiver.wait_for("/watch", 1, WAIT).await;
    assert_eq!(told.len(), 1);
    verify(&watcher.secret, &told[0]).expect("signed");
    let body = told[0].json();
    assert_eq!(body["type"], "webhook.disabled");
    assert_eq!(
        body["data"],
        json!({ "webhook_id": gone.id, "url": receiver.url("/gone"), "reason": "webhook_gone" })
    );
    let view = app.webhook(&gone.id).await;
    assert_eq!(
        (&view["enabled"], &view["disabled_reason"]),
        (&json!(false), &json!("webhook_gone"))
    );
    let metrics = scrape(&app).await;
    assert_eq!(value(&metrics, "inboxlink_webhooks_disabled"), 1.0);
    let gone_series = r#"inboxlink_deliveries_total{channel="webhook",outcome="gone"}"#;
    assert_eq!(value(&metrics, gone_series), 1.0);
    // A disabled endpoint gets nothing, until it is enabled again.
    create_mailbox(&app, "info@contoso.cz").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received_on("/gone").len(), 1);
    let test = app
        .admin_call("POST", &format!("/webhooks/{}/test", gone.id), None)
        .await;
    assert_eq!((test.status, test.code()), (409, Some("webhook_disabled")));
    let enabled = app
        .admin_call(
            "PATCH",
            &format!("/webhooks/{}", gone.id),
            Some(&json!({ "enabled": true })),
        )
        .await;
    assert_eq!(enabled.status, 200);
    assert!(enabled.body["disabled_reason"].is_null());
    create_mailbox(&app, "spisovna@contoso.cz").await;
    let later = receiver.wait_for("/gone", 2, WAIT).await;
    assert_eq!(later[1].json()["data"]["email"], "spisovna@contoso.cz");
}

backend_tests!(a_webhook_failing_too_long_is_disabled);
async fn a_webhook_failing_too_long_is_disabled(app: TestAppBuilder) {
    // Zero hours: the first failure is already too long.
    let app = app
        .with_app_credential()
        .with_settings(|s| s.notify.disable_after = chrono::Duration::zero())
        .start()
        .await;
    let receiver = Receiver::start().await;
    receiver.answer_with(&[503]);
    let hook = app.new_webhook(&receiver.url("/down"), None).await;
    create_mailbox(&app, "podatelna@contoso.cz").await;
    for _ in 0..500 {
        if app.webhook(&hook.id).await["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let view = app.webhook(&hook.id).await;
    assert_eq!(view["disabled_reason"], "webhook_failing", "{view}");
    assert!(view["failing_since"].is_string());
    let told = app.events("webhook.disabled").await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["data"]["reason"], "webhook_failing");
}

backend_tests!(signatures_need_the_right_secret_and_a_rotation_signs_with_both);
async fn signatures_need_the_right_secret_and_a_rotation_signs_with_both(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let receiver = Receiver::start().await;
    let hook = app.new_webhook(&receiver.url("/hook"), None).await;
    assert!(hook.secret.starts_with("whsec_"));
    let key = base64_len(&hook.secret);
    assert_eq!(key, 32, "32 random bytes");
    create_mailbox(&app, "a@contoso.cz").await;
    let first = receiver.wait_for("/hook", 1, WAIT).await;
    verify(&hook.secret, &first[0]).expect("the webhook's secret");
    assert!(
        verify_with_python(&hook.secret, &first[0]),
        "the README's verifier"
    );
    let other = app.new_webhook(&receiver.url("/other"), None).await;
    assert!(
        verify(&other.secret, &first[0]).is_err(),
        "another secret fails"
    );
    assert!(!verify_with_python(&other.secret, &first[0]));
    let mut tampered = first[0].clone();
    tampered.body = tampered
        .body
        .iter()
        .map(|b| if *b == b'a' { b'b' } else { *b })
        .collect();
    assert!(
        verify(&hook.secret, &tampered).is_err(),
        "a changed body fails"
    );
    assert!(!verify_with_python(&hook.secret, &tampered));

    let rotated = app
        .admin_call(
            "POST",
            &format!("/webhooks/{}/rotate-secret", hook.id),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new = rotated.body["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, hook.secret);
    let until = rotated.body["previous_secret_valid_until"]
        .as_str()
        .expect("until");
    let until = chrono::DateTime::parse_from_rfc3339(until).expect("time");
    let hours = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes();
    assert!((23 * 60..=24 * 60).contains(&hours), "{hours} minutes");
    create_mailbox(&app, "b@contoso.cz").await;
    let both = receiver.wait_for("/hook", 2, WAIT).await;
    let signatures = both[1].header("webhook-signature").expect("signed");
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    verify(&new, &both[1]).expect("the new secret");
    verify(&hook.secret, &both[1]).expect("the previous secret, during the overlap");
    assert!(verify_with_python(&new, &both[1]) && verify_with_python(&hook.secret, &both[1]));
    // Never shown again.
    let view = app.webhook(&hook.id).await;
    assert!(view.get("secret").is_none());
    assert!(!view.to_string().contains(&new[6..]));
    // Audited, without the secrets.
    let audit = app.admin_call("GET", "/audit-events?limit=200", None).await;
    let rows = audit.body["items"].as_array().expect("items");
    for action in ["webhook.created", "webhook.secret_rotated"] {
        assert!(
            rows.iter()
                .any(|r| r["action"] == action && r["target_id"] == hook.id.as_str()),
            "{action} in {rows:?}"
        );
    }
    let text = audit.body.to_string();
    assert!(!text.contains(&new[6..]) && !text.contains(&hook.secret[6..]));
}

fn base64_len(secret: &str) -> usize {
    use base64::Engine;
    let raw = secret.strip_prefix("whsec_").expect("prefix");
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .expect("base64")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_that_reach_inside_are_refused() {
    let app = TestApp::new()
        .with_settings(|s| s.notify.allow_private = false)
        .start()
        .await;
    for url in [
        "http://example.org/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://localhost/hook",
        "https://user:pass@example.org/hook",
    ] {
        let answer = app
            .admin_call("POST", "/webhooks", Some(&json!({ "url": url })))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (422, Some("webhook_url_not_allowed")),
            "{url}: {:?}",
            answer.body
        );
    }
    let bad = app
        .admin_call("POST", "/webhooks", Some(&json!({ "url": "not a url" })))
        .await;
    assert_eq!(bad.body["errors"][0]["code"], "invalid_url");
    let bad = app
        .admin_call(
            "POST",
            "/webhooks",
            Some(&json!({ "url": "https://8.8.8.8/x", "events": ["mailbox.exploded"] })),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["code"], "invalid_event_type");
    let list = app.admin_call("GET", "/webhooks", None).await;
    assert_eq!(list.body["items"], json!([]), "nothing was stored");
}

backend_tests!(a_private_address_is_refused_again_at_delivery);
async fn a_private_address_is_refused_again_at_delivery(app: TestAppBuilder) {
    // Saved while private targets were allowed; delivered after they are not.
    let open = app.with_app_credential().start().await;
    let receiver = Receiver::start().await;
    // A name that resolves to loopback, behind https:// (which the strict policy needs).
    let url = format!("https://localhost:{}/hook", receiver.port());
    let hook = open.new_webhook(&url, None).await;
    let strict = open
        .restart()
        .with_settings(|s| s.notify.allow_private = false)
        .start()
        .await;
    open.stop(true).await;
    create_mailbox(&strict, "podatelna@contoso.cz").await;
    let mut attempts = Value::Null;
    for _ in 0..500 {
        attempts = strict
            .admin_call("GET", &format!("/webhooks/{}/deliveries", hook.id), None)
            .await
            .body;
        if attempts["items"][0].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = attempts["items"][0]["error"].as_str().expect("an error");
    assert!(
        error.contains("localhost resolves only to loopback"),
        "{error} in {attempts}"
    );
    assert!(attempts["items"][0]["status_code"].is_null());
    assert!(receiver.received().is_empty(), "no connection was made");
}

backend_tests!(a_test_event_goes_to_its_webhook_alone);
async fn a_test_event_goes_to_its_webhook_alone(app: TestAppBuilder) {
    let app = app.start().await;
    let receiver = Receiver::start().await;
    let tested = app.new_webhook(&receiver.url("/tested"), None).await;
    app.new_webhook(&receiver.url("/other"), None).await;
    let queued = app
        .admin_call("POST", &format!("/webhooks/{}/test", tested.id), None)
        .await;
    assert_eq!(queued.status, 202);
    let got = receiver.wait_for("/tested", 1, WAIT).await;
    assert_eq!(
        got[0].header("webhook-id"),
        queued.body["event_id"].as_str()
    );
    assert_eq!(got[0].json()["type"], "webhook.test");
    assert_eq!(got[0].json()["data"], json!({ "webhook_id": tested.id }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received_on("/other").is_empty());
    assert_eq!(app.events("webhook.test").await.len(), 1, "in the feed too");
}

backend_tests!(an_organisations_events_reach_only_its_own_webhooks);
async fn an_organisations_events_reach_only_its_own_webhooks(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let receiver = Receiver::start().await;
    app.new_webhook(&receiver.url("/acme"), None).await;
    let globex = app
        .new_webhook_of("globex", &receiver.url("/globex"), None)
        .await;
    create_mailbox(&app, "podatelna@contoso.cz").await;
    receiver.wait_for("/acme", 1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received_on("/globex").is_empty());
    let path = format!("/webhooks/{}", globex.id);
    let theirs = app.admin_call("GET", &path, None).await;
    assert_eq!(theirs.status, 404, "another organisation's webhook");
}

backend_tests!(a_failed_delivery_is_delivered_when_retried);
async fn a_failed_delivery_is_delivered_when_retried(app: TestAppBuilder) {
    let app = app
        .with_app_credential()
        .with_settings(schedule("100ms"))
        .start()
        .await;
    let receiver = Receiver::start().await;
    receiver.answer_with(&[500, 500]);
    let hook = app.new_webhook(&receiver.url("/hook"), None).await;
    create_mailbox(&app, "podatelna@contoso.cz").await;
    receiver.wait_for("/hook", 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received_on("/hook").len(),
        2,
        "the schedule is used up"
    );
    let page = app
        .admin_call("GET", &format!("/webhooks/{}/deliveries", hook.id), None)
        .await;
    let delivery = page.body["items"][0]["delivery_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let retried = app
        .admin_call(
            "POST",
            &format!("/webhooks/{}/deliveries/{delivery}/retry", hook.id),
            None,
        )
        .await;
    assert_eq!(retried.status, 202, "{:?}", retried.body);
    assert_eq!(retried.body["state"], "pending");
    let got = receiver.wait_for("/hook", 3, WAIT).await;
    assert_eq!(got[2].status, 200);
    assert_eq!(got[2].header("webhook-id"), got[0].header("webhook-id"));
    let unknown = app
        .admin_call(
            "POST",
            &format!(
                "/webhooks/{}/deliveries/{}/retry",
                hook.id,
                uuid::Uuid::now_v7()
            ),
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
}

backend_tests!(an_entitys_events_arrive_in_order);
async fn an_entitys_events_arrive_in_order(app: TestAppBuilder) {
    // The first delivery fails once: the next event of the mailbox waits for it.
    let app = app
        .with_app_credential()
        .with_settings(schedule("300ms"))
        .start()
        .await;
    let receiver = Receiver::start().await;
    receiver.answer_with(&[500]);
    app.new_webhook(&receiver.url("/hook"), None).await;
    let id = create_mailbox(&app, "podatelna@contoso.cz").await;
    app.admin()
        .mailbox_delete()
        .id(id)
        .send()
        .await
        .expect("deleted");
    let got = receiver.wait_for("/hook", 3, WAIT).await;
    let types: Vec<Value> = got.iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(
        types,
        ["mailbox.created", "mailbox.created", "mailbox.deleted"]
    );
}

/// Two instances on PostgreSQL deliver each of 500 events exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_deliver_each_event_once() {
    let Some(app) = TestApp::postgres() else {
        return;
    };
    let first = app.with_app_credential().start().await;
    let second = first.sibling().await;
    let receiver = Receiver::start().await;
    first.new_webhook(&receiver.url("/hook"), None).await;
    let admin = first.admin();
    let cred = first.app_credential_id();
    for chunk in 0..10 {
        let creates = (0..50).map(|i| {
            let admin = admin.clone();
            let email = format!("box{}@contoso.cz", chunk * 50 + i);
            async move { admin.create_mailbox(mailbox_body(&email, cred)).await }
        });
        futures_util::future::join_all(creates).await;
    }
    let got = receiver
        .wait_for("/hook", 500, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_all = receiver.received_on("/hook");
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got_all {
        *per_id
            .entry(r.header("webhook-id").expect("id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(got.len(), 500);
    assert_eq!(per_id.len(), 500, "every event");
    assert!(per_id.values().all(|n| *n == 1), "each once");
    let delivered = r#"inboxlink_deliveries_total{channel="webhook",outcome="delivered"}"#;
    let a = value(&scrape(&first).await, delivered);
    let b = value(&scrape(&second).await, delivered);
    assert_eq!(a + b, 500.0, "attempts of both instances: {a} + {b}");
}

backend_tests!(a_graceful_stop_finishes_the_delivery_in_flight);
async fn a_graceful_stop_finishes_the_delivery_in_flight(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_secs(2));
    let hook = app.new_webhook(&receiver.url("/hook"), None).await;
    create_mailbox(&app, "podatelna@contoso.cz").await;
    // Stopped while the receiver is still answering.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.stop(true).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = app.restart().start().await;
    let page = after
        .admin_call("GET", &format!("/webhooks/{}/deliveries", hook.id), None)
        .await;
    let items = page.body["items"].as_array().expect("items");
    assert_eq!(
        items.len(),
        1,
        "recorded by the stopping instance: {items:?}"
    );
    assert_eq!(items[0]["status_code"], 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received_on("/hook").len(),
        1,
        "not delivered again"
    );
}
