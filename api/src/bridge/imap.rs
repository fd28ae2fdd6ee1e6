//! The IMAP listener (implicit TLS, like port 993). Before a login it
//! answers CAPABILITY, NOOP, LOGOUT, ID, LOGIN and AUTHENTICATE PLAIN (SASL
//! PLAIN, RFC 4616, with an initial response or after the continuation);
//! a login with a bridge password takes the mailbox's token from the token
//! keeper, opens the upstream session with XOAUTH2 (`mail::open_imap_relay`)
//! and answers the client's tag with the upstream's capabilities. From then
//! on the bytes go both ways unchanged until either side closes, or neither
//! sends anything for the idle time.
//!
//! No protocol line is logged, and no password: a session's log line names
//! the peer, the mailbox and how the session ended.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::Refused;
use super::sessions::Sessions;
use crate::codes::Code;
use crate::mail::{Login, StepFailure};
use crate::service::Services;
use crate::service::bridge_passwords::BridgeRefusal;

/// What the pre-login state offers (LOGIN is allowed: the connection is TLS).
pub const CAPABILITIES: &str = "IMAP4rev1 ID AUTH=PLAIN SASL-IR";
/// Longest command line, and longest literal, before a login.
const LINE_MAX: usize = 8 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to log in.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Failed logins on one connection before it is closed.
const MAX_FAILURES: usize = 3;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A relayed session in which neither side sent anything this long ends.
    pub idle: Duration,
    /// How often a relayed session checks that its password still stands.
    pub password_recheck: Duration,
}

/// Accepts connections until the task is dropped; each is a task of its own.
pub async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    services: Services,
    sessions: Arc<Sessions>,
    limits: Limits,
) {
    super::accept_each(listener, "IMAP", move |tcp, peer| {
        let (acceptor, services, sessions) = (acceptor.clone(), services.clone(), sessions.clone());
        async move {
            let metrics = services.metrics.clone();
            metrics.bridge_session("imap", None);
            let ended = session(tcp, peer, acceptor, services, sessions, limits).await;
            metrics.bridge_session("imap", Some(ended.outcome));
            tracing::info!(
                peer = %peer.ip(),
                mailbox_id = ended.mailbox.map(|m| m.to_string()),
                outcome = ended.outcome,
                "bridge IMAP session ended"
            );
        }
    })
    .await;
}

/// How a session ended, for its log line.
struct Ended {
    mailbox: Option<crate::domain::MailboxId>,
    outcome: &'static str,
}

fn ended(outcome: &'static str) -> Ended {
    Ended {
        mailbox: None,
        outcome,
    }
}

