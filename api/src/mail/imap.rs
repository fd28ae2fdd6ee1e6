//! IMAP: connect with implicit TLS, `AUTHENTICATE XOAUTH2`, `SELECT INBOX`, `LOGOUT`.
//!
//! The relay's side (`connect_relay`, [`Greeted`]) lives here too: it is
//! the same connection, greeting and XOAUTH2 login as the check's, so the
//! file is a little over 400 lines with its unit tests.

use crate::codes::Code;
use crate::domain::CheckStepName as Step;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{
    Login, MailServers, StepFailure, Steps, backoff_advice, connect_failure, suggested_backoff_ms,
    xoauth2,
};
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

/// What the IMAP steps can run over (TLS to the server; plain streams in tests).
trait Stream: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send> Stream for T {}

pub async fn check(servers: &MailServers, steps: &mut Steps<'_>, login: &Login<'_>) {
    let t = servers.step_timeout;
    let client = steps.run(Step::ImapConnect, t, connect(servers)).await;
    let session = match client {
        Some(client) => {
            steps
                .run(Step::ImapAuth, t, authenticate(client, login))
                .await
        }
        None => {
            steps.skip(Step::ImapAuth);
            None
        }
    };
    let Some(mut session) = session else {
        steps.skip(Step::ImapSelect);
        steps.skip(Step::ImapLogout);
        return;
    };
    let selected = steps
        .run(Step::ImapSelect, t, select(&mut session, login))
        .await;
    if selected.is_none() {
        steps.skip(Step::ImapLogout);
        return;
    }
    steps
        .run(Step::ImapLogout, t, async {
            session
                .logout()
                .await
                .map_err(|e| imap_failure(&e, login.access_mode))?;
            Ok(((), Some("BYE".into())))
        })
        .await;
}

/// A TLS connection to the IMAP endpoint (implicit TLS), nothing read yet.
async fn connect_tls(servers: &MailServers) -> Result<TlsStream<TcpStream>, StepFailure> {
    let endpoint = &servers.imap;
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| connect_failure("IMAP", endpoint, &e))?;
    // Commands and answers are small writes: none waits for a delayed ACK.
    let _ = tcp.set_nodelay(true);
    // The TLS name comes from the configured endpoint, never from the server.
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone()).map_err(|_| {
        StepFailure::new(
            Code::InvalidEndpoint,
            None,
            "The IMAP endpoint host is not a valid name.",
        )
    })?;
    TlsConnector::from(servers.trust.rustls())
        .connect(name, tcp)
        .await
        .map_err(|e| connect_failure("IMAP", endpoint, &e))
}

async fn connect(servers: &MailServers) -> Result<(Client, Option<String>), StepFailure> {
    let endpoint = &servers.imap;
    let tls = connect_tls(servers).await?;
    let mut client = async_imap::Client::new(tls);
    let greeting = client
        .read_response()
        .await
        .map_err(|e| connect_failure("IMAP", endpoint, &e))?
        .ok_or_else(|| {
            StepFailure::new(
                Code::ImapNoGreeting,
                None,
                "The IMAP server closed the connection without a greeting.",
            )
        })?;
    let text = format!("{:?}", greeting.parsed());
    Ok((client, Some(greeting_line(&text))))
}

pub(crate) fn greeting_line(debug: &str) -> String {
    if debug.contains("Ok") {
        "* OK (greeting)".into()
    } else {
        debug.chars().take(120).collect()
    }
}

async fn authenticate<S: Stream>(
    client: async_imap::Client<S>,
    login: &Login<'_>,
) -> Result<(async_imap::Session<S>, Option<String>), StepFailure> {
    let auth = XOAuth2 {
        response: Some(xoauth2(login.mailbox, login.token.expose_secret())),
    };
    match client.authenticate("XOAUTH2", auth).await {
        Ok(session) => Ok((session, Some("OK AUTHENTICATE completed".into()))),
        Err((e, _)) => Err(auth_failure(&e, login.access_mode)),
    }
}

