//! Sign-in through the fake Entra ID, the callback, and the token keeper.

use std::time::{Duration, Instant};

use inboxlink::config::Backend;
use inboxlink_sdk::ProblemExt;
use inboxlink_sdk::types::{AccessMode, MailboxCreate, MailboxStatus, RefreshRequest};
use inboxlink_tests::fake_entra::{FakeEntra, Fault, SignIn};
use serde_json::Value;

use crate::helpers::{TestApp, backend_tests, logs};

pub(crate) const TENANT: &str = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c";
pub(crate) const CLIENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
pub(crate) const SECRET: &str = "Xy7~secret.value_for-the_fake";
pub(crate) const MAILBOX: &str = "podatelna@contoso.cz";

backend_tests!(
    sign_in_activates_the_mailbox,
    state_replay_and_expiry_never_reach_the_token_endpoint,
    tampered_pkce_fails_at_the_token_endpoint,
    wrong_user_is_not_activated,
    declined_consent_is_explained,
    revoked_grant_requires_reauthorization,
    throttling_is_waited_out,
    fifty_callers_one_refresh,
    two_instances_one_refresh,
    crash_before_commit_recovers,
    rotated_refresh_tokens_are_used,
    outage_keeps_status_and_records_the_error,
    expiring_when_the_refresh_token_nears_its_end,
    app_only_mailbox_and_verify,
    return_url_and_admin_consent,
    changed_settings_end_the_grant,
    a_broken_app_credential_shows_on_all_its_mailboxes,
    callers_queued_behind_a_failed_refresh_share_its_answer,
);

/// The service wired to a fresh fake Entra ID, with one app registered.
pub(crate) struct World {
    pub app: TestApp,
    pub fake: FakeEntra,
    pub admin: inboxlink_sdk::Client,
    pub app_credential_id: uuid::Uuid,
}

pub(crate) async fn world(app: TestApp) -> World {
    let fake = FakeEntra::start().await;
    fake.register_app(TENANT, CLIENT_ID, SECRET);
    fake.add_domain(TENANT, "contoso.cz");
    // The service under test talks to the fake only through its configuration.
    let app = restart_with(&app, &[("INBOXLINK_MS_AUTHORITY", fake.authority())]).await;
    fake.add_redirect_uri(CLIENT_ID, &format!("{}/oauth/callback", app.base));
    let admin = app.admin("acme");
    let body = inboxlink_sdk::types::AppCredentialCreate {
        name: "E-filing".into(),
        provider: None,
        client_id: CLIENT_ID.into(),
        tenant_id: TENANT.into(),
        client_secret: SECRET.into(),
        secret_expires_at: Some(chrono::Utc::now().date_naive() + chrono::Days::new(200)),
    };
    let app_credential_id = admin
        .app_credential_create()
        .body(body)
        .send()
        .await
        .expect("credential")
        .id;
    World {
        app,
        fake,
        admin,
        app_credential_id,
    }
}

/// The same database and keys, with other settings (the lease is short so recovery tests are quick).
pub(crate) async fn restart_with(app: &TestApp, extra: &[(&str, String)]) -> TestApp {
    let mut extra = extra.to_vec();
    extra.push(("INBOXLINK_REFRESH_LEASE_SECONDS", "2".into()));
    app.with(&extra).await
}

impl World {
    pub(crate) async fn mailbox(&self, email: &str, mode: AccessMode, shared: bool) -> uuid::Uuid {
        let body = MailboxCreate {
            email: email.into(),
            app_credential_id: self.app_credential_id,
            access_mode: Some(mode),
            shared: Some(shared),
        };
        self.admin
            .mailbox_create()
            .body(body)
            .send()
            .await
            .expect("mailbox")
            .id
    }

    /// Refresh, then follow the authorization URL through the fake to the callback.
    pub(crate) async fn sign_in(
        &self,
        id: uuid::Uuid,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
        let started = self
            .admin
            .mailbox_refresh()
            .id(id)
            .body(RefreshRequest { return_url: None })
            .send()
            .await
            .expect("refresh")
            .into_inner();
        let url = started.authorization_url.expect("a sign-in URL");
        follow(&url).await
    }

