//! The IMAP and SMTP client of the bridge figures: one small client over
//! rustls, so the bridge, Dovecot itself and email-oauth2-proxy get exactly
//! the same client work and differ only in the login (a password, or XOAUTH2
//! with the mailbox's token). It reads IMAP literals by their length, as a
//! real client does, and never looks inside a message.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// How a client logs in.
#[derive(Clone)]
pub enum Login {
    /// IMAP `LOGIN`, SMTP `AUTH PLAIN` (the bridge, email-oauth2-proxy).
    Password { user: String, password: String },
    /// SASL `XOAUTH2` with a bearer token (Dovecot directly).
    XOauth2 { user: String, token: String },
}

impl Login {
    fn xoauth2(user: &str, token: &str) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
    }
}

/// A TLS client trusting `config`'s roots, without session resumption: each
/// connection makes a full handshake, whichever server it goes to.
pub fn connector(config: &rustls::ClientConfig) -> TlsConnector {
    let mut config = config.clone();
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

async fn tls(addr: SocketAddr, tls: &TlsConnector) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    tls.connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
}

fn refused(what: &str, line: &[u8]) -> io::Error {
    io::Error::other(format!(
        "{what}: {}",
        String::from_utf8_lossy(line).trim_end()
    ))
}

/// What a tagged IMAP command brought back.
#[derive(Default)]
pub struct Answer {
    /// Literals (message contents) and their bytes.
    pub literals: usize,
    pub literal_bytes: usize,
    /// `* n EXISTS`, if it came.
    pub exists: Option<u32>,
}

/// An IMAP session over implicit TLS.
pub struct Imap {
    io: BufReader<TlsStream<TcpStream>>,
    tag: u32,
    line: Vec<u8>,
    literal: Vec<u8>,
}

impl Imap {
    /// Connects, makes the TLS handshake and reads the greeting.
    pub async fn connect(addr: SocketAddr, connector: &TlsConnector) -> io::Result<Imap> {
        let stream = tls(addr, connector).await?;
        let mut imap = Imap {
            io: BufReader::with_capacity(64 * 1024, stream),
            tag: 0,
            line: Vec::with_capacity(1024),
            literal: Vec::new(),
        };
        imap.read_line().await?;
        if !imap.line.starts_with(b"* OK") {
            return Err(refused("greeting", &imap.line));
        }
        Ok(imap)
    }

    async fn read_line(&mut self) -> io::Result<()> {
        self.line.clear();
        let n = self.io.read_until(b'\n', &mut self.line).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// `{n}\r\n` at the end of the line just read.
    fn literal_len(&self) -> Option<usize> {
        let line = self.line.strip_suffix(b"}\r\n")?;
        let open = line.iter().rposition(|b| *b == b'{')?;
        std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
    }

    /// Sends `command` with the next tag and reads up to its tagged answer,
    /// which must be `OK`.
    pub async fn command(&mut self, command: &str) -> io::Result<Answer> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        self.io
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.answer(&tag, command).await
    }

    async fn answer(&mut self, tag: &str, command: &str) -> io::Result<Answer> {
        let mut answer = Answer::default();
        loop {
            self.read_line().await?;
            // A literal and the rest of its line.
            while let Some(n) = self.literal_len() {
                self.literal.resize(n, 0);
                self.io.read_exact(&mut self.literal).await?;
                answer.literals += 1;
                answer.literal_bytes += n;
                self.read_line().await?;
            }
            if let Some(rest) = self.line.strip_prefix(b"* ")
                && let Some(n) = rest.strip_suffix(b" EXISTS\r\n")
            {
                answer.exists = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok());
            }
            if self.line.starts_with(b"+") {
                // A SASL challenge: the login failed; end the exchange.
                self.io.get_mut().write_all(b"\r\n").await?;
                continue;
            }
            if let Some(rest) = self.line.strip_prefix(tag.as_bytes()) {
                if rest.starts_with(b" OK") {
                    return Ok(answer);
                }
                let verb = command.split(' ').next().unwrap_or(command);
                return Err(refused(verb, &self.line));
            }
        }
    }

    pub async fn login(&mut self, login: &Login) -> io::Result<()> {
        let command = match login {
            Login::Password { user, password } => {
                format!("LOGIN {} {}", quoted(user), quoted(password))
            }
            Login::XOauth2 { user, token } => {
                format!("AUTHENTICATE XOAUTH2 {}", Login::xoauth2(user, token))
            }
        };
        self.command(&command).await.map(drop)
    }

    /// `APPEND` of `message` to `mailbox`, with a synchronizing literal.
    pub async fn append(&mut self, mailbox: &str, message: &[u8]) -> io::Result<()> {
        self.tag += 1;
        let tag = format!("b{}", self.tag);
        let command = format!("{tag} APPEND {} {{{}}}\r\n", quoted(mailbox), message.len());
        self.io.get_mut().write_all(command.as_bytes()).await?;
        self.read_line().await?;
        if !self.line.starts_with(b"+") {
            return Err(refused("APPEND", &self.line));
        }
        let io = self.io.get_mut();
        io.write_all(message).await?;
        io.write_all(b"\r\n").await?;
        self.answer(&tag, "APPEND").await.map(drop)
    }
}

