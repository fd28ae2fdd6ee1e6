//! The SMTP submission listeners: STARTTLS (like port 587: `AUTH` is
//! neither offered nor accepted before it) and implicit TLS (like 465).
//! `AUTH PLAIN` and `AUTH LOGIN` take a bridge password; then the bridge
//! connects to the mailbox's submission server while the password's hash
//! is checked (`mail::connect_smtp_relay`), logs in with XOAUTH2 and
//! forwards the client's transaction command by command: the envelope and the message's bytes go upstream unchanged,
//! the upstream's replies come back unchanged. A `MAIL FROM` that is not
//! the mailbox's address is refused here with `550 5.7.1`, and one that
//! declares a `SIZE` above the advertised one with `552 5.3.4` (RFC 1870).
//!
//! No protocol line and no password is logged.
//!
//! The file is long because it is one protocol end to end: the greeting,
//! `STARTTLS` and `AUTH`, the upstream login, and the transaction relayed
//! command by command (the envelope checks and `DATA`; `BDAT` is refused),
//! with their unit tests; like the IMAP listener, it keeps one protocol in
//! one place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::sessions::Sessions;
use super::{Early, Refused, Warmed, early_or};
use crate::codes::Code;
use crate::mail::{Login, SmtpGreeted, SmtpNotGreeted, SmtpRelay, StepFailure, read_smtp_reply};
use crate::service::Services;
use crate::service::bridge::Upstream;
use crate::service::bridge_passwords::{BridgeLogin, BridgeRefusal};

/// Exchange Online's message size limit, advertised as `SIZE`.
pub const MESSAGE_MAX: usize = 35 * 1024 * 1024;
/// Longest command line (RFC 5321 says 512; SMTPUTF8 addresses need more).
const LINE_MAX: usize = 4096;
/// RFC 5321's 5 minutes for a command.
const IDLE: Duration = Duration::from_secs(300);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_FAILURES: usize = 3;
const NAME: &str = "inboxlink-bridge";

/// Accepts connections until the task is dropped; `implicit`: TLS from the
/// first byte (SMTPS), else STARTTLS.
pub async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    services: Services,
    sessions: Arc<Sessions>,
    implicit: bool,
) {
    super::accept_each(listener, "SMTP", move |tcp, peer| {
        let (acceptor, services, sessions) = (acceptor.clone(), services.clone(), sessions.clone());
        async move {
            let mut ended = Ended::default();
            services.metrics.bridge_session("smtp", None);
            session(
                tcp, peer, &acceptor, &services, &sessions, implicit, &mut ended,
            )
            .await;
            services.metrics.bridge_session("smtp", Some(ended.outcome));
            tracing::info!(
                peer = %peer.ip(),
                mailbox_id = ended.mailbox.map(|m| m.to_string()),
                outcome = ended.outcome,
                messages = ended.messages,
                "bridge SMTP session ended"
            );
        }
    })
    .await;
}

#[derive(Default)]
struct Ended {
    mailbox: Option<crate::domain::MailboxId>,
    outcome: &'static str,
    messages: usize,
    /// Bytes relayed after the login: the client's commands and messages,
    /// and the server's replies.
    to_upstream: u64,
    to_client: u64,
}

async fn session(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: &tokio_rustls::TlsAcceptor,
    services: &Services,
    sessions: &Arc<Sessions>,
    implicit: bool,
    ended: &mut Ended,
) {
    let mut early = Early::start(services, sessions, peer.ip(), |mail| async move {
        crate::mail::connect_smtp_relay(&mail).await
    });
    let greeting = format!("220 {NAME} ESMTP Inboxlink bridge ready\r\n");
    let tcp = if implicit {
        tcp
    } else {
        let mut plain = BufReader::new(tcp);
        if send(&mut plain, &greeting).await.is_err() {
            ended.outcome = "closed";
            return;
        }
        match dialogue(
            &mut plain, false, peer, services, sessions, &mut early, ended,
        )
        .await
        {
            Next::StartTls if plain.buffer().is_empty() => plain.into_inner(),
            Next::StartTls => {
                // Commands sent before the handshake could be an attacker's.
                ended.outcome = "pipelined_starttls";
                return;
            }
            Next::Done => return,
        }
    };
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => {
            ended.outcome = "tls_failed";
            return;
        }
    };
    let mut client = BufReader::new(tls);
    if implicit && send(&mut client, &greeting).await.is_err() {
        ended.outcome = "closed";
        return;
    }
    dialogue(
        &mut client,
        true,
        peer,
        services,
        sessions,
        &mut early,
        ended,
    )
    .await;
}