    pub(crate) async fn status(&self, id: uuid::Uuid) -> inboxlink_sdk::types::Mailbox {
        self.admin
            .mailbox_get()
            .id(id)
            .send()
            .await
            .expect("mailbox")
            .into_inner()
    }

    pub(crate) fn service(&self) -> inboxlink_sdk::Client {
        self.app.sdk(&self.app.token("acme", &["service"]))
    }
}

pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Opens the authorization URL (the fake answers with a redirect to the callback) and follows it once.
pub(crate) async fn follow(url: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let to_callback = browser().get(url).send().await.expect("authorize");
    assert_eq!(
        to_callback.status(),
        302,
        "the fake redirects to the callback"
    );
    let location = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    callback(&location).await
}

pub(crate) async fn callback(
    url: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let response = browser()
        .get(url)
        .header("Accept-Language", "en")
        .send()
        .await
        .expect("callback");
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.expect("page"))
}

async fn sign_in_activates_the_mailbox(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let started = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner();
    let url = started.authorization_url.clone().expect("url");
    assert!(
        started.expires_at.expect("expiry") > chrono::Utc::now() + chrono::Duration::minutes(9)
    );
    let parsed = url::Url::parse(&url).expect("url");
    assert_eq!(parsed.path(), format!("/{TENANT}/oauth2/v2.0/authorize"));
    let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], format!("{}/oauth/callback", w.app.base));
    assert_eq!(q["response_mode"], "query");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["prompt"], "select_account");
    assert_eq!(q["login_hint"], MAILBOX);
    for scope in [
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
        "openid",
    ] {
        assert!(q["scope"].split(' ').any(|s| s == scope), "scope {scope}");
    }
    assert!(q["state"].len() >= 22, "at least 128 bits of state");
    assert!(!q["nonce"].is_empty());

    // The PKCE verifier is stored encrypted: it decrypts to the verifier of the URL's challenge.
    let verifier = stored_verifier(&w.app).await;
    assert_eq!(
        inboxlink_tests::fake_entra::pkce_s256(&verifier),
        q["code_challenge"]
    );
    let pending = crate::secrets::stored_dump(&w.app, "authorizations").await;
    assert!(
        !pending.contains(&verifier),
        "the verifier is encrypted at rest"
    );

    let (status, headers, page) = follow(&url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("connected"), "{page}");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(w.fake.token_calls("authorization_code"), 1);

    let mailbox = w.status(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Active);
    assert_eq!(mailbox.validity_days, Some(90));
    assert_eq!(mailbox.authorized_as.as_deref(), Some(MAILBOX));
    assert!(mailbox.status_detail.is_none());
    assert!(mailbox.last_refresh_at.is_some());

    let token = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("token")
        .into_inner();
    assert_eq!(
        (token.imap_user.as_str(), token.smtp_user.as_str()),
        (MAILBOX, MAILBOX)
    );
    assert!(token.expires_at > chrono::Utc::now() + chrono::Duration::minutes(5));
    let introspected: Value = reqwest::Client::new()
        .post(w.fake.introspection_url())
        .form(&[("token", token.access_token.as_str())])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(introspected["active"], true, "a real token of the mailbox");
    assert_eq!(introspected["email"], MAILBOX);
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        0,
        "a fresh token is reused, not refreshed"
    );

    // Tokens, the state and the verifier are stored encrypted.
    let stored = crate::secrets::stored_dump(&w.app, "mailboxes").await
        + &crate::secrets::stored_dump(&w.app, "authorizations").await;
    assert!(
        !stored.contains(&token.access_token),
        "the access token is encrypted at rest"
    );
    assert!(!stored.contains(&q["state"]), "the state is stored hashed");
    let refresh_token = stored_refresh_token(&w.app, id).await;
    assert!(
        !stored.contains(&refresh_token),
        "the refresh token is encrypted at rest"
    );
    let logged = logs();
    for (what, secret) in [
        ("access token", token.access_token.as_str()),
        ("refresh token", refresh_token.as_str()),
        ("PKCE verifier", verifier.as_str()),
        ("state", q["state"].as_str()),
        ("client secret", SECRET),
    ] {
        assert!(!logged.contains(secret), "no {what} in the logs");
    }

    let events = w
        .admin
        .audit_event_list()
        .send()
        .await
        .expect("audit")
        .into_inner();
    let actions: Vec<&str> = events.items.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "app_credential.created",
        "mailbox.created",
        "mailbox.sign_in_started",
        "mailbox.signed_in",
        "mailbox.access_token_issued",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let signed_in = events
        .items
        .iter()
        .find(|e| e.action == "mailbox.signed_in")
        .expect("event");
    assert_eq!(
        signed_in.detail.as_ref().expect("detail")["signed_in_as"],
        MAILBOX
    );
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains(&token.access_token)
    );
}

