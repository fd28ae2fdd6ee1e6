//! The IMAP listener (implicit TLS, like port 993). Before a login it
//! answers CAPABILITY, NOOP, LOGOUT, ID, LOGIN and AUTHENTICATE PLAIN (SASL
//! PLAIN, RFC 4616, with an initial response or after the continuation);
//! a login with a bridge password takes the mailbox's token from the token
//! keeper and connects upstream (`mail::connect_imap_relay`) while the
//! password's hash is checked, then logs in with XOAUTH2 and answers the
//! client's tag with the upstream's capabilities. From then
//! on the bytes go both ways unchanged until either side closes, or neither
//! sends anything for the idle time.
//!
//! No protocol line is logged, and no password: a session's log line names
//! the peer, the mailbox and how the session ended.
//!
//! The file is long because it is one protocol end to end: the commands
//! before a login, the reader of commands and literals, the upstream login
//! and the relay with its idle and revocation watch, and their unit tests.
//! They share the session's types and limits; apart, one protocol would be
//! spread over several files.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::sessions::Sessions;
use super::{Early, Refused, Warmed, early_or};
use crate::codes::Code;
use crate::mail::{Login, StepFailure};
use crate::service::Services;
use crate::service::bridge::Upstream;
use crate::service::bridge_passwords::{BridgeLogin, BridgeRefusal};

/// What the pre-login state offers (LOGIN is allowed: the connection is TLS).
pub const CAPABILITIES: &str = "IMAP4rev1 ID AUTH=PLAIN SASL-IR";
/// The read buffer of each side of a session (see `mail::connect_imap_relay`).
pub const SESSION_BUFFER: usize = crate::mail::IMAP_RELAY_BUFFER;
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
    let mut early = Early::start(&services, &sessions, peer.ip(), |mail| async move {
        crate::mail::connect_imap_relay(&mail).await
    });
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return ended("tls_failed"),
    };
    // A small buffer: a session may sit idle for 30 minutes, a thousand at
    // once; the relay's bulk reads bypass it.
    let mut client = BufReader::with_capacity(SESSION_BUFFER, tls);
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
        let warm = |login: &BridgeLogin| {
            let servers = services.mail.servers(login.cloud);
            let connect = async move { crate::mail::connect_imap_relay(&servers).await };
            let connect = early_or(early.take(), login.cloud, connect);
            Warmed::new(&services, login.org.clone(), login.mailbox_id, connect)
        };
        match super::login(&services, &sessions, "imap", &user, &pass, peer.ip(), warm).await {
            Ok((login, warmed)) => {
                let mailbox = login.mailbox_id;
                let relayed = relay_login(
                    &mut client,
                    &tag,
                    login,
                    warmed,
                    &services,
                    &sessions,
                    limits,
                );
                match relayed.await {
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
/// the upstream login on the connection warmed meanwhile; then the relay.
/// `Ok`: how the session ended; `Err`: why the login was refused (the
/// client was told, and may go on).
async fn relay_login<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut BufReader<S>,
    tag: &str,
    login: BridgeLogin,
    warmed: Warmed<Result<crate::mail::ImapGreeted, StepFailure>>,
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
    let token = match warmed.token {
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
    let opened = match warmed.upstream {
        Ok(Ok(greeted)) => tokio::time::timeout(timeout, greeted.login(&upstream_login)).await,
        Ok(Err(failure)) => Ok(Err(failure)),
        Err(elapsed) => Err(elapsed),
    };
    let mut relay = match super::upstream_login(services, &login, Upstream::Imap, opened).await {
        Ok(relay) => relay,
        Err(Some(failure)) => {
            let _ = send(client, &format!("{tag} {}\r\n", upstream_refusal(&failure))).await;
            return Err("upstream_refused");
        }
        Err(None) => {
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
        let Some(password) = password else {
            // The check's one-time login has no password to revoke.
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(limits.password_recheck).await;
            if services.bridge_password_usable(password).await == Some(false) {
                return;
            }
        }
    };
    let relayed = relay_bytes(
        client,
        &mut relay.stream,
        limits.idle,
        revoked,
        token.expires_at,
    )
    .await;
    services
        .metrics
        .bridge_bytes("imap", relayed.to_upstream, relayed.to_client);
    Ok(relayed.outcome)
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
    fn new() -> Self {
        Self {
            base: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

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

/// How much of the end of the server's output a relay keeps, to tell how
/// the session ended.
const TAIL: usize = 256;

/// The read side of one direction: notes activity, counts bytes, and keeps
/// the last [`TAIL`] bytes read.
struct Watched<'a, R> {
    inner: R,
    activity: &'a Activity,
    bytes: u64,
    tail: Vec<u8>,
    /// Whether `COMPRESS DEFLATE` went by (RFC 4978): from then on the
    /// stream is compressed, and the bridge writes no line of its own into it.
    compress_seen: bool,
}

impl<'a, R> Watched<'a, R> {
    fn new(inner: R, activity: &'a Activity) -> Self {
        Self {
            inner,
            activity,
            bytes: 0,
            tail: Vec::new(),
            compress_seen: false,
        }
    }
}

fn asks_for_compression(bytes: &[u8]) -> bool {
    const COMMAND: &[u8] = b"COMPRESS DEFLATE";
    bytes
        .windows(COMMAND.len())
        .any(|w| w.eq_ignore_ascii_case(COMMAND))
}

impl<R: AsyncRead + Unpin> AsyncRead for Watched<'_, R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            self.activity.touch();
            self.bytes += read.len() as u64;
            if !self.compress_seen && asks_for_compression(read) {
                self.compress_seen = true;
            }
            let keep = read.len().min(TAIL);
            let tail = &mut self.tail;
            tail.extend_from_slice(&read[read.len() - keep..]);
            if tail.len() > TAIL {
                tail.drain(..tail.len() - TAIL);
            }
        }
        polled
    }
}

/// Whether the server's last line was a tagged answer (`a7 OK LOGOUT
/// completed`): the session ended as the client asked, not by the server's
/// own decision (an untagged `* BYE`, or nothing at all).
fn ended_by_the_client(tail: &[u8]) -> bool {
    let text = String::from_utf8_lossy(tail);
    let last = text
        .trim_end_matches(['\r', '\n'])
        .rsplit("\r\n")
        .next()
        .unwrap_or("");
    !last.is_empty() && !last.starts_with('*') && !last.starts_with('+')
}

/// The smallest and the largest buffer of one relayed direction.
const COPY_MIN: usize = 4 * 1024;
const COPY_MAX: usize = 64 * 1024;

/// `tokio::io::copy` with a buffer that follows the traffic: it doubles
/// while reads fill it (a large `FETCH` or `APPEND` then moves in fewer,
/// fuller TLS records) and goes back to [`COPY_MIN`] once reads are small
/// again, so the many idle sessions keep small buffers. The bytes copied
/// when `reader` ends.
async fn copy_adaptive<R, W>(reader: &mut R, writer: &mut W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; COPY_MIN];
    let mut copied = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            writer.flush().await?;
            return Ok(copied);
        }
        writer.write_all(&buf[..n]).await?;
        writer.flush().await?;
        copied += n as u64;
        if n == buf.len() && buf.len() < COPY_MAX {
            buf = vec![0u8; buf.len() * 2];
        } else if n < COPY_MIN / 2 && buf.len() > COPY_MIN {
            buf = vec![0u8; COPY_MIN];
        }
    }
}

