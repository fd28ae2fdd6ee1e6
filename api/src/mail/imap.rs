//! IMAP: connect with implicit TLS, `AUTHENTICATE XOAUTH2`, `SELECT INBOX`, `LOGOUT`.

use secrecy::ExposeSecret;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Login, MailServers, StepFailure, Steps, connect_failure, xoauth2};
use crate::domain::AccessMode;

/// Answers the server's XOAUTH2 prompts: the initial response first, then an
/// empty line to a failure's JSON challenge so the server sends its `NO`.
struct XOAuth2 {
    response: Option<String>,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response.take().unwrap_or_default()
    }
}

type Client = async_imap::Client<TlsStream<TcpStream>>;

pub async fn check(servers: &MailServers, steps: &mut Steps<'_>, login: &Login<'_>) {
    let t = servers.step_timeout;
    let endpoint = &servers.imap;
    let client = steps.run("imap_connect", t, connect(servers)).await;
    let session = match client {
        Some(client) => steps.run("imap_auth", t, authenticate(client, login)).await,
        None => {
            steps.skip("imap_auth");
            None
        }
    };
    let Some(mut session) = session else {
        steps.skip("imap_select");
        steps.skip("imap_logout");
        return;
    };
    let selected = steps
        .run("imap_select", t, async {
            let mailbox = session
                .select("INBOX")
                .await
                .map_err(|e| imap_failure(&e, login.access_mode, endpoint))?;
            Ok(((), Some(format!("INBOX: {} messages", mailbox.exists))))
        })
        .await;
    if selected.is_none() {
        steps.skip("imap_logout");
        return;
    }
    steps
        .run("imap_logout", t, async {
            session
                .logout()
                .await
                .map_err(|e| imap_failure(&e, login.access_mode, endpoint))?;
            Ok(((), Some("BYE".into())))
        })
        .await;
}

async fn connect(servers: &MailServers) -> Result<(Client, Option<String>), StepFailure> {
    let endpoint = &servers.imap;
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| connect_failure("IMAP", endpoint, &e))?;
    // The TLS name comes from the configured endpoint, never from the server.
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone()).map_err(|_| {
        StepFailure::new(
            "invalid_endpoint",
            None,
            "The IMAP endpoint host is not a valid name.",
        )
    })?;
    let tls = TlsConnector::from(servers.trust.rustls())
        .connect(name, tcp)
        .await
        .map_err(|e| connect_failure("IMAP", endpoint, &e))?;
    let mut client = async_imap::Client::new(tls);
    let greeting = client
        .read_response()
        .await
        .map_err(|e| connect_failure("IMAP", endpoint, &e))?
        .ok_or_else(|| {
            StepFailure::new(
                "imap_no_greeting",
                None,
                "The IMAP server closed the connection without a greeting.",
            )
        })?;
    let text = format!("{:?}", greeting.parsed());
    Ok((client, Some(greeting_line(&text))))
}

fn greeting_line(debug: &str) -> String {
    if debug.contains("Ok") {
        "* OK (greeting)".into()
    } else {
        debug.chars().take(120).collect()
    }
}

async fn authenticate(
    client: Client,
    login: &Login<'_>,
) -> Result<(async_imap::Session<TlsStream<TcpStream>>, Option<String>), StepFailure> {
    let auth = XOAuth2 {
        response: Some(xoauth2(login.mailbox, login.token.expose_secret())),
    };
    match client.authenticate("XOAUTH2", auth).await {
        Ok(session) => Ok((session, Some("OK AUTHENTICATE completed".into()))),
        Err((e, _)) => Err(auth_failure(&e, login.access_mode)),
    }
}

fn auth_failure(e: &async_imap::error::Error, mode: AccessMode) -> StepFailure {
    let text = e.to_string();
    if text.contains("AUTHENTICATIONFAILED") || text.to_lowercase().contains("authenticate failed")
    {
        let hint = match mode {
            AccessMode::Delegated => {
                "The server refused the token: IMAP may be disabled for this mailbox \
                (Exchange admin center > mailbox > Email apps > IMAP), or the token lacks the IMAP.AccessAsUser.All \
                permission. Enable IMAP, check the app's permissions, then sign in again."
            }
            AccessMode::AppOnly => {
                "The server refused the app-only token: the Exchange service principal or the \
                mailbox permission is missing. In Exchange Online PowerShell run New-ServicePrincipal -AppId <client id> \
                -ObjectId <object id of the ENTERPRISE application> and Add-MailboxPermission -Identity <mailbox> \
                -User <that object id> -AccessRights FullAccess (see the app credential's setup view)."
            }
        };
        return StepFailure::new("imap_auth_failed", Some(text), hint);
    }
    imap_classified(text)
}

fn imap_failure(
    e: &async_imap::error::Error,
    mode: AccessMode,
    _endpoint: &crate::config::Endpoint,
) -> StepFailure {
    match e {
        async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_) => auth_failure(e, mode),
        other => imap_classified(other.to_string()),
    }
}

fn imap_classified(text: String) -> StepFailure {
    if text.contains("UNAVAILABLE") {
        return StepFailure::new(
            "imap_unavailable",
            Some(text),
            "The server is temporarily unavailable; try again in a few minutes.",
        );
    }
    if text.to_lowercase().contains("throttled") {
        return StepFailure::new(
            "imap_throttled",
            Some(text),
            "Microsoft throttles this mailbox (see Suggested Backoff Time); wait and try again.",
        );
    }
    StepFailure::new(
        "imap_error",
        Some(text),
        "The IMAP server refused the request; see its response.",
    )
}