/// An IMAP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Reads one SMTP reply (all its lines); its code.
async fn reply<R: AsyncBufReadExt + Unpin>(io: &mut R, line: &mut Vec<u8>) -> io::Result<u16> {
    loop {
        line.clear();
        if io.read_until(b'\n', line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let code = std::str::from_utf8(line.get(..3).unwrap_or_default())
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| refused("not an SMTP reply", line))?;
        if line.get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
}

async fn expect<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    line: &mut Vec<u8>,
    send: &[u8],
    want: u16,
) -> io::Result<()> {
    if !send.is_empty() {
        io.get_mut().write_all(send).await?;
    }
    if reply(io, line).await? == want {
        Ok(())
    } else {
        let what = String::from_utf8_lossy(send.get(..send.len().min(12)).unwrap_or_default())
            .trim_end()
            .to_owned();
        Err(refused(&what, line))
    }
}

/// One SMTP submission: connect, `EHLO`, `STARTTLS`, `EHLO`, `AUTH`, one
/// message from `from` to `to` (`message` in CRLF lines, none starting with
/// a dot), `QUIT`.
pub async fn smtp_send(
    addr: SocketAddr,
    connector: &TlsConnector,
    login: &Login,
    from: &str,
    to: &str,
    message: &[u8],
) -> io::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut line = Vec::with_capacity(512);
    let mut plain = BufReader::new(tcp);
    expect(&mut plain, &mut line, b"", 220).await?;
    expect(&mut plain, &mut line, b"EHLO bench.localhost\r\n", 250).await?;
    expect(&mut plain, &mut line, b"STARTTLS\r\n", 220).await?;
    if !plain.buffer().is_empty() {
        return Err(io::Error::other("data after STARTTLS's reply"));
    }
    let stream = connector
        .connect(ServerName::IpAddress(addr.ip().into()), plain.into_inner())
        .await?;
    let mut io = BufReader::new(stream);
    expect(&mut io, &mut line, b"EHLO bench.localhost\r\n", 250).await?;
    let auth = match login {
        Login::Password { user, password } => format!(
            "AUTH PLAIN {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
        ),
        Login::XOauth2 { user, token } => {
            format!("AUTH XOAUTH2 {}\r\n", Login::xoauth2(user, token))
        }
    };
    expect(&mut io, &mut line, auth.as_bytes(), 235).await?;
    expect(
        &mut io,
        &mut line,
        format!("MAIL FROM:<{from}>\r\n").as_bytes(),
        250,
    )
    .await?;
    expect(
        &mut io,
        &mut line,
        format!("RCPT TO:<{to}>\r\n").as_bytes(),
        250,
    )
    .await?;
    expect(&mut io, &mut line, b"DATA\r\n", 354).await?;
    io.get_mut().write_all(message).await?;
    expect(&mut io, &mut line, b".\r\n", 250).await?;
    expect(&mut io, &mut line, b"QUIT\r\n", 221).await
}

/// A plain-text message of about `size` bytes in 76-character lines.
pub fn message(from: &str, to: &str, subject: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let line: Vec<u8> = (0..76u8).map(|i| b'A' + i % 26).chain(*b"\r\n").collect();
    while m.len() + line.len() <= size {
        m.extend_from_slice(&line);
    }
    m
}