/// How long the server may take to close after the client closed its side.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// What a relay did.
pub(crate) struct Relayed {
    pub outcome: &'static str,
    pub to_upstream: u64,
    pub to_client: u64,
}

/// Both ways, unchanged, until the server closes, the session is idle, or
/// `revoked` completes (its password was revoked or expired); a client that
/// closes its side still gets what the server sends until the server
/// closes. Bytes already read into either buffer go first. When the server
/// ends the session on its own after `token_expires_at` (Exchange Online
/// does when the access token runs out, about an hour after the login), the
/// client is told so with a `* BYE` of the bridge's and can log in again:
/// the bridge then takes a fresh token. `COMPRESS` passes through as the
/// server offers it; once a client turned it on, the bridge adds no line.
async fn relay_bytes<C, U>(
    client: &mut C,
    upstream: &mut U,
    idle: Duration,
    revoked: impl std::future::Future<Output = ()>,
    token_expires_at: chrono::DateTime<chrono::Utc>,
) -> Relayed
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let (client_read, mut client_write) = tokio::io::split(&mut *client);
    let (upstream_read, mut upstream_write) = tokio::io::split(&mut *upstream);
    let mut from_client = Watched::new(client_read, &activity);
    let mut from_upstream = Watched::new(upstream_read, &activity);
    let mut outcome = {
        let up = copy_adaptive(&mut from_upstream, &mut client_write);
        let down = async {
            let copied = copy_adaptive(&mut from_client, &mut upstream_write).await;
            let _ = upstream_write.shutdown().await;
            copied
        };
        let idle = activity.idle_for(idle);
        // Armed once the client closed its side: how long the server may take to close.
        let grace = tokio::time::sleep(CLOSE_GRACE);
        tokio::pin!(up, down, idle, revoked, grace);
        let mut client_done = false;
        loop {
            tokio::select! {
                copied = &mut up => break match copied {
                    Ok(_) => "relayed",
                    Err(_) => "relay_broken",
                },
                copied = &mut down, if !client_done => match copied {
                    // The client closed its side: the server's answer still goes to it.
                    Ok(_) => {
                        client_done = true;
                        grace.as_mut().reset(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                    Err(_) => break "relay_broken",
                },
                () = &mut grace, if client_done => break "relayed",
                () = &mut idle => break "idle",
                () = &mut revoked => break "password_revoked",
            }
        }
    };
    if outcome == "relayed"
        && chrono::Utc::now() >= token_expires_at
        && !ended_by_the_client(&from_upstream.tail)
    {
        outcome = "token_expired";
    }
    let bye = match outcome {
        // A compressed stream (the client turned on the server's COMPRESS)
        // has no room for a plain line: the connection just closes.
        _ if from_client.compress_seen => None,
        "idle" => Some(format!(
            "* BYE Nothing was sent for {} minutes; log in again\r\n",
            idle.as_secs().div_ceil(60)
        )),
        "password_revoked" => Some(
            "* BYE The bridge password of this session was revoked or has expired\r\n".to_owned(),
        ),
        "token_expired" => Some(
            "* BYE The mailbox's server ended the session because its access token expired; log in again and the bridge uses a fresh one\r\n"
                .to_owned(),
        ),
        _ => None,
    };
    if let Some(text) = bye {
        let _ = client_write.write_all(text.as_bytes()).await;
        let _ = client_write.flush().await;
    }
    let _ = client_write.shutdown().await;
    let _ = upstream_write.shutdown().await;
    Relayed {
        outcome,
        to_upstream: from_client.bytes,
        to_client: from_upstream.bytes,
    }
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

    /// The client's end and the server's end of a relay, its outcome.
    async fn relay_with(
        server_says: &'static [u8],
        expires_in: chrono::Duration,
    ) -> (Relayed, Vec<u8>) {
        let (mut client, mut client_far) = tokio::io::duplex(4096);
        let (mut upstream, mut server) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let mut command = [0u8; 8];
            server.read_exact(&mut command).await.expect("a command");
            assert_eq!(&command, b"a NOOP\r\n");
            server.write_all(server_says).await.expect("written");
            // The server closes.
        });
        let client_task = tokio::spawn(async move {
            client_far.write_all(b"a NOOP\r\n").await.expect("sent");
            let mut got = Vec::new();
            client_far.read_to_end(&mut got).await.expect("read");
            got
        });
        let relayed = relay_bytes(
            &mut client,
            &mut upstream,
            Duration::from_secs(30),
            std::future::pending(),
            chrono::Utc::now() + expires_in,
        )
        .await;
        drop(client);
        server.await.expect("server");
        (relayed, client_task.await.expect("client"))
    }

    #[tokio::test]
    async fn the_adaptive_copy_moves_every_byte_in_order() {
        // Bursts that fill the buffer (it grows), then small writes (it shrinks back).
        let mut sent = Vec::new();
        for (i, size) in [3 * COPY_MAX, 10, 1, COPY_MIN + 1, 2 * COPY_MAX, 7]
            .iter()
            .enumerate()
        {
            sent.extend((0..*size).map(|j| ((i * 31 + j) % 251) as u8));
        }
        let (mut writer, mut reader) = tokio::io::duplex(COPY_MAX);
        let (mut out_a, mut out_b) = tokio::io::duplex(COPY_MAX);
        let payload = sent.clone();
        let feed = tokio::spawn(async move {
            for chunk in payload.chunks(5_000) {
                writer.write_all(chunk).await.expect("write");
            }
        });
        let drain = tokio::spawn(async move {
            let mut got = Vec::new();
            out_b.read_to_end(&mut got).await.expect("read");
            got
        });
        let copied = copy_adaptive(&mut reader, &mut out_a)
            .await
            .expect("copied");
        drop(out_a);
        feed.await.expect("feed");
        assert_eq!(copied, sent.len() as u64);
        assert!(drain.await.expect("drain") == sent, "every byte, in order");
    }

    #[tokio::test]
    async fn a_session_the_server_ends_after_the_token_expired_is_explained() {
        let bye = b"* BYE Session invalidated - AccessTokenExpired\r\n";
        let (relayed, got) = relay_with(bye, chrono::Duration::seconds(-1)).await;
        assert_eq!(relayed.outcome, "token_expired");
        let got = String::from_utf8(got).expect("text");
        assert!(
            got.starts_with("* BYE Session invalidated"),
            "unchanged first: {got}"
        );
        assert!(got.contains("access token expired; log in again"), "{got}");
        assert_eq!(
            (relayed.to_upstream, relayed.to_client),
            (8, bye.len() as u64)
        );

        // Before the expiry, the server's own reasons stand alone.
        let (relayed, got) = relay_with(bye, chrono::Duration::minutes(30)).await;
        assert_eq!((relayed.outcome, got.as_slice()), ("relayed", &bye[..]));

        // A logout the client asked for is not a token's end.
        let logout = b"* BYE Logging out\r\na OK Logout completed.\r\n";
        let (relayed, got) = relay_with(logout, chrono::Duration::seconds(-1)).await;
        assert_eq!((relayed.outcome, got.as_slice()), ("relayed", &logout[..]));
    }

    #[test]
    fn a_compressed_stream_is_noticed() {
        assert!(asks_for_compression(b"c1 compress deflate\r\n"));
        assert!(!asks_for_compression(b"c1 NOOP\r\n"));
    }

    #[test]
    fn the_last_line_tells_who_ended_the_session() {
        assert!(ended_by_the_client(b"* BYE x\r\na1 OK LOGOUT done\r\n"));
        assert!(!ended_by_the_client(
            b"a1 OK done\r\n* BYE Session invalidated\r\n"
        ));
        assert!(!ended_by_the_client(b""));
    }
}
