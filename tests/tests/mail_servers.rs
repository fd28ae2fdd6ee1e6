//! Tests of the mail-server harness itself (`inboxlink_tests::mail_servers`):
//! real IMAP and SMTP exchanges with the private Dovecot, bearer tokens
//! issued by the fake Entra ID and validated by Dovecot through its
//! introspection endpoint, mail relayed to the SMTP sink, and the untrusted
//! TLS server.
//!
//! Needs Dovecot and root (`scripts/install-test-deps.sh`); never skipped.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use inboxlink_tests::fake_entra::{FakeEntra, client};
use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa, UntrustedTlsServer};
use reqwest::header::LOCATION;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

const TENANT: &str = "4f8c2d1a-6b3e-4c5f-9a7d-2e1b0c9d8f7a";
const CLIENT_ID: &str = "11111111-2222-4333-8444-555555555555";
const SECRET: &str = "s3cret~value";
const USER: &str = "alice.smith@contoso.example";
const OTHER_USER: &str = "bob.jones@contoso.example";
/// Longest wait for one line from a server.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything one test needs. Dropping it stops Dovecot (also when the test
/// panics) and removes the temporary directories.
struct Harness {
    entra: FakeEntra,
    http: reqwest::Client,
    ca: TestCa,
    sink: SmtpSink,
    dovecot: Dovecot,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let entra = FakeEntra::start().await;
    entra.register_app(TENANT, CLIENT_ID, SECRET);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::generate(dir.path());
    let sink = SmtpSink::start();
    let dovecot = Dovecot::start(&entra.introspection_url(), &ca, &sink).expect("start Dovecot");
    Harness {
        entra,
        http,
        ca,
        sink,
        dovecot,
        _dir: dir,
    }
}

impl Harness {
    /// A delegated access token for `user`: authorization code flow with
    /// PKCE at the fake Entra ID, as the service does it.
    async fn user_token(&self, user: &str) -> String {
        let authority = self.entra.authority();
        let resp = self
            .http
            .get(format!("{authority}/{TENANT}/oauth2/v2.0/authorize"))
            .query(&client::authorize_query(CLIENT_ID, user))
            .send()
            .await
            .expect("authorize request");
        assert_eq!(
            resp.status().as_u16(),
            302,
            "authorize answers with a redirect"
        );
        let location = resp.headers()[LOCATION].to_str().expect("ASCII Location");
        let code = url::Url::parse(location)
            .expect("Location is a URL")
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("code in the redirect");
        let body: Value = self
            .http
            .post(format!("{authority}/{TENANT}/oauth2/v2.0/token"))
            .form(&client::redeem_form(CLIENT_ID, SECRET, &code))
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token response JSON");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {body}"))
            .to_owned()
    }

    /// IMAP over implicit TLS, greeting read.
    async fn imap(&self) -> Lines<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.dovecot.imap_endpoint())
            .await
            .expect("connect to IMAP");
        let mut imap = Lines::new(tls(tcp, &self.ca.client_config()).await.expect("IMAP TLS"));
        let greeting = imap.line().await;
        assert!(greeting.starts_with("* OK"), "IMAP greeting: {greeting}");
        assert!(
            greeting.contains("AUTH=XOAUTH2"),
            "IMAP greeting: {greeting}"
        );
        imap
    }

    /// SMTP submission: greeting, EHLO, STARTTLS, EHLO again over TLS.
    async fn submission(&self) -> Lines<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.dovecot.submission_endpoint())
            .await
            .expect("connect to submission");
        let mut plain = Lines::new(tcp);
        assert_eq!(plain.reply().await.0, 220, "submission greeting");
        plain.send("EHLO client.test").await;
        let (code, ehlo) = plain.reply().await;
        assert_eq!(code, 250);
        assert!(
            has_extension(&ehlo, "STARTTLS"),
            "EHLO before TLS: {ehlo:?}"
        );
        plain.send("STARTTLS").await;
        let (code, text) = plain.reply().await;
        assert_eq!(code, 220, "STARTTLS: {text:?}");
        let tcp = plain.into_inner();
        let mut smtp = Lines::new(tls(tcp, &self.ca.client_config()).await.expect("SMTP TLS"));
        smtp.send("EHLO client.test").await;
        let (code, ehlo) = smtp.reply().await;
        assert_eq!(code, 250);
        assert!(
            ehlo.iter().any(|l| l.starts_with("AUTH ")
                && l.contains("XOAUTH2")
                && l.contains("OAUTHBEARER")),
            "EHLO over TLS advertises AUTH XOAUTH2 OAUTHBEARER: {ehlo:?}"
        );
        smtp
    }
}

