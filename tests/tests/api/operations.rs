//! Operations: request ids, Prometheus metrics, `doctor` and `rekey` (run
//! through the library, which the CLI only prints).

use diesel::prelude::*;
use inboxlink::crypto::Cipher;
use inboxlink::domain::OrgId;
use inboxlink::ops::{doctor, rekey};
use inboxlink::store::operations::{SecretColumn, secret_page};
use inboxlink::store::schema::app_credentials;
use inboxlink_sdk::types::{AccessMode, CheckRequest, MailboxCreate, RefreshRequest};
use inboxlink_tests::fake_entra::FakeEntra;
use serde_json::Value;

use crate::helpers::{
    METRICS_TOKEN, TestApp, app_credential_body, backend_tests, http, logs, new_secret, random_b64,
};

const TENANT: &str = "8b1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c";
const CLIENT_ID: &str = "2a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const SECRET: &str = "Op8~operations.secret-value_xyz";

backend_tests!(
    metrics_count_requests_by_route,
    request_ids_are_answered_and_logged,
    refresh_and_check_counters_move,
    doctor_finds_a_healthy_database,
    doctor_names_a_tampered_ciphertext,
    rekey_moves_every_value_to_the_newest_key,
    mailbox_counts_are_cached_and_shared_by_scrapes,
);