async fn session(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    services: Services,
    sessions: Arc<Sessions>,
    limits: Limits,
) -> Ended {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return ended("tls_failed"),
    };
    let mut client = BufReader::new(tls);
    let greeting = format!("* OK [CAPABILITY {CAPABILITIES}] Inboxlink bridge ready\r\n");
    if send(&mut client, &greeting).await.is_err() {
        return ended("closed");
    }
    let mut failures = 0;
    let deadline = tokio::time::Instant::now() + LOGIN_TIMEOUT;
    loop {
        let read = tokio::time::timeout_at(deadline, read_command(&mut client)).await;
        let words = match read {
            Err(_) => {
                let _ = send(&mut client, "* BYE No login in time\r\n").await;
                return ended("login_timeout");
            }
            Ok(Err(ReadError::Closed)) => return ended("closed"),
            Ok(Err(ReadError::TooLong)) => {
                let _ = send(&mut client, "* BYE Command too long\r\n").await;
                return ended("too_long");
            }
            Ok(Ok(words)) => words,
        };
        let Some(command) = Command::parse(words) else {
            if send(&mut client, "* BAD Not an IMAP command\r\n")
                .await
                .is_err()
            {
                return ended("closed");
            }
            continue;
        };
        let tag = command.tag.clone();
        let credentials = match command.name.as_str() {
            "CAPABILITY" => {
                let text =
                    format!("* CAPABILITY {CAPABILITIES}\r\n{tag} OK CAPABILITY completed\r\n");
                reply(&mut client, &text).await;
                continue;
            }
            "NOOP" => {
                reply(&mut client, &format!("{tag} OK NOOP completed\r\n")).await;
                continue;
            }
            "ID" => {
                let text =
                    format!("* ID (\"name\" \"Inboxlink bridge\")\r\n{tag} OK ID completed\r\n");
                reply(&mut client, &text).await;
                continue;
            }
            "LOGOUT" => {
                let text = format!("* BYE Logging out\r\n{tag} OK LOGOUT completed\r\n");
                let _ = send(&mut client, &text).await;
                return ended("logout");
            }
            "LOGIN" => match command.args.as_slice() {
                [user, pass] => Some((text(user), text(pass))),
                _ => None,
            },
            "AUTHENTICATE" => match authenticate_plain(&mut client, &command).await {
                Ok(credentials) => credentials,
                Err(answer) => {
                    reply(&mut client, &answer).await;
                    continue;
                }
            },
            "STARTTLS" => {
                let text = format!("{tag} BAD The connection is TLS already\r\n");
                reply(&mut client, &text).await;
                continue;
            }
            _ => {
                let text = format!("{tag} BAD Log in first (LOGIN or AUTHENTICATE PLAIN)\r\n");
                reply(&mut client, &text).await;
                continue;
            }
        };
        let Some((user, pass)) = credentials else {
            reply(
                &mut client,
                &format!("{tag} BAD Expected a user name and a password\r\n"),
            )
            .await;
            continue;
        };
        match super::login(&services, &sessions, "imap", &user, &pass, peer.ip()).await {
            Ok(login) => {
                let mailbox = login.mailbox_id;
                match relay_login(&mut client, &tag, login, &services, &sessions, limits).await {
                    Ok(outcome) => {
                        return Ended {
                            mailbox: Some(mailbox),
                            outcome,
                        };
                    }
                    // Refused after the password (told why): the client may go on.
                    Err(outcome) => {
                        services.metrics.bridge_login_refused("imap", outcome);
                        tracing::info!(peer = %peer.ip(), mailbox_id = %mailbox, outcome, "bridge IMAP: login not relayed");
                    }
                }
            }
            Err(Refused::Password(BridgeRefusal::Unavailable)) => {
                let text = format!(
                    "{tag} NO [UNAVAILABLE] The bridge cannot check passwords now; try again later\r\n"
                );
                reply(&mut client, &text).await;
            }
            Err(refused) => {
                failures += 1;
                let text = match refused {
                    Refused::Limited(wait) => format!(
                        "{tag} NO [AUTHENTICATIONFAILED] Too many failed logins for this user name or from this address; try again in {} s\r\n",
                        wait.as_secs().max(1)
                    ),
                    Refused::Password(_) => format!(
                        "{tag} NO [AUTHENTICATIONFAILED] Invalid user name or bridge password\r\n"
                    ),
                };
                if failures >= MAX_FAILURES {
                    let _ = send(
                        &mut client,
                        &format!("{text}* BYE Too many failed logins\r\n"),
                    )
                    .await;
                    return ended("refused");
                }
                reply(&mut client, &text).await;
            }
        }
    }
}

