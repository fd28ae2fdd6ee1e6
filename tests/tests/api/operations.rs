//! Operations: request ids, Prometheus metrics, `doctor` and `rekey` (run
//! through the library, which the CLI only prints).

use std::time::Duration;

use inboxlink::crypto::{Cipher, MasterKey};
use inboxlink::ops::doctor;
use inboxlink::store::operations::SecretColumn;
use inboxlink_sdk::types::AccessMode;

use crate::helpers::{
    Answer, Api, CLIENT_ID, MAILBOX, METRICS_TOKEN, ORG, SECRET, TestApp, TestAppBuilder,
    app_credential_body, backend_tests, follow, logged_with, logs, send,
};

/// The metrics of `app`, as text (and checks the content type).
pub(crate) async fn scrape(app: &TestApp) -> String {
    let response = app.request("GET", "/metrics").bearer_auth(METRICS_TOKEN);
    let response = response.send().await.expect("metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("text")
}

/// `GET url` with an optional bearer token.
async fn get_metrics(url: &str, token: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

/// Metrics span every organisation: only the operator's metrics token opens
/// them, compared whole; an API token of any role does not.
#[tokio::test]
async fn metrics_need_the_metrics_token() {
    let app = TestApp::new().start().await;
    let url = app.url("/metrics");
    let answer = get_metrics(&url, None).await;
    assert_eq!((answer.status, answer.code()), (401, Some("missing_token")));
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    let admin = app.token(ORG, &["admin"]);
    let almost = format!("{}x", &METRICS_TOKEN[..METRICS_TOKEN.len() - 1]);
    for wrong in [admin.as_str(), almost.as_str(), &METRICS_TOKEN[..10], "x"] {
        let answer = get_metrics(&url, Some(wrong)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (401, Some("invalid_token")),
            "{wrong}"
        );
    }
    let answer = get_metrics(&url, Some(METRICS_TOKEN)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert!(
        !logs().contains(METRICS_TOKEN),
        "the metrics token is never logged"
    );
}

/// With neither a metrics token nor a metrics listener, `/metrics` is not
/// served, and the answer says how to enable it.
#[tokio::test]
async fn metrics_are_not_served_unless_configured() {
    let app = TestApp::new()
        .with_settings(|s| s.protection.metrics.token = None)
        .start()
        .await;
    for token in [None, Some(METRICS_TOKEN)] {
        let answer = get_metrics(&app.url("/metrics"), Some(token.unwrap_or_default())).await;
        assert_eq!(answer.status, 404);
        assert_eq!(answer.code(), Some("metrics_disabled"));
        let detail = answer.body["detail"].as_str().expect("detail");
        assert!(
            detail.contains("INBOXLINK_METRICS_TOKEN") && detail.contains("INBOXLINK_METRICS_BIND"),
            "{detail}"
        );
    }
}

/// `INBOXLINK_METRICS_BIND`: a second listener serves `/metrics` (and nothing
/// else); the main listener no longer does. A metrics token, if set too, is
/// required there.
#[tokio::test]
async fn metrics_on_a_separate_listener() {
    let listener =
        || -> Option<std::net::SocketAddr> { Some("127.0.0.1:0".parse().expect("address")) };
    let open = TestApp::new()
        .with_settings(move |s| {
            s.protection.metrics.token = None;
            s.protection.metrics.bind = listener();
        })
        .start()
        .await;
    let port = open.metrics_port.expect("a metrics listener");
    assert_ne!(format!("http://127.0.0.1:{port}"), open.base);
    let private = format!("http://127.0.0.1:{port}");
    let answer = get_metrics(&open.url("/metrics"), Some(METRICS_TOKEN)).await;
    assert_eq!(
        (answer.status, answer.code()),
        (404, Some("metrics_disabled"))
    );
    let response = reqwest::get(format!("{private}/metrics")).await;
    let response = response.expect("metrics");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let text = response.text().await.expect("text");
    assert!(text.contains("# TYPE inboxlink_http_requests_total counter"));
    for path in ["/mailboxes", "/healthz", "/openapi.json"] {
        let answer = get_metrics(&format!("{private}{path}"), None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (404, Some("route_not_found")),
            "{path}"
        );
    }

    let guarded = TestApp::new()
        .with_settings(move |s| s.protection.metrics.bind = listener())
        .start()
        .await;
    let private = format!(
        "http://127.0.0.1:{}/metrics",
        guarded.metrics_port.expect("a metrics listener")
    );
    let answer = get_metrics(&private, None).await;
    assert_eq!((answer.status, answer.code()), (401, Some("missing_token")));
    assert_eq!(get_metrics(&private, Some(METRICS_TOKEN)).await.status, 200);
    let answer = get_metrics(&guarded.url("/metrics"), Some(METRICS_TOKEN)).await;
    assert_eq!(
        (answer.status, answer.code()),
        (404, Some("metrics_disabled"))
    );
}

backend_tests!(mailbox_counts_are_cached_and_shared_by_scrapes);
/// Scrapes reuse the mailbox counts for `INBOXLINK_METRICS_CACHE_SECONDS`,
/// and concurrent scrapes share one query.
async fn mailbox_counts_are_cached_and_shared_by_scrapes(app: TestAppBuilder) {
    let app = app
        .with_app_credential()
        .with_settings(|s| s.protection.metrics.cache = Duration::from_secs(600))
        .start()
        .await;
    let before = app.metrics_count_queries();
    let scrapes = (0..12).map(|_| scrape(&app));
    let texts = futures_util::future::join_all(scrapes).await;
    assert_eq!(
        app.metrics_count_queries(),
        before + 1,
        "12 concurrent scrapes, one count"
    );
    let inactive = r#"inboxlink_mailboxes{status="inactive"}"#;
    for text in &texts {
        assert_eq!(value(text, inactive), 0.0);
    }
    app.new_mailbox("a@contoso.cz").await;
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, inactive),
        0.0,
        "the cached counts, not a new query"
    );
    assert_eq!(app.metrics_count_queries(), before + 1);
    // Without the cache, the same scrape counts again and sees the mailbox.
    let uncached = app.restart();
    let uncached = uncached.with_settings(|s| s.protection.metrics.cache = Duration::ZERO);
    let text = scrape(&uncached.start().await).await;
    assert_eq!(value(&text, inactive), 1.0);
}

/// The value of the series `name{labels}`, 0 when absent.
pub(crate) fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

backend_tests!(metrics_count_requests_by_route);
async fn metrics_count_requests_by_route(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let series =
        r#"inboxlink_http_requests_total{method="GET",route="/mailboxes/{id}",status="404"}"#;
    let before = value(&scrape(&app).await, series);
    let missing = uuid::Uuid::new_v4();
    let admin = app.token(ORG, &["admin"]);
    let (known, unknown) = (
        format!("/mailboxes/{missing}"),
        format!("/no-such-thing/{missing}"),
    );
    assert_eq!(app.call_as(&admin, "GET", &known, None).await.status, 404);
    assert_eq!(app.call("GET", &unknown, None).await.status, 404);
    for email in ["a@contoso.cz", "b@contoso.cz"] {
        app.new_mailbox(email).await;
    }

    let text = scrape(&app).await;
    assert_eq!(value(&text, series), before + 1.0, "{text}");
    assert!(
        !text.contains(&missing.to_string()),
        "routes are patterns, never raw paths"
    );
    assert!(
        value(
            &text,
            r#"inboxlink_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ) >= 1.0,
        "{text}"
    );
    assert!(
        value(
            &text,
            r#"inboxlink_http_requests_total{method="POST",route="/mailboxes",status="201"}"#
        ) >= 2.0,
        "{text}"
    );
    assert!(
        value(
            &text,
            r#"inboxlink_http_request_duration_seconds_count{method="GET",route="/mailboxes/{id}"}"#
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, r#"inboxlink_mailboxes{status="inactive"}"#),
        2.0,
        "{text}"
    );
    assert_eq!(value(&text, r#"inboxlink_mailboxes{status="active"}"#), 0.0);
    for family in ["inboxlink_token_refresh_total", "inboxlink_checks_total"] {
        assert!(
            text.contains(&format!("# TYPE {family} counter")),
            "{family} in {text}"
        );
    }
}

backend_tests!(request_ids_are_answered_and_logged);
async fn request_ids_are_answered_and_logged(app: TestAppBuilder) {
    let app = app.start().await;
    let id = format!("ops-{}", uuid::Uuid::new_v4().simple());
    let with_id = |path: &str, request_id: &str| {
        let request = app.request("GET", path).header("X-Request-Id", request_id);
        send(request)
    };
    let ok = with_id("/healthz", &id).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-request-id"), Some(id.as_str()));

    // Problems carry it too.
    let refused = with_id("/mailboxes", &id).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("x-request-id"), Some(id.as_str()));
    let unknown = app.call("GET", "/no-such-route", None).await;
    assert_eq!(unknown.status, 404);
    let generated = unknown.header("x-request-id").expect("id");
    assert!(uuid::Uuid::try_parse(generated).is_ok(), "{generated}");

    // An id that is too long or has unsafe characters is replaced.
    for bad in ["x".repeat(65), "two words".into(), "a;b".into()] {
        let answer = with_id("/healthz", &bad).await;
        let answered = answer.header("x-request-id").expect("id");
        assert_ne!(answered, bad);
        assert!(uuid::Uuid::try_parse(answered).is_ok(), "{answered}");
    }

    // Every line logged while handling the refused request carries the id.
    let lines = logged_with(&id);
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    for message in ["request refused", "request finished"] {
        assert!(messages.contains(&message), "{message} in {messages:?}");
    }
}

backend_tests!(refresh_and_check_counters_move);
async fn refresh_and_check_counters_move(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let admin = app.admin();
    let robot = app
        .new_mailbox_with("robot@contoso.cz", |b| b.access_mode(AccessMode::AppOnly))
        .await;
    let unsigned = app.new_mailbox("new@contoso.cz").await;
    let ok = r#"inboxlink_token_refresh_total{outcome="ok"}"#;
    let app_credential = r#"inboxlink_token_refresh_total{outcome="app_credential"}"#;
    let text = scrape(&app).await;
    assert_eq!((value(&text, ok), value(&text, app_credential)), (0.0, 0.0));

    // Tokens that live less than the keeper's 5 minutes: every use refreshes.
    app.fake().set_access_token_ttl(120);
    // The app-only sign-in obtains a token at once (service/signin.rs) ...
    admin.refresh(robot).await.expect("refresh");
    assert_eq!(value(&scrape(&app).await, ok), 1.0);
    // ... and the token keeper refreshes it when it is handed out.
    app.service().access_token(robot).await.expect("token");
    assert_eq!(value(&scrape(&app).await, ok), 2.0);

    // An expired client secret: the refresh fails with the app-credential class,
    // and the warning logged deep in the keeper carries the request id.
    app.fake().expire_secret(CLIENT_ID, SECRET);
    let request_id = format!("ops-refresh-{}", uuid::Uuid::new_v4().simple());
    let failed = app
        .request("GET", &format!("/mailboxes/{robot}/access-token"))
        .bearer_auth(app.token(ORG, &["service"]))
        .header("X-Request-Id", &request_id);
    let failed = send(failed).await;
    assert_eq!(failed.status, 409);
    assert_eq!(failed.header("x-request-id"), Some(request_id.as_str()));
    let text = scrape(&app).await;
    assert_eq!(value(&text, ok), 2.0);
    assert_eq!(value(&text, app_credential), 1.0, "{text}");
    let messages: Vec<String> = logged_with(&request_id)
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str().map(str::to_owned))
        .collect();
    assert!(
        messages.iter().any(|m| m == "token request failed"),
        "{messages:?}"
    );

    // Checks count their first failed step and its code.
    let check = admin.mailbox_check().id(unsigned).send().await;
    assert!(!check.expect("check").ok);
    let text = scrape(&app).await;
    assert_eq!(
        value(
            &text,
            r#"inboxlink_checks_total{code="mailbox_not_authorized",step="token"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, r#"inboxlink_checks_total{code="ok",step="all"}"#),
        0.0
    );
    assert_eq!(
        value(&text, r#"inboxlink_mailboxes{status="error"}"#),
        1.0,
        "the robot's app credential is broken: {text}"
    );
}

backend_tests!(doctor_finds_a_healthy_database);
async fn doctor_finds_a_healthy_database(app: TestAppBuilder) {
    let app = app.with_mailbox().start().await;
    // A pending sign-in: an encrypted PKCE verifier (no identity provider needed).
    app.admin()
        .refresh(app.mailbox_id())
        .await
        .expect("refresh");

    let report = app.doctor().await;
    let text = report.to_string();
    assert!(!report.failed(), "{text}");
    assert_eq!(report.count(doctor::Level::Warn), 0, "{text}");
    for topic in ["database", "migrations", "clock"] {
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.topic == topic && f.level == doctor::Level::Ok),
            "{topic} in {text}"
        );
    }
    let key = app.current_key_id();
    let counted = |column: SecretColumn| {
        report
            .secrets
            .iter()
            .find(|s| s.column == column)
            .map(|s| (s.values, s.by_key.get(&key).copied(), s.failed))
    };
    assert_eq!(
        counted(SecretColumn::AppCredentialClientSecret),
        Some((1, Some(1), 0))
    );
    assert_eq!(
        counted(SecretColumn::AuthorizationPkceVerifier),
        Some((1, Some(1), 0))
    );
    assert_eq!(
        counted(SecretColumn::MailboxAccessToken),
        Some((0, None, 0))
    );
    assert!(text.contains(&format!("key {key}: 1")), "{text}");
}

/// A random master key's bytes.
fn master_key() -> [u8; 32] {
    rand::random()
}

/// `keys` as the configured master keys, the first one current.
fn master_keys(keys: Vec<[u8; 32]>) -> impl Fn(&mut inboxlink::config::Settings) + Send + Sync {
    move |s| s.master_keys = keys.iter().map(|k| MasterKey::new(*k)).collect()
}

async fn client_secrets(app: &TestApp) -> Vec<(String, String)> {
    app.stored_values(SecretColumn::AppCredentialClientSecret)
        .await
}

backend_tests!(doctor_names_a_tampered_ciphertext);
async fn doctor_names_a_tampered_ciphertext(app: TestAppBuilder) {
    let key_a = master_key();
    let app = app.with_settings(master_keys(vec![key_a])).start().await;
    let admin = app.admin();
    let mut ids = Vec::new();
    for name in ["First", "Second"] {
        let body = app_credential_body(name, &crate::helpers::new_secret());
        ids.push(admin.create_app_credential(body).await.to_string());
    }
    // The first row's client secret := the second row's ciphertext.
    let value_of = |values: &[(String, String)], id: &str| {
        let row = values.iter().find(|(row, _)| row == id).expect("row");
        row.1.clone()
    };
    let moved = value_of(&client_secrets(&app).await, &ids[1]);
    app.execute(format!(
        "UPDATE app_credentials SET client_secret = '{moved}' WHERE id = '{}'",
        ids[0]
    ))
    .await;

    let report = app.doctor().await;
    let text = report.to_string();
    assert!(report.failed(), "{text}");
    assert_eq!(report.secret_failures.len(), 1, "{text}");
    let failure = &report.secret_failures[0];
    assert_eq!(
        (failure.table, failure.column, failure.row_id.as_str()),
        ("app_credentials", "client_secret", ids[0].as_str())
    );
    assert!(
        text.contains("FAIL app_credentials.client_secret: 1 of 2 values do not decrypt"),
        "{text}"
    );
    assert!(text.contains(&format!("row {}", ids[0])), "{text}");
    assert!(!text.contains(&moved), "never the value");

    // Rekey leaves it alone and reports it; the other row moves to the new key.
    let rotated = app.restart();
    let rotated = rotated.with_settings(master_keys(vec![master_key(), key_a]));
    let rotated = rotated.start().await;
    let report = rotated.rekey().await;
    assert_eq!(report.failures.len(), 1, "{report}");
    assert_eq!(report.failures[0].row_id, ids[0]);
    let counts = &report.columns[&SecretColumn::AppCredentialClientSecret];
    assert_eq!((counts.rekeyed, counts.failed), (1, 1), "{report}");
    let now = client_secrets(&rotated).await;
    assert_eq!(value_of(&now, &ids[0]), moved, "left as it was");
    assert_eq!(
        Cipher::key_id_of(&value_of(&now, &ids[1])),
        Some(rotated.current_key_id().as_str())
    );
}

backend_tests!(rekey_moves_every_value_to_the_newest_key);
async fn rekey_moves_every_value_to_the_newest_key(app: TestAppBuilder) {
    let (key_a, key_b) = (master_key(), master_key());
    let app = app
        .with_fake_entra()
        .with_mailbox()
        .with_settings(master_keys(vec![key_a]))
        .start()
        .await;
    let (admin, mailbox) = (app.admin(), app.mailbox_id());
    // Sign in through the fake, asking for Graph too: an access token and a
    // refresh token are stored, and a Graph access token once asked for.
    let graph = admin.update_app_credential(app.app_credential_id(), |b| b.graph(true));
    graph.await.expect("graph on");
    let page = follow(&admin.sign_in_url(mailbox).await).await;
    assert_eq!(page.status, 200);
    let path = format!("/mailboxes/{mailbox}/access-token?resource=graph");
    assert_eq!(app.admin_call("GET", &path, None).await.status, 200);
    // And a pending sign-in: a PKCE verifier.
    admin.sign_in_url(mailbox).await;
    // And a webhook whose secret was rotated: its secret and the previous one.
    let hook = app.new_webhook("http://127.0.0.1:9/hook", None).await;
    let rotated = app
        .admin_call(
            "POST",
            &format!("/webhooks/{}/rotate-secret", hook.id),
            None,
        )
        .await;
    assert_eq!(rotated.status, 200);
    let key_a_id = app.current_key_id();
    let mut before = Vec::new();
    for column in SecretColumn::ALL {
        let values = app.stored_values(column).await;
        assert_eq!(values.len(), 1, "{column:?}");
        assert_eq!(Cipher::key_id_of(&values[0].1), Some(key_a_id.as_str()));
        before.push(values[0].clone());
    }

    // The new key first, the old one after it; every instance restarted so.
    let rotated = app.restart();
    let rotated = rotated.with_settings(master_keys(vec![key_b, key_a]));
    let rotated = rotated.start().await;
    let key_b_id = rotated.current_key_id();
    assert_ne!(key_b_id, key_a_id);
    let report = rotated.rekey().await;
    assert_eq!(report.key_id, key_b_id);
    assert!(report.failures.is_empty(), "{report}");
    let total = report.total();
    assert_eq!(
        (
            total.values,
            total.rekeyed,
            total.current,
            total.changed_meanwhile
        ),
        (7, 7, 0, 0),
        "{report}"
    );
    for (column, old) in SecretColumn::ALL.into_iter().zip(&before) {
        let now = rotated.stored_values(column).await;
        assert_eq!(now[0].0, old.0, "same row");
        assert_ne!(now[0].1, old.1, "{column:?} re-encrypted");
        assert_eq!(
            Cipher::key_id_of(&now[0].1),
            Some(key_b_id.as_str()),
            "{column:?}"
        );
    }

    // Only key B now: everything still decrypts.
    let only_b = app.restart().with_settings(master_keys(vec![key_b]));
    let only_b = only_b.start().await;
    let secret = only_b.stored_client_secret(app.app_credential_id()).await;
    let secret = secret.expect("the secret decrypts with key B alone");
    assert_eq!(secret, SECRET);
    let token = only_b.service().access_token(mailbox).await;
    let token = token.expect("the access token decrypts with key B alone");
    assert_eq!(token.mailbox, MAILBOX);
    let checked = only_b.doctor().await;
    assert!(!checked.failed(), "{checked}");

    // A second run finds nothing to do.
    let again = rotated.rekey().await;
    let total = again.total();
    assert_eq!(
        (total.values, total.rekeyed, total.current),
        (7, 0, 7),
        "{again}"
    );
    for (column, _) in SecretColumn::ALL.into_iter().zip(&before) {
        assert_eq!(
            Cipher::key_id_of(&rotated.stored_values(column).await[0].1),
            Some(key_b_id.as_str())
        );
    }
}
