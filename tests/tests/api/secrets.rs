//! Client secrets are write-only: never in a response, a log line or the
//! database in plain text, and a ciphertext only decrypts in its own row.

use diesel::{Connection, RunQueryDsl};
use inboxlink::config::Backend;
use inboxlink::domain::OrgId;
use inboxlink_sdk::types::AppCredentialUpdate;

use crate::helpers::{TestApp, app_credential_body, backend_tests, http, logs, new_secret};

backend_tests!(
    secrets_never_leave_in_plain_text,
    a_ciphertext_moved_to_another_row_does_not_decrypt
);

async fn secrets_never_leave_in_plain_text(app: TestApp) {
    let token = app.token("acme", &["admin"]);
    let sdk = app.sdk(&token);
    let first = new_secret();
    let second = new_secret();
    let cred = sdk
        .app_credential_create()
        .body(app_credential_body("Cred", &first))
        .send()
        .await
        .expect("cred");
    let update = AppCredentialUpdate {
        client_secret: Some(second.clone()),
        ..Default::default()
    };
    let updated = sdk
        .app_credential_update()
        .id(cred.id)
        .body(update)
        .send()
        .await
        .expect("update")
        .into_inner();

    assert_eq!(
        updated.secret_hint,
        format!("...{}", &second[second.len() - 4..])
    );
    // The raw answer of an update that sets the secret.
    let patched = http()
        .patch(app.url(&format!("/app-credentials/{}", cred.id)))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "client_secret": second }))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let mut bodies = vec![patched.text().await.expect("body")];
    for path in [
        "/app-credentials".to_owned(),
        format!("/app-credentials/{}", cred.id),
    ] {
        bodies.push(
            http()
                .get(app.url(&path))
                .bearer_auth(&token)
                .send()
                .await
                .expect("get")
                .text()
                .await
                .expect("body"),
        );
    }
    let created_raw = http()
        .post(app.url("/app-credentials"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "Raw", "client_id": "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f",
            "tenant_id": "contoso.onmicrosoft.com", "client_secret": first,
        }))
        .send()
        .await
        .expect("create");
    assert_eq!(created_raw.status(), 201);
    bodies.push(created_raw.text().await.expect("body"));
    for body in &bodies {
        for secret in [&first, &second] {
            assert!(
                !body.contains(secret.as_str()),
                "a response contains the secret: {body}"
            );
        }
        assert!(
            !body.contains("client_secret"),
            "the secret field is write-only: {body}"
        );
    }

    let log = logs();
    assert!(!log.is_empty(), "logs are captured");
    for secret in [&first, &second, &token] {
        assert!(
            !log.contains(secret.as_str()),
            "a log line contains a secret or token"
        );
    }

    let stored = stored_text(&app).await;
    for secret in [&first, &second] {
        assert!(
            !stored.contains(secret.as_str()),
            "the database holds a plaintext secret"
        );
    }
    assert!(stored.contains("v1."), "the encrypted values are there");
}

/// What the database holds: the SQLite files' bytes, or the PostgreSQL column values.
async fn stored_text(app: &TestApp) -> String {
    stored_dump(app, "app_credentials").await
}

/// The SQLite files' bytes (all tables), or the rows of `table` on PostgreSQL.
pub(crate) async fn stored_dump(app: &TestApp, table: &'static str) -> String {
    match app.backend {
        Backend::Sqlite => {
            let path = app.sqlite_path.clone().expect("sqlite path");
            let mut all = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                if let Ok(bytes) = std::fs::read(&p) {
                    all.extend(bytes);
                }
            }
            String::from_utf8_lossy(&all).into_owned()
        }
        Backend::Postgres => {
            let url = app.postgres_url.clone().expect("pg url");
            tokio::task::spawn_blocking(move || {
                #[derive(diesel::QueryableByName)]
                struct Row {
                    #[diesel(sql_type = diesel::sql_types::Text)]
                    dump: String,
                }
                let mut c = diesel::PgConnection::establish(&url).expect("connect");
                let rows: Vec<Row> = diesel::sql_query(format!(
                    "SELECT row_to_json(a)::text AS dump FROM {table} a"
                ))
                .load(&mut c)
                .expect("dump");
                rows.into_iter()
                    .map(|r| r.dump)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .await
            .expect("task")
        }
    }
}

async fn a_ciphertext_moved_to_another_row_does_not_decrypt(app: TestApp) {
    let sdk = app.admin("acme");
    let secret_a = new_secret();
    let a = sdk
        .app_credential_create()
        .body(app_credential_body("A", &secret_a))
        .send()
        .await
        .expect("a");
    let b = sdk
        .app_credential_create()
        .body(app_credential_body("B", &new_secret()))
        .send()
        .await
        .expect("b");
    let org = OrgId::parse("acme").expect("org");
    let copy = format!(
        "UPDATE app_credentials SET client_secret = (SELECT client_secret FROM app_credentials WHERE id = '{}') WHERE id = '{}'",
        a.id, b.id
    );
    app.services
        .store
        .query(move |c| {
            diesel::sql_query(copy)
                .execute(c)
                .expect("copy the ciphertext");
            Ok(())
        })
        .await
        .expect("copied");
    let decrypted = app
        .services
        .app_credential_with_secret(&org, a.id.into())
        .await
        .map(|(_, secret)| secret)
        .expect("a still decrypts");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&decrypted), secret_a);
    let err = app
        .services
        .app_credential_with_secret(&org, b.id.into())
        .await
        .map(|(_, secret)| secret)
        .expect_err("the moved ciphertext must not decrypt");
    assert!(matches!(err, inboxlink::Error::Internal(_)), "{err:?}");
}
