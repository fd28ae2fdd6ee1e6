//! The connection check against a real Dovecot (IMAP + submission) that
//! validates tokens through the fake Entra ID's introspection endpoint.

use std::time::Duration;

use inboxlink::config::Endpoint;
use inboxlink_sdk::types::{CheckReport, CheckStepStatus};
use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa, UntrustedTlsServer};

use crate::helpers::{Api, MAILBOX, TestApp, TestAppBuilder, backend_tests, logs};

/// The service with the fake Entra ID and [`MAILBOX`], a Dovecot validating
/// its tokens, and an SMTP sink as relay.
pub(crate) struct Rig {
    pub(crate) app: TestApp,
    pub(crate) dovecot: Dovecot,
    pub(crate) sink: SmtpSink,
    _dir: tempfile::TempDir,
}

pub(crate) async fn rig(
    app: TestAppBuilder,
    endpoints: impl FnOnce(&Dovecot, &SmtpSink, &std::path::Path) -> (String, String),
) -> Rig {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeEntra::start().await;
    let ca = TestCa::generate(dir.path());
    let sink = SmtpSink::start();
    let dovecot = Dovecot::start(&fake.introspection_url(), &ca, &sink).expect("Dovecot starts");
    let (imap, smtp) = endpoints(&dovecot, &sink, dir.path());
    let (imap, smtp, ca_file) = (endpoint(&imap), endpoint(&smtp), ca.ca_file());
    let app = app
        .with_started_fake_entra(fake)
        .with_mailbox()
        .with_settings(move |s| {
            s.imap_endpoint = Some(imap.clone());
            s.smtp_endpoint = Some(smtp.clone());
            s.extra_root_ca = Some(ca_file.clone());
            s.check_step_timeout = Duration::from_secs(5);
        })
        .start()
        .await;
    Rig {
        app,
        dovecot,
        sink,
        _dir: dir,
    }
}

/// `host:port` as the settings hold it.
fn endpoint(host_port: &str) -> Endpoint {
    let (host, port) = host_port.rsplit_once(':').expect("host:port");
    Endpoint {
        host: host.to_owned(),
        port: port.parse().expect("port"),
    }
}

pub(crate) fn real_servers(d: &Dovecot, _: &SmtpSink, _: &std::path::Path) -> (String, String) {
    (d.imap_endpoint(), d.submission_endpoint())
}

impl Rig {
    pub(crate) async fn sign_in(&self) {
        self.app.sign_in_ok(self.app.mailbox_id()).await;
    }

    /// Signs in, then checks.
    async fn signed_in_check(&self, send_test_message: bool) -> CheckReport {
        self.sign_in().await;
        self.check(send_test_message).await
    }

    async fn check(&self, send_test_message: bool) -> CheckReport {
        let admin = self.app.admin();
        admin.check(self.app.mailbox_id(), send_test_message).await
    }

    async fn last_check_ok(&self) -> bool {
        let mailbox = self.app.mailbox(self.app.mailbox_id()).await;
        mailbox.last_check.expect("stored").ok
    }
}

fn step<'a>(report: &'a CheckReport, name: &str) -> &'a inboxlink_sdk::types::CheckStep {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("step {name} in {report:?}"))
}

/// Asserts that exactly one step failed, `name` with `code`.
#[track_caller]
fn assert_failed_at(report: &CheckReport, name: &str, code: &str) {
    assert_eq!(failure(report), (name.to_owned(), code.to_owned()));
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

backend_tests!(a_connected_mailbox_checks_ok);
async fn a_connected_mailbox_checks_ok(app: TestAppBuilder) {
    let rig = rig(app, real_servers).await;
    rig.dovecot.deliver(MAILBOX, 3);
    let report = rig.signed_in_check(true).await;
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

    let mailbox = rig.app.mailbox(rig.app.mailbox_id()).await;
    let last = mailbox.last_check.expect("stored");
    assert!(last.ok);
    assert_eq!(last.steps.len(), report.steps.len());

    let token = rig.app.service().access_token(rig.app.mailbox_id()).await;
    let token = token.expect("token");
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
    let rig = rig(TestApp::new(), real_servers).await;
    rig.app.fake().set_token_length(2048);
    let report = rig.signed_in_check(false).await;
    assert!(report.ok, "a 2 KB token: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_fails_imap_auth_with_a_hint() {
    let rig = rig(TestApp::new(), real_servers).await;
    rig.sign_in().await;
    rig.app.fake().revoke_user(MAILBOX);
    let report = rig.check(false).await;
    assert!(!report.ok);
    assert_failed_at(&report, "imap_auth", "imap_auth_failed");
    let hint = step(&report, "imap_auth").hint.clone().expect("hint");
    assert!(hint.contains("IMAP"), "{hint}");
    assert_eq!(
        step(&report, "smtp_connect").status,
        CheckStepStatus::Skipped,
        "stops at the first failure"
    );
    assert!(!rig.last_check_ok().await, "the last check failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_during_the_check() {
    let rig = rig(TestApp::new(), real_servers).await;
    rig.app.fake().set_access_token_ttl(60);
    rig.sign_in().await;
    rig.app.fake().set_access_token_ttl(3600);
    let report = rig.check(false).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(
        rig.app.fake().token_calls("refresh_token"),
        1,
        "the keeper refreshed the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_dovecot_is_unreachable() {
    let mut rig = rig(TestApp::new(), real_servers).await;
    rig.sign_in().await;
    rig.dovecot.stop();
    let report = rig.check(false).await;
    assert_failed_at(&report, "imap_connect", "unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_before_any_credentials() {
    let untrusted = std::sync::Arc::new(std::sync::Mutex::new(None::<UntrustedTlsServer>));
    let slot = untrusted.clone();
    let rig = rig(TestApp::new(), move |d, _, dir| {
        let server = UntrustedTlsServer::start(dir);
        let endpoint = server.endpoint();
        *slot.lock().expect("slot") = Some(server);
        (endpoint, d.submission_endpoint())
    })
    .await;
    let report = rig.signed_in_check(false).await;
    assert_failed_at(&report, "imap_connect", "tls_certificate_untrusted");
    let server = untrusted.lock().expect("slot").take().expect("server");
    assert_eq!(server.received_bytes(), 0, "no credentials were sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_without_starttls_is_refused_before_auth() {
    let rig = rig(TestApp::new(), |d, sink, _| {
        (d.imap_endpoint(), sink.endpoint())
    })
    .await;
    let report = rig.signed_in_check(true).await;
    assert_failed_at(&report, "smtp_starttls", "smtp_starttls_unavailable");
    assert_eq!(step(&report, "smtp_auth").status, CheckStepStatus::Skipped);
    assert!(rig.sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorized_mailbox_fails_at_the_token_step() {
    let rig = rig(TestApp::new(), real_servers).await;
    let report = rig.check(false).await;
    assert_failed_at(&report, "token", "mailbox_not_authorized");
    assert!(
        report
            .steps
            .iter()
            .skip(1)
            .all(|s| s.status == CheckStepStatus::Skipped)
    );
}