async fn state_replay_and_expiry_never_reach_the_token_endpoint(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let started = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner();
    let to_callback = browser()
        .get(started.authorization_url.expect("url"))
        .send()
        .await
        .expect("authorize");
    let callback_url = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let (status, _, _) = callback(&callback_url).await;
    assert_eq!(status, 200);
    assert_eq!(w.fake.token_calls("authorization_code"), 1);
    let (status, headers, page) = callback(&callback_url).await;
    assert_eq!(status, 400, "a replayed state");
    assert!(page.contains("state_unknown"), "{page}");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(
        w.fake.token_calls("authorization_code"),
        1,
        "no token call for a replay"
    );

    // An expired state.
    let started = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner();
    let to_callback = browser()
        .get(started.authorization_url.expect("url"))
        .send()
        .await
        .expect("authorize");
    let callback_url = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    w.app
        .services
        .store
        .query(|c| {
            use diesel::RunQueryDsl;
            diesel::sql_query("UPDATE authorizations SET expires_at = created_at")
                .execute(c)
                .expect("age");
            Ok(())
        })
        .await
        .expect("aged");
    let (status, _, page) = callback(&callback_url).await;
    assert_eq!(status, 400);
    assert!(page.contains("state_expired"), "{page}");
    let (status, _, page) = callback(&format!(
        "{}/oauth/callback?code=x&state=forged",
        w.app.base
    ))
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("state_unknown"), "{page}");
    assert_eq!(
        w.fake.token_calls("authorization_code"),
        1,
        "no token call for expired or unknown states"
    );
}

async fn tampered_pkce_fails_at_the_token_endpoint(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let started = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner();
    let mut url = url::Url::parse(&started.authorization_url.expect("url")).expect("url");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "code_challenge" {
                (k, "A".repeat(43))
            } else {
                (k, v)
            }
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, _, page) = follow(url.as_str()).await;
    assert_eq!(status, 200);
    assert!(page.contains("pkce_mismatch"), "{page}");
    assert_eq!(
        w.fake.token_calls("authorization_code"),
        1,
        "the fake refused the verifier"
    );
    let mailbox = w.status(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Inactive);
    assert_eq!(mailbox.status_detail.expect("detail").code, "pkce_mismatch");
}

async fn wrong_user_is_not_activated(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    w.fake
        .next_sign_in(SignIn::As("jan.novak@contoso.cz".into()));
    let (status, _, page) = w.sign_in(id).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("identity_mismatch") && page.contains("jan.novak@contoso.cz"),
        "{page}"
    );
    let mailbox = w.status(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Inactive);
    assert_eq!(
        mailbox.status_detail.expect("detail").code,
        "identity_mismatch"
    );
    let err = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Some("mailbox_not_authorized"));

    // A shared mailbox records the delegate who signed in.
    let shared = w
        .mailbox("info@contoso.cz", AccessMode::Delegated, true)
        .await;
    w.fake
        .next_sign_in(SignIn::As("Jan.Novak@contoso.cz".into()));
    let (status, _, page) = w.sign_in(shared).await;
    assert_eq!(status, 200, "{page}");
    let mailbox = w.status(shared).await;
    assert_eq!(mailbox.status, MailboxStatus::Active);
    assert_eq!(
        mailbox.authorized_as.as_deref(),
        Some("jan.novak@contoso.cz")
    );
    let token = w
        .service()
        .mailbox_access_token()
        .id(shared)
        .send()
        .await
        .expect("token")
        .into_inner();
    assert_eq!(token.imap_user, "info@contoso.cz");
    assert_eq!(
        token.smtp_user, "jan.novak@contoso.cz",
        "SMTP authenticates as the delegate"
    );
}

