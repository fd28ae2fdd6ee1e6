//! The connection check against a real Dovecot (IMAP + submission) that
//! validates tokens through the fake Entra ID's introspection endpoint.

use inboxlink::config::Backend;
use inboxlink_sdk::types::{
    CheckReport, CheckRequest, CheckStepStatus, MailboxCreate, RefreshRequest,
};
use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa, UntrustedTlsServer};

use crate::helpers::{TestApp, backend_tests, logs};

const TENANT: &str = "7a1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c";
const CLIENT_ID: &str = "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const SECRET: &str = "Zq8~check.secret-value_xyz";
const MAILBOX: &str = "podatelna@contoso.cz";

backend_tests!(a_connected_mailbox_checks_ok);

/// The service, the fake Entra ID, a Dovecot validating its tokens, and an SMTP sink as relay.
struct Rig {
    app: TestApp,
    fake: FakeEntra,
    dovecot: Dovecot,
    sink: SmtpSink,
    admin: inboxlink_sdk::Client,
    mailbox: uuid::Uuid,
    _dir: tempfile::TempDir,
}

async fn rig(
    app: TestApp,
    endpoints: impl FnOnce(&Dovecot, &SmtpSink, &std::path::Path) -> (String, String),
) -> Rig {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeEntra::start().await;
    fake.register_app(TENANT, CLIENT_ID, SECRET);
    let ca = TestCa::generate(dir.path());
    let sink = SmtpSink::start();
    let dovecot = Dovecot::start(&fake.introspection_url(), &ca, &sink).expect("Dovecot starts");
    let (imap, smtp) = endpoints(&dovecot, &sink, dir.path());
    let app = app
        .with(&[
            ("INBOXLINK_MS_AUTHORITY", fake.authority()),
            ("INBOXLINK_IMAP_ENDPOINT", imap),
            ("INBOXLINK_SMTP_ENDPOINT", smtp),
            (
                "INBOXLINK_EXTRA_ROOT_CA",
                ca.ca_file().display().to_string(),
            ),
            ("INBOXLINK_CHECK_TIMEOUT_SECONDS", "5".into()),
        ])
        .await;
    fake.add_redirect_uri(CLIENT_ID, &format!("{}/oauth/callback", app.base));
    let admin = app.admin("acme");
    let body = inboxlink_sdk::types::AppCredentialCreate {
        name: "E-filing".into(),
        provider: None,
        client_id: CLIENT_ID.into(),
        tenant_id: TENANT.into(),
        client_secret: SECRET.into(),
        secret_expires_at: None,
    };
    let cred = admin
        .app_credential_create()
        .body(body)
        .send()
        .await
        .expect("credential")
        .id;
    let body = MailboxCreate {
        email: MAILBOX.into(),
        app_credential_id: cred,
        access_mode: None,
        shared: None,
    };
    let mailbox = admin
        .mailbox_create()
        .body(body)
        .send()
        .await
        .expect("mailbox")
        .id;
    Rig {
        app,
        fake,
        dovecot,
        sink,
        admin,
        mailbox,
        _dir: dir,
    }
}

fn real_servers(d: &Dovecot, _: &SmtpSink, _: &std::path::Path) -> (String, String) {
    (d.imap_endpoint(), d.submission_endpoint())
}

impl Rig {
    async fn sign_in(&self) {
        let started = self
            .admin
            .mailbox_refresh()
            .id(self.mailbox)
            .body(RefreshRequest { return_url: None })
            .send()
            .await
            .expect("refresh")
            .into_inner();
        let browser = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let to_callback = browser
            .get(started.authorization_url.expect("url"))
            .send()
            .await
            .expect("authorize");
        let location = to_callback.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let page = browser.get(location).send().await.expect("callback");
        assert_eq!(page.status(), 200);
    }

    async fn check(&self, send_test_message: bool) -> CheckReport {
        self.admin
            .mailbox_check()
            .id(self.mailbox)
            .body(CheckRequest {
                send_test_message: Some(send_test_message),
            })
            .send()
            .await
            .expect("check")
            .into_inner()
    }
}

fn step<'a>(report: &'a CheckReport, name: &str) -> &'a inboxlink_sdk::types::CheckStep {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("step {name} in {report:?}"))
}

/// The first failed step: its name and code.
fn failure(report: &CheckReport) -> (String, String) {
    let failed: Vec<_> = report
        .steps
        .iter()
        .filter(|s| s.status == CheckStepStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "exactly one failed step: {report:?}");
    assert!(
        failed[0].hint.as_deref().is_some_and(|h| !h.is_empty()),
        "a failed step says what to do"
    );
    (
        failed[0].name.clone(),
        failed[0].code.clone().expect("a code"),
    )
}

