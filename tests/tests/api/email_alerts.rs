//! E-mail alerts: an event becomes a message from the organisation's own
//! mailbox, through the private Dovecot's submission (XOAUTH2) to its SMTP
//! relay, read back with Python's `email` package; a flapping mailbox is
//! told once in 10 minutes; a sender that cannot send shows on the alert.

use std::time::Duration;

use inboxlink::codes::Code;
use serde_json::{Value, json};

use crate::check::{real_servers, rig};
use crate::helpers::{Api, MAILBOX, TestAppBuilder, backend_tests};

const WATCHED: &str = "info@contoso.cz";
const ADMIN: &str = "spravce@contoso.cz";

/// The subject and the text of a message, decoded by Python's `email` package.
fn decode(message: &str) -> (String, String) {
    let script = "import email, sys\n\
        from email.header import decode_header, make_header\n\
        m = email.message_from_string(sys.stdin.read())\n\
        print(str(make_header(decode_header(m['Subject']))))\n\
        print(m.get_payload(decode=True).decode(m.get_content_charset() or 'utf-8'))\n";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3 ran");
    assert!(out.status.success(), "python3 parses the message");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (subject, body) = text.split_once('\n').expect("subject line");
    (subject.to_owned(), body.to_owned())
}

backend_tests!(an_alert_tells_people_in_czech_what_happened_and_what_to_do);
async fn an_alert_tells_people_in_czech_what_happened_and_what_to_do(app: TestAppBuilder) {
    let app = app.with_settings(|s| {
        s.notify.frontend_url = Some("https://spisovka.example.org/".parse().expect("url"));
    });
    let rig = rig(app, real_servers).await;
    rig.sign_in().await;
    let app = &rig.app;
    app.fake().set_access_token_ttl(60);
    let watched = app.new_mailbox(WATCHED).await;
    app.sign_in_ok(watched).await;
    app.fake().set_access_token_ttl(3600);
    let created = app
        .admin_call(
            "POST",
            "/email-alerts",
            Some(&json!({ "to": [ADMIN], "sender_mailbox_id": app.mailbox_id() })),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["language"], "cs");
    assert_eq!(created.body["all_events"], true);
    let alert = created.body["id"].as_str().expect("id").to_owned();

    // The watched mailbox's grant is revoked.
    app.fake().revoke_user(WATCHED);
    app.service()
        .access_token(watched)
        .await
        .expect_err("revoked");
    let code = app.mailbox(watched).await.status_detail.expect("why").code;
    let to_admin = || {
        rig.sink
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_to == [ADMIN])
            .collect::<Vec<_>>()
    };
    for _ in 0..500 {
        if !to_admin().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = to_admin();
    assert_eq!(sent.len(), 1, "one message to the administrator");
    assert_eq!(
        sent[0].mail_from, MAILBOX,
        "from the organisation's mailbox"
    );
    let (subject, body) = decode(&sent[0].data);
    assert!(subject.contains(WATCHED), "{subject}");
    assert!(subject.contains("vyžaduje nové přihlášení"), "{subject}");
    let (cause, fix) = Code::parse(&code)
        .and_then(Code::czech)
        .expect("the code has Czech text");
    assert!(body.contains(cause), "the cause in Czech: {body}");
    assert!(body.contains(fix), "the fix in Czech: {body}");
    assert!(
        body.contains(&format!("https://spisovka.example.org/mailboxes/{watched}")),
        "{body}"
    );

    // Signed in again at once: the same kind of event within 10 minutes is not sent.
    app.sign_in_ok(watched).await;
    assert_eq!(app.events("mailbox.status_changed").await.len(), 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        to_admin().len(),
        1,
        "a flapping mailbox does not flood anyone"
    );
    let view = app
        .admin_call("GET", &format!("/email-alerts/{alert}"), None)
        .await;
    assert!(view.body["last_error"].is_null(), "{:?}", view.body);
}

backend_tests!(a_sender_that_cannot_send_shows_on_the_alert_and_as_an_event);
async fn a_sender_that_cannot_send_shows_on_the_alert_and_as_an_event(app: TestAppBuilder) {
    let app = app
        .with_mailbox()
        .with_settings(|s| {
            s.notify.schedule = inboxlink::hooks::schedule::Schedule::parse("100ms").expect("ok")
        })
        .start()
        .await;
    // The sender never signed in.
    let created = app
        .admin_call(
            "POST",
            "/email-alerts",
            Some(&json!({
                "to": [ADMIN], "sender_mailbox_id": app.mailbox_id(),
                "events": ["mailbox.created"], "language": "en",
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let alert = created.body["id"].as_str().expect("id").to_owned();
    for email in ["a@contoso.cz", "b@contoso.cz"] {
        app.new_mailbox(email).await;
    }
    let mut view = Value::Null;
    for _ in 0..500 {
        view = app
            .admin_call("GET", &format!("/email-alerts/{alert}"), None)
            .await
            .body;
        if view["last_error"].is_object() && app.events("email_alert.failed").await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        view["last_error"]["code"], "mailbox_not_authorized",
        "{view}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let failed = app.events("email_alert.failed").await;
    assert_eq!(
        failed.len(),
        1,
        "one event when it starts failing: {failed:?}"
    );
    assert_eq!(failed[0]["data"]["email_alert_id"], alert.as_str());
    assert_eq!(
        failed[0]["data"]["sender_mailbox_id"],
        json!(app.mailbox_id())
    );
    assert_eq!(failed[0]["data"]["code"], "mailbox_not_authorized");

    // Bad input changes nothing.
    for (body, field) in [
        (
            json!({ "to": [], "sender_mailbox_id": app.mailbox_id() }),
            "to",
        ),
        (
            json!({ "to": ["x <x@contoso.cz>"], "sender_mailbox_id": app.mailbox_id() }),
            "to[0]",
        ),
        (
            json!({ "to": [ADMIN], "sender_mailbox_id": uuid::Uuid::now_v7() }),
            "sender_mailbox_id",
        ),
        (
            json!({ "to": [ADMIN], "sender_mailbox_id": app.mailbox_id(), "events": ["nope"] }),
            "events[0]",
        ),
    ] {
        let answer = app.admin_call("POST", "/email-alerts", Some(&body)).await;
        assert_eq!(answer.status, 422, "{body}: {:?}", answer.body);
        assert_eq!(
            answer.body["errors"][0]["field"], field,
            "{:?}",
            answer.body
        );
    }
    let language = app
        .admin_call(
            "POST",
            "/email-alerts",
            Some(
                &json!({ "to": [ADMIN], "sender_mailbox_id": app.mailbox_id(), "language": "de" }),
            ),
        )
        .await;
    assert_eq!(language.status, 422);
    let list = app.admin_call("GET", "/email-alerts", None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
}