async fn select<S: Stream>(
    session: &mut async_imap::Session<S>,
    login: &Login<'_>,
) -> Result<((), Option<String>), StepFailure> {
    let mailbox = session
        .select("INBOX")
        .await
        .map_err(|e| imap_failure(&e, login.access_mode))?;
    Ok(((), Some(format!("INBOX: {} messages", mailbox.exists))))
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
        return StepFailure::new(Code::ImapAuthFailed, Some(text), hint);
    }
    imap_classified(text)
}

fn imap_failure(e: &async_imap::error::Error, mode: AccessMode) -> StepFailure {
    match e {
        async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_) => auth_failure(e, mode),
        other => imap_classified(other.to_string()),
    }
}

pub(crate) fn imap_classified(text: String) -> StepFailure {
    let lower = text.to_lowercase();
    // Microsoft: "NO Request is throttled. Suggested Backoff Time: 299961 milliseconds".
    if lower.contains("throttl") || lower.contains("suggested backoff time") {
        let hint = match suggested_backoff_ms(&text) {
            Some(ms) => format!("Microsoft throttles this mailbox: {}.", backoff_advice(ms)),
            None => "Microsoft throttles this mailbox; wait a few minutes and try again.".into(),
        };
        return StepFailure::new(Code::ImapThrottled, Some(text), hint);
    }
    if text.contains("UNAVAILABLE") {
        return StepFailure::new(
            Code::ImapUnavailable,
            Some(text),
            "The server is temporarily unavailable; try again in a few minutes.",
        );
    }
    StepFailure::new(
        Code::ImapError,
        Some(text),
        "The IMAP server refused the request; see its response.",
    )
}

/// The read buffer of a relayed session's upstream side: small, since
/// idle sessions are many and the relay's bulk reads bypass it.
pub const RELAY_BUFFER: usize = 2048;

/// An IMAP session authenticated with XOAUTH2, ready to carry a client's
/// commands (the bridge relays its bytes from here on).
pub struct Relay {
    /// The connection, with what the server sent beyond the login's answer
    /// still in its buffer.
    pub stream: tokio::io::BufReader<TlsStream<TcpStream>>,
    /// The server's capabilities after the login (`IMAP4rev1 IDLE …`).
    pub capabilities: String,
}

/// Longest line read from the server during the login.
const RELAY_LINE_MAX: u64 = 64 * 1024;

