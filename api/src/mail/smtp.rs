//! SMTP submission: connect, `EHLO`, `STARTTLS` (mandatory), `AUTH XOAUTH2`
//! with the response sent after the `334` (tokens over 1 KB fit), an optional
//! test message to the mailbox itself, `QUIT`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;

use super::{Login, MailServers, StepFailure, Steps, connect_failure, xoauth2};

fn hello() -> ClientId {
    ClientId::Domain("inboxlink.local".into())
}

pub async fn check(
    servers: &MailServers,
    steps: &mut Steps<'_>,
    login: &Login<'_>,
    send_test_message: bool,
) {
    let t = servers.step_timeout;
    let names: &[&str] = if send_test_message {
        &[
            "smtp_connect",
            "smtp_starttls",
            "smtp_auth",
            "smtp_send",
            "smtp_quit",
        ]
    } else {
        &["smtp_connect", "smtp_starttls", "smtp_auth", "smtp_quit"]
    };
    let mut conn = match steps.run(names[0], t, connect(servers)).await {
        Some(c) => c,
        None => return names[1..].iter().for_each(|n| steps.skip(n)),
    };
    if steps
        .run("smtp_starttls", t, starttls(servers, &mut conn))
        .await
        .is_none()
    {
        let _ = conn.quit().await;
        return names[2..].iter().for_each(|n| steps.skip(n));
    }
    if steps
        .run("smtp_auth", t, auth(&mut conn, login))
        .await
        .is_none()
    {
        let _ = conn.quit().await;
        return names[3..].iter().for_each(|n| steps.skip(n));
    }
    if send_test_message
        && steps
            .run("smtp_send", t, send(&mut conn, login))
            .await
            .is_none()
    {
        let _ = conn.quit().await;
        steps.skip("smtp_quit");
        return;
    }
    steps
        .run("smtp_quit", t, async {
            let r = conn.quit().await.map_err(|e| smtp_failure(&e))?;
            Ok(((), Some(response_text(&r))))
        })
        .await;
}

async fn connect(
    servers: &MailServers,
) -> Result<(AsyncSmtpConnection, Option<String>), StepFailure> {
    let endpoint = &servers.smtp;
    let conn = AsyncSmtpConnection::connect_tokio1(
        (endpoint.host.as_str(), endpoint.port),
        Some(servers.step_timeout),
        &hello(),
        None,
        None,
    )
    .await
    .map_err(|e| {
        if e.is_timeout() {
            StepFailure::new(
                "timeout",
                Some(e.to_string()),
                "The SMTP server did not answer; check the endpoint and the network.",
            )
        } else {
            connect_failure("SMTP", endpoint, &e)
        }
    })?;
    let info = conn.server_info().to_string();
    Ok((conn, Some(format!("EHLO: {info}"))))
}

async fn starttls(
    servers: &MailServers,
    conn: &mut AsyncSmtpConnection,
) -> Result<((), Option<String>), StepFailure> {
    if !conn.can_starttls() {
        // Never authenticate in the clear, even where the server would allow it.
        return Err(StepFailure::new(
            "smtp_starttls_unavailable",
            Some("STARTTLS not offered".into()),
            "The SMTP server does not offer STARTTLS, so no credentials were sent. Use the submission endpoint (smtp.office365.com:587).",
        ));
    }
    let host = &servers.smtp.host;
    let params = servers.trust.smtp_parameters(host).map_err(|e| {
        StepFailure::new(
            "tls_failed",
            Some(e.to_string()),
            "The TLS settings for SMTP are invalid.",
        )
    })?;
    conn.starttls(params, &hello()).await.map_err(|e| {
        let mut f = connect_failure("SMTP", &servers.smtp, &e);
        // The connection stands: whatever broke, broke in the handshake.
        if f.code == "unreachable" {
            f = StepFailure::new(
                "tls_failed",
                Some(e.to_string()),
                "The TLS handshake with the SMTP server failed; no credentials were sent.",
            );
        }
        f
    })?;
    Ok(((), Some("220 ready for TLS; EHLO again".into())))
}