/// After the bridge password was accepted: the session limit, the token,
/// the upstream login; then the relay. `Ok`: how the session ended; `Err`:
/// why the login was refused (the client was told, and may go on).
async fn relay_login<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    tag: &str,
    login: crate::service::bridge_passwords::BridgeLogin,
    services: &Services,
    sessions: &Arc<Sessions>,
    limits: Limits,
) -> Result<&'static str, &'static str> {
    let Some(_permit) = sessions.open(login.mailbox_id) else {
        let text = format!(
            "{tag} NO [LIMIT] This mailbox has {} sessions through the bridge already; close one first\r\n",
            sessions.limit()
        );
        let _ = send(client, &text).await;
        return Err("session_limit");
    };
    let token = match services.access_token(&login.org, login.mailbox_id).await {
        Ok(token) => token,
        Err(e) => {
            let code = e.code();
            let _ = send(client, &format!("{tag} {}\r\n", token_refusal(code))).await;
            return Err("no_token");
        }
    };
    let upstream_login = Login {
        mailbox: &token.mailbox,
        smtp_user: token.smtp_user(),
        token: &token.token,
        access_mode: token.access_mode,
    };
    let timeout = services.mail.step_timeout;
    let opened = tokio::time::timeout(
        timeout,
        crate::mail::open_imap_relay(&services.mail, &upstream_login),
    )
    .await;
    let mut relay = match opened {
        Ok(Ok(relay)) => relay,
        Ok(Err(failure)) => {
            let _ = send(client, &format!("{tag} {}\r\n", upstream_refusal(&failure))).await;
            return Err("upstream_refused");
        }
        Err(_) => {
            let text = format!(
                "{tag} NO [UNAVAILABLE] The mailbox's IMAP server did not answer in time; try again later\r\n"
            );
            let _ = send(client, &text).await;
            return Err("upstream_timeout");
        }
    };
    let ok = format!(
        "{tag} OK [CAPABILITY {}] Logged in through the Inboxlink bridge\r\n",
        one_line(&relay.capabilities)
    );
    if send(client, &ok).await.is_err() {
        return Ok("closed");
    }
    let password = login.password_id;
    let revoked = async {
        loop {
            tokio::time::sleep(limits.password_recheck).await;
            if services.bridge_password_usable(password).await == Some(false) {
                return;
            }
        }
    };
    Ok(relay_bytes(client, &mut relay.stream, limits.idle, revoked).await)
}

/// The answer when the token keeper has no token for the mailbox.
fn token_refusal(code: Code) -> String {
    let info = code.info();
    let hint = info
        .hint
        .unwrap_or("See the mailbox's status in Inboxlink.");
    if code == Code::Unavailable {
        return format!(
            "NO [UNAVAILABLE] Microsoft is busy or unreachable, so the bridge has no token for this mailbox: {hint}"
        );
    }
    one_line(&format!(
        "NO [AUTHENTICATIONFAILED] Inboxlink has no valid token for this mailbox ({}: {}). {hint} (in Inboxlink)",
        code.as_str(),
        info.en
    ))
}

/// The answer when the upstream refused the login or could not be reached.
fn upstream_refusal(failure: &StepFailure) -> String {
    let text = match failure.code {
        Code::ImapAuthFailed => format!(
            "NO [AUTHENTICATIONFAILED] The mailbox's IMAP server refused Inboxlink's token: {}",
            failure.hint
        ),
        code => format!(
            "NO [UNAVAILABLE] The bridge cannot open the mailbox's IMAP session ({}): {}",
            code.as_str(),
            failure.hint
        ),
    };
    one_line(&text)
}

/// Text safe inside one protocol line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await?;
    w.flush().await
}

/// Sends an answer; a client that went away is noticed at the next read.
async fn reply<W: AsyncWrite + Unpin>(w: &mut W, text: &str) {
    let _ = send(w, text).await;
}

/// `AUTHENTICATE PLAIN [initial-response]`: the credentials, or the answer
/// that refuses the command.
async fn authenticate_plain<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    command: &Command,
) -> Result<Option<(String, String)>, String> {
    let tag = &command.tag;
    let (mechanism, initial) = match command.args.as_slice() {
        [m] => (m, None),
        [m, initial] => (m, Some(initial.clone())),
        _ => return Err(format!("{tag} BAD Expected AUTHENTICATE PLAIN\r\n")),
    };
    if !mechanism.eq_ignore_ascii_case(b"PLAIN") {
        return Err(format!(
            "{tag} NO [CANNOT] Only AUTHENTICATE PLAIN is offered\r\n"
        ));
    }
    let response = match initial {
        Some(r) => r,
        None => {
            send(client, "+ \r\n").await.map_err(|_| String::new())?;
            let mut line = Vec::new();
            let read = read_line(client, &mut line).await;
            if read.is_err() {
                return Err(format!("{tag} BAD Expected the SASL response\r\n"));
            }
            line
        }
    };
    if response == b"*" {
        return Err(format!("{tag} BAD AUTHENTICATE cancelled\r\n"));
    }
    let decoded = if response == b"=" {
        Vec::new()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(&response)
            .map_err(|_| format!("{tag} BAD The SASL response is not base64\r\n"))?
    };
    // authzid NUL authcid NUL passwd (RFC 4616); an authzid must be the user itself.
    let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
    match parts.as_slice() {
        [authz, user, pass] if authz.is_empty() || authz == user => {
            Ok(Some((text(user), text(pass))))
        }
        [_, _, _] => Err(format!(
            "{tag} NO [AUTHORIZATIONFAILED] Log in as yourself only\r\n"
        )),
        _ => Err(format!("{tag} BAD Not a SASL PLAIN response\r\n")),
    }
}

