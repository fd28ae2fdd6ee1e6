//! The bridge's SMTP listeners with a real client (Python's `smtplib`,
//! `bridge_smtp.py`) against the private Dovecot's submission, which relays
//! to the SMTP sink: STARTTLS before AUTH, AUTH PLAIN and LOGIN, a message
//! that arrives with its envelope and bytes, another sender refused with
//! 550 5.7.1, a wrong password, implicit TLS, curl with `--ssl-reqd`; a
//! 1 MB 8-bit message in a pipelined transaction, each reply in order; a
//! declared size above the advertised one refused with 552 5.3.4; a shared
//! mailbox sending as itself through its delegate, and no other sender.

use serde_json::{Value, json};

use inboxlink_tests::fake_entra::SignIn;

use crate::bridge::new_password_of;
use crate::bridge_imap::{bridge_rig, ready};
use crate::helpers::{MAILBOX, ORG, TestApp, TestAppBuilder, backend_tests};

const TO: &str = "spisovna@contoso.cz";

/// The message a scanner sends: 8-bit text, and a line that starts with a dot.
const MESSAGE: &str = "From: <podatelna@contoso.cz>\r\nTo: <spisovna@contoso.cz>\r\nSubject: Scan 42\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nDokument naskenován: příloha.\r\n.a line that starts with a dot\r\n";

/// The ports of `GET /bridge`: SMTP (STARTTLS) and SMTPS.
pub(crate) async fn ports(app: &TestApp) -> (u16, u16) {
    let answer = app
        .call_as(&app.token(ORG, &["service"]), "GET", "/bridge", None)
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let port = |name: &str| -> u16 {
        let b = &answer.body[name];
        assert_eq!(b["enabled"], true, "{name}: {}", answer.body);
        let address = b["address"].as_str().expect("address");
        address
            .rsplit_once(':')
            .expect("host:port")
            .1
            .parse()
            .expect("port")
    };
    (port("smtp"), port("smtps"))
}

async fn smtplib(mode: &str, port: u16, user: &str, password: &str) -> Value {
    smtplib_sending(mode, port, user, password, MESSAGE.as_bytes().to_vec()).await
}

/// Runs the Python client with `message` on its standard input, sending as
/// the rig's mailbox; its JSON answer.
async fn smtplib_sending(
    mode: &str,
    port: u16,
    user: &str,
    password: &str,
    message: Vec<u8>,
) -> Value {
    smtplib_from(mode, port, user, password, MAILBOX, message).await
}