async fn auth(
    conn: &mut AsyncSmtpConnection,
    login: &Login<'_>,
) -> Result<((), Option<String>), StepFailure> {
    let first = conn
        .command("AUTH XOAUTH2\r\n")
        .await
        .map_err(|e| smtp_failure(&e))?;
    let _ = first;
    let initial = STANDARD.encode(xoauth2(login.smtp_user, login.token.expose_secret()));
    match conn.command(format!("{initial}\r\n")).await {
        Ok(r) if r.code().to_string().starts_with('2') => Ok(((), Some(response_text(&r)))),
        Ok(_) => {
            // 334 with a JSON challenge: answer empty to get the real refusal.
            match conn.command("\r\n").await {
                Ok(r) => Err(StepFailure::new(
                    "smtp_auth_failed",
                    Some(response_text(&r)),
                    AUTH_HINT,
                )),
                Err(e) => Err(smtp_failure(&e)),
            }
        }
        Err(e) => Err(smtp_failure(&e)),
    }
}

async fn send(
    conn: &mut AsyncSmtpConnection,
    login: &Login<'_>,
) -> Result<((), Option<String>), StepFailure> {
    let address: lettre::Address = login.mailbox.parse().map_err(|_| {
        StepFailure::new(
            "invalid_address",
            None,
            "The mailbox address cannot be used as a sender.",
        )
    })?;
    let message = lettre::Message::builder()
        .from(lettre::message::Mailbox::new(
            Some("Inboxlink check".into()),
            address.clone(),
        ))
        .to(lettre::message::Mailbox::new(None, address.clone()))
        .subject("Inboxlink connection check")
        .body(
            "This message was sent by the Inboxlink connection check. It can be deleted."
                .to_owned(),
        )
        .map_err(|e| {
            StepFailure::new(
                "invalid_message",
                Some(e.to_string()),
                "The test message could not be built.",
            )
        })?;
    let envelope = Envelope::new(Some(address.clone()), vec![address]).map_err(|e| {
        StepFailure::new(
            "invalid_message",
            Some(e.to_string()),
            "The test message could not be built.",
        )
    })?;
    let r = conn
        .send(&envelope, &message.formatted())
        .await
        .map_err(|e| smtp_failure(&e))?;
    Ok(((), Some(response_text(&r))))
}

const AUTH_HINT: &str = "The server refused the token for SMTP: check that the token has the SMTP.Send permission and sign in again.";

fn response_text(r: &lettre::transport::smtp::response::Response) -> String {
    let lines: Vec<&str> = r.message().collect();
    format!("{} {}", r.code(), lines.join(" "))
}

fn smtp_failure(e: &lettre::transport::smtp::Error) -> StepFailure {
    let text = e.to_string();
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    if text.contains("5.7.139") {
        return StepFailure::new(
            "smtp_auth_disabled",
            Some(text),
            "SMTP AUTH is disabled for this mailbox or tenant. In Exchange Online PowerShell run: \
             Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false",
        );
    }
    if text.contains("5.7.3") {
        return StepFailure::new(
            "smtp_send_as_denied",
            Some(text),
            "The signed-in account may not send as this mailbox (or authenticated as the wrong user): \
             for a shared mailbox grant the delegate Send As, and sign in with the right account.",
        );
    }
    if code == "535" {
        return StepFailure::new("smtp_auth_failed", Some(text), AUTH_HINT);
    }
    if code.starts_with('4') || text.to_lowercase().contains("throttl") {
        return StepFailure::new(
            "smtp_unavailable",
            Some(text),
            "The server is temporarily unavailable or throttling; try again in a few minutes.",
        );
    }
    if e.is_timeout() {
        return StepFailure::new(
            "timeout",
            Some(text),
            "The SMTP server did not answer in time.",
        );
    }
    StepFailure::new(
        "smtp_error",
        Some(text),
        "The SMTP server refused the request; see its response.",
    )
}