/// A parsed command: its tag, its name (upper case) and its arguments.
#[derive(Debug)]
struct Command {
    tag: String,
    name: String,
    args: Vec<Vec<u8>>,
}

impl Command {
    fn parse(words: Vec<Vec<u8>>) -> Option<Self> {
        let mut words = words.into_iter();
        let tag = words.next()?;
        let valid_tag = !tag.is_empty()
            && tag
                .iter()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(b));
        if !valid_tag {
            return None;
        }
        let name = words.next()?;
        Some(Self {
            tag: text(&tag),
            name: text(&name).to_ascii_uppercase(),
            args: words.collect(),
        })
    }
}

#[derive(Debug)]
enum ReadError {
    Closed,
    TooLong,
}

/// One line without its CRLF (at most [`LINE_MAX`]).
async fn read_line<S: AsyncRead + Unpin>(
    client: &mut BufReader<S>,
    line: &mut Vec<u8>,
) -> Result<(), ReadError> {
    line.clear();
    let limit = u64::try_from(LINE_MAX).unwrap_or(u64::MAX) + 2;
    let n = (&mut *client)
        .take(limit)
        .read_until(b'\n', line)
        .await
        .map_err(|_| ReadError::Closed)?;
    if n == 0 {
        return Err(ReadError::Closed);
    }
    if line.last() != Some(&b'\n') {
        return Err(ReadError::TooLong);
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(())
}

/// A literal's announcement at the end of a line: `{n}` (the client waits
/// for a continuation) or `{n+}` (it does not).
fn literal_at_end(line: &[u8]) -> Option<(usize, usize, bool)> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|b| *b == b'{')?;
    let inner = &body[open + 1..];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((open, n, sync))
}

/// Reads one command (with its literals) as words: atoms, quoted strings
/// and literals, parentheses dropped (only ID has lists, and its are ignored).
async fn read_command<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
) -> Result<Vec<Vec<u8>>, ReadError> {
    let mut words = Vec::new();
    let mut line = Vec::new();
    let mut total = 0;
    loop {
        read_line(client, &mut line).await?;
        total += line.len();
        let Some((open, n, sync)) = literal_at_end(&line) else {
            words.extend(split_words(&line)?);
            return Ok(words);
        };
        total += n;
        if total > LINE_MAX {
            return Err(ReadError::TooLong);
        }
        words.extend(split_words(&line[..open])?);
        if sync {
            send(client, "+ Ready\r\n")
                .await
                .map_err(|_| ReadError::Closed)?;
        }
        let mut literal = vec![0; n];
        client
            .read_exact(&mut literal)
            .await
            .map_err(|_| ReadError::Closed)?;
        words.push(literal);
    }
}

/// The words of one line: atoms and quoted strings (`\"` and `\\` escaped).
fn split_words(line: &[u8]) -> Result<Vec<Vec<u8>>, ReadError> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b' ' | b'(' | b')' => i += 1,
            b'"' => {
                let mut word = Vec::new();
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Ok(words_with(words, word)),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            if let Some(c) = line.get(i + 1) {
                                word.push(*c);
                            }
                            i += 2;
                        }
                        Some(c) => {
                            word.push(*c);
                            i += 1;
                        }
                    }
                }
                words.push(word);
            }
            _ => {
                let start = i;
                while i < line.len() && !b" ()".contains(&line[i]) {
                    i += 1;
                }
                words.push(line[start..i].to_vec());
            }
        }
    }
    Ok(words)
}

fn words_with(mut words: Vec<Vec<u8>>, last: Vec<u8>) -> Vec<Vec<u8>> {
    words.push(last);
    words
}

