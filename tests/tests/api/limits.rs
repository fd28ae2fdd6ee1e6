//! Protection against costly calls: per-caller rate limits on the costly
//! operations, the cap on concurrent requests to Microsoft, and expired
//! authorizations purged by housekeeping instead of inside requests.

use std::time::Duration;

use diesel::prelude::*;
use inboxlink::config::Backend;
use inboxlink_sdk::types::{AccessMode, RefreshRequest};
use serde_json::{Value, json};

use crate::helpers::{TestApp, app_credential_body, backend_tests, http, new_secret};
use crate::keepalive::age;
use crate::signin::{World, restart_with, world};

backend_tests!(
    identity_provider_requests_are_capped,
    expired_authorizations_are_purged_by_housekeeping,
);

/// Every limited class at 1 call per minute.
const ONE_PER_MINUTE: &str = "setup=1/min,verify=1/min,refresh=1/min,check=1/min,check_send=1/min,access_token=1/min,admin_consent=1/min";

/// The operations of the committed spec that declare a 429.
fn limited_operations() -> Vec<(String, String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/inboxlink.json");
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("spec")).expect("json");
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = &op["responses"];
            if let Some(limited) = responses.get("429") {
                assert_eq!(
                    limited["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem"
                );
                assert!(limited["headers"].get("Retry-After").is_some(), "{path}");
                ops.push((
                    op["operationId"].as_str().expect("id").to_owned(),
                    method.to_uppercase(),
                    path.clone(),
                ));
            }
        }
    }
    ops.sort();
    ops
}

async fn call(token: &str, method: &str, url: &str, body: Option<Value>) -> reqwest::Response {
    let mut request = http()
        .request(method.parse().expect("method"), url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("response")
}

/// Each costly operation has a bucket per caller (organisation + subject):
/// past it, 429 `rate_limited` with `Retry-After` in whole seconds; other
/// callers, and other kinds of calls, are not affected.
#[tokio::test]
async fn costly_operations_are_limited_per_caller() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("INBOXLINK_RATE_LIMITS", ONE_PER_MINUTE.into())],
    )
    .await;
    let ops = limited_operations();
    let ids: Vec<&str> = ops.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "app_credential_admin_consent",
            "app_credential_setup",
            "app_credential_verify",
            "mailbox_access_token",
            "mailbox_check",
            "mailbox_refresh",
        ],
        "the spec declares a 429 exactly on the limited operations"
    );
    let admin_sdk = app.admin("acme");
    let cred = admin_sdk
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred")
        .id;
    let mailbox = admin_sdk
        .mailbox_create()
        .body(crate::helpers::mailbox_body("limited@contoso.cz", cred))
        .send()
        .await
        .expect("mailbox")
        .id;
    let admin = app.token("acme", &["admin"]);
    for (id, method, path) in &ops {
        let target = if path.starts_with("/app-credentials") {
            cred
        } else {
            mailbox
        };
        let url = app.url(&path.replace("{id}", &target.to_string()));
        let body = matches!(
            id.as_str(),
            "mailbox_check" | "mailbox_refresh" | "app_credential_admin_consent"
        )
        .then(|| json!({}));
        let first = call(&admin, method, &url, body.clone()).await;
        assert_ne!(first.status(), 429, "{id}: the first call is allowed");
        let second = call(&admin, method, &url, body.clone()).await;
        assert_eq!(
            second.status(),
            429,
            "{id}: the second call within a minute"
        );
        let retry_after: u64 = second.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("whole seconds");
        assert!((1..=60).contains(&retry_after), "{id}: {retry_after}");
        assert_eq!(
            second.headers()["content-type"],
            "application/problem+json",
            "{id}"
        );
        let problem: Value = second.json().await.expect("problem");
        assert_eq!(
            (problem["status"].as_u64(), problem["code"].as_str()),
            (Some(429), Some("rate_limited")),
            "{id}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .expect("detail")
                .contains("1/min"),
            "{problem}"
        );
        // Another subject of the organisation, and the same subject in another
        // organisation, have their own buckets.
        let colleague =
            app.token_with(json!({ "sub": "colleague", "org": "acme", "roles": ["admin"] }));
        let third = call(&colleague, method, &url, body.clone()).await;
        assert_ne!(third.status(), 429, "{id}: another caller");
    }
    let elsewhere = app.token("other-org", &["admin"]);
    let other_cred = app
        .sdk(&elsewhere)
        .app_credential_create()
        .body(app_credential_body("Cred", &new_secret()))
        .send()
        .await
        .expect("cred")
        .id;
    let response = call(
        &elsewhere,
        "POST",
        &app.url(&format!("/app-credentials/{other_cred}/verify")),
        None,
    )
    .await;
    assert_ne!(
        response.status(),
        429,
        "the same subject in another organisation"
    );

    // A check with a test message has its own (stricter) bucket.
    let check = app.url(&format!("/mailboxes/{mailbox}/check"));
    let with_message = json!({ "send_test_message": true });
    let first = call(&admin, "POST", &check, Some(with_message.clone())).await;
    assert_eq!(first.status(), 200, "not counted with the plain checks");
    let second = call(&admin, "POST", &check, Some(with_message)).await;
    assert_eq!(second.status(), 429);
}