/// `base64("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")`.
fn xoauth2(user: &str, token: &str) -> String {
    STANDARD.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01"))
}

/// RFC 7628 `OAUTHBEARER` initial response.
fn oauthbearer(user: &str, token: &str) -> String {
    STANDARD.encode(format!("n,a={user},\x01auth=Bearer {token}\x01\x01"))
}

/// TLS client handshake with `127.0.0.1` as the server name (the test
/// certificate has an IP SAN for it).
async fn tls<S: AsyncRead + AsyncWrite + Unpin>(
    tcp: S,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<S>> {
    let name = ServerName::try_from("127.0.0.1").expect("IP server name");
    TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
}

/// Whether an EHLO reply (lines without the `250-` prefix) lists `ext`.
fn has_extension(ehlo: &[String], ext: &str) -> bool {
    ehlo.iter()
        .any(|l| l.split_whitespace().next() == Some(ext))
}

/// A line-oriented protocol connection (CRLF).
struct Lines<S> {
    inner: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Lines<S> {
    fn new(stream: S) -> Self {
        Lines {
            inner: BufReader::new(stream),
        }
    }

    /// The stream, for STARTTLS; nothing may be buffered.
    fn into_inner(self) -> S {
        assert!(
            self.inner.buffer().is_empty(),
            "data buffered before STARTTLS"
        );
        self.inner.into_inner()
    }

    async fn send(&mut self, line: &str) {
        let s = self.inner.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write a line");
        s.flush().await.expect("flush");
    }

    /// One line without CRLF; panics on EOF or after 10 s.
    async fn line(&mut self) -> String {
        let mut buf = String::new();
        let n = tokio::time::timeout(READ_TIMEOUT, self.inner.read_line(&mut buf))
            .await
            .expect("server answered within 10 s")
            .expect("read a line");
        assert!(n > 0, "server closed the connection");
        buf.trim_end_matches(['\r', '\n']).to_owned()
    }

    /// IMAP: sends `tag command`, answers the lines up to and including the tagged one.
    async fn command(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}")).await;
        self.tagged(tag).await
    }

    /// IMAP: lines up to and including the one tagged `tag`.
    async fn tagged(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// SMTP: a (multi-line) reply as code and texts.
    async fn reply(&mut self) -> (u16, Vec<String>) {
        let mut texts = Vec::new();
        loop {
            let line = self.line().await;
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("not an SMTP reply: {line:?}"));
            texts.push(line.get(4..).unwrap_or("").to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                return (code, texts);
            }
        }
    }
}

/// The tagged line (last) of an IMAP response.
fn status(lines: &[String]) -> &str {
    lines.last().map_or("", String::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_xoauth2_login_select_logout() {
    let h = harness().await;
    h.dovecot.deliver(USER, 3);
    let token = h.user_token(USER).await;

    let mut imap = h.imap().await;
    imap.send(&format!(
        "a1 AUTHENTICATE XOAUTH2 {}",
        xoauth2(USER, &token)
    ))
    .await;
    let auth = imap.tagged("a1").await;
    assert!(
        status(&auth).starts_with("a1 OK"),
        "login: {auth:?}\n{}",
        h.dovecot.log()
    );
    let select = imap.command("a2", "SELECT INBOX").await;
    assert!(status(&select).starts_with("a2 OK"), "SELECT: {select:?}");
    assert!(
        select.iter().any(|l| l == "* 3 EXISTS"),
        "SELECT: {select:?}"
    );
    let logout = imap.command("a3", "LOGOUT").await;
    assert!(
        logout.iter().any(|l| l.starts_with("* BYE")),
        "LOGOUT: {logout:?}"
    );
    assert!(status(&logout).starts_with("a3 OK"), "LOGOUT: {logout:?}");

    // More mail shows up on the next login; OAUTHBEARER works too.
    h.dovecot.deliver(USER, 2);
    let mut imap = h.imap().await;
    imap.send(&format!(
        "b1 AUTHENTICATE OAUTHBEARER {}",
        oauthbearer(USER, &token)
    ))
    .await;
    let auth = imap.tagged("b1").await;
    assert!(status(&auth).starts_with("b1 OK"), "OAUTHBEARER: {auth:?}");
    let examine = imap.command("b2", "EXAMINE INBOX").await;
    assert!(
        examine.iter().any(|l| l == "* 5 EXISTS"),
        "EXAMINE: {examine:?}"
    );
    imap.command("b3", "LOGOUT").await;
    assert!(
        h.dovecot.log().contains("method=XOAUTH2"),
        "{}",
        h.dovecot.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_long_token_without_initial_response() {
    let h = harness().await;
    h.entra.set_token_length(2000);
    let token = h.user_token(USER).await;
    assert_eq!(token.len(), 2000);

    // As async-imap does it: no SASL-IR, the response after the `+`.
    let mut imap = h.imap().await;
    imap.send("a1 AUTHENTICATE XOAUTH2").await;
    let cont = imap.line().await;
    assert!(cont.starts_with('+'), "continuation: {cont}");
    imap.send(&xoauth2(USER, &token)).await;
    let auth = imap.tagged("a1").await;
    assert!(status(&auth).starts_with("a1 OK"), "login: {auth:?}");
    let select = imap.command("a2", "SELECT INBOX").await;
    assert!(
        select.iter().any(|l| l == "* 0 EXISTS"),
        "empty INBOX: {select:?}"
    );
    imap.command("a3", "LOGOUT").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_rejected_tokens_fail_with_authenticationfailed() {
    let h = harness().await;
    let token = h.user_token(USER).await;
    for (user, token) in [
        (USER, "not-a-token-the-fake-issued"),
        // A valid token, but for another mailbox: the introspected email differs.
        (OTHER_USER, token.as_str()),
    ] {
        let mut imap = h.imap().await;
        imap.send(&format!("a1 AUTHENTICATE XOAUTH2 {}", xoauth2(user, token)))
            .await;
        let challenge = imap.line().await;
        let json = challenge
            .strip_prefix("+ ")
            .unwrap_or_else(|| panic!("expected a JSON challenge, got {challenge:?}"));
        let json: Value = serde_json::from_slice(&STANDARD.decode(json).expect("base64 challenge"))
            .expect("JSON challenge");
        assert_eq!(json["status"], "401", "{json}");
        imap.send("").await;
        let auth = imap.tagged("a1").await;
        assert!(
            status(&auth).starts_with("a1 NO [AUTHENTICATIONFAILED]"),
            "rejected login: {auth:?}\n{}",
            h.dovecot.log()
        );
        imap.command("a2", "LOGOUT").await;
    }
    assert!(
        h.dovecot.log().contains("oauth2 failed"),
        "{}",
        h.dovecot.log()
    );
}

/// AUTH XOAUTH2 with the response sent after the `334`; returns the final reply.
async fn smtp_auth_after_334<S: AsyncRead + AsyncWrite + Unpin>(
    smtp: &mut Lines<S>,
    user: &str,
    token: &str,
) -> (u16, Vec<String>) {
    smtp.send("AUTH XOAUTH2").await;
    let (code, text) = smtp.reply().await;
    assert_eq!(code, 334, "AUTH XOAUTH2: {text:?}");
    smtp.send(&xoauth2(user, token)).await;
    let (code, text) = smtp.reply().await;
    if code != 334 {
        return (code, text);
    }
    // Rejected: the JSON challenge, answered with an empty line.
    let json: Value = serde_json::from_slice(
        &STANDARD
            .decode(text.first().map_or("", String::as_str))
            .expect("base64 challenge"),
    )
    .expect("JSON challenge");
    assert_eq!(json["status"], "401", "{json}");
    smtp.send("").await;
    smtp.reply().await
}

/// MAIL FROM, RCPT TO, DATA with a small message; then QUIT.
async fn smtp_send_and_quit<S: AsyncRead + AsyncWrite + Unpin>(
    smtp: &mut Lines<S>,
    from: &str,
    to: &str,
    subject: &str,
) {
    smtp.send(&format!("MAIL FROM:<{from}>")).await;
    assert_eq!(smtp.reply().await.0, 250, "MAIL FROM");
    smtp.send(&format!("RCPT TO:<{to}>")).await;
    assert_eq!(smtp.reply().await.0, 250, "RCPT TO");
    smtp.send("DATA").await;
    assert_eq!(smtp.reply().await.0, 354, "DATA");
    smtp.send(&format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nHello.\r\n..a dot-stuffed line\r\n."
    ))
    .await;
    let (code, text) = smtp.reply().await;
    assert_eq!(code, 250, "end of DATA: {text:?}");
    smtp.send("QUIT").await;
    assert_eq!(smtp.reply().await.0, 221, "QUIT");
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_starttls_xoauth2_relays_to_the_sink() {
    let h = harness().await;
    let token = h.user_token(USER).await;
    let mut smtp = h.submission().await;
    let (code, text) = smtp_auth_after_334(&mut smtp, USER, &token).await;
    assert_eq!(code, 235, "AUTH: {text:?}\n{}", h.dovecot.log());
    smtp_send_and_quit(&mut smtp, USER, OTHER_USER, "Harness check").await;

    let messages = h.sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(m.mail_from, USER);
    assert_eq!(m.rcpt_to, vec![OTHER_USER.to_owned()]);
    assert!(m.data.contains("Subject: Harness check\r\n"), "{}", m.data);
    assert!(m.data.contains("\r\n.a dot-stuffed line\r\n"), "{}", m.data);
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_long_token_works_after_334_but_not_inline() {
    let h = harness().await;
    h.entra.set_token_length(2000);
    let token = h.user_token(USER).await;
    assert_eq!(token.len(), 2000);

    // Inline initial response: Dovecot's line limit (~1 KB) refuses it.
    let mut smtp = h.submission().await;
    smtp.send(&format!("AUTH XOAUTH2 {}", xoauth2(USER, &token)))
        .await;
    let (code, text) = smtp.reply().await;
    assert_eq!(code, 500, "inline long AUTH line: {text:?}");
    assert!(text.concat().contains("Line too long"), "{text:?}");

    // After the 334 it works.
    let mut smtp = h.submission().await;
    let (code, text) = smtp_auth_after_334(&mut smtp, USER, &token).await;
    assert_eq!(code, 235, "AUTH: {text:?}\n{}", h.dovecot.log());
    smtp_send_and_quit(&mut smtp, USER, OTHER_USER, "Long token").await;
    assert_eq!(h.sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn submission_rejected_token_gets_535() {
    let h = harness().await;
    let mut smtp = h.submission().await;
    let (code, text) = smtp_auth_after_334(&mut smtp, USER, "not-a-token-the-fake-issued").await;
    assert_eq!(code, 535, "rejected AUTH: {text:?}\n{}", h.dovecot.log());
    smtp.send("QUIT").await;
    assert_eq!(smtp.reply().await.0, 221);
    assert!(h.sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_revoked_at_the_identity_provider_is_rejected() {
    let h = harness().await;
    let token = h.user_token(USER).await;
    h.entra.revoke_user(USER);
    let mut imap = h.imap().await;
    imap.send(&format!(
        "a1 AUTHENTICATE XOAUTH2 {}",
        xoauth2(USER, &token)
    ))
    .await;
    assert!(imap.line().await.starts_with("+ "));
    imap.send("").await;
    let auth = imap.tagged("a1").await;
    assert!(
        status(&auth).starts_with("a1 NO [AUTHENTICATIONFAILED]"),
        "{auth:?}"
    );
}

#[test]
fn smtp_sink_offers_no_starttls_and_records_mail() {
    use std::io::{BufRead, BufReader, Write};
    let sink = SmtpSink::start();
    let tcp = std::net::TcpStream::connect(sink.endpoint()).expect("connect to the sink");
    tcp.set_read_timeout(Some(READ_TIMEOUT)).expect("timeout");
    let mut out = tcp.try_clone().expect("clone");
    let mut r = BufReader::new(tcp);
    let mut exchange = |send: &str| -> String {
        if !send.is_empty() {
            out.write_all(format!("{send}\r\n").as_bytes())
                .expect("write");
        }
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).expect("read");
            assert!(!line.is_empty(), "sink closed the connection");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    };
    assert!(exchange("").starts_with("220 "));
    let ehlo = exchange("EHLO client.test");
    assert!(ehlo.starts_with("250"), "{ehlo}");
    assert!(
        !ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(exchange("STARTTLS").starts_with("502"));
    assert!(exchange("MAIL FROM:<a@example.test> BODY=8BITMIME").starts_with("250"));
    assert!(exchange("RCPT TO:<b@example.test>").starts_with("250"));
    assert!(exchange("RCPT TO:<c@example.test>").starts_with("250"));
    assert!(exchange("DATA").starts_with("354"));
    assert!(exchange("Subject: x\r\n\r\n..hi\r\n.").starts_with("250"));
    assert!(exchange("QUIT").starts_with("221"));

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_from, "a@example.test");
    assert_eq!(messages[0].rcpt_to, ["b@example.test", "c@example.test"]);
    assert_eq!(messages[0].data, "Subject: x\r\n\r\n.hi\r\n");
    assert!(sink.commands().iter().any(|c| c == "STARTTLS"));
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_certificate_is_rejected_before_any_byte_is_sent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::generate(dir.path());
    let server = UntrustedTlsServer::start(dir.path());
    // The CA in `dir` was not overwritten by the server's certificate.
    assert_eq!(
        std::fs::read_to_string(ca.ca_file()).expect("ca.pem"),
        ca.ca_pem
    );

    let tcp = TcpStream::connect(server.endpoint())
        .await
        .expect("connect");
    let err = tls(tcp, &ca.client_config())
        .await
        .expect_err("a client trusting only the test CA rejects the certificate");
    assert!(
        err.to_string().contains("UnknownIssuer")
            || err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    // Give the server a moment to see the alert and the close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.connections(), 1);
    assert_eq!(server.completed_handshakes(), 0);
    assert_eq!(server.received_bytes(), 0);

    // Positive control: trusting the server's own certificate, the greeting
    // arrives and what the client sends is counted.
    let tcp = TcpStream::connect(server.endpoint())
        .await
        .expect("connect");
    let mut imap = Lines::new(
        tls(tcp, &server.certificate().client_config())
            .await
            .expect("trusted handshake"),
    );
    assert!(imap.line().await.starts_with("* OK [CAPABILITY IMAP4rev1"));
    imap.send("a1 CAPABILITY").await;
    assert!(imap.line().await.starts_with("a1 NO"));
    assert_eq!(server.completed_handshakes(), 1);
    assert_eq!(server.received_bytes(), "a1 CAPABILITY\r\n".len());
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_certificate_is_rejected_by_a_client_trusting_another_ca() {
    let h = harness().await;
    let other = tempfile::tempdir().expect("temp dir");
    let other_ca = TestCa::generate(other.path());
    let tcp = TcpStream::connect(h.dovecot.imap_endpoint())
        .await
        .expect("connect");
    let err = tls(tcp, &other_ca.client_config())
        .await
        .expect_err("certificate from another CA");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_closes_the_ports_and_removes_the_pid_file() {
    let mut h = harness().await;
    let pid_file = h.dovecot.dir().join("run/master.pid");
    assert!(pid_file.exists());
    assert!(h.dovecot.is_running());
    let imap = h.dovecot.imap_endpoint();
    let submission = h.dovecot.submission_endpoint();
    h.dovecot.stop();
    assert!(!pid_file.exists());
    assert!(!h.dovecot.is_running());
    assert!(
        TcpStream::connect(&imap).await.is_err(),
        "IMAP port still open"
    );
    assert!(
        TcpStream::connect(&submission).await.is_err(),
        "submission port still open"
    );
    h.dovecot.stop(); // idempotent
}