async fn declined_consent_is_explained(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    w.fake.next_sign_in(SignIn::Error {
        error: "access_denied".into(),
        description: "AADSTS65004: User declined to consent to access the app.".into(),
    });
    let started = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner();
    let to_callback = browser()
        .get(started.authorization_url.expect("url"))
        .send()
        .await
        .expect("authorize");
    let location = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let response = browser()
        .get(&location)
        .header("Accept-Language", "cs-CZ,cs;q=0.9")
        .send()
        .await
        .expect("callback");
    let page = response.text().await.expect("page");
    assert!(
        page.contains("lang=\"cs\"") && page.contains("Souhlas"),
        "a Czech page: {page}"
    );
    let detail = w.status(id).await.status_detail.expect("detail");
    assert_eq!(detail.code, "consent_declined");
    assert!(detail.message.contains("AADSTS65004"), "{}", detail.message);
    assert!(detail.hint.is_some());
    assert_eq!(w.fake.token_calls("authorization_code"), 0);
}

/// Signs in with short-lived access tokens, so the next access-token call refreshes.
pub(crate) async fn signed_in_with_stale_token(w: &World) -> uuid::Uuid {
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    w.fake.set_access_token_ttl(60);
    let (status, _, page) = w.sign_in(id).await;
    assert_eq!(status, 200, "{page}");
    w.fake.set_access_token_ttl(3600);
    id
}

async fn revoked_grant_requires_reauthorization(app: TestApp) {
    let w = world(app).await;
    let id = signed_in_with_stale_token(&w).await;
    w.fake.revoke_user(MAILBOX);
    let err = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect_err("revoked");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(409), Some("reauth_required"))
    );
    let mailbox = w.status(id).await;
    assert_eq!(mailbox.status, MailboxStatus::ReauthRequired);
    let detail = mailbox.status_detail.expect("detail");
    assert_eq!(detail.code, "grant_revoked");
    assert!(detail.message.contains("AADSTS50173"), "{}", detail.message);
    // Signing in again makes it active.
    let (status, _, _) = w.sign_in(id).await;
    assert_eq!(status, 200);
    assert_eq!(w.status(id).await.status, MailboxStatus::Active);
}

async fn throttling_is_waited_out(app: TestApp) {
    let w = world(app).await;
    let id = signed_in_with_stale_token(&w).await;
    w.fake.inject(Fault::TooManyRequests {
        retry_after_secs: 1,
    });
    let started = Instant::now();
    let token = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("token after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert!(!token.access_token.is_empty());
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        2,
        "one throttled call, one successful"
    );
    let mailbox = w.status(id).await;
    assert_eq!(
        mailbox.status,
        MailboxStatus::Active,
        "throttling is not an authorization failure"
    );
}

async fn fifty_callers_one_refresh(app: TestApp) {
    let w = world(app).await;
    let id = signed_in_with_stale_token(&w).await;
    w.fake.set_latency(Duration::from_millis(200));
    let service = w.service();
    let calls = (0..50).map(|_| {
        let s = service.clone();
        async move {
            s.mailbox_access_token()
                .id(id)
                .send()
                .await
                .expect("token")
                .into_inner()
                .access_token
        }
    });
    let tokens = futures_util::future::join_all(calls).await;
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        1,
        "exactly one refresh for 50 callers"
    );
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "all got the same token"
    );
}

async fn two_instances_one_refresh(app: TestApp) {
    let w = world(app).await;
    let id = signed_in_with_stale_token(&w).await;
    let other = w.app.sibling().await;
    w.fake.set_latency(Duration::from_millis(300));
    let mut calls = Vec::new();
    for i in 0..50 {
        let sdk = if i % 2 == 0 {
            w.service()
        } else {
            other.sdk(&other.token("acme", &["service"]))
        };
        calls.push(async move {
            sdk.mailbox_access_token()
                .id(id)
                .send()
                .await
                .expect("token")
                .into_inner()
                .access_token
        });
    }
    let tokens = futures_util::future::join_all(calls).await;
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        1,
        "one refresh across two instances"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

async fn crash_before_commit_recovers(app: TestApp) {
    let w = world(app).await;
    let id = signed_in_with_stale_token(&w).await;
    w.app
        .services
        .keeper
        .crash_before_commit
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect_err("crashed");
    assert_eq!(err.http_status(), Some(500));
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        1,
        "Microsoft answered; nothing was stored"
    );
    // "After restart": another instance (the crashed one still holds the lease until it lapses).
    let restarted = w.app.sibling().await;
    let sdk = restarted.sdk(&restarted.token("acme", &["service"]));
    let token = sdk
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("refreshes after the lease lapsed");
    assert!(!token.access_token.is_empty());
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        2,
        "the old refresh token still works"
    );
    assert_eq!(w.status(id).await.status, MailboxStatus::Active);
}