/// The metrics of `app`, as text (and checks the content type).
pub(crate) async fn scrape(app: &TestApp) -> String {
    let response = http()
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("metrics");
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

/// `GET url` with an optional bearer token: (status, problem code, headers).
async fn get_metrics(
    url: &str,
    token: Option<&str>,
) -> (u16, Option<String>, reqwest::header::HeaderMap) {
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("metrics");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let code = response
        .json::<Value>()
        .await
        .ok()
        .and_then(|p| p["code"].as_str().map(str::to_owned));
    (status, code, headers)
}

/// Metrics span every organisation: only the operator's metrics token opens
/// them, compared whole; an API token of any role does not.
#[tokio::test]
async fn metrics_need_the_metrics_token() {
    let app = TestApp::spawn(inboxlink::config::Backend::Sqlite).await;
    let url = app.url("/metrics");
    let (status, code, headers) = get_metrics(&url, None).await;
    assert_eq!((status, code.as_deref()), (401, Some("missing_token")));
    assert_eq!(headers["www-authenticate"], "Bearer");
    let admin = app.token("acme", &["admin"]);
    let almost = format!("{}x", &METRICS_TOKEN[..METRICS_TOKEN.len() - 1]);
    for wrong in [admin.as_str(), almost.as_str(), &METRICS_TOKEN[..10], "x"] {
        let (status, code, _) = get_metrics(&url, Some(wrong)).await;
        assert_eq!(
            (status, code.as_deref()),
            (401, Some("invalid_token")),
            "{wrong}"
        );
    }
    let (status, _, headers) = get_metrics(&url, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        !logs().contains(METRICS_TOKEN),
        "the metrics token is never logged"
    );
}

/// With neither a metrics token nor a metrics listener, `/metrics` is not
/// served, and the answer says how to enable it.
#[tokio::test]
async fn metrics_are_not_served_unless_configured() {
    let app = TestApp::spawn_with(
        inboxlink::config::Backend::Sqlite,
        &[("INBOXLINK_METRICS_TOKEN", String::new())],
    )
    .await;
    for token in [None, Some(METRICS_TOKEN)] {
        let response = http()
            .get(app.url("/metrics"))
            .bearer_auth(token.unwrap_or_default())
            .send()
            .await
            .expect("metrics");
        assert_eq!(response.status(), 404);
        let problem: Value = response.json().await.expect("problem");
        assert_eq!(problem["code"], "metrics_disabled");
        let detail = problem["detail"].as_str().expect("detail");
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
    let open = TestApp::spawn_with(
        inboxlink::config::Backend::Sqlite,
        &[
            ("INBOXLINK_METRICS_TOKEN", String::new()),
            ("INBOXLINK_METRICS_BIND", "127.0.0.1:0".into()),
        ],
    )
    .await;
    let port = open.metrics_port.expect("a metrics listener");
    assert_ne!(format!("http://127.0.0.1:{port}"), open.base);
    let private = format!("http://127.0.0.1:{port}");
    let (status, code, _) = get_metrics(&open.url("/metrics"), Some(METRICS_TOKEN)).await;
    assert_eq!((status, code.as_deref()), (404, Some("metrics_disabled")));
    let response = http()
        .get(format!("{private}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let text = response.text().await.expect("text");
    assert!(text.contains("# TYPE inboxlink_http_requests_total counter"));
    for path in ["/mailboxes", "/healthz", "/openapi.json"] {
        let (status, code, _) = get_metrics(&format!("{private}{path}"), None).await;
        assert_eq!(
            (status, code.as_deref()),
            (404, Some("route_not_found")),
            "{path}"
        );
    }

    let guarded = TestApp::spawn_with(
        inboxlink::config::Backend::Sqlite,
        &[("INBOXLINK_METRICS_BIND", "127.0.0.1:0".into())],
    )
    .await;
    let private = format!(
        "http://127.0.0.1:{}/metrics",
        guarded.metrics_port.expect("a metrics listener")
    );
    let (status, code, _) = get_metrics(&private, None).await;
    assert_eq!((status, code.as_deref()), (401, Some("missing_token")));
    assert_eq!(get_metrics(&private, Some(METRICS_TOKEN)).await.0, 200);
    let (status, code, _) = get_metrics(&guarded.url("/metrics"), Some(METRICS_TOKEN)).await;
    assert_eq!((status, code.as_deref()), (404, Some("metrics_disabled")));
}

/// Scrapes reuse the mailbox counts for `INBOXLINK_METRICS_CACHE_SECONDS`,
/// and concurrent scrapes share one query.
async fn mailbox_counts_are_cached_and_shared_by_scrapes(app: TestApp) {
    let app = app
        .with(&[("INBOXLINK_METRICS_CACHE_SECONDS", "600".into())])
        .await;
    let before = app.services.metrics_counts.queries();
    let scrapes = (0..12).map(|_| scrape(&app));
    let texts = futures_util::future::join_all(scrapes).await;
    assert_eq!(
        app.services.metrics_counts.queries(),
        before + 1,
        "12 concurrent scrapes, one count"
    );
    for text in &texts {
        assert_eq!(
            value(text, r#"inboxlink_mailboxes{status="inactive"}"#),
            0.0
        );
    }
    let admin = app.admin("acme");
    let cred = admin
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred")
        .id;
    admin
        .mailbox_create()
        .body(MailboxCreate {
            email: "a@contoso.cz".into(),
            app_credential_id: cred,
            access_mode: None,
            shared: None,
        })
        .send()
        .await
        .expect("mailbox");
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, r#"inboxlink_mailboxes{status="inactive"}"#),
        0.0,
        "the cached counts, not a new query"
    );
    assert_eq!(app.services.metrics_counts.queries(), before + 1);
    // Without the cache, the same scrape counts again and sees the mailbox.
    let uncached = app
        .with(&[("INBOXLINK_METRICS_CACHE_SECONDS", "0".into())])
        .await;
    let text = scrape(&uncached).await;
    assert_eq!(
        value(&text, r#"inboxlink_mailboxes{status="inactive"}"#),
        1.0
    );
}

/// The value of the series `name{labels}`, 0 when absent.
pub(crate) fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

async fn metrics_count_requests_by_route(app: TestApp) {
    let admin = app.admin("acme");
    let series =
        r#"inboxlink_http_requests_total{method="GET",route="/mailboxes/{id}",status="404"}"#;
    let before = value(&scrape(&app).await, series);
    let missing = uuid::Uuid::new_v4();
    let answer = http()
        .get(app.url(&format!("/mailboxes/{missing}")))
        .bearer_auth(app.token("acme", &["admin"]))
        .send()
        .await
        .expect("get");
    assert_eq!(answer.status(), 404);
    let unmatched = http()
        .get(app.url(&format!("/no-such-thing/{missing}")))
        .send()
        .await
        .expect("get");
    assert_eq!(unmatched.status(), 404);
    let cred = admin
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred")
        .id;
    for email in ["a@contoso.cz", "b@contoso.cz"] {
        admin
            .mailbox_create()
            .body(MailboxCreate {
                email: email.into(),
                app_credential_id: cred,
                access_mode: None,
                shared: None,
            })
            .send()
            .await
            .expect("mailbox");
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

async fn request_ids_are_answered_and_logged(app: TestApp) {
    let id = format!("ops-{}", uuid::Uuid::new_v4().simple());
    let ok = http()
        .get(app.url("/healthz"))
        .header("X-Request-Id", &id)
        .send()
        .await
        .expect("healthz");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-request-id"], id.as_str());

    // Problems carry it too.
    let refused = http()
        .get(app.url("/mailboxes"))
        .header("X-Request-Id", &id)
        .send()
        .await
        .expect("mailboxes");
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-request-id"], id.as_str());
    let unknown = http()
        .get(app.url("/no-such-route"))
        .send()
        .await
        .expect("unknown");
    assert_eq!(unknown.status(), 404);
    let generated = unknown.headers()["x-request-id"].to_str().expect("id");
    assert!(uuid::Uuid::try_parse(generated).is_ok(), "{generated}");

    // An id that is too long or has unsafe characters is replaced.
    for bad in ["x".repeat(65), "two words".into(), "a;b".into()] {
        let answer = http()
            .get(app.url("/healthz"))
            .header("X-Request-Id", &bad)
            .send()
            .await
            .expect("healthz");
        let answered = answer.headers()["x-request-id"].to_str().expect("id");
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

/// The JSON log lines whose span carries `request_id`.
fn logged_with(request_id: &str) -> Vec<Value> {
    logs()
        .lines()
        .filter(|l| l.contains(request_id))
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON log lines"))
        .filter(|l| l["span"]["request_id"] == request_id)
        .collect()
}

async fn refresh_and_check_counters_move(app: TestApp) {
    let fake = FakeEntra::start().await;
    fake.register_app(TENANT, CLIENT_ID, SECRET);
    let app = app
        .with(&[("INBOXLINK_MS_AUTHORITY", fake.authority())])
        .await;
    let admin = app.admin("acme");
    let cred = admin
        .app_credential_create()
        .body(inboxlink_sdk::types::AppCredentialCreate {
            client_id: CLIENT_ID.into(),
            tenant_id: TENANT.into(),
            ..app_credential_body("E-filing", SECRET)
        })
        .send()
        .await
        .expect("credential")
        .id;
    let mailbox = |email: &str, mode| MailboxCreate {
        email: email.into(),
        app_credential_id: cred,
        access_mode: Some(mode),
        shared: Some(false),
    };
    let robot = admin
        .mailbox_create()
        .body(mailbox("robot@contoso.cz", AccessMode::AppOnly))
        .send()
        .await
        .expect("mailbox")
        .id;
    let unsigned = admin
        .mailbox_create()
        .body(mailbox("new@contoso.cz", AccessMode::Delegated))
        .send()
        .await
        .expect("mailbox")
        .id;
    let ok = r#"inboxlink_token_refresh_total{outcome="ok"}"#;
    let app_credential = r#"inboxlink_token_refresh_total{outcome="app_credential"}"#;
    let text = scrape(&app).await;
    assert_eq!((value(&text, ok), value(&text, app_credential)), (0.0, 0.0));

    // Tokens that live less than the keeper's 5 minutes: every use refreshes.
    fake.set_access_token_ttl(120);
    // The app-only sign-in obtains a token at once (service/signin.rs) ...
    admin
        .mailbox_refresh()
        .id(robot)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh");
    assert_eq!(value(&scrape(&app).await, ok), 1.0);
    // ... and the token keeper refreshes it when it is handed out.
    let service = app.sdk(&app.token("acme", &["service"]));
    service
        .mailbox_access_token()
        .id(robot)
        .send()
        .await
        .expect("token");
    assert_eq!(value(&scrape(&app).await, ok), 2.0);

    // An expired client secret: the refresh fails with the app-credential class,
    // and the warning logged deep in the keeper carries the request id.
    fake.expire_secret(CLIENT_ID, SECRET);
    let request_id = format!("ops-refresh-{}", uuid::Uuid::new_v4().simple());
    let failed = http()
        .get(app.url(&format!("/mailboxes/{robot}/access-token")))
        .bearer_auth(app.token("acme", &["service"]))
        .header("X-Request-Id", &request_id)
        .send()
        .await
        .expect("token");
    assert_eq!(failed.status(), 409);
    assert_eq!(failed.headers()["x-request-id"], request_id.as_str());
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
    let report = admin
        .mailbox_check()
        .id(unsigned)
        .body(CheckRequest {
            send_test_message: None,
        })
        .send()
        .await
        .expect("check")
        .into_inner();
    assert!(!report.ok);
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

async fn doctor_finds_a_healthy_database(app: TestApp) {
    let admin = app.admin("acme");
    let cred = admin
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred")
        .id;
    let mailbox = admin
        .mailbox_create()
        .body(MailboxCreate {
            email: "podatelna@contoso.cz".into(),
            app_credential_id: cred,
            access_mode: None,
            shared: None,
        })
        .send()
        .await
        .expect("mailbox")
        .id;
    // A pending sign-in: an encrypted PKCE verifier (no identity provider needed).
    admin
        .mailbox_refresh()
        .id(mailbox)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh");

    let report = doctor::diagnose_store(&app.services.store, &app.services.cipher).await;
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
    let key = app.services.cipher.current_key_id().to_owned();
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

async fn doctor_names_a_tampered_ciphertext(app: TestApp) {
    let key_a = random_b64(32);
    let app = app.with(&[("INBOXLINK_MASTER_KEY", key_a.clone())]).await;
    let admin = app.admin("acme");
    let mut ids = Vec::new();
    for name in ["First", "Second"] {
        ids.push(
            admin
                .app_credential_create()
                .body(app_credential_body(name, &new_secret()))
                .send()
                .await
                .expect("cred")
                .id
                .to_string(),
        );
    }
    // UPDATE app_credentials SET client_secret = <the second row's ciphertext> WHERE id = <first>
    let (first, second) = (ids[0].clone(), ids[1].clone());
    let moved = app
        .services
        .store
        .query(move |c| {
            let theirs: String = app_credentials::table
                .filter(app_credentials::id.eq(&second))
                .select(app_credentials::client_secret)
                .first(c)
                .map_err(inboxlink::store::StoreError::from)?;
            diesel::update(app_credentials::table.filter(app_credentials::id.eq(&first)))
                .set(app_credentials::client_secret.eq(&theirs))
                .execute(c)
                .map_err(inboxlink::store::StoreError::from)?;
            Ok(theirs)
        })
        .await
        .expect("tamper");

    let report = doctor::diagnose_store(&app.services.store, &app.services.cipher).await;
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
    let rotated = app
        .with(&[(
            "INBOXLINK_MASTER_KEY",
            format!("{},{key_a}", random_b64(32)),
        )])
        .await;
    let report = rekey::rekey(&rotated.services.store, &rotated.services.cipher)
        .await
        .expect("rekey");
    assert_eq!(report.failures.len(), 1, "{report}");
    assert_eq!(report.failures[0].row_id, ids[0]);
    let counts = &report.columns[&SecretColumn::AppCredentialClientSecret];
    assert_eq!((counts.rekeyed, counts.failed), (1, 1), "{report}");
    let now = stored(&rotated, SecretColumn::AppCredentialClientSecret).await;
    let tampered = now.iter().find(|(id, _)| *id == ids[0]).expect("row");
    assert_eq!(tampered.1, moved, "left as it was");
    let other = now.iter().find(|(id, _)| *id == ids[1]).expect("row");
    assert_eq!(
        Cipher::key_id_of(&other.1),
        Some(rotated.services.cipher.current_key_id())
    );
}

/// (row id, stored value) of every value of `column`.
async fn stored(app: &TestApp, column: SecretColumn) -> Vec<(String, String)> {
    app.services
        .store
        .query(move |c| secret_page(c, column, None, 1000))
        .await
        .expect("values")
}

async fn rekey_moves_every_value_to_the_newest_key(app: TestApp) {
    let (key_a, key_b) = (random_b64(32), random_b64(32));
    let fake = FakeEntra::start().await;
    fake.register_app(TENANT, CLIENT_ID, SECRET);
    fake.add_domain(TENANT, "contoso.cz");
    let app = app
        .with(&[
            ("INBOXLINK_MASTER_KEY", key_a.clone()),
            ("INBOXLINK_MS_AUTHORITY", fake.authority()),
        ])
        .await;
    fake.add_redirect_uri(CLIENT_ID, &format!("{}/oauth/callback", app.base));
    let admin = app.admin("acme");
    let cred = admin
        .app_credential_create()
        .body(inboxlink_sdk::types::AppCredentialCreate {
            client_id: CLIENT_ID.into(),
            tenant_id: TENANT.into(),
            ..app_credential_body("E-filing", SECRET)
        })
        .send()
        .await
        .expect("credential")
        .id;
    let mailbox = admin
        .mailbox_create()
        .body(MailboxCreate {
            email: "podatelna@contoso.cz".into(),
            app_credential_id: cred,
            access_mode: None,
            shared: None,
        })
        .send()
        .await
        .expect("mailbox")
        .id;
    // Sign in through the fake: an access token and a refresh token are stored.
    let url = refresh(&admin, mailbox).await;
    let to_callback = browser().get(&url).send().await.expect("authorize");
    assert_eq!(to_callback.status(), 302);
    let callback = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let page = browser().get(&callback).send().await.expect("callback");
    assert_eq!(page.status(), 200);
    // And a pending sign-in: a PKCE verifier.
    refresh(&admin, mailbox).await;
    let key_a_id = app.services.cipher.current_key_id().to_owned();
    let mut before = Vec::new();
    for column in SecretColumn::ALL {
        let values = stored(&app, column).await;
        assert_eq!(values.len(), 1, "{column:?}");
        assert_eq!(Cipher::key_id_of(&values[0].1), Some(key_a_id.as_str()));
        before.push(values[0].clone());
    }

    // The new key first, the old one after it; every instance restarted so.
    let rotated = app
        .with(&[("INBOXLINK_MASTER_KEY", format!("{key_b},{key_a}"))])
        .await;
    let key_b_id = rotated.services.cipher.current_key_id().to_owned();
    assert_ne!(key_b_id, key_a_id);
    let report = rekey::rekey(&rotated.services.store, &rotated.services.cipher)
        .await
        .expect("rekey");
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
        (4, 4, 0, 0),
        "{report}"
    );
    for (column, old) in SecretColumn::ALL.into_iter().zip(&before) {
        let now = stored(&rotated, column).await;
        assert_eq!(now[0].0, old.0, "same row");
        assert_ne!(now[0].1, old.1, "{column:?} re-encrypted");
        assert_eq!(
            Cipher::key_id_of(&now[0].1),
            Some(key_b_id.as_str()),
            "{column:?}"
        );
    }

    // Only key B now: everything still decrypts.
    let only_b = app.with(&[("INBOXLINK_MASTER_KEY", key_b.clone())]).await;
    let org = OrgId::parse("acme").expect("org");
    use secrecy::ExposeSecret;
    let secret = only_b
        .services
        .app_credential_with_secret(&org, cred.into())
        .await
        .map(|(_, secret)| secret)
        .expect("the secret decrypts with key B alone");
    assert_eq!(secret.expose_secret(), SECRET);
    let token = only_b
        .sdk(&only_b.token("acme", &["service"]))
        .mailbox_access_token()
        .id(mailbox)
        .send()
        .await
        .expect("the access token decrypts with key B alone");
    assert_eq!(token.mailbox, "podatelna@contoso.cz");
    let checked = doctor::diagnose_store(&only_b.services.store, &only_b.services.cipher).await;
    assert!(!checked.failed(), "{checked}");

    // A second run finds nothing to do.
    let again = rekey::rekey(&rotated.services.store, &rotated.services.cipher)
        .await
        .expect("rekey");
    let total = again.total();
    assert_eq!(
        (total.values, total.rekeyed, total.current),
        (4, 0, 4),
        "{again}"
    );
    for (column, _) in SecretColumn::ALL.into_iter().zip(&before) {
        assert_eq!(
            Cipher::key_id_of(&stored(&rotated, column).await[0].1),
            Some(key_b_id.as_str())
        );
    }
}

async fn refresh(admin: &inboxlink_sdk::Client, mailbox: uuid::Uuid) -> String {
    admin
        .mailbox_refresh()
        .id(mailbox)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner()
        .authorization_url
        .expect("a sign-in URL")
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}
