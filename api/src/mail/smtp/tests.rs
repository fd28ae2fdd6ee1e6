//! The SMTP steps against a scripted server (the real lettre client, the
//! servers' real answers), and how each answer is classified.

use std::time::Duration;

use super::*;
use crate::mail::script::{self, assert_told, serve};

const GREETING: &str = "220 mail.test ESMTP Dovecot ready";
const EHLO: &str = "250-mail.test\r\n250-8BITMIME\r\n250-AUTH XOAUTH2 OAUTHBEARER\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING";

async fn connection(
    replies: &[&str],
) -> (AsyncSmtpConnection, tokio::task::JoinHandle<Vec<String>>) {
    let mut all = vec![EHLO];
    all.extend_from_slice(replies);
    let (port, server) = serve(GREETING, &all).await;
    let conn = AsyncSmtpConnection::connect_tokio1(
        ("127.0.0.1", port),
        Some(Duration::from_secs(5)),
        &hello(),
        None,
        None,
    )
    .await
    .expect("connect");
    (conn, server)
}

/// `AUTH XOAUTH2` (answered `334`), then the response answered `replies`.
async fn auth_fails(replies: &[&str], mode: AccessMode) -> StepFailure {
    let mut all = vec!["334 "];
    all.extend_from_slice(replies);
    let (mut conn, _server) = connection(&all).await;
    let token = script::token();
    match auth(&mut conn, &script::login(&token, mode)).await {
        Ok(_) => panic!("the login should fail"),
        Err(f) => f,
    }
}

/// A test message whose `MAIL FROM`, `RCPT TO`, `DATA` and message are answered `replies`.
async fn send_fails(replies: &[&str]) -> StepFailure {
    let (mut conn, _server) = connection(replies).await;
    let token = script::token();
    match send(&mut conn, &script::login(&token, AccessMode::Delegated)).await {
        Ok(_) => panic!("the message should be refused"),
        Err(f) => f,
    }
}

/// What the hint of an app-only refusal names: the permission and the
/// Exchange set-up.
const APP_ONLY_FIX: &[&str] = &[
    "SMTP.SendAsApp",
    "New-ServicePrincipal",
    "Add-MailboxPermission",
];

const CHALLENGE: &str = "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL291dGxvb2sub2ZmaWNlLmNvbS8uZGVmYXVsdCJ9";

#[tokio::test]
async fn the_response_goes_after_the_334_and_a_challenge_gets_an_empty_line() {
    let replies = ["334 ", CHALLENGE, "535 5.7.8 Authentication failed"];
    let (mut conn, server) = connection(&replies).await;
    let token = script::token();
    let f = match auth(&mut conn, &script::login(&token, AccessMode::Delegated)).await {
        Ok(_) => panic!("the login should fail"),
        Err(f) => f,
    };
    assert_eq!(f.code, Code::SmtpAuthFailed);
    drop(conn);
    let sent = server.await.expect("server");
    assert_eq!(sent[1], "AUTH XOAUTH2", "{sent:?}");
    script::assert_xoauth2_response(&sent[2]);
    assert_eq!(sent[3], "");
}