async fn app_only_mailbox_and_verify(app: TestApp) {
    let w = world(app).await;
    let verified = w
        .admin
        .app_credential_verify()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    let id = w
        .mailbox("robot@contoso.cz", AccessMode::AppOnly, false)
        .await;
    let refreshed = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner();
    assert!(refreshed.authorization_url.is_none());
    assert_eq!(refreshed.mailbox.status, MailboxStatus::Active);
    let validity = refreshed
        .mailbox
        .validity_days
        .expect("the secret's days left");
    assert!((199..=200).contains(&validity), "{validity}");
    assert_eq!(w.fake.token_calls("client_credentials"), 2);
    let token = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("token")
        .into_inner();
    assert_eq!(token.smtp_user, "robot@contoso.cz");

    let setup = w
        .admin
        .app_credential_setup()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("setup")
        .into_inner();
    assert_eq!(setup.redirect_uri, format!("{}/oauth/callback", w.app.base));
    let consent = w
        .admin
        .app_credential_admin_consent()
        .id(w.app_credential_id)
        .body(inboxlink_sdk::types::AdminConsentRequest { return_url: None })
        .send()
        .await
        .expect("consent link")
        .into_inner();
    assert!(
        consent
            .admin_consent_url
            .contains(&format!("/{TENANT}/v2.0/adminconsent"))
    );
    assert!(
        setup
            .powershell
            .iter()
            .any(|l| l.contains(&format!("New-ServicePrincipal -AppId '{CLIENT_ID}'")))
    );
    assert!(
        setup
            .powershell
            .iter()
            .any(|l| l.contains("Add-MailboxPermission -Identity 'robot@contoso.cz'"))
    );

    // A wrong secret is explained, and the credential says so.
    let update = inboxlink_sdk::types::AppCredentialUpdate {
        client_secret: Some("Wrong~secret.value.123".into()),
        ..Default::default()
    };
    w.admin
        .app_credential_update()
        .id(w.app_credential_id)
        .body(update)
        .send()
        .await
        .expect("update");
    let verified = w
        .admin
        .app_credential_verify()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("verify")
        .into_inner();
    assert!(!verified.ok);
    assert_eq!(verified.code, "invalid_client_secret");
    assert_eq!(verified.aadsts, Some(7000215));
    assert!(verified.hint.expect("hint").contains("Value"));
    let setup = w
        .admin
        .app_credential_setup()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("setup")
        .into_inner();
    assert_eq!(
        setup.problem.expect("flagged").code,
        "invalid_client_secret"
    );
    // Its app-only mailbox says why, and a new refresh fails the same way, audited.
    let mailbox = w.status(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Error);
    assert_eq!(
        mailbox.status_detail.expect("why").code,
        "invalid_client_secret"
    );
    let err = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect_err("the secret is wrong");
    assert_eq!(err.code(), Some("app_credential_invalid"));
    let events = w.admin.audit_event_list().send().await.expect("audit");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.action == "mailbox.app_only_token_failed"
                && e.outcome == "invalid_client_secret"),
        "the failed app-only refresh is audited"
    );
}

