//! SMTP submission: connect, `EHLO`, `STARTTLS` (mandatory), `AUTH XOAUTH2`
//! with the response sent after the `334` (tokens over 1 KB fit), an optional
//! test message to the mailbox itself, `QUIT`.

use crate::codes::Code;
use crate::domain::CheckStepName as Step;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;

use super::{
    Login, MailServers, StepFailure, Steps, backoff_advice, connect_failure, suggested_backoff_ms,
    xoauth2,
};
use crate::domain::AccessMode;

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
    let names: &[Step] = if send_test_message {
        &[
            Step::SmtpConnect,
            Step::SmtpStarttls,
            Step::SmtpAuth,
            Step::SmtpSend,
            Step::SmtpQuit,
        ]
    } else {
        &[
            Step::SmtpConnect,
            Step::SmtpStarttls,
            Step::SmtpAuth,
            Step::SmtpQuit,
        ]
    };
    let mut conn = match steps.run(names[0], t, connect(servers)).await {
        Some(c) => c,
        None => return names[1..].iter().for_each(|n| steps.skip(*n)),
    };
    if steps
        .run(Step::SmtpStarttls, t, starttls(servers, &mut conn))
        .await
        .is_none()
    {
        let _ = conn.quit().await;
        return names[2..].iter().for_each(|n| steps.skip(*n));
    }
    if steps
        .run(Step::SmtpAuth, t, auth(&mut conn, login))
        .await
        .is_none()
    {
        let _ = conn.quit().await;
        return names[3..].iter().for_each(|n| steps.skip(*n));
    }
    if send_test_message
        && steps
            .run(Step::SmtpSend, t, send(&mut conn, login))
            .await
            .is_none()
    {
        let _ = conn.quit().await;
        steps.skip(Step::SmtpQuit);
        return;
    }
    steps
        .run(Step::SmtpQuit, t, async {
            let r = conn
                .quit()
                .await
                .map_err(|e| smtp_failure(&e, login.access_mode))?;
            Ok(((), Some(response_text(&r))))
        })
        .await;
}

