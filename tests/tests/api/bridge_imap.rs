//! The bridge's IMAP listener with a real client (Python's `imaplib`,
//! `bridge_imap.py`) against the private Dovecot as the mailbox's server:
//! LOGIN and AUTHENTICATE PLAIN, SELECT, FETCH, LOGOUT through the relay;
//! a 10 MB message fetched byte for byte; IDLE woken by a new message; an
//! expired access token refreshed once at login; wrong and revoked
//! passwords; a token the server refuses and a mailbox that must sign in
//! again, each explained; two organisations with one address, each
//! password reaching its own mailbox; the session limit; the idle
//! time-out; no password and no protocol line in the log. Clients that hang
//! up mid-command: `bridge_disconnects.rs`.

use std::time::Duration;

use inboxlink_sdk::types::{CheckStepStatus, MailboxStatus};
use serde_json::Value;

use crate::bridge::new_password_of;
use crate::check::{Rig, real_servers, rig};
use crate::helpers::{
    Api, MAILBOX, ORG, TestApp, TestAppBuilder, backend_tests, fake_app_credential_body, follow,
    logs, mailbox_body,
};

/// The rig with the bridge's IMAP listener on a free port.
pub(crate) async fn bridge_rig(
    app: TestAppBuilder,
    tune: impl Fn(&mut inboxlink::config::Settings) + Send + Sync + 'static,
) -> Rig {
    let app = app.with_settings(move |s| {
        s.bridge.imap_bind = Some("127.0.0.1:0".parse().expect("address"));
        tune(s);
    });
    rig(app, real_servers).await
}

/// `GET /bridge`: the IMAP listener's port and the certificate's fingerprint.
pub(crate) async fn listener(app: &TestApp) -> (u16, String) {
    let answer = app
        .call_as(&app.token(ORG, &["viewer"]), "GET", "/bridge", None)
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let b = &answer.body;
    assert_eq!(b["imap"]["enabled"], true, "{b}");
    assert_eq!(b["self_signed"], true, "{b}");
    let address = b["imap"]["address"].as_str().expect("address");
    let port = address
        .rsplit_once(':')
        .expect("host:port")
        .1
        .parse()
        .expect("port");
    (
        port,
        b["tls_fingerprint_sha256"]
            .as_str()
            .expect("fingerprint")
            .to_owned(),
    )
}

/// Runs the Python client `script` (in `tests/api/`) with `args`; the JSON
/// object it prints.
pub(crate) async fn python_client(script: &str, args: Vec<String>) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api")
        .join(script);
    let mut command = std::process::Command::new("python3");
    command.arg(path).args(&args);
    // A blocking wait, off the runtime that serves the bridge.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the client's task")
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script's JSON")
}

/// Runs the imaplib client; its JSON answer.
async fn imaplib(mode: &str, port: u16, user: &str, password: &str, extra: &[&str]) -> Value {
    let mut args: Vec<String> = [mode, &port.to_string(), user, password]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    python_client("bridge_imap.py", args).await
}