async fn return_url_and_admin_consent(app: TestApp) {
    let w = world(app).await;
    let w = World {
        app: restart_with(
            &w.app,
            &[
                ("INBOXLINK_MS_AUTHORITY", w.fake.authority()),
                (
                    "INBOXLINK_RETURN_URL_ALLOWLIST",
                    "https://portal.example.cz/mailboxes".into(),
                ),
            ],
        )
        .await,
        ..w
    };
    w.fake
        .add_redirect_uri(CLIENT_ID, &format!("{}/oauth/callback", w.app.base));
    let admin = w.app.admin("acme");
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let err = admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest {
            return_url: Some("https://evil.example.com/".into()),
        })
        .send()
        .await
        .expect_err("not allowed");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(422), Some("validation_failed"))
    );
    let started = admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest {
            return_url: Some("https://portal.example.cz/mailboxes/done".into()),
        })
        .send()
        .await
        .expect("allowed")
        .into_inner();
    let to_callback = browser()
        .get(started.authorization_url.expect("url"))
        .send()
        .await
        .expect("authorize");
    let location = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let back = browser().get(location).send().await.expect("callback");
    assert_eq!(back.status(), 303);
    let target = back.headers()["location"].to_str().expect("location");
    assert!(
        target.starts_with("https://portal.example.cz/mailboxes/done?"),
        "{target}"
    );
    assert!(
        target.contains(&format!("mailbox_id={id}")) && target.contains("outcome=signed_in"),
        "{target}"
    );

    let consent = admin
        .app_credential_admin_consent()
        .id(w.app_credential_id)
        .body(inboxlink_sdk::types::AdminConsentRequest { return_url: None })
        .send()
        .await
        .expect("consent link")
        .into_inner();
    let to_callback = browser()
        .get(&consent.admin_consent_url)
        .send()
        .await
        .expect("consent");
    let location = to_callback.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let (status, _, page) = callback(&location).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("admin_consent_granted"), "{page}");
    let setup = admin
        .app_credential_setup()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("setup")
        .into_inner();
    // Reported by the browser; verify confirms it with a token request.
    use inboxlink_sdk::types::AdminConsentStatus;
    assert_eq!(setup.admin_consent.status, AdminConsentStatus::Reported);
    assert_eq!(setup.admin_consent.tenant.as_deref(), Some(TENANT));
    assert!(setup.admin_consent.established_at.is_none());
    let verified = admin
        .app_credential_verify()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.ok);
    assert_eq!(
        verified.admin_consent.status,
        AdminConsentStatus::Established
    );
    let setup = admin
        .app_credential_setup()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("setup")
        .into_inner();
    assert_eq!(setup.admin_consent.status, AdminConsentStatus::Established);
    assert!(setup.admin_consent.established_at.is_some());
}

/// The PKCE verifier of the (only) pending sign-in, decrypted.
async fn stored_verifier(app: &TestApp) -> String {
    let cipher = app.services.cipher.clone();
    app.services
        .store
        .query(move |c| {
            use diesel::prelude::*;
            use inboxlink::store::schema::authorizations::dsl::*;
            let (row_id, sealed): (String, Option<String>) = authorizations
                .select((id, pkce_verifier))
                .first(c)
                .expect("a pending sign-in");
            let sealed = sealed.expect("a verifier");
            assert!(sealed.starts_with("v1."), "stored as ciphertext");
            let slot = inboxlink::crypto::Slot {
                table: "authorizations",
                column: "pkce_verifier",
                row_id: &row_id,
            };
            Ok(secrecy::ExposeSecret::expose_secret(
                &cipher.decrypt_string(&sealed, slot).expect("decrypts"),
            )
            .to_owned())
        })
        .await
        .expect("verifier")
}

/// The mailbox's stored refresh token, decrypted.
async fn stored_refresh_token(app: &TestApp, mailbox: uuid::Uuid) -> String {
    let cipher = app.services.cipher.clone();
    let mid = mailbox.to_string();
    app.services
        .store
        .query(move |c| {
            use diesel::prelude::*;
            use inboxlink::store::schema::mailboxes::dsl::*;
            let sealed: Option<String> = mailboxes
                .filter(id.eq(&mid))
                .select(refresh_token)
                .first(c)
                .expect("row");
            let sealed = sealed.expect("a refresh token");
            assert!(sealed.starts_with("v1."), "stored as ciphertext");
            let slot = inboxlink::crypto::Slot {
                table: "mailboxes",
                column: "refresh_token",
                row_id: &mid,
            };
            Ok(secrecy::ExposeSecret::expose_secret(
                &cipher.decrypt_string(&sealed, slot).expect("decrypts"),
            )
            .to_owned())
        })
        .await
        .expect("refresh token")
}