async fn relay_line<S: AsyncRead + Unpin>(
    stream: &mut tokio::io::BufReader<S>,
) -> Result<String, StepFailure> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = Vec::new();
    (&mut *stream)
        .take(RELAY_LINE_MAX)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| imap_classified(format!("the IMAP server's connection failed: {e}")))?;
    if line.is_empty() {
        return Err(StepFailure::new(
            Code::ImapError,
            None,
            "The IMAP server closed the connection.",
        ));
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

/// The words after `CAPABILITY` in a `* CAPABILITY …` line or an `[CAPABILITY …]` code.
pub(crate) fn capabilities_in(line: &str) -> Option<String> {
    let upper = line.to_ascii_uppercase();
    let start = upper.find("CAPABILITY ")? + "CAPABILITY ".len();
    let rest = &line[start..];
    let end = if upper[..start].ends_with("[CAPABILITY ") {
        rest.find(']')?
    } else {
        rest.len()
    };
    Some(rest[..end].trim().to_owned())
}

/// An upstream IMAP connection that greeted and is not logged in yet: the
/// bridge opens it while it checks the client's password, so the two waits
/// overlap (see [`connect_relay`]).
pub struct Greeted {
    stream: tokio::io::BufReader<TlsStream<TcpStream>>,
    /// The capabilities in the greeting, if it named them.
    capabilities: Option<String>,
}

/// Connects to the mailbox's IMAP server (implicit TLS, the check's
/// trust) and reads its greeting.
pub async fn connect_relay(servers: &MailServers) -> Result<Greeted, StepFailure> {
    let tls = connect_tls(servers).await?;
    let mut stream = tokio::io::BufReader::with_capacity(RELAY_BUFFER, tls);
    let greeting = relay_line(&mut stream).await?;
    if !greeting.starts_with("* OK") && !greeting.starts_with("* PREAUTH") {
        return Err(StepFailure::new(
            Code::ImapNoGreeting,
            Some(greeting),
            "The IMAP server did not greet with OK.",
        ));
    }
    Ok(Greeted {
        capabilities: capabilities_in(&greeting),
        stream,
    })
}

impl Greeted {
    /// Authenticates with XOAUTH2 and learns the server's capabilities, for
    /// the bridge to relay a client over. The response goes on the command
    /// line where the greeting offers `SASL-IR` (RFC 4959; Exchange Online
    /// does), else after the continuation. A refusal of the token is
    /// `imap_auth_failed` with the check's hint.
    pub async fn login(self, login: &Login<'_>) -> Result<Relay, StepFailure> {
        use base64::Engine;
        use tokio::io::AsyncWriteExt;
        let Greeted {
            mut stream,
            capabilities: greeted,
        } = self;
        let response = base64::engine::general_purpose::STANDARD
            .encode(xoauth2(login.mailbox, login.token.expose_secret()));
        let io = |e: std::io::Error| {
            imap_classified(format!("the IMAP server's connection failed: {e}"))
        };
        let initial = greeted.as_deref().is_some_and(|c| {
            c.split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("SASL-IR"))
        });
        let command = if initial {
            format!("IB1 AUTHENTICATE XOAUTH2 {response}\r\n")
        } else {
            "IB1 AUTHENTICATE XOAUTH2\r\n".to_owned()
        };
        stream.write_all(command.as_bytes()).await.map_err(io)?;
        let mut capabilities = None;
        // A continuation after the response is a failure's challenge: it gets an empty line.
        let mut sent = initial;
        loop {
            let line = relay_line(&mut stream).await?;
            if line.starts_with('+') {
                let answer = if sent { "" } else { response.as_str() };
                sent = true;
                stream
                    .write_all(format!("{answer}\r\n").as_bytes())
                    .await
                    .map_err(io)?;
            } else if line.starts_with("* ") {
                capabilities = capabilities.or_else(|| capabilities_in(&line));
            } else if let Some(rest) = line.strip_prefix("IB1 ") {
                if rest.starts_with("OK") {
                    capabilities = capabilities.or_else(|| capabilities_in(rest));
                    break;
                }
                let refused = async_imap::error::Error::No(rest.to_owned());
                return Err(auth_failure(&refused, login.access_mode));
            }
        }
        let capabilities = match capabilities {
            Some(c) => c,
            None => {
                stream.write_all(b"IB2 CAPABILITY\r\n").await.map_err(io)?;
                let mut found = String::new();
                loop {
                    let line = relay_line(&mut stream).await?;
                    if let Some(c) = line
                        .starts_with("* ")
                        .then(|| capabilities_in(&line))
                        .flatten()
                    {
                        found = c;
                    } else if line.starts_with("IB2 ") {
                        break;
                    }
                }
                found
            }
        };
        Ok(Relay {
            stream,
            capabilities,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use tokio::net::TcpStream;

    use super::*;
    use crate::mail::script::{self, assert_told, serve};

    const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=XOAUTH2 AUTH=OAUTHBEARER] Dovecot ready.";

    fn challenge() -> String {
        let json =
            r#"{"status":"401","schemes":"bearer","scope":"https://outlook.office.com/.default"}"#;
        format!("+ {}", STANDARD.encode(json))
    }

    /// Dovecot refusing a token: the continuation, the JSON challenge, the `NO`.
    fn dovecot_refusal(challenge: &str) -> [&str; 3] {
        [
            "+ ",
            challenge,
            "{tag} NO [AUTHENTICATIONFAILED] Authentication failed.",
        ]
    }

    async fn client(port: u16) -> async_imap::Client<TcpStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("read")
            .expect("greeting");
        client
    }

    /// `AUTHENTICATE XOAUTH2` against a server answering `replies`.
    async fn auth(replies: &[&str], mode: AccessMode) -> (StepFailure, Vec<String>) {
        let (port, server) = serve(GREETING, replies).await;
        let token = script::token();
        let result = authenticate(client(port).await, &script::login(&token, mode)).await;
        let Err(failure) = result.map(|_| ()) else {
            panic!("the login should fail");
        };
        (failure, server.await.expect("server"))
    }

    #[tokio::test]
    async fn dovecot_authenticationfailed_is_auth_failed_with_the_delegated_hint() {
        let refusal = challenge();
        let (f, sent) = auth(&dovecot_refusal(&refusal), AccessMode::Delegated).await;
        assert_told(&f, Code::ImapAuthFailed, &["IMAP.AccessAsUser.All"]);
        assert!(!f.hint.contains("New-ServicePrincipal"), "{}", f.hint);
        assert!(
            f.response
                .as_deref()
                .is_some_and(|r| r.contains("[AUTHENTICATIONFAILED]"))
        );
        // The response went after the continuation, as XOAUTH2 of the mailbox,
        // and the failure's challenge was answered with an empty line.
        assert!(sent[0].ends_with("AUTHENTICATE XOAUTH2"), "{sent:?}");
        script::assert_xoauth2_response(&sent[1]);
        assert_eq!(sent[2], "");
    }

    /// Answers to `AUTHENTICATE XOAUTH2`, in each access mode: the code each
    /// is told as, and what its hint names.
    #[tokio::test]
    async fn refusals_are_told_apart() {
        use AccessMode::{AppOnly, Delegated};
        let refusal = challenge();
        let dovecot = dovecot_refusal(&refusal);
        let app_only_fix = [
            "New-ServicePrincipal",
            "Add-MailboxPermission",
            "FullAccess",
        ];
        let cases: [(&[&str], AccessMode, Code, &[&str]); 4] = [
            // App-only: the service principal and the mailbox permission.
            (&dovecot, AppOnly, Code::ImapAuthFailed, &app_only_fix),
            // Microsoft's own words for it.
            (
                &["+ ", "{tag} NO AUTHENTICATE failed."],
                AppOnly,
                Code::ImapAuthFailed,
                &["New-ServicePrincipal"],
            ),
            // Temporarily unavailable: try again.
            (
                &[
                    "+ ",
                    "{tag} NO [UNAVAILABLE] Temporary authentication failure. [mail.test:2025-01-01 10:00:00]",
                ],
                Delegated,
                Code::ImapUnavailable,
                &["try again"],
            ),
            // Throttled at login: how long to wait.
            (
                &[
                    "+ ",
                    "{tag} BAD Request is throttled. Suggested Backoff Time: 89117 milliseconds",
                ],
                Delegated,
                Code::ImapThrottled,
                &["wait 89117 ms (about 89 s) before trying again"],
            ),
        ];
        for (replies, mode, code, hint) in cases {
            assert_told(&auth(replies, mode).await.0, code, hint);
        }
        // The app-only hint does not send anyone to the delegated permission.
        let (f, _) = auth(&dovecot, AppOnly).await;
        assert!(!f.hint.contains("IMAP.AccessAsUser.All"), "{}", f.hint);
    }

    #[tokio::test]
    async fn throttling_at_select_tells_how_long_to_wait() {
        let replies = [
            "+ ",
            "{tag} OK AUTHENTICATE completed.",
            "{tag} NO Request is throttled. Suggested Backoff Time: 299961 milliseconds",
        ];
        let (port, server) = serve(GREETING, &replies).await;
        let token = script::token();
        let login = script::login(&token, AccessMode::Delegated);
        let Ok((mut session, _)) = authenticate(client(port).await, &login).await else {
            panic!("the login should pass");
        };
        let Err(f) = select(&mut session, &login).await else {
            panic!("SELECT should fail");
        };
        let wait = "wait 299961 ms (about 5 minutes) before trying again";
        assert_told(&f, Code::ImapThrottled, &[wait]);
        drop(session);
        let sent = server.await.expect("server");
        assert!(sent[2].contains("SELECT"), "{sent:?}");
    }

    #[test]
    fn throttling_without_a_backoff_time_still_says_to_wait() {
        let f = imap_classified("no response: Request is throttled.".into());
        assert_told(&f, Code::ImapThrottled, &["wait"]);
        assert_eq!(
            imap_classified("bad response: Unknown command".into()).code,
            Code::ImapError
        );
    }
}
