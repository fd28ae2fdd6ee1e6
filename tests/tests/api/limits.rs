//! Protection against costly calls: per-caller rate limits on the costly
//! operations, the cap on concurrent requests to Microsoft, and expired
//! authorizations purged by housekeeping instead of inside requests.

use std::time::Duration;

use inboxlink::limits::RateLimits;
use serde_json::{Value, json};

use crate::helpers::{
    Api, ORG, TestApp, TestAppBuilder, app_credential_body, backend_tests, new_secret,
};

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

/// Each costly operation has a bucket per caller (organisation + subject):
/// past it, 429 `rate_limited` with `Retry-After` in whole seconds; other
/// callers, and other kinds of calls, are not affected.
#[tokio::test]
async fn costly_operations_are_limited_per_caller() {
    let limits = RateLimits::parse(ONE_PER_MINUTE).expect("rate limits");
    let app = TestApp::new()
        .with_settings(move |s| s.protection.rate_limits = limits.clone())
        .with_mailbox()
        .start()
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
    let (cred, mailbox) = (app.app_credential_id(), app.mailbox_id());
    let admin = app.token(ORG, &["admin"]);
    for (id, method, path) in &ops {
        let target = if path.starts_with("/app-credentials") {
            cred
        } else {
            mailbox
        };
        let path = path.replace("{id}", &target.to_string());
        let body = matches!(
            id.as_str(),
            "mailbox_check" | "mailbox_refresh" | "app_credential_admin_consent"
        )
        .then(|| json!({}));
        let call = async |token: &str| app.call_as(token, method, &path, body.as_ref()).await;
        let first = call(&admin).await;
        assert_ne!(first.status, 429, "{id}: the first call is allowed");
        let second = call(&admin).await;
        assert_eq!(second.status, 429, "{id}: the second call within a minute");
        let retry_after: u64 = second
            .header("retry-after")
            .expect("ascii")
            .parse()
            .expect("whole seconds");
        assert!((1..=60).contains(&retry_after), "{id}: {retry_after}");
        assert_eq!(
            second.header("content-type"),
            Some("application/problem+json"),
            "{id}"
        );
        let problem = &second.body;
        assert_eq!(
            (problem["status"].as_u64(), problem["code"].as_str()),
            (Some(429), Some("rate_limited")),
            "{id}"
        );
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains("1/min"), "{problem}");
        // Another subject of the organisation, and the same subject in another
        // organisation, have their own buckets.
        let colleague =
            app.token_with(json!({ "sub": "colleague", "org": ORG, "roles": ["admin"] }));
        let third = call(&colleague).await;
        assert_ne!(third.status, 429, "{id}: another caller");
    }
    let elsewhere = app.token("other-org", &["admin"]);
    let body = app_credential_body("Cred", &new_secret());
    let other_cred = app.sdk(&elsewhere).create_app_credential(body).await;
    let verify = format!("/app-credentials/{other_cred}/verify");
    let response = app.call_as(&elsewhere, "POST", &verify, None).await;
    assert_ne!(
        response.status, 429,
        "the same subject in another organisation"
    );

    // A check with a test message has its own (stricter) bucket.
    let check = format!("/mailboxes/{mailbox}/check");
    let with_message = json!({ "send_test_message": true });
    let send = || app.call_as(&admin, "POST", &check, Some(&with_message));
    assert_eq!(
        send().await.status,
        200,
        "not counted with the plain checks"
    );
    let second = send().await;
    assert_eq!(second.status, 429);
}

/// The defaults let a person work: several calls in a row go through.
#[tokio::test]
async fn default_limits_allow_ordinary_use() {
    let app = TestApp::new().with_mailbox().start().await;
    let (admin, cred, mailbox) = (app.admin(), app.app_credential_id(), app.mailbox_id());
    for _ in 0..5 {
        let refreshed = admin.refresh(mailbox).await;
        refreshed.expect("refresh within the default limit");
        admin.setup(cred).await;
    }
}

backend_tests!(identity_provider_requests_are_capped);
/// Many mailboxes refreshing at once (a keep-alive sweep at concurrency 16)
/// against a slow Microsoft: never more token requests in flight than
/// `INBOXLINK_IDP_MAX_CONCURRENCY`, and every refresh still succeeds.
async fn identity_provider_requests_are_capped(app: TestAppBuilder) {
    const CAP: usize = 3;
    let app = app.with_fake_entra().with_app_credential().start().await;
    let ids = app.aged_mailboxes(12, 30).await;
    let capped = app
        .restart()
        .with_settings(|s| s.protection.idp_max_concurrency = CAP)
        .start()
        .await;
    app.fake().set_latency(Duration::from_millis(200));
    let sweep = capped.keepalive_sweep().await;
    app.fake().set_latency(Duration::ZERO);
    assert_eq!((sweep.due, sweep.failed), (ids.len(), 0), "{sweep:?}");
    assert_eq!(app.fake().token_calls("refresh_token"), ids.len());
    let most = app.fake().max_token_calls_in_flight();
    assert!(
        most <= CAP,
        "{most} token requests in flight at once, cap {CAP}"
    );
    assert!(most >= 2, "the refreshes did run concurrently ({most})");
}

backend_tests!(expired_authorizations_are_purged_by_housekeeping);
/// A sign-in left unfinished expires; requests no longer purge the expired
/// ones (a refresh or a consent link leaves them), the housekeeping pass does,
/// over the index on `expires_at`.
async fn expired_authorizations_are_purged_by_housekeeping(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let indexes = app.authorization_indexes().await;
    assert!(
        indexes.iter().any(|n| n == "authorizations_expires_at"),
        "authorizations_expires_at exists"
    );
    let admin = app.admin();
    let first = app.new_mailbox("first@contoso.cz").await;
    let second = app.new_mailbox("second@contoso.cz").await;
    admin.refresh(first).await.expect("refresh");
    // The first sign-in was abandoned an hour ago.
    app.expire_sign_ins_of(first, chrono::Duration::hours(1))
        .await;
    admin.refresh(second).await.expect("refresh");
    let cred = app.app_credential_id();
    admin.consent_url(cred).await.expect("a consent link");
    assert_eq!(
        app.pending_sign_ins().await,
        3,
        "requests leave the expired one for housekeeping"
    );
    let done = app.housekeeping().await;
    assert_eq!(done.expired_authorizations, 1);
    assert!(
        done.limited_callers >= 1,
        "the admin's buckets are remembered"
    );
    assert_eq!(app.pending_sign_ins().await, 2, "the pending ones stay");
    assert_eq!(app.housekeeping().await.expired_authorizations, 0);
}