async fn rotated_refresh_tokens_are_used(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    // Access tokens live 60 s, so every access-token call refreshes.
    w.fake.set_access_token_ttl(60);
    let (status, _, _) = w.sign_in(id).await;
    assert_eq!(status, 200);
    let first = stored_refresh_token(&w.app, id).await;
    w.service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("refresh 1");
    let second = stored_refresh_token(&w.app, id).await;
    assert_ne!(first, second, "the rotated refresh token is stored");
    // 60 days on, then 60 more: the first refresh token (120 days old) would be
    // expired (AADSTS700082); each refresh must present the newest one.
    w.fake.advance_time(Duration::from_secs(60 * 86_400));
    w.service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("refresh 2");
    w.fake.advance_time(Duration::from_secs(60 * 86_400));
    w.service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("refresh 3 with the newest token");
    assert_eq!(w.fake.token_calls("refresh_token"), 3);
    assert_eq!(w.status(id).await.status, MailboxStatus::Active);
}

async fn outage_keeps_status_and_records_the_error(app: TestApp) {
    let w = world(app).await;
    let id = signed_in_with_stale_token(&w).await;
    for _ in 0..3 {
        w.fake.inject(Fault::ServerError);
    }
    let err = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect_err("Microsoft is down");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(503), Some("unavailable"))
    );
    assert_eq!(w.fake.token_calls("refresh_token"), 3, "bounded retries");
    let mailbox = w.status(id).await;
    assert_eq!(
        mailbox.status,
        MailboxStatus::Active,
        "an outage is not an authorization failure"
    );
    assert_eq!(
        mailbox.last_error.expect("recorded").code,
        "microsoft_unavailable"
    );
    w.service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect("works again");
    assert!(
        w.status(id).await.last_error.is_none(),
        "cleared by the next success"
    );
}

async fn expiring_when_the_refresh_token_nears_its_end(app: TestApp) {
    let w = world(app).await;
    let id = w.mailbox(MAILBOX, AccessMode::Delegated, false).await;
    let (status, _, _) = w.sign_in(id).await;
    assert_eq!(status, 200);
    crate::keepalive::age(&w, id, 80).await;
    let mailbox = w.status(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Expiring);
    assert_eq!(mailbox.validity_days, Some(10));
    let expiring = w
        .admin
        .mailbox_list()
        .status(MailboxStatus::Expiring)
        .send()
        .await
        .expect("list")
        .into_inner();
    assert_eq!(expiring.items.len(), 1);
    let active = w
        .admin
        .mailbox_list()
        .status(MailboxStatus::Active)
        .send()
        .await
        .expect("list")
        .into_inner();
    assert!(active.items.is_empty());
}

#[tokio::test]
async fn callback_without_state_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, headers, page) = callback(&format!("{}/oauth/callback?code=abc", app.base)).await;
    assert_eq!(status, 400);
    assert!(page.contains("invalid_state"));
    assert_eq!(headers["cache-control"], "no-store");
}

