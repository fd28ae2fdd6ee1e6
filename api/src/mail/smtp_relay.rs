//! SMTP submission for the bridge: the check's way in (connect, `EHLO`,
//! mandatory `STARTTLS`, `AUTH XOAUTH2` with the response after the `334`),
//! then the connection is handed over for the client's commands, which the
//! bridge forwards line by line and whose replies it passes back as they
//! came (codes and enhanced codes unchanged).

use base64::Engine;
use secrecy::ExposeSecret;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::smtp::classify;
use super::{Login, MailServers, StepFailure, connect_failure, xoauth2};
use crate::codes::Code;

/// Longest reply line read from the server.
const LINE_MAX: u64 = 64 * 1024;

/// One reply of an SMTP server: its code and every line as received.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// The reply's bytes, CRLFs included, to pass on unchanged.
    pub raw: Vec<u8>,
}

impl Reply {
    /// The reply as one line of text (for refusals and hints).
    pub fn text(&self) -> String {
        // One line: a CR inside a line ends it too.
        String::from_utf8_lossy(&self.raw)
            .split(['\r', '\n'])
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The EHLO keywords (upper case) of a `250` reply to `EHLO`.
    fn keywords(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.raw)
            .lines()
            .skip(1)
            .filter_map(|l| l.get(4..))
            .map(|k| k.trim().to_ascii_uppercase())
            .collect()
    }
}

/// Reads one reply (a multi-line one up to its last line).
pub async fn read_reply<S: AsyncRead + Unpin>(stream: &mut BufReader<S>) -> std::io::Result<Reply> {
    let mut raw = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = (&mut *stream)
            .take(LINE_MAX)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the SMTP server closed the connection",
            ));
        }
        raw.extend_from_slice(&line);
        // Three ASCII digits (`parse` alone would take a sign: `+25`).
        let code = line
            .get(..3)
            .filter(|c| c.iter().all(u8::is_ascii_digit))
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "not an SMTP reply")
            })?;
        if line.get(3) != Some(&b'-') {
            return Ok(Reply { code, raw });
        }
    }
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    line: &str,
) -> std::io::Result<Reply> {
    stream.write_all(line.as_bytes()).await?;
    stream.flush().await?;
    read_reply(stream).await
}

/// An SMTP session authenticated with XOAUTH2, ready for a transaction.
pub struct Relay {
    pub stream: BufReader<TlsStream<TcpStream>>,
    /// The server's EHLO keywords after STARTTLS (`SIZE 36700160`, `8BITMIME`, …).
    pub extensions: Vec<String>,
}

fn io_failure(e: &std::io::Error) -> StepFailure {
    StepFailure::new(
        Code::SmtpError,
        Some(e.to_string()),
        "The connection to the SMTP server broke; try again.",
    )
}

fn refused(reply: &Reply, login: &Login<'_>) -> StepFailure {
    let code = reply.code.to_string();
    classify(Some(&code), reply.text(), false, login.access_mode)
}

/// An upstream submission session that is secured (`STARTTLS`, then
/// `EHLO` again) and not logged in yet: the bridge opens it while it checks
/// the client's password, so the two waits overlap (see [`connect_relay`]).
pub struct Greeted {
    stream: BufReader<TlsStream<TcpStream>>,
    /// The server's EHLO keywords after STARTTLS.
    extensions: Vec<String>,
}

/// Why [`connect_relay`] did not get as far as the login: a failure, or
/// the server's refusal, which is told once the login's access mode is
/// known ([`NotGreeted::failure`]).
pub enum NotGreeted {
    Failed(StepFailure),
    Refused(Reply),
}

impl NotGreeted {
    pub fn failure(self, login: &Login<'_>) -> StepFailure {
        match self {
            NotGreeted::Failed(failure) => failure,
            NotGreeted::Refused(reply) => refused(&reply, login),
        }
    }
}

impl From<StepFailure> for NotGreeted {
    fn from(failure: StepFailure) -> Self {
        NotGreeted::Failed(failure)
    }
}

/// Connects to the mailbox's submission server: greeting, `EHLO`,
/// mandatory `STARTTLS` (the check's trust), `EHLO` again.
pub async fn connect_relay(servers: &MailServers) -> Result<Greeted, NotGreeted> {
    let endpoint = &servers.smtp;
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| connect_failure("SMTP", endpoint, &e))?;
    // Commands and replies are small writes: none waits for a delayed ACK.
    let _ = tcp.set_nodelay(true);
    let mut plain = BufReader::new(tcp);
    let greeting = read_reply(&mut plain).await.map_err(|e| io_failure(&e))?;
    if greeting.code != 220 {
        return Err(NotGreeted::Refused(greeting));
    }
    let hello = command(&mut plain, "EHLO inboxlink.local\r\n")
        .await
        .map_err(|e| io_failure(&e))?;
    if hello.code != 250 {
        return Err(NotGreeted::Refused(hello));
    }
    if !hello.keywords().iter().any(|k| k == "STARTTLS") {
        // Never authenticate in the clear, even where the server would allow it.
        return Err(NotGreeted::Failed(StepFailure::new(
            Code::SmtpStarttlsUnavailable,
            Some(hello.text()),
            "The SMTP server does not offer STARTTLS, so no credentials were sent. Use the submission endpoint (smtp.office365.com:587).",
        )));
    }
    let ready = command(&mut plain, "STARTTLS\r\n")
        .await
        .map_err(|e| io_failure(&e))?;
    if ready.code != 220 {
        return Err(NotGreeted::Refused(ready));
    }
    // The TLS name comes from the configured endpoint, never from the server.
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone()).map_err(|_| {
        StepFailure::new(
            Code::InvalidEndpoint,
            None,
            "The SMTP endpoint host is not a valid name.",
        )
    })?;
    let tls = TlsConnector::from(servers.trust.rustls())
        .connect(name, plain.into_inner())
        .await
        .map_err(|e| connect_failure("SMTP", endpoint, &e))?;
    let mut stream = BufReader::new(tls);
    let hello = command(&mut stream, "EHLO inboxlink.local\r\n")
        .await
        .map_err(|e| io_failure(&e))?;
    if hello.code != 250 {
        return Err(NotGreeted::Refused(hello));
    }
    Ok(Greeted {
        extensions: hello.keywords(),
        stream,
    })
}

impl Greeted {
    /// `AUTH XOAUTH2` with the response after the `334` (Dovecot refuses a
    /// long initial response; FACTS.md), answering a failure's challenge
    /// with an empty line.
    pub async fn login(self, login: &Login<'_>) -> Result<Relay, StepFailure> {
        let Greeted {
            mut stream,
            extensions,
        } = self;
        let go = command(&mut stream, "AUTH XOAUTH2\r\n")
            .await
            .map_err(|e| io_failure(&e))?;
        if go.code != 334 {
            return Err(refused(&go, login));
        }
        let response = base64::engine::general_purpose::STANDARD
            .encode(xoauth2(login.smtp_user, login.token.expose_secret()));
        let mut answer = command(&mut stream, &format!("{response}\r\n"))
            .await
            .map_err(|e| io_failure(&e))?;
        if answer.code == 334 {
            // A failure's JSON challenge: an empty line gets the refusal itself.
            answer = command(&mut stream, "\r\n")
                .await
                .map_err(|e| io_failure(&e))?;
        }
        if answer.code != 235 {
            return Err(refused(&answer, login));
        }
        Ok(Relay { stream, extensions })
    }
}