/// Waits (at most 10 s) until no session of `protocol` is open: a session
/// ends, and is logged and counted, just after its client saw the end.
pub(crate) async fn no_open_sessions(app: &TestApp, protocol: &str) {
    let series = format!(r#"inboxlink_bridge_sessions_active{{protocol="{protocol}"}}"#);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = crate::operations::value(&crate::operations::scrape(app).await, &series);
        if open == 0.0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} {protocol} sessions still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A signed-in mailbox with 3 messages and a bridge password for it.
pub(crate) async fn ready(rig: &Rig) -> String {
    rig.sign_in().await;
    rig.dovecot.deliver(MAILBOX, 3);
    let created = new_password_of(&rig.app, ORG, rig.app.mailbox_id(), "Scanner").await;
    created["password"].as_str().expect("password").to_owned()
}

backend_tests!(imaplib_logs_in_selects_fetches_and_logs_out_through_the_bridge);
async fn imaplib_logs_in_selects_fetches_and_logs_out_through_the_bridge(app: TestAppBuilder) {
    let rig = bridge_rig(app, |_| {}).await;
    let password = ready(&rig).await;
    let (port, fingerprint) = listener(&rig.app).await;

    let got = imaplib("session", port, MAILBOX, &password, &[]).await;
    assert_eq!(
        got["fingerprint"],
        fingerprint.as_str(),
        "GET /bridge names the certificate shown"
    );
    assert!(
        got["greeting"]
            .as_str()
            .expect("greeting")
            .contains("Inboxlink bridge")
    );
    let before: Vec<&str> = got["capabilities_before"]
        .as_array()
        .expect("caps")
        .iter()
        .map(|c| c.as_str().expect("cap"))
        .collect();
    assert!(
        before.contains(&"AUTH=PLAIN") && !before.contains(&"IDLE"),
        "{before:?}"
    );
    assert_eq!(got["login"][0], "OK", "{got}");
    // After the login the capabilities are the upstream's (Dovecot's).
    let after = got["capabilities_after"].to_string();
    assert!(
        after.contains("IDLE") && !after.contains("AUTH=PLAIN"),
        "{after}"
    );
    assert_eq!(got["exists"], 3, "Dovecot's INBOX, through the relay");
    let message = got["message"].as_str().expect("message");
    assert!(message.contains("Subject: Test message 1"), "{message}");
    assert!(message.contains(&format!("To: <{MAILBOX}>")), "{message}");
    assert_eq!(got["logout"], "BYE");
    assert_eq!(
        (&got["plain"], &got["plain_exists"]),
        (&Value::from("OK"), &Value::from(3))
    );

    // curl, as an administrator tries it (AUTHENTICATE PLAIN with an initial response).
    let url = format!("imaps://127.0.0.1:{port}/INBOX;MAILINDEX=2");
    let user = format!("{MAILBOX}:{password}");
    let mut command = std::process::Command::new("curl");
    command.args([
        "--silent",
        "--show-error",
        "--insecure",
        "--max-time",
        "30",
        "--user",
        &user,
        &url,
    ]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the client's task")
        .expect("curl runs");
    let fetched = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(fetched.contains("Subject: Test message 2"), "{fetched}");

    // Wrong and unknown credentials: the same answer, AUTHENTICATIONFAILED.
    let mut wrong = password.clone();
    wrong.replace_range(password.len() - 4.., "aaaa");
    for (user, pass) in [
        (MAILBOX, wrong.as_str()),
        ("nobody@contoso.cz", password.as_str()),
        (MAILBOX, "hunter2"),
    ] {
        let got = imaplib("refused", port, user, pass, &[]).await;
        let error = got["error"].as_str().expect("refused");
        assert!(error.contains("[AUTHENTICATIONFAILED]"), "{user}: {error}");
    }
    // Revoked: refused at once.
    let list = rig
        .app
        .admin_call(
            "GET",
            &format!("/mailboxes/{}/bridge-passwords", rig.app.mailbox_id()),
            None,
        )
        .await;
    let id = list.body["items"][0]["id"].as_str().expect("id").to_owned();
    let path = format!("/mailboxes/{}/bridge-passwords/{id}", rig.app.mailbox_id());
    assert_eq!(rig.app.admin_call("DELETE", &path, None).await.status, 204);
    let got = imaplib("refused", port, MAILBOX, &password, &[]).await;
    assert!(
        got["error"]
            .as_str()
            .expect("refused")
            .contains("[AUTHENTICATIONFAILED]"),
        "{got}"
    );

    // Neither the password nor a protocol line reached the log.
    let log = logs();
    let bare = password.replace('-', "");
    assert!(
        !log.contains(&password) && !log.contains(&bare[8..]),
        "a password in the log"
    );
    let bridge_lines: Vec<&str> = log.lines().filter(|l| l.contains("bridge IMAP")).collect();
    assert!(
        bridge_lines
            .iter()
            .any(|l| l.contains("bridge IMAP session ended")),
        "sessions are logged"
    );
    for line in bridge_lines {
        assert!(
            !line.contains("SELECT") && !line.contains("Test message") && !line.contains("LOGIN"),
            "a protocol line in the log: {line}"
        );
    }
}

backend_tests!(a_refused_token_and_a_mailbox_to_sign_in_again_are_explained);
async fn a_refused_token_and_a_mailbox_to_sign_in_again_are_explained(app: TestAppBuilder) {
    let rig = bridge_rig(app, |_| {}).await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let id = rig.app.mailbox_id();
    // A mailbox a server refused before works again once a login is accepted.
    rig.app
        .execute("UPDATE mailboxes SET status = 'error', status_code = 'imap_auth_failed'")
        .await;
    let got = imaplib("refused", port, MAILBOX, &password, &[]).await;
    assert_eq!(got["error"], "OK", "{got}");
    let mut status = rig.app.mailbox(id).await.status;
    for _ in 0..50 {
        if status == MailboxStatus::Active {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = rig.app.mailbox(id).await.status;
    }
    assert_eq!(status, MailboxStatus::Active, "the acceptance is recorded");

    // The grant is revoked at Microsoft: the stored token is refused upstream.
    rig.app.fake().revoke_user(MAILBOX);
    let got = imaplib("refused", port, MAILBOX, &password, &[]).await;
    let error = got["error"].as_str().expect("refused");
    assert!(
        error.contains("[AUTHENTICATIONFAILED]") && error.contains("refused Inboxlink's token"),
        "{error}"
    );
    assert!(error.contains("sign in again"), "the fix: {error}");
    // The mailbox's status says the same, once (a second refusal changes nothing).
    let _ = imaplib("refused", port, MAILBOX, &password, &[]).await;
    let mailbox = rig.app.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::Error);
    let detail = mailbox.status_detail.expect("a detail");
    assert_eq!(detail.code, "imap_auth_failed");
    assert!(detail.message.contains("IMAP server refused"), "{detail:?}");
    assert!(
        detail
            .hint
            .as_deref()
            .unwrap_or_default()
            .contains("sign in again"),
        "{detail:?}"
    );
    let rows = crate::bridge::audited(&rig.app, "mailbox.bridge_upstream_refused").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["outcome"], "imap_auth_failed");
    let metrics = crate::operations::scrape(&rig.app).await;
    let failures =
        r#"inboxlink_bridge_upstream_failures_total{code="imap_auth_failed",protocol="imap"}"#;
    assert_eq!(crate::operations::value(&metrics, failures), 2.0);

    // Its token runs out: the keeper's refresh is refused, the mailbox must sign in again.
    rig.app
        .execute("UPDATE mailboxes SET access_token_expires_at = '2001-01-01 00:00:00'")
        .await;
    let got = imaplib("refused", port, MAILBOX, &password, &[]).await;
    let error = got["error"].as_str().expect("refused");
    assert!(
        error.contains("[AUTHENTICATIONFAILED]") && error.contains("reauth_required"),
        "{error}"
    );
    assert!(error.contains("Sign in again"), "the fix: {error}");
    let mailbox = rig.app.mailbox(id).await;
    assert_eq!(mailbox.status, MailboxStatus::ReauthRequired);
}

backend_tests!(a_mailbox_has_a_session_limit_and_idle_sessions_end);
async fn a_mailbox_has_a_session_limit_and_idle_sessions_end(app: TestAppBuilder) {
    let rig = bridge_rig(app, |s| {
        s.bridge.sessions_per_mailbox = 1;
        s.bridge.imap_idle = Duration::from_secs(1);
    })
    .await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let got = imaplib("two", port, MAILBOX, &password, &[]).await;
    let second = got["second"].as_str().expect("second");
    assert!(second.contains("[LIMIT]"), "{second}");
    assert_eq!(got["after_logout"], "OK", "the place is free again: {got}");

    let got = imaplib("idle", port, MAILBOX, &password, &["3"]).await;
    let after = got["after"].as_str().expect("after");
    assert!(
        after.contains("Nothing was sent") || after.contains("EOF"),
        "{after}"
    );
}

backend_tests!(a_revoked_passwords_open_session_ends);
async fn a_revoked_passwords_open_session_ends(app: TestAppBuilder) {
    let rig = bridge_rig(app, |s| {
        s.bridge.password_recheck = Duration::from_millis(200);
    })
    .await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let passwords = format!("/mailboxes/{}/bridge-passwords", rig.app.mailbox_id());
    let list = rig.app.admin_call("GET", &passwords, None).await;
    let id = list.body["items"][0]["id"].as_str().expect("id").to_owned();
    // The client logs in and waits 4 s before its next command; meanwhile
    // the password is revoked.
    let client = {
        let password = password.clone();
        tokio::spawn(async move { imaplib("idle", port, MAILBOX, &password, &["4"]).await })
    };
    // Once it is logged in (its password's last use is recorded at the login).
    for _ in 0..200 {
        let list = rig.app.admin_call("GET", &passwords, None).await;
        if list.body["items"][0]["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The login's answer is on its way; the client then waits before its next command.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = format!("/mailboxes/{}/bridge-passwords/{id}", rig.app.mailbox_id());
    assert_eq!(rig.app.admin_call("DELETE", &path, None).await.status, 204);
    let got = client.await.expect("the client");
    let after = got["after"].as_str().expect("after");
    assert!(
        after.contains("revoked") || after.contains("EOF"),
        "the session ended: {after}"
    );
    assert_ne!(after, "OK");
}

backend_tests!(failed_logins_are_limited_and_the_limit_lifts);
async fn failed_logins_are_limited_and_the_limit_lifts(app: TestAppBuilder) {
    // Long enough for a client started under load to meet the refusal.
    let wait = Duration::from_secs(5);
    let rig = bridge_rig(app, move |s| s.bridge.failed_login_wait = wait).await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let mut wrong = password.clone();
    wrong.replace_range(password.len() - 4.., "aaaa");
    // Five wrong passwords for the user name (one connection each)…
    for _ in 0..5 {
        let got = imaplib("refused", port, MAILBOX, &wrong, &[]).await;
        let error = got["error"].as_str().expect("refused");
        assert!(
            error.contains("Invalid user name or bridge password"),
            "{error}"
        );
    }
    // …and even the right one is refused for a while, without a check.
    let got = imaplib("refused", port, MAILBOX, &password, &[]).await;
    let error = got["error"].as_str().expect("refused");
    assert!(
        error.contains("[AUTHENTICATIONFAILED] Too many failed logins"),
        "{error}"
    );
    let metrics = crate::operations::scrape(&rig.app).await;
    let limited = r#"inboxlink_bridge_logins_refused_total{protocol="imap",reason="limited"}"#;
    assert_eq!(crate::operations::value(&metrics, limited), 1.0);
    // The limit lifts after its time; the right password works again.
    tokio::time::sleep(wait + Duration::from_millis(500)).await;
    let got = imaplib("refused", port, MAILBOX, &password, &[]).await;
    assert_eq!(got["error"], "OK", "{got}");
}

backend_tests!(the_check_logs_in_through_the_bridge);
async fn the_check_logs_in_through_the_bridge(app: TestAppBuilder) {
    let rig = bridge_rig(app, |s| {
        s.bridge.sessions_per_mailbox = 1;
    })
    .await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let bridge_step = |report: &inboxlink_sdk::types::CheckReport| {
        let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.last(), Some(&"bridge"), "the last step: {names:?}");
        report.steps.last().expect("a step").clone()
    };
    let report = rig.app.admin().check(rig.app.mailbox_id(), false).await;
    let step = bridge_step(&report);
    assert!(report.ok, "{report:?}");
    assert_eq!(step.status, CheckStepStatus::Ok, "{step:?}");
    assert!(
        step.response
            .as_deref()
            .unwrap_or_default()
            .contains("Logged in through the Inboxlink bridge"),
        "{step:?}"
    );

    // The mailbox's one place is taken by a client: the bridge's own login
    // is refused, and the step says why in the bridge's words.
    let client = {
        let password = password.clone();
        tokio::spawn(async move { imaplib("idle", port, MAILBOX, &password, &["3"]).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = rig.app.admin().check(rig.app.mailbox_id(), false).await;
    let step = bridge_step(&report);
    assert!(!report.ok);
    assert_eq!(step.status, CheckStepStatus::Failed, "{step:?}");
    assert_eq!(step.code.as_deref(), Some("bridge_login_failed"));
    assert!(
        step.response
            .as_deref()
            .unwrap_or_default()
            .contains("[LIMIT]"),
        "{step:?}"
    );
    assert_eq!(client.await.expect("the client")["after"], "OK");

    // A token the server refuses fails the IMAP steps; the bridge's is skipped.
    rig.app.fake().revoke_user(MAILBOX);
    let report = rig.app.admin().check(rig.app.mailbox_id(), false).await;
    assert_eq!(bridge_step(&report).status, CheckStepStatus::Skipped);
    // A one-time credential is good for nothing else.
    let log = logs();
    assert!(
        !log.contains("inboxlink-check-"),
        "the probe's password in the log"
    );
}

/// A message of at least `size` bytes as a scanner sends one: headers, then
/// random bytes in base64 lines (CRLF, as Dovecot serves them).
fn large_message(size: usize) -> Vec<u8> {
    use base64::Engine;
    use rand::RngCore;
    let mut message = format!(
        "From: <scanner@contoso.cz>\r\nTo: <{MAILBOX}>\r\nSubject: Scan of the archive\r\n\
         MIME-Version: 1.0\r\nContent-Type: application/pdf\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    let mut random = vec![0; size / 4 * 3];
    rand::rng().fill_bytes(&mut random);
    let text = base64::engine::general_purpose::STANDARD.encode(random);
    for line in text.as_bytes().chunks(76) {
        message.extend_from_slice(line);
        message.extend_from_slice(b"\r\n");
    }
    message
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

backend_tests!(a_10_mb_message_is_fetched_through_the_bridge_byte_for_byte);
async fn a_10_mb_message_is_fetched_through_the_bridge_byte_for_byte(app: TestAppBuilder) {
    let rig = bridge_rig(app, |_| {}).await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let message = large_message(10 * 1024 * 1024);
    rig.dovecot.deliver_raw(MAILBOX, &message);

    let got = imaplib("large", port, MAILBOX, &password, &[]).await;
    assert_eq!(got["fetch"], "OK", "{got}");
    assert_eq!(got["size"], message.len(), "RFC822.SIZE: {got}");
    assert_eq!(got["length"], message.len(), "{got}");
    assert_eq!(
        got["sha256"],
        sha256_hex(&message),
        "the bytes Dovecot holds, unchanged"
    );
}

backend_tests!(idle_through_the_bridge_is_woken_by_a_new_message);
async fn idle_through_the_bridge_is_woken_by_a_new_message(app: TestAppBuilder) {
    use std::io::BufRead;
    let rig = bridge_rig(app, |_| {}).await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/bridge_imap.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .args(["idle_wake", &port.to_string(), MAILBOX, &password])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    // Blocking reads, off the runtime that serves the bridge.
    let (mut stdout, idling) = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).map(|_| (stdout, line))
    })
    .await
    .expect("the client's task")
    .expect("the client's first line");
    assert_eq!(
        idling.trim(),
        r#"{"idling": true}"#,
        "the server accepted IDLE"
    );

    rig.dovecot.deliver(MAILBOX, 1);
    let output = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest)?;
        child.wait_with_output().map(|o| (o, rest))
    })
    .await
    .expect("the client's task");
    let (output, rest) = output.expect("the client ends");
    assert!(
        output.status.success(),
        "imaplib idle_wake: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_str(&rest).expect("the script's JSON");
    assert_eq!(got["exists_before"], 3, "{got}");
    assert!(
        got["continuation"]
            .as_str()
            .expect("continuation")
            .starts_with('+'),
        "{got}"
    );
    assert_eq!(got["woken_by"], "* 4 EXISTS", "the new message: {got}");
    assert!(
        got["done"].as_str().expect("done").starts_with("OK"),
        "IDLE ended with DONE: {got}"
    );
    assert_eq!(got["logout"], "BYE");
}

backend_tests!(an_expired_access_token_is_refreshed_at_login);
async fn an_expired_access_token_is_refreshed_at_login(app: TestAppBuilder) {
    let rig = bridge_rig(app, |_| {}).await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let refreshes = || rig.app.fake().token_calls("refresh_token");
    assert_eq!(refreshes(), 0, "a fresh sign-in needs no refresh");
    rig.app
        .execute("UPDATE mailboxes SET access_token_expires_at = '2001-01-01 00:00:00'")
        .await;

    let got = imaplib("select", port, MAILBOX, &password, &[]).await;
    assert_eq!(got["exists"], 3, "logged in and selected: {got}");
    assert_eq!(refreshes(), 1, "the keeper refreshed the token once");
    // The next login takes the refreshed token as it is.
    let got = imaplib("select", port, MAILBOX, &password, &[]).await;
    assert_eq!(
        (&got["exists"], &got["logout"]),
        (&Value::from(3), &Value::from("BYE"))
    );
    assert_eq!(refreshes(), 1, "no second refresh");
    let mailbox = rig.app.mailbox(rig.app.mailbox_id()).await;
    assert_eq!(mailbox.status, inboxlink_sdk::types::MailboxStatus::Active);
}

backend_tests!(a_wrong_password_is_refused_without_waiting_for_the_upstream);
/// A login takes the token and opens the upstream connection while the
/// password's hash is checked; a wrong password is refused as soon as the
/// hash says so, without waiting for them (here a slow refresh), and
/// leaves the grant as it was.
async fn a_wrong_password_is_refused_without_waiting_for_the_upstream(app: TestAppBuilder) {
    let rig = bridge_rig(app, |_| {}).await;
    let password = ready(&rig).await;
    let (port, _) = listener(&rig.app).await;
    let expire = "UPDATE mailboxes SET access_token_expires_at = '2001-01-01 00:00:00'";
    rig.app.execute(expire).await;
    // Long enough that a refusal which waited for the refresh cannot pass
    // for one that did not, even with a slow start of Python on a busy machine.
    let latency = Duration::from_secs(5);
    rig.app.fake().set_latency(latency);
    let mut wrong = password.clone();
    wrong.replace_range(password.len() - 4.., "aaaa");
    let started = std::time::Instant::now();
    let got = imaplib("refused", port, MAILBOX, &wrong, &[]).await;
    let error = got["error"].as_str().expect("refused");
    assert!(
        error.contains("Invalid user name or bridge password"),
        "{error}"
    );
    assert!(
        started.elapsed() < latency - Duration::from_secs(2),
        "the refusal waited for the refresh: {:?}",
        started.elapsed()
    );
    // Whatever the refused login had started, the right password gets in.
    rig.app.fake().set_latency(Duration::ZERO);
    let got = imaplib("select", port, MAILBOX, &password, &[]).await;
    assert_eq!(got["exists"], 3, "logged in and selected: {got}");
    let mailbox = rig.app.mailbox(rig.app.mailbox_id()).await;
    assert_eq!(mailbox.status, inboxlink_sdk::types::MailboxStatus::Active);
}

backend_tests!(two_organisations_with_one_address_each_reach_their_own_over_imap);
async fn two_organisations_with_one_address_each_reach_their_own_over_imap(app: TestAppBuilder) {
    let rig = bridge_rig(app, |_| {}).await;
    let acme_password = ready(&rig).await;
    let acme_mailbox = rig.app.mailbox_id();
    let (port, _) = listener(&rig.app).await;
    let globex = rig.app.admin_of("globex");
    let credential = globex
        .create_app_credential(fake_app_credential_body("Globex"))
        .await;
    let globex_mailbox = globex
        .create_mailbox(mailbox_body(MAILBOX, credential))
        .await;
    let created = new_password_of(&rig.app, "globex", globex_mailbox, "Scanner").await;
    let globex_password = created["password"].as_str().expect("password").to_owned();
    let tag = |id: uuid::Uuid| id.simple().to_string()[24..].to_owned();

    // Globex's mailbox has not signed in yet: its password reaches that
    // mailbox (no token), acme's the same address's mailbox of acme.
    let got = imaplib("refused", port, MAILBOX, &globex_password, &[]).await;
    let error = got["error"].as_str().expect("refused");
    assert!(
        error.contains("[AUTHENTICATIONFAILED]") && error.contains("mailbox_not_authorized"),
        "{error}"
    );
    let got = imaplib("select", port, MAILBOX, &acme_password, &[]).await;
    assert_eq!(got["exists"], 3, "{got}");

    // Signed in, globex's reaches its own, by the address or the tagged name;
    // acme's password with globex's tagged name reaches nothing.
    let page = follow(&globex.sign_in_url(globex_mailbox).await).await;
    assert_eq!(page.status, 200, "{page}");
    for user in [
        MAILBOX.to_owned(),
        format!("{MAILBOX}#{}", tag(globex_mailbox)),
    ] {
        let got = imaplib("select", port, &user, &globex_password, &[]).await;
        assert_eq!(got["exists"], 3, "{user}: {got}");
    }
    let crossed = format!("{MAILBOX}#{}", tag(globex_mailbox));
    let got = imaplib("refused", port, &crossed, &acme_password, &[]).await;
    let error = got["error"].as_str().expect("refused");
    assert!(
        error.contains("Invalid user name or bridge password"),
        "{error}"
    );

    // Each session was the mailbox of its password.
    no_open_sessions(&rig.app, "imap").await;
    let log = logs();
    let sessions_of = |mailbox: uuid::Uuid| {
        log.lines()
            .filter(|l| l.contains("bridge IMAP session ended"))
            .filter(|l| l.contains(&mailbox.to_string()))
            .count()
    };
    assert_eq!(
        (sessions_of(acme_mailbox), sessions_of(globex_mailbox)),
        (1, 2)
    );
}