/// Milliseconds since `base`, the last time either side sent something.
struct Activity {
    base: tokio::time::Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Returns once nothing was sent for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if last.elapsed() >= idle {
                return;
            }
            tokio::time::sleep_until(last + idle).await;
        }
    }
}

/// A stream that notes when data arrives on it.
struct Watched<'a, S> {
    inner: &'a mut S,
    activity: &'a Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut *self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// Both ways, unchanged, until either side closes, the session is idle, or
/// `revoked` completes (its password was revoked or expired). Bytes already
/// read into either buffer go first.
async fn relay_bytes<C, U>(
    client: &mut C,
    upstream: &mut U,
    idle: Duration,
    revoked: impl std::future::Future<Output = ()>,
) -> &'static str
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity {
        base: tokio::time::Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let outcome = {
        let mut c = Watched {
            inner: &mut *client,
            activity: &activity,
        };
        let mut u = Watched {
            inner: &mut *upstream,
            activity: &activity,
        };
        tokio::select! {
            done = tokio::io::copy_bidirectional(&mut c, &mut u) => match done {
                Ok(_) => "relayed",
                Err(_) => "relay_broken",
            },
            () = activity.idle_for(idle) => "idle",
            () = revoked => "password_revoked",
        }
    };
    let bye = match outcome {
        "idle" => Some(format!(
            "* BYE Nothing was sent for {} minutes; log in again\r\n",
            idle.as_secs().div_ceil(60)
        )),
        "password_revoked" => Some(
            "* BYE The bridge password of this session was revoked or has expired\r\n".to_owned(),
        ),
        _ => None,
    };
    if let Some(text) = bye {
        let _ = send(client, &text).await;
        let _ = client.shutdown().await;
        let _ = upstream.shutdown().await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line.as_bytes())
            .expect("words")
            .iter()
            .map(|w| text(w))
            .collect()
    }

    #[test]
    fn atoms_quoted_strings_and_lists() {
        assert_eq!(
            words(r#"a1 LOGIN scanner@contoso.cz "k7qm \"x\" \\y""#),
            ["a1", "LOGIN", "scanner@contoso.cz", r#"k7qm "x" \y"#]
        );
        assert_eq!(words(r#"a2 ID ("name" "x")"#), ["a2", "ID", "name", "x"]);
        assert_eq!(words("a3 ID NIL"), ["a3", "ID", "NIL"]);
        assert_eq!(words("a4 LOGIN u \"\""), ["a4", "LOGIN", "u", ""]);
    }

    #[test]
    fn literals_are_found_at_the_end_of_a_line() {
        assert_eq!(literal_at_end(b"a LOGIN {5}"), Some((8, 5, true)));
        assert_eq!(literal_at_end(b"a LOGIN u {12+}"), Some((10, 12, false)));
        assert_eq!(literal_at_end(b"a LOGIN u p"), None);
        assert_eq!(literal_at_end(b"a LOGIN {x}"), None);
        assert_eq!(literal_at_end(b"a LOGIN {}"), None);
    }

    #[test]
    fn tags_are_atoms() {
        let parse = |line: &str| Command::parse(split_words(line.as_bytes()).expect("words"));
        let c = parse("A001 login u p").expect("a command");
        assert_eq!(
            (c.tag.as_str(), c.name.as_str(), c.args.len()),
            ("A001", "LOGIN", 2)
        );
        assert!(parse("+ LOGIN u p").is_none());
        assert!(parse("a*b NOOP").is_none());
        assert!(parse("lonely").is_none());
    }

    #[test]
    fn refusals_name_the_cause_and_the_fix_on_one_line() {
        let text = token_refusal(Code::ReauthRequired);
        assert!(text.starts_with("NO [AUTHENTICATIONFAILED] "), "{text}");
        assert!(
            text.contains("reauth_required") && text.contains("Sign in again"),
            "{text}"
        );
        assert!(token_refusal(Code::Unavailable).starts_with("NO [UNAVAILABLE] "));
        let failure = StepFailure::new(
            Code::ImapAuthFailed,
            None,
            "Enable IMAP.\nThen sign in again.",
        );
        let text = upstream_refusal(&failure);
        assert!(
            text.starts_with("NO [AUTHENTICATIONFAILED] ") && !text.contains('\n'),
            "{text}"
        );
    }
}
