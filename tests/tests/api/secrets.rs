//! Client secrets are write-only: never in a response, a log line or the
//! database in plain text, and a ciphertext only decrypts in its own row.

use serde_json::json;

use crate::helpers::{
    Api, ORG, PLACEHOLDER_CLIENT_ID, TestAppBuilder, app_credential_body, backend_tests, logs,
    new_secret,
};

backend_tests!(secrets_never_leave_in_plain_text);
async fn secrets_never_leave_in_plain_text(app: TestAppBuilder) {
    let app = app.start().await;
    let token = app.token(ORG, &["admin"]);
    let sdk = app.sdk(&token);
    let first = new_secret();
    let second = new_secret();
    let cred = sdk
        .create_app_credential(app_credential_body("Cred", &first))
        .await;
    let updated = sdk
        .update_app_credential(cred, |b| b.client_secret(second.clone()))
        .await
        .expect("update");

    assert_eq!(
        updated.secret_hint,
        format!("...{}", &second[second.len() - 4..])
    );
    // The raw answer of an update that sets the secret.
    let path = format!("/app-credentials/{cred}");
    let patched = app.request("PATCH", &path).bearer_auth(&token);
    let patched = patched.json(&json!({ "client_secret": second })).send();
    let patched = patched.await.expect("patch");
    assert_eq!(patched.status(), 200);
    let mut bodies = vec![patched.text().await.expect("body")];
    for path in ["/app-credentials", path.as_str()] {
        let got = app.request("GET", path).bearer_auth(&token).send().await;
        bodies.push(got.expect("get").text().await.expect("body"));
    }
    let raw = json!({
        "name": "Raw", "client_id": PLACEHOLDER_CLIENT_ID,
        "tenant_id": "contoso.onmicrosoft.com", "client_secret": first,
    });
    let created_raw = app.request("POST", "/app-credentials").bearer_auth(&token);
    let created_raw = created_raw.json(&raw).send().await.expect("create");
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

    // What the database holds: the SQLite files' bytes, or the PostgreSQL column values.
    let stored = app.stored_dump("app_credentials").await;
    for secret in [&first, &second] {
        assert!(
            !stored.contains(secret.as_str()),
            "the database holds a plaintext secret"
        );
    }
    assert!(stored.contains("v1."), "the encrypted values are there");
}

backend_tests!(a_ciphertext_moved_to_another_row_does_not_decrypt);
async fn a_ciphertext_moved_to_another_row_does_not_decrypt(app: TestAppBuilder) {
    let app = app.start().await;
    let sdk = app.admin();
    let secret_a = new_secret();
    let a = sdk
        .create_app_credential(app_credential_body("A", &secret_a))
        .await;
    let b = sdk
        .create_app_credential(app_credential_body("B", &new_secret()))
        .await;
    app.execute(format!(
        "UPDATE app_credentials SET client_secret = (SELECT client_secret FROM app_credentials WHERE id = '{a}') WHERE id = '{b}'"
    ))
    .await;
    let decrypted = app.stored_client_secret(a).await;
    assert_eq!(decrypted.expect("a still decrypts"), secret_a);
    let err = app.stored_client_secret(b).await;
    let err = err.expect_err("the moved ciphertext must not decrypt");
    assert!(matches!(err, inboxlink::Error::Internal(_)), "{err:?}");
}