enum Next {
    StartTls,
    Done,
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.flush().await
}

/// One command line without its CRLF, or `None` when the client went away,
/// sent too long a line, or was silent for [`IDLE`].
async fn read_line<S: AsyncRead + Unpin>(client: &mut BufReader<S>) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let limit = u64::try_from(LINE_MAX).unwrap_or(u64::MAX);
    let mut limited = (&mut *client).take(limit);
    let read = limited.read_until(b'\n', &mut line);
    match tokio::time::timeout(IDLE, read).await {
        Ok(Ok(n)) if n > 0 && line.last() == Some(&b'\n') => {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            Some(line)
        }
        _ => None,
    }
}

fn ehlo_reply(secure: bool, name: &str) -> String {
    let mut lines = vec![format!("{NAME} greets {name}")];
    if secure {
        lines.push("AUTH PLAIN LOGIN".into());
    } else {
        lines.push("STARTTLS".into());
    }
    lines.extend([
        format!("SIZE {MESSAGE_MAX}"),
        "8BITMIME".into(),
        "PIPELINING".into(),
        "ENHANCEDSTATUSCODES".into(),
    ]);
    let last = lines.len() - 1;
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
        .collect()
}

/// The commands before (and up to) a login; on TLS a login leads to the relay.
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    secure: bool,
    peer: SocketAddr,
    services: &Services,
    sessions: &Arc<Sessions>,
    early: &mut Option<Early<Result<SmtpGreeted, SmtpNotGreeted>>>,
    ended: &mut Ended,
) -> Next {
    let mut greeted = false;
    let mut failures = 0;
    loop {
        let Some(line) = read_line(client).await else {
            ended.outcome = "closed";
            return Next::Done;
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let (verb, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let answer = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                greeted = true;
                ehlo_reply(secure, rest.trim())
            }
            "HELO" => {
                greeted = true;
                format!("250 {NAME}\r\n")
            }
            "STARTTLS" if secure => "503 5.5.1 TLS is already active\r\n".into(),
            "STARTTLS" => {
                let _ = send(client, "220 2.0.0 Ready to start TLS\r\n").await;
                return Next::StartTls;
            }
            "AUTH" if !secure => "530 5.7.0 Must issue a STARTTLS command first\r\n".into(),
            "AUTH" if !greeted => "503 5.5.1 Send EHLO first\r\n".into(),
            "AUTH" => {
                let credentials = match sasl(client, rest).await {
                    Ok(c) => c,
                    Err(answer) => {
                        if send(client, &answer).await.is_err() {
                            ended.outcome = "closed";
                            return Next::Done;
                        }
                        continue;
                    }
                };
                let (user, pass) = credentials;
                let warm = |login: &BridgeLogin| {
                    let servers = services.mail.servers(login.cloud);
                    let connect = async move { crate::mail::connect_smtp_relay(&servers).await };
                    let connect = early_or(early.take(), login.cloud, connect);
                    Warmed::new(services, login.org.clone(), login.mailbox_id, connect)
                };
                let checked =
                    super::login(services, sessions, "smtp", &user, &pass, peer.ip(), warm);
                match checked.await {
                    Ok((login, warmed)) => {
                        ended.mailbox = Some(login.mailbox_id);
                        if relay_login(client, login, warmed, services, sessions, ended).await {
                            return Next::Done;
                        }
                        // Refused after the password (told why): the client may try again.
                        services.metrics.bridge_login_refused("smtp", ended.outcome);
                        continue;
                    }
                    Err(Refused::Password(BridgeRefusal::Unavailable)) => {
                        "454 4.7.0 The bridge cannot check passwords now; try again later\r\n"
                            .into()
                    }
                    Err(refused) => {
                        failures += 1;
                        let text = match refused {
                            Refused::Limited(wait) => format!(
                                "454 4.7.0 Too many failed logins for this user name or from this address; try again in {} s\r\n",
                                wait.as_secs().max(1)
                            ),
                            Refused::Password(_) => {
                                "535 5.7.8 Invalid user name or bridge password\r\n".to_owned()
                            }
                        };
                        if failures >= MAX_FAILURES {
                            let _ = send(
                                client,
                                &format!("{text}421 4.7.0 Too many failed logins\r\n"),
                            )
                            .await;
                            ended.outcome = "refused";
                            return Next::Done;
                        }
                        text
                    }
                }
            }
            "MAIL" | "RCPT" | "DATA" | "BDAT" => "530 5.7.0 Authentication required\r\n".into(),
            "NOOP" => "250 2.0.0 OK\r\n".into(),
            "RSET" => "250 2.0.0 OK\r\n".into(),
            "QUIT" => {
                let _ = send(client, "221 2.0.0 Bye\r\n").await;
                ended.outcome = "quit";
                return Next::Done;
            }
            _ => "502 5.5.1 Command not recognized\r\n".into(),
        };
        if send(client, &answer).await.is_err() {
            ended.outcome = "closed";
            return Next::Done;
        }
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    if text == "=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// `AUTH PLAIN [ir]` or `AUTH LOGIN [ir]`: the user name and password, or
/// the reply that refuses the command.
async fn sasl<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    args: &str,
) -> Result<(String, String), String> {
    let mut words = args.split_whitespace();
    let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
    let initial = words.next().map(str::to_owned);
    let not_base64 = "501 5.5.2 Not base64\r\n".to_owned();
    let utf8 = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(ir) => decode(&ir).ok_or_else(|| not_base64.clone())?,
                None => ask(client, "").await?,
            };
            let parts: Vec<&[u8]> = response.split(|b| *b == 0).collect();
            match parts.as_slice() {
                [authz, user, pass] if authz.is_empty() || authz == user => {
                    Ok((utf8(user.to_vec()), utf8(pass.to_vec())))
                }
                [_, _, _] => Err("535 5.7.8 Log in as yourself only\r\n".into()),
                _ => Err("501 5.5.2 Not a SASL PLAIN response\r\n".into()),
            }
        }
        "LOGIN" => {
            let user = match initial {
                Some(ir) => decode(&ir).ok_or_else(|| not_base64.clone())?,
                None => ask(client, "VXNlcm5hbWU6").await?,
            };
            let pass = ask(client, "UGFzc3dvcmQ6").await?;
            Ok((utf8(user), utf8(pass)))
        }
        _ => Err("504 5.5.4 Only AUTH PLAIN and AUTH LOGIN are offered\r\n".into()),
    }
}