async fn a_connected_mailbox_checks_ok(app: TestApp) {
    let rig = rig(app, real_servers).await;
    rig.dovecot.deliver(MAILBOX, 3);
    rig.sign_in().await;
    let report = rig.check(true).await;
    assert!(report.ok, "{report:?}");
    let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "token",
            "imap_connect",
            "imap_auth",
            "imap_select",
            "imap_logout",
            "smtp_connect",
            "smtp_starttls",
            "smtp_auth",
            "smtp_send",
            "smtp_quit"
        ]
    );
    assert!(
        report.steps.iter().all(|s| s.status == CheckStepStatus::Ok),
        "{report:?}"
    );
    assert!(
        step(&report, "imap_select")
            .response
            .as_deref()
            .is_some_and(|r| r.contains("3 messages")),
        "{report:?}"
    );
    let sent = rig.sink.messages();
    assert_eq!(sent.len(), 1, "the test message reached the relay");
    assert_eq!(sent[0].mail_from, MAILBOX);
    assert_eq!(sent[0].rcpt_to, vec![MAILBOX.to_owned()]);

    let mailbox = rig
        .admin
        .mailbox_get()
        .id(rig.mailbox)
        .send()
        .await
        .expect("mailbox")
        .into_inner();
    let last = mailbox.last_check.expect("stored");
    assert!(last.ok);
    assert_eq!(last.steps.len(), report.steps.len());

    let token = rig
        .app
        .sdk(&rig.app.token("acme", &["service"]))
        .mailbox_access_token()
        .id(rig.mailbox)
        .send()
        .await
        .expect("token");
    let json = serde_json::to_string(&report).expect("json");
    assert!(
        !json.contains(&token.access_token),
        "no token in the report"
    );
    assert!(
        !logs().contains(&token.access_token),
        "no token in the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_tokens_pass_smtp() {
    let rig = rig(TestApp::spawn(Backend::Sqlite).await, real_servers).await;
    rig.fake.set_token_length(2048);
    rig.sign_in().await;
    let report = rig.check(false).await;
    assert!(report.ok, "a 2 KB token: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_fails_imap_auth_with_a_hint() {
    let rig = rig(TestApp::spawn(Backend::Sqlite).await, real_servers).await;
    rig.sign_in().await;
    rig.fake.revoke_user(MAILBOX);
    let report = rig.check(false).await;
    assert!(!report.ok);
    assert_eq!(
        failure(&report),
        ("imap_auth".into(), "imap_auth_failed".into())
    );
    let hint = step(&report, "imap_auth").hint.clone().expect("hint");
    assert!(hint.contains("IMAP"), "{hint}");
    assert_eq!(
        step(&report, "smtp_connect").status,
        CheckStepStatus::Skipped,
        "stops at the first failure"
    );
    let mailbox = rig
        .admin
        .mailbox_get()
        .id(rig.mailbox)
        .send()
        .await
        .expect("mailbox")
        .into_inner();
    assert!(
        !mailbox.last_check.expect("stored").ok,
        "the last check failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_during_the_check() {
    let rig = rig(TestApp::spawn(Backend::Sqlite).await, real_servers).await;
    rig.fake.set_access_token_ttl(60);
    rig.sign_in().await;
    rig.fake.set_access_token_ttl(3600);
    let report = rig.check(false).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(
        rig.fake.token_calls("refresh_token"),
        1,
        "the keeper refreshed the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_dovecot_is_unreachable() {
    let mut rig = rig(TestApp::spawn(Backend::Sqlite).await, real_servers).await;
    rig.sign_in().await;
    rig.dovecot.stop();
    let report = rig.check(false).await;
    assert_eq!(
        failure(&report),
        ("imap_connect".into(), "unreachable".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_before_any_credentials() {
    let untrusted = std::sync::Arc::new(std::sync::Mutex::new(None::<UntrustedTlsServer>));
    let slot = untrusted.clone();
    let rig = rig(TestApp::spawn(Backend::Sqlite).await, move |d, _, dir| {
        let server = UntrustedTlsServer::start(dir);
        let endpoint = server.endpoint();
        *slot.lock().expect("slot") = Some(server);
        (endpoint, d.submission_endpoint())
    })
    .await;
    rig.sign_in().await;
    let report = rig.check(false).await;
    assert_eq!(
        failure(&report),
        ("imap_connect".into(), "tls_certificate_untrusted".into())
    );
    let server = untrusted.lock().expect("slot").take().expect("server");
    assert_eq!(server.received_bytes(), 0, "no credentials were sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_without_starttls_is_refused_before_auth() {
    let rig = rig(TestApp::spawn(Backend::Sqlite).await, |d, sink, _| {
        (d.imap_endpoint(), sink.endpoint())
    })
    .await;
    rig.sign_in().await;
    let report = rig.check(true).await;
    assert_eq!(
        failure(&report),
        ("smtp_starttls".into(), "smtp_starttls_unavailable".into())
    );
    assert_eq!(step(&report, "smtp_auth").status, CheckStepStatus::Skipped);
    assert!(rig.sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorized_mailbox_fails_at_the_token_step() {
    let rig = rig(TestApp::spawn(Backend::Sqlite).await, real_servers).await;
    let report = rig.check(false).await;
    assert_eq!(
        failure(&report),
        ("token".into(), "mailbox_not_authorized".into())
    );
    assert!(
        report
            .steps
            .iter()
            .skip(1)
            .all(|s| s.status == CheckStepStatus::Skipped)
    );
}
