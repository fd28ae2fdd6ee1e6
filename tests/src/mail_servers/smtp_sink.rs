//! A tiny plain SMTP server that accepts and records every message.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

use super::CLIENT_TIMEOUT;
use super::acceptor::Acceptor;

/// A message the [`SmtpSink`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Address of `MAIL FROM:<...>` (without the angle brackets).
    pub mail_from: String,
    /// Addresses of the `RCPT TO:<...>` commands, in order.
    pub rcpt_to: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, without the final
    /// `.` line (CRLF line ends kept).
    pub data: String,
}

#[derive(Debug, Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMessage>>,
    commands: Mutex<Vec<String>>,
}

/// A plain SMTP server on `127.0.0.1` (random port) without STARTTLS and
/// without AUTH: every `MAIL`/`RCPT`/`DATA` is accepted and recorded, other
/// commands such as `STARTTLS` and `AUTH` get `502`. Used as Dovecot's
/// submission relay, and as "a server without STARTTLS" in tests.
///
/// Served by std threads; stops (closes the listener) on drop.
#[derive(Debug)]
pub struct SmtpSink {
    shared: Arc<Shared>,
    acceptor: Acceptor,
}

impl SmtpSink {
    /// Starts the sink on a free port of `127.0.0.1`.
    ///
    /// # Panics
    /// If no local port can be bound.
    pub fn start() -> SmtpSink {
        let shared = Arc::new(Shared::default());
        let served = Arc::clone(&shared);
        let acceptor = Acceptor::start("smtp-sink", move |stream| {
            drop(session(stream, &served));
        });
        SmtpSink { shared, acceptor }
    }

    /// `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.acceptor.addr().to_string()
    }

    /// The port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.acceptor.addr().port()
    }

    /// Messages accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every command line received so far (without CRLF, message data
    /// excluded), in order, over all connections: for example to assert
    /// that no `AUTH` was ever sent to a server without STARTTLS.
    pub fn commands(&self) -> Vec<String> {
        self.shared
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The address inside `<...>` after `FROM:` / `TO:` (parameters ignored).
fn path_arg(rest: &str) -> String {
    let rest = rest.trim_start();
    match (rest.find('<'), rest.find('>')) {
        (Some(a), Some(b)) if a < b => rest[a + 1..b].to_owned(),
        _ => rest.split_whitespace().next().unwrap_or("").to_owned(),
    }
}

fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

fn session(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 sink.localhost ESMTP Inboxlink test sink\r\n")?;

    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut reader)? {
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        shared
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.clone());
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        let reply: &[u8] = match verb {
            "EHLO" => {
                b"250-sink.localhost\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n"
            }
            "HELO" => b"250 sink.localhost\r\n",
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                mail_from = Some(path_arg(&line["MAIL FROM:".len()..]));
                rcpt_to.clear();
                b"250 2.1.0 Ok\r\n"
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                if mail_from.is_none() {
                    b"503 5.5.1 Error: need MAIL command\r\n"
                } else {
                    rcpt_to.push(path_arg(&line["RCPT TO:".len()..]));
                    b"250 2.1.5 Ok\r\n"
                }
            }
            "DATA" => {
                if mail_from.is_none() || rcpt_to.is_empty() {
                    b"503 5.5.1 Error: need RCPT command\r\n"
                } else {
                    out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                    let data = read_data(&mut reader)?;
                    let message = ReceivedMessage {
                        mail_from: mail_from.take().unwrap_or_default(),
                        rcpt_to: std::mem::take(&mut rcpt_to),
                        data,
                    };
                    shared
                        .messages
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(message);
                    b"250 2.0.0 Ok: queued\r\n"
                }
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                b"250 2.0.0 Ok\r\n"
            }
            "NOOP" => b"250 2.0.0 Ok\r\n",
            "QUIT" => {
                out.write_all(b"221 2.0.0 Bye\r\n")?;
                break;
            }
            _ => b"502 5.5.1 Command not implemented\r\n",
        };
        out.write_all(reply)?;
    }
    drop(out.shutdown(Shutdown::Both));
    Ok(())
}

/// Reads message data up to the `.` line; returns it dot-unstuffed.
fn read_data(reader: &mut impl BufRead) -> io::Result<String> {
    let mut data = String::new();
    loop {
        let Some(line) = read_line(reader)? else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed during DATA",
            ));
        };
        if line == ".\r\n" || line == ".\n" {
            return Ok(data);
        }
        data.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}