/// A `334` prompt and the client's base64 answer.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    prompt: &str,
) -> Result<Vec<u8>, String> {
    let cancelled = "501 5.7.0 Authentication cancelled\r\n".to_owned();
    send(client, &format!("334 {prompt}\r\n"))
        .await
        .map_err(|_| cancelled.clone())?;
    let line = read_line(client).await.ok_or_else(|| cancelled.clone())?;
    let text = String::from_utf8_lossy(&line).into_owned();
    if text == "*" {
        return Err(cancelled);
    }
    decode(&text).ok_or_else(|| "501 5.5.2 Not base64\r\n".to_owned())
}

/// The answer when the token keeper has no token for the mailbox.
fn token_refusal(code: Code) -> String {
    let info = code.info();
    let hint = info
        .hint
        .unwrap_or("See the mailbox's status in Inboxlink.");
    if code == Code::Unavailable {
        return format!(
            "454 4.7.0 Microsoft is busy or unreachable, so the bridge has no token for this mailbox: {hint}\r\n"
        );
    }
    format!(
        "535 5.7.8 Inboxlink has no valid token for this mailbox ({}: {}). {hint} (in Inboxlink)\r\n",
        code.as_str(),
        info.en
    )
}

/// The answer when the upstream refused the login: its own code (and
/// enhanced code) when it gave one, with the check's hint.
fn upstream_refusal(failure: &StepFailure) -> String {
    let said = failure.response.clone().unwrap_or_default();
    let mut words = said.split_whitespace();
    let code = words
        .next()
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()));
    let enhanced = words.next().filter(|c| {
        c.split('.').count() == 3
            && c.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    let (code, enhanced) = match (code, enhanced) {
        (Some(c), e) if c.starts_with('4') || c.starts_with('5') => (
            c.to_owned(),
            e.unwrap_or(if c.starts_with('4') { "4.7.0" } else { "5.7.8" })
                .to_owned(),
        ),
        _ => ("454".to_owned(), "4.7.0".to_owned()),
    };
    let text: String = format!(
        "The mailbox's SMTP server refused Inboxlink's login ({}): {}",
        failure.code.as_str(),
        failure.hint
    )
    .chars()
    .map(|c| if c.is_control() { ' ' } else { c })
    .collect();
    format!("{code} {enhanced} {text}\r\n")
}

/// `true` when the session is over (relayed, or the client went away);
/// `false` after a refusal that was sent, when the client may go on.
async fn relay_login<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    login: BridgeLogin,
    warmed: Warmed<Result<SmtpGreeted, SmtpNotGreeted>>,
    services: &Services,
    sessions: &Arc<Sessions>,
    ended: &mut Ended,
) -> bool {
    let Some(_permit) = sessions.open(login.mailbox_id) else {
        let text = format!(
            "454 4.7.0 This mailbox has {} sessions through the bridge already; close one first\r\n",
            sessions.limit()
        );
        let _ = send(client, &text).await;
        ended.outcome = "session_limit";
        return false;
    };
    let token = match warmed.token {
        Ok(token) => token,
        Err(e) => {
            let _ = send(client, &token_refusal(e.code())).await;
            ended.outcome = "no_token";
            return false;
        }
    };
    let upstream_login = Login {
        mailbox: &token.mailbox,
        smtp_user: token.smtp_user(),
        token: &token.token,
        access_mode: token.access_mode,
    };
    let timeout = services.mail.step_timeout;
    let opened = match warmed.upstream {
        Ok(Ok(greeted)) => tokio::time::timeout(timeout, greeted.login(&upstream_login)).await,
        Ok(Err(not)) => Ok(Err(not.failure(&upstream_login))),
        Err(elapsed) => Err(elapsed),
    };
    let mut relay = match super::upstream_login(services, &login, Upstream::Smtp, opened).await {
        Ok(relay) => relay,
        Err(Some(failure)) => {
            let _ = send(client, &upstream_refusal(&failure)).await;
            ended.outcome = "upstream_refused";
            return false;
        }
        Err(None) => {
            let _ = send(
                client,
                "454 4.7.0 The mailbox's SMTP server did not answer in time; try again later\r\n",
            )
            .await;
            ended.outcome = "upstream_timeout";
            return false;
        }
    };
    if send(client, "235 2.7.0 Authentication successful\r\n")
        .await
        .is_err()
    {
        ended.outcome = "closed";
        return true;
    }
    ended.outcome = transaction(client, &mut relay, &token.mailbox, ended).await;
    services
        .metrics
        .bridge_bytes("smtp", ended.to_upstream, ended.to_client);
    true
}

