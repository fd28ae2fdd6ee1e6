//! Certificate credentials: an app credential of type `certificate` signs a
//! client assertion for every token request. The fake Entra ID checks each
//! assertion as Microsoft does (`fake_entra/assertion.rs`: the signature
//! against the uploaded certificate, `x5t#S256`, `aud`, the lifetime, the
//! `jti`), so a sign-in, a refresh and a verify that succeed here sent a
//! valid one.

use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::{AccessMode, CredentialType, MailboxStatus, builder};

use crate::helpers::{Api, CLIENT_ID, TENANT, TestAppBuilder, backend_tests, mailbox_body};

fn certificate_body(name: &str) -> builder::AppCredentialCreate {
    builder::AppCredentialCreate::default()
        .name(name)
        .client_id(CLIENT_ID)
        .tenant_id(TENANT)
        .credential_type(CredentialType::Certificate)
}

backend_tests!(a_certificate_made_here_signs_in_refreshes_and_verifies);
async fn a_certificate_made_here_signs_in_refreshes_and_verifies(app: TestAppBuilder) {
    let app = app.with_fake_entra().start().await;
    let admin = app.admin();
    let cred = admin
        .create_app_credential(certificate_body("E-filing office"))
        .await;
    let got = admin
        .app_credential_get()
        .id(cred)
        .send()
        .await
        .expect("read");
    let got = got.into_inner();
    assert_eq!(got.credential_type, CredentialType::Certificate);
    assert_eq!(got.certificate_thumbprint_sha256, None);

    // No certificate yet: explained, nothing asked of Microsoft.
    let verified = admin.verify(cred).await;
    assert!(!verified.ok);
    assert_eq!(verified.code, "certificate_missing");
    assert_eq!(app.fake().token_calls("client_credentials"), 0);

    let made = admin.app_credential_certificate().id(cred).send().await;
    let made = made.expect("a certificate").into_inner();
    assert!(
        made.certificate_pem
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(!made.certificate_pem.contains("PRIVATE KEY"));
    assert_eq!(made.thumbprint_sha256.len(), 64);
    let in_a_year = chrono::Utc::now().date_naive() + chrono::Days::new(365);
    assert_eq!(made.expires_at, in_a_year);
    assert_eq!(made.app_credential.credential_expires_at, Some(in_a_year));
    assert_eq!(
        made.app_credential.certificate_thumbprint_sha256.as_deref(),
        Some(made.thumbprint_sha256.as_str())
    );
    // The private key is sealed like a secret: not in the database as text.
    let stored = app.stored_dump("app_credentials").await;
    assert!(!stored.contains("PRIVATE KEY"), "the key is sealed");

    // Not uploaded to the app registration yet: Microsoft does not know the key.
    let verified = admin.verify(cred).await;
    assert!(!verified.ok);
    assert_eq!(verified.code, "certificate_not_accepted", "{verified:?}");
    assert_eq!(verified.aadsts, Some(700_027));

    app.fake()
        .add_certificate(TENANT, CLIENT_ID, &made.certificate_pem);
    let verified = admin.verify(cred).await;
    assert!(verified.ok, "{verified:?}");
    let after = admin
        .app_credential_get()
        .id(cred)
        .send()
        .await
        .expect("read");
    assert!(
        after.into_inner().problem.is_none(),
        "the problem is cleared"
    );

    // A delegated mailbox signs in (the code redeemed with an assertion) and
    // refreshes (each assertion with its own jti: the fake refuses a reuse).
    let id = admin
        .create_mailbox(mailbox_body("podatelna@contoso.cz", cred))
        .await;
    app.sign_in_ok(id).await;
    app.fake().set_access_token_ttl(60);
    let service = app.service();
    for _ in 0..2 {
        app.execute("UPDATE mailboxes SET access_token_expires_at = '2001-01-01 00:00:00'")
            .await;
        service
            .access_token(id)
            .await
            .expect("a refresh with an assertion");
    }
    assert!(app.fake().token_calls("refresh_token") >= 2);
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);

    // Rolling: a new certificate is used first, and the old one stays
    // usable until Microsoft has been seen to accept the new one.
    let second = admin.app_credential_certificate().id(cred).send().await;
    let second = second.expect("another").into_inner();
    assert_ne!(second.thumbprint_sha256, made.thumbprint_sha256);
    assert_eq!(
        second
            .app_credential
            .previous_certificate_thumbprint_sha256
            .as_deref(),
        Some(made.thumbprint_sha256.as_str())
    );
    // Not uploaded yet: Microsoft refuses the new one (AADSTS700027), the
    // previous one signs instead, and nothing is flagged.
    let verified = admin.verify(cred).await;
    assert!(
        verified.ok,
        "the previous certificate still works: {verified:?}"
    );
    app.execute("UPDATE mailboxes SET access_token_expires_at = '2001-01-01 00:00:00'")
        .await;
    service
        .access_token(id)
        .await
        .expect("a refresh signed with the previous key");
    let kept = app.admin().app_credential(cred).await;
    assert_eq!(
        kept.previous_certificate_thumbprint_sha256.as_deref(),
        Some(made.thumbprint_sha256.as_str()),
        "kept until the new one works"
    );
    assert!(kept.problem.is_none(), "{:?}", kept.problem);

    // Uploaded: the next token request is signed with it, and the previous
    // certificate (and its key) is dropped.
    app.fake()
        .add_certificate(TENANT, CLIENT_ID, &second.certificate_pem);
    assert!(admin.verify(cred).await.ok);
    let rolled = app.admin().app_credential(cred).await;
    assert_eq!(rolled.previous_certificate_thumbprint_sha256, None);
    assert_eq!(
        rolled.certificate_thumbprint_sha256.as_deref(),
        Some(second.thumbprint_sha256.as_str())
    );
    let audit = admin.audit().await;
    assert!(
        audit.iter().any(|a| a
            .detail
            .as_ref()
            .is_some_and(|d| d["certificate"] == "previous_dropped")),
        "the drop is audited"
    );
    // From now on only the new key signs: a third certificate Microsoft does
    // not know falls back to the second, not to the first.
    let third = admin.app_credential_certificate().id(cred).send().await;
    let third = third.expect("a third").into_inner();
    assert_eq!(
        third
            .app_credential
            .previous_certificate_thumbprint_sha256
            .as_deref(),
        Some(second.thumbprint_sha256.as_str())
    );
    assert!(admin.verify(cred).await.ok);
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
    // An app-only mailbox's first token is a request the new key signs too.
    app.fake()
        .add_certificate(TENANT, CLIENT_ID, &third.certificate_pem);
    let body = mailbox_body("robot@contoso.cz", cred).access_mode(AccessMode::AppOnly);
    let robot = admin.create_mailbox(body).await;
    admin.refresh(robot).await.expect("an app-only token");
    let rolled = app.admin().app_credential(cred).await;
    assert_eq!(rolled.previous_certificate_thumbprint_sha256, None);
}