/// Changing what a mailbox was authorized for (here: the shared flag, which
/// decides whose identity is pinned) ends its grant at once: a refresh that
/// was already under way cannot write the old grant's tokens back, and a
/// sign-in started before the change cannot complete.
async fn changed_settings_end_the_grant(app: TestApp) {
    let w = world(app).await;
    let id = signed_in_with_stale_token(&w).await;
    let pending = w
        .admin
        .mailbox_refresh()
        .id(id)
        .body(RefreshRequest { return_url: None })
        .send()
        .await
        .expect("refresh")
        .into_inner()
        .authorization_url
        .expect("url");

    w.fake.set_latency(Duration::from_millis(600));
    let service = w.service();
    let in_flight = tokio::spawn(async move { service.mailbox_access_token().id(id).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let changed = w
        .admin
        .mailbox_update()
        .id(id)
        .body(inboxlink_sdk::types::MailboxUpdate {
            shared: Some(true),
            ..Default::default()
        })
        .send()
        .await
        .expect("update")
        .into_inner();
    assert_eq!(changed.status, MailboxStatus::Inactive);
    let _ = in_flight.await.expect("task");
    w.fake.set_latency(Duration::ZERO);
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        1,
        "the refresh did run"
    );

    let mailbox = w.status(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Inactive, "{mailbox:?}");
    assert!(mailbox.authorized_as.is_none());
    let err = w
        .service()
        .mailbox_access_token()
        .id(id)
        .send()
        .await
        .expect_err("no grant any more");
    assert_eq!(err.code(), Some("mailbox_not_authorized"));

    let codes_before = w.fake.token_calls("authorization_code");
    let (status, _, page) = follow(&pending).await;
    assert_eq!(status, 400, "the old sign-in is cancelled: {page}");
    assert_eq!(w.fake.token_calls("authorization_code"), codes_before);
    assert_eq!(w.status(id).await.status, MailboxStatus::Inactive);
}

/// Microsoft refusing the app credential during a refresh flags the
/// credential, and every mailbox using it says why; once Microsoft accepts
/// the fixed credential again (verify), they are all active again.
async fn a_broken_app_credential_shows_on_all_its_mailboxes(app: TestApp) {
    let w = world(app).await;
    let first = signed_in_with_stale_token(&w).await;
    let second = w
        .mailbox("info@contoso.cz", AccessMode::Delegated, false)
        .await;
    let (status, _, page) = w.sign_in(second).await;
    assert_eq!(status, 200, "{page}");
    w.fake.expire_secret(CLIENT_ID, SECRET);

    let err = w
        .service()
        .mailbox_access_token()
        .id(first)
        .send()
        .await
        .expect_err("the secret expired");
    assert_eq!(
        (err.http_status(), err.code()),
        (Some(409), Some("app_credential_invalid"))
    );
    for id in [first, second] {
        let mailbox = w.status(id).await;
        assert_eq!(mailbox.status, MailboxStatus::Error, "{mailbox:?}");
        let detail = mailbox.status_detail.expect("says why");
        assert_eq!(detail.code, "client_secret_expired");
        assert!(detail.message.contains("7000222"), "{}", detail.message);
        assert!(detail.hint.is_some_and(|h| h.contains("new client secret")));
    }
    let credential = w
        .admin
        .app_credential_get()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("credential")
        .into_inner();
    let problem = credential.problem.expect("the credential is flagged");
    assert_eq!(problem.code, "client_secret_expired");
    let listed = w
        .admin
        .mailbox_list()
        .status(inboxlink_sdk::types::MailboxStatus::Error)
        .send()
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2, "the status filter agrees");

    // The administrator creates a new secret, enters it and verifies it.
    let renewed = "Nw8~renewed.secret_value-for-the_fake";
    w.fake.register_app(TENANT, CLIENT_ID, renewed);
    w.admin
        .app_credential_update()
        .id(w.app_credential_id)
        .body(inboxlink_sdk::types::AppCredentialUpdate {
            client_secret: Some(renewed.into()),
            ..Default::default()
        })
        .send()
        .await
        .expect("update");
    let verified = w
        .admin
        .app_credential_verify()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("verify")
        .into_inner();
    assert!(verified.ok, "{verified:?}");
    for id in [first, second] {
        let mailbox = w.status(id).await;
        assert_eq!(mailbox.status, MailboxStatus::Active, "{mailbox:?}");
        assert!(mailbox.status_detail.is_none());
    }
    let credential = w
        .admin
        .app_credential_get()
        .id(w.app_credential_id)
        .send()
        .await
        .expect("credential");
    assert!(credential.problem.is_none());
    w.service()
        .mailbox_access_token()
        .id(first)
        .send()
        .await
        .expect("tokens again with the new secret");
}

/// During an outage, callers queued behind a refresh that failed (after its
/// bounded retries) get its answer: Microsoft is asked three times in all,
/// not three times per caller.
async fn callers_queued_behind_a_failed_refresh_share_its_answer(app: TestApp) {
    let w = world(app).await;
    let id = signed_in_with_stale_token(&w).await;
    for _ in 0..30 {
        w.fake.inject(Fault::ServerError);
    }
    let service = w.service();
    let calls = (0..10).map(|_| {
        let s = service.clone();
        async move { s.mailbox_access_token().id(id).send().await }
    });
    let answers = futures_util::future::join_all(calls).await;
    for answer in answers {
        let err = answer.expect_err("Microsoft is down");
        assert_eq!(
            (err.http_status(), err.code()),
            (Some(503), Some("unavailable"))
        );
    }
    assert_eq!(
        w.fake.token_calls("refresh_token"),
        3,
        "one caller's bounded retries, shared by the others"
    );
    assert_eq!(w.status(id).await.status, MailboxStatus::Active);
}