/// The address of `MAIL FROM:<address> …` (empty for the null path).
fn reverse_path(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    let after = rest.get(..5).filter(|p| p.eq_ignore_ascii_case("FROM:"))?;
    let path = rest[after.len()..].trim_start();
    let inner = path.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// The `SIZE=` parameter of `MAIL FROM:<address> …` (RFC 1870), if any.
fn declared_size(rest: &str) -> Option<usize> {
    let params = &rest[rest.find('>')? + 1..];
    params.split_whitespace().find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse().unwrap_or(usize::MAX))
    })
}

/// Most of a message written upstream at once (one TLS record).
const COPY_BATCH: usize = 16 * 1024;

/// RFC 5321's wait for the reply to the message's final dot.
const DATA_REPLY: Duration = Duration::from_secs(600);

/// The server's next reply, within `wait`.
async fn upstream_reply(
    relay: &mut SmtpRelay,
    wait: Duration,
) -> std::io::Result<crate::mail::SmtpReply> {
    tokio::time::timeout(wait, read_smtp_reply(&mut relay.stream))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

async fn forward<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    relay: &mut SmtpRelay,
    line: &[u8],
    ended: &mut Ended,
) -> std::io::Result<u16> {
    relay.stream.write_all(line).await?;
    relay.stream.write_all(b"\r\n").await?;
    relay.stream.flush().await?;
    ended.to_upstream += line.len() as u64 + 2;
    let reply = upstream_reply(relay, IDLE).await?;
    client.write_all(&reply.raw).await?;
    client.flush().await?;
    ended.to_client += reply.raw.len() as u64;
    Ok(reply.code)
}