/// The defaults let a person work: several calls in a row go through.
#[tokio::test]
async fn default_limits_allow_ordinary_use() {
    let app = TestApp::spawn(Backend::Sqlite).await;
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
        .body(crate::helpers::mailbox_body("defaults@contoso.cz", cred))
        .send()
        .await
        .expect("mailbox")
        .id;
    for _ in 0..5 {
        admin
            .mailbox_refresh()
            .id(mailbox)
            .body(RefreshRequest { return_url: None })
            .send()
            .await
            .expect("refresh within the default limit");
        admin
            .app_credential_setup()
            .id(cred)
            .send()
            .await
            .expect("setup within the default limit");
    }
}

/// Many mailboxes refreshing at once (a keep-alive sweep at concurrency 16)
/// against a slow Microsoft: never more token requests in flight than
/// `INBOXLINK_IDP_MAX_CONCURRENCY`, and every refresh still succeeds.
async fn identity_provider_requests_are_capped(app: TestApp) {
    const CAP: usize = 3;
    let w = world(app).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = w
            .mailbox(&format!("box{i}@contoso.cz"), AccessMode::Delegated, false)
            .await;
        let (status, _, page) = w.sign_in(id).await;
        assert_eq!(status, 200, "{page}");
        age(&w, id, 30).await;
        ids.push(id);
    }
    let capped = restart_with(
        &w.app,
        &[
            ("INBOXLINK_MS_AUTHORITY", w.fake.authority()),
            ("INBOXLINK_IDP_MAX_CONCURRENCY", CAP.to_string()),
        ],
    )
    .await;
    w.fake.set_latency(Duration::from_millis(200));
    let sweep = capped.services.keepalive_sweep().await.expect("sweep");
    w.fake.set_latency(Duration::ZERO);
    assert_eq!((sweep.due, sweep.failed), (ids.len(), 0), "{sweep:?}");
    assert_eq!(w.fake.token_calls("refresh_token"), ids.len());
    let most = w.fake.max_token_calls_in_flight();
    assert!(
        most <= CAP,
        "{most} token requests in flight at once, cap {CAP}"
    );
    assert!(most >= 2, "the refreshes did run concurrently ({most})");
}

/// A sign-in left unfinished expires; requests no longer purge the expired
/// ones (a refresh or a consent link leaves them), the housekeeping pass does,
/// over the index on `expires_at`.
async fn expired_authorizations_are_purged_by_housekeeping(app: TestApp) {
    assert!(
        has_expiry_index(&app).await,
        "authorizations_expires_at exists"
    );
    let w: World = world(app).await;
    let first = w
        .mailbox("first@contoso.cz", AccessMode::Delegated, false)
        .await;
    let second = w
        .mailbox("second@contoso.cz", AccessMode::Delegated, false)
        .await;
    let refresh = |id| {
        w.admin
            .mailbox_refresh()
            .id(id)
            .body(RefreshRequest { return_url: None })
            .send()
    };
    refresh(first).await.expect("refresh");
    // The first sign-in was abandoned an hour ago.
    let mid = first.to_string();
    w.app
        .services
        .store
        .query(move |c| {
            use inboxlink::store::schema::authorizations::dsl::*;
            let past = chrono::Utc::now().naive_utc() - chrono::Duration::hours(1);
            diesel::update(authorizations.filter(mailbox_id.eq(&mid)))
                .set(expires_at.eq(past))
                .execute(c)
                .map_err(inboxlink::store::StoreError::from)
        })
        .await
        .expect("expire");
    refresh(second).await.expect("refresh");
    w.admin
        .app_credential_admin_consent()
        .id(w.app_credential_id)
        .body(inboxlink_sdk::types::AdminConsentRequest { return_url: None })
        .send()
        .await
        .expect("a consent link");
    assert_eq!(
        authorizations(&w.app).await,
        3,
        "requests leave the expired one for housekeeping"
    );
    let done = w.app.services.housekeeping().await.expect("housekeeping");
    assert_eq!(done.expired_authorizations, 1);
    assert!(
        done.limited_callers >= 1,
        "the admin's buckets are remembered"
    );
    assert_eq!(authorizations(&w.app).await, 2, "the pending ones stay");
    let again = w.app.services.housekeeping().await.expect("housekeeping");
    assert_eq!(again.expired_authorizations, 0);
}

async fn authorizations(app: &TestApp) -> i64 {
    app.services
        .store
        .query(|c| {
            use inboxlink::store::schema::authorizations::dsl::*;
            authorizations
                .count()
                .get_result::<i64>(c)
                .map_err(inboxlink::store::StoreError::from)
        })
        .await
        .expect("count")
}

#[derive(QueryableByName)]
struct IndexName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

async fn has_expiry_index(app: &TestApp) -> bool {
    let sql = match app.backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'authorizations'"
        }
        Backend::Postgres => {
            "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'authorizations'"
        }
    };
    let names = app
        .services
        .store
        .query(move |c| {
            diesel::sql_query(sql)
                .load::<IndexName>(c)
                .map_err(inboxlink::store::StoreError::from)
        })
        .await
        .expect("indexes");
    names.iter().any(|n| n.name == "authorizations_expires_at")
}