/// [`smtplib_sending`] with `sender` as the envelope's sender.
async fn smtplib_from(
    mode: &str,
    port: u16,
    user: &str,
    password: &str,
    sender: &str,
    message: Vec<u8>,
) -> Value {
    use std::io::Write;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/bridge_smtp.py");
    let mut command = std::process::Command::new("python3");
    command
        .arg(script)
        .args([mode, &port.to_string(), user, password, sender, TO])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn()?;
        child.stdin.take().expect("stdin").write_all(&message)?;
        child.wait_with_output()
    })
    .await
    .expect("the client's task")
    .expect("python3 runs");
    if !output.status.success() {
        let log = crate::helpers::logs();
        let bridge: Vec<&str> = log.lines().filter(|l| l.contains("bridge SMTP")).collect();
        panic!(
            "smtplib {mode}: {}\nthe bridge's log: {bridge:#?}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).expect("the script's JSON")
}

/// The rig with the bridge's SMTP and SMTPS listeners (and IMAP's) on free ports.
async fn smtp_rig(app: TestAppBuilder) -> crate::check::Rig {
    bridge_rig(app, |s| {
        s.bridge.smtp_bind = Some("127.0.0.1:0".parse().expect("address"));
        s.bridge.smtps_bind = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await
}

backend_tests!(smtplib_sends_through_the_bridge_with_its_envelope_and_bytes);
async fn smtplib_sends_through_the_bridge_with_its_envelope_and_bytes(app: TestAppBuilder) {
    let rig = smtp_rig(app).await;
    let password = ready(&rig).await;
    let (smtp, smtps) = ports(&rig.app).await;

    let got = smtplib("send", smtp, MAILBOX, &password).await;
    let before = got["before_tls"].to_string();
    assert!(
        before.contains("starttls") && !before.contains("auth"),
        "AUTH only after STARTTLS: {before}"
    );
    assert_eq!(got["auth_before_tls"][0], 530, "{got}");
    let after = got["after_tls"].to_string();
    for feature in ["auth", "size", "8bitmime", "pipelining"] {
        assert!(after.contains(feature), "{feature}: {after}");
    }
    assert_eq!(got["login"], 235);
    assert_eq!(got["other_sender"][0], 550, "{got}");
    let why = got["other_sender"][1].as_str().expect("text");
    assert!(why.starts_with("5.7.1 ") && why.contains(MAILBOX), "{why}");
    assert_eq!(got["refused_rcpts"], json!({}), "every recipient accepted");
    assert_eq!(got["quit"], 221);
    assert_eq!(got["login_mechanism"], 235, "AUTH LOGIN");

    // The message reached the sink (through Dovecot) as it was sent.
    let messages = rig.sink.messages();
    assert_eq!(messages.len(), 1, "only the mailbox's own message went out");
    let m = &messages[0];
    assert_eq!(
        (m.mail_from.as_str(), m.rcpt_to.clone()),
        (MAILBOX, vec![TO.to_owned()])
    );
    assert!(
        m.data.ends_with(MESSAGE),
        "the bytes arrived unchanged: {:?}",
        m.data
    );

    // Implicit TLS.
    let got = smtplib("smtps", smtps, MAILBOX, &password).await;
    assert_eq!(
        (&got["login"], &got["refused_rcpts"]),
        (&json!(235), &json!({})),
        "{got}"
    );
    assert_eq!(rig.sink.messages().len(), 2);

    // A wrong password: 535 5.7.8.
    let mut wrong = password.clone();
    wrong.replace_range(password.len() - 4.., "aaaa");
    let got = smtplib("refused", smtp, MAILBOX, &wrong).await;
    assert_eq!(got["login"][0], 535, "{got}");
    assert!(
        got["login"][1].as_str().expect("text").starts_with("5.7.8"),
        "{got}"
    );
    // curl, as an administrator tries it.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("message.eml");
    std::fs::write(&file, MESSAGE).expect("the message");
    let user = format!("{MAILBOX}:{password}");
    let url = format!("smtp://127.0.0.1:{smtp}");
    let mut command = std::process::Command::new("curl");
    command.args([
        "--silent",
        "--show-error",
        "--insecure",
        "--ssl-reqd",
        "--max-time",
        "30",
    ]);
    command.args([
        "--user",
        &user,
        "--mail-from",
        MAILBOX,
        "--mail-rcpt",
        TO,
        "--upload-file",
    ]);
    command.arg(&file).arg(&url);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the client's task")
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let messages = rig.sink.messages();
    assert_eq!(messages.len(), 3);
    assert!(
        messages[2].data.ends_with(MESSAGE),
        "{:?}",
        messages[2].data
    );

    // Microsoft revokes the grant: the server refuses the token, the client is told.
    rig.app.fake().revoke_user(MAILBOX);
    let got = smtplib("refused", smtp, MAILBOX, &password).await;
    assert_eq!(got["login"][0], 535, "{got}");
    let why = got["login"][1].as_str().expect("text");
    assert!(
        why.contains("refused Inboxlink's login") && why.contains("smtp_auth_failed"),
        "{why}"
    );

    // Counted by outcome and reason (smtplib tries PLAIN, then LOGIN).
    let metrics = crate::operations::scrape(&rig.app).await;
    let value = |series: &str| crate::operations::value(&metrics, series);
    assert!(
        value(r#"inboxlink_bridge_sessions_total{outcome="quit",protocol="smtp"}"#) >= 3.0,
        "{metrics}"
    );
    assert_eq!(
        value(r#"inboxlink_bridge_logins_refused_total{protocol="smtp",reason="wrong"}"#),
        2.0
    );
    assert_eq!(
        value(
            r#"inboxlink_bridge_logins_refused_total{protocol="smtp",reason="upstream_refused"}"#
        ),
        2.0
    );

    // Nothing a client sent reached the log, nor a password.
    let log = crate::helpers::logs();
    assert!(!log.contains(&password) && !log.contains("Scan 42"));
}

/// A message of more than 1 MB in 8-bit UTF-8 text, some lines starting with a dot.
fn large_8bit_message() -> String {
    let mut message = format!(
        "From: <{MAILBOX}>\r\nTo: <{TO}>\r\nSubject: Archiv 2026\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    );
    let mut i = 0;
    while message.len() <= 1024 * 1024 {
        let dot = if i % 100 == 0 { "." } else { "" };
        message.push_str(&format!(
            "{dot}Řádek {i}: příliš žluťoučký kůň úpěl ďábelské ódy.\r\n"
        ));
        i += 1;
    }
    message
}

backend_tests!(a_pipelined_8bit_message_and_a_declared_size_over_the_limit);
async fn a_pipelined_8bit_message_and_a_declared_size_over_the_limit(app: TestAppBuilder) {
    let rig = smtp_rig(app).await;
    let password = ready(&rig).await;
    let (smtp, _) = ports(&rig.app).await;
    let message = large_8bit_message();

    let got = smtplib_sending(
        "pipelined",
        smtp,
        MAILBOX,
        &password,
        message.clone().into(),
    )
    .await;
    assert_eq!(got["login"], 235, "{got}");
    let codes = |name: &str| -> Vec<u64> {
        let replies = got[name].as_array().expect("replies");
        replies
            .iter()
            .map(|r| r[0].as_u64().expect("code"))
            .collect()
    };
    // Refused here, then the server's own answers to what followed, in order.
    let other = codes("other_sender");
    assert_eq!(other[0], 550, "{got}");
    assert!(
        got["other_sender"][0][1]
            .as_str()
            .expect("text")
            .starts_with("5.7.1 "),
        "{got}"
    );
    assert!(
        other[1..].iter().all(|c| (500..600).contains(c)),
        "no transaction without MAIL: {got}"
    );
    assert_eq!(codes("envelope"), [250, 250, 250, 354], "{got}");
    assert_eq!(codes("message"), [250, 221], "{got}");

    let messages = rig.sink.messages();
    assert_eq!(messages.len(), 1, "only the mailbox's own message went out");
    let m = &messages[0];
    assert_eq!(
        (m.mail_from.as_str(), m.rcpt_to.clone()),
        (MAILBOX, vec![TO.to_owned()])
    );
    assert!(
        m.data.ends_with(&message),
        "the {} bytes arrived unchanged",
        message.len()
    );
    assert!(
        rig.sink
            .commands()
            .iter()
            .any(|c| c.starts_with("MAIL FROM:") && c.contains("BODY=8BITMIME")),
        "sent on as 8-bit: {:?}",
        rig.sink.commands()
    );

    // smtplib declares a message's size when SIZE is offered: one larger than
    // the advertised limit is refused before any of it is sent, and the session goes on.
    let got = smtplib("too_large", smtp, MAILBOX, &password).await;
    assert_eq!(got["too_large"][0], 552, "{got}");
    assert!(
        got["too_large"][1]
            .as_str()
            .expect("text")
            .starts_with("5.3.4 "),
        "{got}"
    );
    assert_eq!((&got["then"], &got["quit"]), (&json!({}), &json!(221)));
    assert_eq!(rig.sink.messages().len(), 2, "only the small one went out");
}

backend_tests!(a_shared_mailbox_sends_as_itself_through_its_delegate);
/// A shared mailbox's bridge password: the bridge authenticates upstream as
/// the delegate who signed in, and the envelope's sender is the shared
/// address; any other sender, the delegate's own address included, is
/// refused by the bridge.
async fn a_shared_mailbox_sends_as_itself_through_its_delegate(app: TestAppBuilder) {
    const SHARED: &str = "info@contoso.cz";
    let rig = smtp_rig(app).await;
    let shared = rig.app.new_mailbox_with(SHARED, |b| b.shared(true)).await;
    // The delegate is the rig's mailbox user, whom Dovecot knows.
    rig.app.fake().next_sign_in(SignIn::As(MAILBOX.into()));
    rig.app.sign_in_ok(shared).await;
    let created = new_password_of(&rig.app, ORG, shared, "Shared scanner").await;
    assert_eq!(created["username"], SHARED);
    let password = created["password"].as_str().expect("password");
    let (_, smtps) = ports(&rig.app).await;

    let message = MESSAGE.as_bytes().to_vec();
    let got = smtplib_from("smtps", smtps, SHARED, password, SHARED, message.clone()).await;
    assert_eq!(
        (&got["login"], &got["refused_rcpts"]),
        (&json!(235), &json!({})),
        "{got}"
    );
    let got = smtplib_from("smtps", smtps, SHARED, password, MAILBOX, message).await;
    assert_eq!(got["refused"][0], 550, "the delegate's own address: {got}");
    let why = got["refused"][1].as_str().expect("text");
    assert!(why.starts_with("5.7.1 ") && why.contains(SHARED), "{why}");

    let messages = rig.sink.messages();
    assert_eq!(
        messages.len(),
        1,
        "only the shared mailbox's message went out"
    );
    assert_eq!(
        (messages[0].mail_from.as_str(), messages[0].rcpt_to.clone()),
        (SHARED, vec![TO.to_owned()])
    );
    assert!(messages[0].data.ends_with(MESSAGE));
}