/// Copies the message from the client to the server up to and including
/// its final `.` line, unchanged. `false` when it was too large or broke.
/// Lines are read one by one (to find the end) but written upstream in
/// batches: what one read from the client brought, up to [`COPY_BATCH`],
/// so a message does not become a TLS record per line.
async fn copy_data<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    relay: &mut SmtpRelay,
    ended: &mut Ended,
) -> Result<(), &'static str> {
    let mut size = 0usize;
    let mut line = Vec::new();
    let mut batch = Vec::with_capacity(COPY_BATCH);
    let mut line_start = true;
    loop {
        line.clear();
        let mut limited = (&mut *client).take(1 << 20);
        let read = limited.read_until(b'\n', &mut line);
        match tokio::time::timeout(IDLE, read).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Err("closed_in_data"),
        }
        size += line.len();
        if size > MESSAGE_MAX + 5 {
            return Err("too_large");
        }
        batch.extend_from_slice(&line);
        let last = line_start && (line == b".\r\n" || line == b".\n");
        // A line longer than the read's limit comes in pieces.
        line_start = line.last() == Some(&b'\n');
        if last || batch.len() >= COPY_BATCH || client.buffer().is_empty() {
            relay
                .stream
                .write_all(&batch)
                .await
                .map_err(|_| "relay_broken")?;
            ended.to_upstream += batch.len() as u64;
            batch.clear();
        }
        if last {
            relay.stream.flush().await.map_err(|_| "relay_broken")?;
            return Ok(());
        }
    }
}

/// The client's transaction, forwarded command by command.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    relay: &mut SmtpRelay,
    mailbox: &str,
    ended: &mut Ended,
) -> &'static str {
    loop {
        let Some(line) = read_line(client).await else {
            let _ = relay.stream.write_all(b"QUIT\r\n").await;
            return "closed";
        };
        let text = String::from_utf8_lossy(&line).into_owned();
        let (verb, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let local = match verb.to_ascii_uppercase().as_str() {
            "MAIL" => match reverse_path(rest) {
                // RFC 1870: a declared size above the advertised one is refused at once.
                _ if declared_size(rest).is_some_and(|n| n > MESSAGE_MAX) => Some(format!(
                    "552 5.3.4 The message is larger than {MESSAGE_MAX} bytes\r\n"
                )),
                Some(from) if from.eq_ignore_ascii_case(mailbox) => None,
                Some(from) => Some(format!(
                    "550 5.7.1 The bridge sends as {mailbox} only: <{}> is not this mailbox's address\r\n",
                    from.chars().filter(|c| !c.is_control()).collect::<String>()
                )),
                None => Some("501 5.5.4 Syntax: MAIL FROM:<address>\r\n".to_owned()),
            },
            "EHLO" => {
                // A new EHLO resets the transaction, upstream too.
                let reset = forward_silently(relay, b"RSET").await;
                if reset.is_err() {
                    return "relay_broken";
                }
                Some(ehlo_reply(true, rest.trim()))
            }
            "AUTH" => Some("503 5.5.1 Already authenticated\r\n".to_owned()),
            "STARTTLS" => Some("503 5.5.1 TLS is already active\r\n".to_owned()),
            "BDAT" => Some("502 5.5.1 BDAT is not offered; use DATA\r\n".to_owned()),
            _ => None,
        };
        if let Some(answer) = local {
            if send(client, &answer).await.is_err() {
                return "closed";
            }
            continue;
        }
        let upper = verb.to_ascii_uppercase();
        let code = match forward(client, relay, &line, ended).await {
            Ok(code) => code,
            Err(_) => return "relay_broken",
        };
        if upper == "QUIT" {
            return "quit";
        }
        if upper == "DATA" && code == 354 {
            if let Err(why) = copy_data(client, relay, ended).await {
                if why == "too_large" {
                    let text =
                        format!("552 5.3.4 The message is larger than {MESSAGE_MAX} bytes\r\n");
                    let _ = send(client, &text).await;
                }
                return why;
            }
            let reply = match upstream_reply(relay, DATA_REPLY).await {
                Ok(reply) => reply,
                Err(_) => return "relay_broken",
            };
            if reply.code / 100 == 2 {
                ended.messages += 1;
            }
            ended.to_client += reply.raw.len() as u64;
            if client.write_all(&reply.raw).await.is_err() || client.flush().await.is_err() {
                return "closed";
            }
        }
    }
}