/// Submits one message as the mailbox of `login` (an e-mail alert): the
/// check's path (connect, STARTTLS, XOAUTH2), then the message, then QUIT,
/// each step within the step timeout. Returns the server's answer to the
/// message, or the first failure, explained as the check explains it.
pub async fn submit(
    servers: &MailServers,
    login: &Login<'_>,
    envelope: &Envelope,
    message: &[u8],
) -> Result<String, StepFailure> {
    let t = servers.step_timeout;
    let timed = |what: &str| {
        StepFailure::new(
            Code::Timeout,
            None,
            format!("The SMTP server did not answer the {what} in time."),
        )
    };
    let (mut conn, _) = connect(servers).await?;
    tokio::time::timeout(t, starttls(servers, &mut conn))
        .await
        .map_err(|_| timed("STARTTLS"))??;
    tokio::time::timeout(t, auth(&mut conn, login))
        .await
        .map_err(|_| timed("authentication"))??;
    let sent = tokio::time::timeout(t, conn.send(envelope, message))
        .await
        .map_err(|_| timed("message"))?
        .map_err(|e| smtp_failure(&e, login.access_mode))?;
    drop(tokio::time::timeout(t, conn.quit()).await);
    Ok(response_text(&sent))
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
                Code::Timeout,
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
            Code::SmtpStarttlsUnavailable,
            Some("STARTTLS not offered".into()),
            "The SMTP server does not offer STARTTLS, so no credentials were sent. Use the submission endpoint (smtp.office365.com:587).",
        ));
    }
    let host = &servers.smtp.host;
    let params = servers.trust.smtp_parameters(host).map_err(|e| {
        StepFailure::new(
            Code::TlsFailed,
            Some(e.to_string()),
            "The TLS settings for SMTP are invalid.",
        )
    })?;
    conn.starttls(params, &hello()).await.map_err(|e| {
        let mut f = connect_failure("SMTP", &servers.smtp, &e);
        // The connection stands: whatever broke, broke in the handshake.
        if f.code == Code::Unreachable {
            f = StepFailure::new(
                Code::TlsFailed,
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
    let mode = login.access_mode;
    conn.command("AUTH XOAUTH2\r\n")
        .await
        .map_err(|e| smtp_failure(&e, mode))?;
    let initial = STANDARD.encode(xoauth2(login.smtp_user, login.token.expose_secret()));
    match conn.command(format!("{initial}\r\n")).await {
        Ok(r) if r.code().to_string().starts_with('2') => Ok(((), Some(response_text(&r)))),
        Ok(_) => {
            // 334 with a JSON challenge: answer empty to get the real refusal.
            match conn.command("\r\n").await {
                Ok(r) => Err(StepFailure::new(
                    Code::SmtpAuthFailed,
                    Some(response_text(&r)),
                    auth_hint(mode),
                )),
                Err(e) => Err(smtp_failure(&e, mode)),
            }
        }
        Err(e) => Err(smtp_failure(&e, mode)),
    }
}

async fn send(
    conn: &mut AsyncSmtpConnection,
    login: &Login<'_>,
) -> Result<((), Option<String>), StepFailure> {
    let address: lettre::Address = login.mailbox.parse().map_err(|_| {
        StepFailure::new(
            Code::InvalidAddress,
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
                Code::InvalidMessage,
                Some(e.to_string()),
                "The test message could not be built.",
            )
        })?;
    let envelope = Envelope::new(Some(address.clone()), vec![address]).map_err(|e| {
        StepFailure::new(
            Code::InvalidMessage,
            Some(e.to_string()),
            "The test message could not be built.",
        )
    })?;
    let r = conn
        .send(&envelope, &message.formatted())
        .await
        .map_err(|e| smtp_failure(&e, login.access_mode))?;
    Ok(((), Some(response_text(&r))))
}

/// The hint for a refused token (`smtp_auth_failed`).
fn auth_hint(mode: AccessMode) -> &'static str {
    match mode {
        AccessMode::Delegated => {
            "The server refused the token for SMTP: check that the token has the SMTP.Send permission and sign in again."
        }
        AccessMode::AppOnly => {
            "The server refused the app-only token for SMTP: the app needs the SMTP.SendAsApp application \
             permission (Office 365 Exchange Online) with admin consent, and Exchange needs the app's service principal \
             and a mailbox permission. In Exchange Online PowerShell run New-ServicePrincipal -AppId <client id> \
             -ObjectId <object id of the ENTERPRISE application> and Add-MailboxPermission -Identity <mailbox> \
             -User <that object id> -AccessRights FullAccess, or, with RBAC for Applications, New-ManagementRoleAssignment \
             -App <client id> -Role \"Application SMTP.SendAsApp\" -CustomResourceScope <scope> (see the app credential's setup view; \
             Test-ServicePrincipalAuthorization shows what the app may do)."
        }
    }
}

/// The hint for `smtp_send_as_denied`.
fn send_as_hint(mode: AccessMode) -> &'static str {
    match mode {
        AccessMode::Delegated => {
            "The signed-in account may not send as this mailbox (or authenticated as the wrong user): \
             for a shared mailbox grant the delegate Send As, and sign in with the right account."
        }
        AccessMode::AppOnly => {
            "The app may not send as this mailbox: Exchange needs the app's service principal and a \
             mailbox permission, and the app the SMTP.SendAsApp application permission with admin consent. In Exchange \
             Online PowerShell run New-ServicePrincipal -AppId <client id> -ObjectId <object id of the ENTERPRISE \
             application> and Add-MailboxPermission -Identity <mailbox> -User <that object id> -AccessRights FullAccess, \
             or, with RBAC for Applications, New-ManagementRoleAssignment -App <client id> -Role \"Application SMTP.SendAsApp\" \
             -CustomResourceScope <a scope that includes the mailbox> (see the app credential's setup view)."
        }
    }
}

fn response_text(r: &lettre::transport::smtp::response::Response) -> String {
    let lines: Vec<&str> = r.message().collect();
    format!("{} {}", r.code(), lines.join(" "))
}

/// Whether `text` holds the enhanced status code `code` (RFC 3463) as a whole
/// token: `5.7.3` is not found in `5.7.30` or `5.7.139`.
pub(crate) fn has_enhanced_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let mut after = text[at + code.len()..].chars();
        let first = after.next();
        let second = after.next();
        let joined_before = before.is_some_and(|c| c.is_ascii_digit() || c == '.');
        let joined_after = first.is_some_and(|c| c.is_ascii_digit())
            || (first == Some('.') && second.is_some_and(|c| c.is_ascii_digit()));
        !joined_before && !joined_after
    })
}

