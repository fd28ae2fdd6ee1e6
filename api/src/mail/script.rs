//! A scripted mail server for the tests of the IMAP and SMTP steps: real
//! client libraries, real server texts, no network beyond 127.0.0.1.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{Login, StepFailure, xoauth2};
use crate::codes::Code;
use crate::config::Endpoint;
use crate::domain::AccessMode;

pub const MAILBOX: &str = "anna@contoso.example";

pub fn token() -> SecretString {
    SecretString::from("eyJ0eXAiOiJKV1QiLCJub25jZSI6InNjcmlwdGVkIn0.test-token-value")
}

pub fn login(token: &SecretString, access_mode: AccessMode) -> Login<'_> {
    Login {
        mailbox: MAILBOX,
        smtp_user: MAILBOX,
        token,
        access_mode,
    }
}

/// Listens on 127.0.0.1; for one client, sends `greeting`, then answers
/// each line it reads with the next of `replies` (`{tag}` becomes the first
/// word of the last line that had one, the IMAP tag). After an SMTP `DATA`
/// it reads the message up to `.` before answering. The handle gives the
/// lines the client sent.
pub async fn serve(greeting: &str, replies: &[&str]) -> (u16, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let greeting = greeting.to_owned();
    let replies: Vec<String> = replies.iter().map(|r| (*r).to_owned()).collect();
    let handle = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut seen = Vec::new();
        if write
            .write_all(format!("{greeting}\r\n").as_bytes())
            .await
            .is_err()
        {
            return seen;
        }
        let mut tag = String::new();
        let mut in_data = false;
        let mut replies = replies.into_iter();
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                in_data = line != ".";
                if in_data {
                    continue;
                }
            } else {
                if let Some((first, _)) = line.split_once(' ') {
                    first.clone_into(&mut tag);
                }
                in_data = line.eq_ignore_ascii_case("DATA");
            }
            seen.push(line);
            let Some(reply) = replies.next() else { break };
            let reply = format!("{}\r\n", reply.replace("{tag}", &tag));
            if write.write_all(reply.as_bytes()).await.is_err() {
                break;
            }
        }
        seen
    });
    (port, handle)
}

/// The mail server endpoint at `127.0.0.1:port`.
pub fn endpoint(port: u16) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port,
    }
}

/// Asserts that a step failed with `code` and a hint naming each of `parts`.
#[track_caller]
pub fn assert_told(f: &StepFailure, code: Code, parts: &[&str]) {
    assert_eq!(f.code, code, "{f:?}");
    for part in parts {
        assert!(f.hint.contains(part), "{part}: {}", f.hint);
    }
}

/// Asserts that `sent` is what the client sends after the prompt: the base64
/// of the XOAUTH2 response of [`MAILBOX`] with [`token`].
#[track_caller]
pub fn assert_xoauth2_response(sent: &str) {
    let decoded = STANDARD.decode(sent).expect("base64");
    let expected = xoauth2(MAILBOX, token().expose_secret());
    assert_eq!(decoded, expected.into_bytes());
}