/// A command whose reply the client does not see.
async fn forward_silently(relay: &mut SmtpRelay, line: &[u8]) -> std::io::Result<()> {
    relay.stream.write_all(line).await?;
    relay.stream.write_all(b"\r\n").await?;
    relay.stream.flush().await?;
    upstream_reply(relay, IDLE).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reverse_path_is_read() {
        assert_eq!(reverse_path("FROM:<a@b.cz>").as_deref(), Some("a@b.cz"));
        assert_eq!(
            reverse_path("from: <A@B.cz> SIZE=100 BODY=8BITMIME").as_deref(),
            Some("A@B.cz")
        );
        assert_eq!(reverse_path("FROM:<>").as_deref(), Some(""));
        assert_eq!(reverse_path("TO:<a@b.cz>"), None);
        assert_eq!(reverse_path("FROM:a@b.cz"), None);
    }

    #[test]
    fn the_declared_size_is_read() {
        assert_eq!(
            declared_size("FROM:<a@b.cz> SIZE=100 BODY=8BITMIME"),
            Some(100)
        );
        assert_eq!(declared_size("FROM:<a@b.cz> body=8bitmime size=7"), Some(7));
        assert_eq!(declared_size("FROM:<a@b.cz>"), None);
        assert_eq!(declared_size("FROM:<size=5@b.cz>"), None);
        assert_eq!(
            declared_size("FROM:<a@b.cz> SIZE=99999999999999999999999"),
            Some(usize::MAX)
        );
    }

    #[test]
    fn auth_is_offered_only_on_tls() {
        let plain = ehlo_reply(false, "client");
        assert!(
            plain.contains("250-STARTTLS") && !plain.contains("AUTH"),
            "{plain}"
        );
        let secure = ehlo_reply(true, "client");
        assert!(
            secure.contains("AUTH PLAIN LOGIN") && !secure.contains("STARTTLS"),
            "{secure}"
        );
        assert!(secure.ends_with("250 ENHANCEDSTATUSCODES\r\n"), "{secure}");
    }

    #[test]
    fn an_upstream_refusal_keeps_its_codes() {
        let failure = StepFailure::new(
            Code::SmtpAuthDisabled,
            Some(
                "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled"
                    .into(),
            ),
            "Run Set-CASMailbox.",
        );
        let text = upstream_refusal(&failure);
        assert!(text.starts_with("535 5.7.139 "), "{text}");
        assert!(
            text.contains("smtp_auth_disabled") && text.contains("Set-CASMailbox"),
            "{text}"
        );
        let unreachable = StepFailure::new(Code::Unreachable, None, "Cannot connect.");
        assert!(upstream_refusal(&unreachable).starts_with("454 4.7.0 "));
    }
}