/// Answers that mean Microsoft limits the sender for now, lowercased.
const THROTTLED: [&str; 3] = [
    "throttl",
    "suggested backoff time",
    "submissionquotaexceeded",
];

/// The same, but only in a temporary (4xx) answer: a permanent "limit
/// exceeded" is rather a full mailbox or a message too large.
const BUSY: [&str; 5] = [
    "limit exceeded",
    "exceeded a limit",
    "server busy",
    "too many connections",
    "too many concurrent",
];

fn smtp_failure(e: &lettre::transport::smtp::Error, mode: AccessMode) -> StepFailure {
    let code = e.status().map(|c| c.to_string());
    classify(code.as_deref(), e.to_string(), e.is_timeout(), mode)
}

/// Classifies a failed SMTP command from its reply code (none for a network
/// error), the error's text and whether it timed out.
pub(crate) fn classify(
    code: Option<&str>,
    text: String,
    timed_out: bool,
    mode: AccessMode,
) -> StepFailure {
    if timed_out {
        return StepFailure::new(
            Code::Timeout,
            Some(text),
            "The SMTP server did not answer in time.",
        );
    }
    if has_enhanced_code(&text, "5.7.139") {
        let lower = text.to_lowercase();
        let hint = if lower.contains("disabled for the tenant") {
            "SMTP AUTH is disabled for the whole tenant. In Exchange Online PowerShell run \
             Set-TransportConfig -SmtpClientAuthenticationDisabled $false, or enable it for this mailbox only: \
             Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false"
        } else {
            "SMTP AUTH is disabled for this mailbox or tenant. In Exchange Online PowerShell run: \
             Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false"
        };
        return StepFailure::new(Code::SmtpAuthDisabled, Some(text), hint);
    }
    if has_enhanced_code(&text, "5.7.3")
        || has_enhanced_code(&text, "5.2.252")
        || text.contains("SendAsDenied")
    {
        return StepFailure::new(Code::SmtpSendAsDenied, Some(text), send_as_hint(mode));
    }
    if code == Some("535") {
        return StepFailure::new(Code::SmtpAuthFailed, Some(text), auth_hint(mode));
    }
    let lower = text.to_lowercase();
    let temporary = code.is_some_and(|c| c.starts_with('4'));
    if THROTTLED.iter().any(|m| lower.contains(m))
        || (temporary && BUSY.iter().any(|m| lower.contains(m)))
    {
        let hint = match suggested_backoff_ms(&text) {
            Some(ms) => format!(
                "Microsoft throttles this mailbox for SMTP: {}.",
                backoff_advice(ms)
            ),
            None => {
                "Microsoft throttles this mailbox for SMTP (too many connections or messages); \
                     wait a few minutes, or longer for a daily sending limit, and try again."
                    .into()
            }
        };
        return StepFailure::new(Code::SmtpThrottled, Some(text), hint);
    }
    if temporary {
        return StepFailure::new(
            Code::SmtpUnavailable,
            Some(text),
            "The server is temporarily unavailable; try again in a few minutes.",
        );
    }
    StepFailure::new(
        Code::SmtpError,
        Some(text),
        "The SMTP server refused the request; see its response.",
    )
}

// The steps against a scripted server, and the classification of answers.
#[cfg(test)]
mod tests;