backend_tests!(an_uploaded_certificate_is_checked_and_used);
async fn an_uploaded_certificate_is_checked_and_used(app: TestAppBuilder) {
    let app = app.with_fake_entra().start().await;
    let admin = app.admin();
    let (pem, key) = inboxlink_tests::fake_entra::FakeEntra::new_certificate();
    let (_, other_key) = inboxlink_tests::fake_entra::FakeEntra::new_certificate();

    // Every defect is refused, and nothing is stored.
    let refusals = [
        (
            certificate_body("x").certificate_pem(pem.clone()),
            "certificate_pem",
        ),
        (
            certificate_body("x")
                .certificate_pem(pem.clone())
                .private_key_pem(other_key.clone()),
            "private_key_pem",
        ),
        (
            certificate_body("x")
                .certificate_pem(
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----".to_owned(),
                )
                .private_key_pem(key.clone()),
            "certificate_pem",
        ),
        (
            certificate_body("x").client_secret("Zz9~a.secret_for-the_fake".to_owned()),
            "client_secret",
        ),
        (
            crate::helpers::fake_app_credential_body("x")
                .certificate_pem(pem.clone())
                .private_key_pem(key.clone()),
            "certificate_pem",
        ),
    ];
    for (body, field) in refusals {
        let err = admin.app_credential_create().body(body).send().await;
        let err = err.expect_err("refused");
        let problem = err.problem().expect("a problem");
        assert_eq!(problem.status, 422, "{problem:?}");
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    // A 1024-bit key (made once with `openssl req -x509 -newkey rsa:1024`,
    // valid for 100 years: rcgen makes no key that short).
    let body = certificate_body("x")
        .certificate_pem(include_str!("data/rsa1024-cert.pem").to_owned())
        .private_key_pem(include_str!("data/rsa1024-key.pem").to_owned());
    let err = admin.app_credential_create().body(body).send().await;
    let err = err.expect_err("a 1024-bit key");
    let problem = err.problem().expect("problem");
    assert_eq!(problem.errors[0].code, "invalid_certificate");
    let listed = admin.app_credential_list().send().await.expect("list");
    assert!(listed.into_inner().items.is_empty(), "nothing was stored");

    let body = certificate_body("Uploaded")
        .certificate_pem(pem.clone())
        .private_key_pem(key.clone());
    let cred = admin.create_app_credential(body).await;
    let got = admin
        .app_credential_get()
        .id(cred)
        .send()
        .await
        .expect("read");
    let got = got.into_inner();
    assert_eq!(got.certificate_thumbprint_sha256, Some(sha256_hex(&pem)));
    let text = serde_json::to_string(&got).expect("json");
    assert!(
        !text.contains("PRIVATE KEY"),
        "the key is write-only: {text}"
    );
    app.fake().add_certificate(TENANT, CLIENT_ID, &pem);
    let verified = admin.verify(cred).await;
    assert!(verified.ok, "{verified:?}");
    let id = admin
        .create_mailbox(mailbox_body("podatelna@contoso.cz", cred))
        .await;
    app.sign_in_ok(id).await;
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);

    // A certificate credential takes no secret, a secret one no certificate.
    let update = admin.update_app_credential(cred, |b| {
        b.client_secret("Zz9~a.secret_for-the_fake".to_owned())
    });
    let err = update.await.expect_err("refused");
    let problem = err.problem().expect("problem");
    assert_eq!(problem.status, 422);
    assert_eq!(problem.errors[0].field, "client_secret");
    assert_eq!(app.mailbox(id).await.status, MailboxStatus::Active);
}

/// SHA-256 of a PEM certificate's DER, upper-case hex, computed here.
fn sha256_hex(pem: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64");
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}
