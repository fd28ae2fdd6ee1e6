//! The event feed: exactly one event per change, with the right data,
//! written in the change's own transaction, paged in order, per organisation.

use serde_json::{Value, json};

use crate::helpers::{
    Api, CLIENT_ID, MAILBOX, ORG, SECRET, TENANT, TestAppBuilder, backend_tests, mailbox_body,
    new_secret,
};

/// The `data` of each event, in order.
fn data(events: &[Value]) -> Vec<&Value> {
    events.iter().map(|e| &e["data"]).collect()
}

backend_tests!(a_status_change_is_one_event_however_often_it_is_seen);
async fn a_status_change_is_one_event_however_often_it_is_seen(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let id = app.signed_in_with_stale_token().await;
    let created = app.events("mailbox.created").await;
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        created[0]["data"],
        json!({ "mailbox_id": id, "email": MAILBOX, "access_mode": "delegated", "status": "inactive" })
    );

    // The grant is revoked: every refresh from now on is refused the same way.
    app.fake().revoke_user(MAILBOX);
    for _ in 0..5 {
        let refused = app.service().access_token(id).await;
        refused.expect_err("the grant is revoked");
    }
    app.keepalive_sweep().await;
    let mailbox = app.mailbox(id).await;
    let code = mailbox.status_detail.expect("why").code;

    let changes = app.events("mailbox.status_changed").await;
    assert_eq!(
        data(&changes),
        [
            &json!({ "mailbox_id": id, "email": MAILBOX, "from": "inactive", "to": "active", "status_code": null }),
            &json!({ "mailbox_id": id, "email": MAILBOX, "from": "active", "to": "reauth_required", "status_code": code }),
        ],
        "one event per transition"
    );
    for e in &changes {
        assert_eq!(e["type"], "mailbox.status_changed");
        assert!(e["occurred_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    // Back to active, then gone.
    app.sign_in_ok(id).await;
    let changes = app.events("mailbox.status_changed").await;
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[2]["data"]["to"], "active");
    assert_eq!(changes[2]["data"]["from"], "reauth_required");
    app.admin()
        .mailbox_delete()
        .id(id)
        .send()
        .await
        .expect("deleted");
    let deleted = app.events("mailbox.deleted").await;
    assert_eq!(
        data(&deleted),
        [&json!({ "mailbox_id": id, "email": MAILBOX })]
    );
}

backend_tests!(a_credential_problem_is_one_event_when_flagged_and_one_when_cleared);
async fn a_credential_problem_is_one_event_when_flagged_and_one_when_cleared(app: TestAppBuilder) {
    let app = app.with_fake_entra().with_app_credential().start().await;
    let cred = app.app_credential_id();
    let id = app.signed_in_with_stale_token().await;
    app.fake().expire_secret(CLIENT_ID, SECRET);
    for _ in 0..3 {
        let refused = app.service().access_token(id).await;
        refused.expect_err("the secret expired");
    }
    app.admin().verify(cred).await;

    // A new secret, accepted by a verify.
    let fresh = new_secret();
    app.fake().register_app(TENANT, CLIENT_ID, &fresh);
    let admin = app.admin();
    let update = admin.app_credential_update().id(cred);
    let update = update.body_map(|b| b.client_secret(Some(fresh.clone())));
    update.send().await.expect("updated");
    app.admin().verify(cred).await;

    let problems = app.events("app_credential.problem_changed").await;
    let name = app.admin().app_credential(cred).await.name;
    assert_eq!(
        data(&problems),
        [
            &json!({ "app_credential_id": cred, "name": name, "from": null, "to": "client_secret_expired" }),
            &json!({ "app_credential_id": cred, "name": name, "from": "client_secret_expired", "to": null }),
        ]
    );
    // Its mailbox went to `error` with it, and came back.
    let changes = app.events("mailbox.status_changed").await;
    let moves: Vec<(&Value, &Value)> = changes
        .iter()
        .map(|e| (&e["data"]["from"], &e["data"]["to"]))
        .collect();
    assert_eq!(
        moves,
        [
            (&json!("inactive"), &json!("active")),
            (&json!("active"), &json!("error")),
            (&json!("error"), &json!("active")),
        ]
    );
}

backend_tests!(each_secret_expiry_threshold_is_noticed_once_by_all_instances);
async fn each_secret_expiry_threshold_is_noticed_once_by_all_instances(app: TestAppBuilder) {
    let app = app.start().await;
    let today = chrono::Utc::now().date_naive();
    let expires = |days: i64| (today + chrono::Duration::days(days)).to_string();
    let created = app
        .admin_call(
            "POST",
            "/app-credentials",
            Some(&json!({
                "name": "Podatelna", "client_id": CLIENT_ID, "tenant_id": TENANT,
                "client_secret": new_secret(), "secret_expires_at": expires(10),
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let cred = created.body["id"].as_str().expect("id").to_owned();
    let other = app.sibling().await;
    // Two instances sweep at once, twice.
    for _ in 0..2 {
        tokio::join!(app.keepalive_sweep(), other.keepalive_sweep());
    }
    let expiring = app.events("app_credential.secret_expiring").await;
    assert_eq!(
        data(&expiring),
        [&json!({
            "app_credential_id": cred, "name": "Podatelna", "secret_expires_at": expires(10),
            "days_left": 10, "threshold_days": 14,
        })],
        "the nearest threshold reached, once"
    );

    // Closer: the 7-day threshold; then the day itself.
    let patch = |days: i64| json!({ "secret_expires_at": expires(days) });
    let path = format!("/app-credentials/{cred}");
    assert_eq!(
        app.admin_call("PATCH", &path, Some(&patch(3))).await.status,
        200
    );
    tokio::join!(app.keepalive_sweep(), other.keepalive_sweep());
    assert_eq!(
        app.admin_call("PATCH", &path, Some(&patch(0))).await.status,
        200
    );
    tokio::join!(app.keepalive_sweep(), other.keepalive_sweep());
    app.keepalive_sweep().await;
    let expiring = app.events("app_credential.secret_expiring").await;
    let thresholds: Vec<&Value> = expiring
        .iter()
        .map(|e| &e["data"]["threshold_days"])
        .collect();
    assert_eq!(thresholds, [&json!(14), &json!(7)]);
    let expired = app.events("app_credential.secret_expired").await;
    assert_eq!(
        data(&expired),
        [
            &json!({ "app_credential_id": cred, "name": "Podatelna", "secret_expires_at": expires(0) })
        ]
    );
}

backend_tests!(a_change_and_its_event_commit_together);
async fn a_change_and_its_event_commit_together(app: TestAppBuilder) {
    let app = app.with_app_credential().start().await;
    let (admin, cred) = (app.admin(), app.app_credential_id());
    // No event table: the change cannot be made.
    app.execute("ALTER TABLE events RENAME TO events_away")
        .await;
    let err = admin
        .mailbox_create()
        .body(mailbox_body(MAILBOX, cred))
        .send();
    let err = err.await.expect_err("the event cannot be written");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(500));
    app.execute("ALTER TABLE events_away RENAME TO events")
        .await;
    assert!(
        admin.mailboxes(None).await.is_empty(),
        "no change without its event"
    );
    // No audit table: the change rolls back, and its event with it.
    app.execute("ALTER TABLE audit_events RENAME TO audit_events_away")
        .await;
    let err = admin
        .mailbox_create()
        .body(mailbox_body(MAILBOX, cred))
        .send();
    err.await.expect_err("the audit row cannot be written");
    app.execute("ALTER TABLE audit_events_away RENAME TO audit_events")
        .await;
    assert!(admin.mailboxes(None).await.is_empty());
    assert!(
        app.events_of(ORG, None).await.is_empty(),
        "no event of a change that rolled back"
    );
    // A refused change has none either.
    admin.create_mailbox(mailbox_body(MAILBOX, cred)).await;
    let again = admin
        .mailbox_create()
        .body(mailbox_body(MAILBOX, cred))
        .send();
    again.await.expect_err("the address is taken");
    assert_eq!(app.events("mailbox.created").await.len(), 1);
}

backend_tests!(the_feed_pages_in_order_filters_by_type_and_keeps_to_its_organisation);
async fn the_feed_pages_in_order_filters_by_type_and_keeps_to_its_organisation(
    app: TestAppBuilder,
) {
    let app = app.with_app_credential().start().await;
    let (admin, cred) = (app.admin(), app.app_credential_id());
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            admin
                .create_mailbox(mailbox_body(&format!("box{i}@contoso.cz"), cred))
                .await,
        );
    }
    admin
        .mailbox_delete()
        .id(ids[0])
        .send()
        .await
        .expect("deleted");
    let viewer = app.token(ORG, &["viewer"]);
    // Pages of 3, each `after` the last one seen.
    let mut seen = Vec::new();
    let mut path = "/events?limit=3".to_owned();
    loop {
        let page = app.call_as(&viewer, "GET", &path, None).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let items = page.body["items"].as_array().expect("items").clone();
        assert!(items.len() <= 3);
        seen.extend(items);
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/events?limit=3&after={c}"),
            None => break,
        }
    }
    let types: Vec<&str> = seen
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types.len(), 8);
    assert_eq!(types[..7], ["mailbox.created"; 7]);
    assert_eq!(types[7], "mailbox.deleted");
    let order: Vec<&Value> = seen[..7].iter().map(|e| &e["data"]["mailbox_id"]).collect();
    let expected: Vec<Value> = ids.iter().map(|i| json!(i)).collect();
    assert_eq!(
        order,
        expected.iter().collect::<Vec<_>>(),
        "in the order they happened"
    );
    let event_ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().expect("id")).collect();
    let mut sorted = event_ids.clone();
    sorted.sort_unstable();
    assert_eq!(event_ids, sorted, "ids are the feed's order");
    // Filters, `cursor` as the other lists name it, and bad input.
    assert_eq!(app.events("mailbox.deleted").await.len(), 1);
    assert_eq!(app.events("mailbox.deleted,mailbox.created").await.len(), 8);
    let from_cursor = app
        .call_as(
            &viewer,
            "GET",
            &format!("/events?cursor={}", event_ids[5]),
            None,
        )
        .await;
    assert_eq!(from_cursor.body["items"].as_array().map(Vec::len), Some(2));
    for (query, field) in [
        ("type=mailbox.exploded", "type"),
        ("limit=0", "limit"),
        ("after=nope", "cursor"),
    ] {
        let bad = app
            .call_as(&viewer, "GET", &format!("/events?{query}"), None)
            .await;
        assert_eq!(
            (bad.status, bad.code()),
            (422, Some("validation_failed")),
            "{query}"
        );
        assert_eq!(
            bad.body["errors"][0]["field"], field,
            "{query}: {:?}",
            bad.body
        );
    }
    // Every role may read the feed; another organisation sees none of it.
    for role in ["admin", "operator", "viewer", "service"] {
        let token = app.token(ORG, &[role]);
        assert_eq!(
            app.call_as(&token, "GET", "/events", None).await.status,
            200,
            "{role}"
        );
    }
    assert!(app.events_of("globex", None).await.is_empty());
}

backend_tests!(old_events_are_deleted_after_the_retention_time);
async fn old_events_are_deleted_after_the_retention_time(app: TestAppBuilder) {
    let app = app.with_mailbox().start().await;
    assert_eq!(app.events("mailbox.created").await.len(), 1);
    let cred = app.app_credential_id();
    app.admin()
        .create_mailbox(mailbox_body("info@contoso.cz", cred))
        .await;
    // The first event is 31 days old.
    let old = (chrono::Utc::now() - chrono::Duration::days(31)).naive_utc();
    let first = app.events("mailbox.created").await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.execute(format!(
        "UPDATE events SET occurred_at = '{}' WHERE id = '{first}'",
        old.format("%Y-%m-%d %H:%M:%S%.6f")
    ))
    .await;
    let done = app.housekeeping().await;
    assert_eq!(done.old_events, 1);
    let left = app.events("mailbox.created").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["data"]["email"], "info@contoso.cz");
}