/// Answers to `AUTH XOAUTH2` after its `334`, in each access mode: the code
/// each is told as, and what its hint names.
#[tokio::test]
async fn auth_refusals_are_told_apart() {
    use AccessMode::{AppOnly, Delegated};
    const OTHER_535: &[&str] = &[CHALLENGE, "535 5.7.8 Authentication failed"];
    const SEND_AS: &str = "535 5.7.3 Authentication unsuccessful [SN4PR0601CA0005.namprd06.prod.outlook.com 2025-01-01T10:00:00.000Z 08DD2A9F3C1B2E4D]";
    let cases: [(&[&str], AccessMode, Code, &[&str]); 9] = [
        // Any other 535: the permission the token lacks, for each access mode.
        (
            OTHER_535,
            Delegated,
            Code::SmtpAuthFailed,
            &["SMTP.Send permission"],
        ),
        (OTHER_535, AppOnly, Code::SmtpAuthFailed, APP_ONLY_FIX),
        // SMTP AUTH disabled for the tenant, or for the mailbox.
        (
            &[
                "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [SN4PR0601CA0005.namprd06.prod.outlook.com 2025-01-01T10:00:00.000Z 08DD2A9F3C1B2E4D]",
            ],
            Delegated,
            Code::SmtpAuthDisabled,
            &["Set-TransportConfig", "Set-CASMailbox"],
        ),
        (
            &[
                "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
            ],
            Delegated,
            Code::SmtpAuthDisabled,
            &["Set-CASMailbox"],
        ),
        // 5.7.3: the account may not send as the mailbox; 5.7.30 is not 5.7.3.
        (&[SEND_AS], Delegated, Code::SmtpSendAsDenied, &["Send As"]),
        (&[SEND_AS], AppOnly, Code::SmtpSendAsDenied, APP_ONLY_FIX),
        (
            &["535 5.7.30 Authentication unsuccessful"],
            Delegated,
            Code::SmtpAuthFailed,
            &[],
        ),
        // A 454 is temporary; throttling tells how long to wait.
        (
            &["454 4.7.0 Temporary authentication failure. [mail.test:2025-01-01 10:00:00]"],
            Delegated,
            Code::SmtpUnavailable,
            &["try again"],
        ),
        (
            &["421 4.7.0 Request is throttled. Suggested Backoff Time: 120000 milliseconds"],
            Delegated,
            Code::SmtpThrottled,
            &["wait 120000 ms (about 2 minutes) before trying again"],
        ),
    ];
    for (replies, mode, code, hint) in cases {
        assert_told(&auth_fails(replies, mode).await, code, hint);
    }

    // A delegated mailbox is not sent to the app-only set-up, and the server's
    // own text is kept.
    let f = auth_fails(OTHER_535, Delegated).await;
    assert!(!f.hint.contains("SendAsApp"), "{}", f.hint);
    let f = auth_fails(&[SEND_AS], Delegated).await;
    assert!(f.response.as_deref().is_some_and(|r| r.contains("5.7.3")));
}

/// Answers to the test message's `MAIL FROM`, `RCPT TO`, `DATA` and message:
/// the code each is told as, and what its hint names.
#[tokio::test]
async fn send_refusals_are_told_apart() {
    const SENDER_OK: &str = "250 2.1.0 Sender OK";
    // The sender, the recipient and `DATA` accepted, then the message answered `reply`.
    let after_data = |reply| {
        [
            SENDER_OK,
            "250 2.1.5 Recipient OK",
            "354 Start mail input; end with <CRLF>.<CRLF>",
            reply,
        ]
    };
    let cases: [(&[&str], Code, &[&str]); 6] = [
        (
            &["550 5.7.30 REQUIRETLS support required"],
            Code::SmtpError,
            &[],
        ),
        (
            &["452 4.3.1 Insufficient system resources"],
            Code::SmtpUnavailable,
            &[],
        ),
        // Throttled: a sender thread limit, a submission quota.
        (
            &after_data(
                "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [Hostname=SN4PR06MB1234.namprd06.prod.outlook.com]",
            ),
            Code::SmtpThrottled,
            &["wait"],
        ),
        (
            &after_data(
                "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message Cannot submit message.",
            ),
            Code::SmtpThrottled,
            &[],
        ),
        // A full mailbox is no throttling.
        (
            &[SENDER_OK, "552 5.2.2 Mailbox size limit exceeded"],
            Code::SmtpError,
            &[],
        ),
        // The delegate may not send as the shared mailbox.
        (
            &after_data(
                "554 5.2.252 SendAsDenied; delegate@contoso.example not allowed to send as anna@contoso.example; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
            ),
            Code::SmtpSendAsDenied,
            &[],
        ),
    ];
    for (replies, code, hint) in cases {
        assert_told(&send_fails(replies).await, code, hint);
    }
}

#[test]
fn enhanced_codes_match_whole() {
    assert!(has_enhanced_code(
        "535 5.7.3 Authentication unsuccessful",
        "5.7.3"
    ));
    assert!(has_enhanced_code("(5.7.3)", "5.7.3"));
    assert!(has_enhanced_code("ends with 5.7.3.", "5.7.3"));
    assert!(has_enhanced_code("535-5.7.3 first line", "5.7.3"));
    for other in [
        "5.7.30", "5.7.39 x", "5.7.3.1", "15.7.3", "4.5.7.3", "5.7.139",
    ] {
        assert!(!has_enhanced_code(other, "5.7.3"), "{other}");
    }
    assert!(has_enhanced_code("535 5.7.139 Authentication", "5.7.139"));
    assert!(!has_enhanced_code("5.7.1390", "5.7.139"));
}

#[test]
fn a_timeout_is_timeout() {
    let f = classify(
        None,
        "network error: timed out".into(),
        true,
        AccessMode::Delegated,
    );
    assert_eq!(f.code, Code::Timeout);
    let f = classify(
        None,
        "network error: connection reset".into(),
        false,
        AccessMode::Delegated,
    );
    assert_eq!(f.code, Code::SmtpError);
}
