//! Talking to the mail servers: IMAP (implicit TLS) and SMTP submission
//! (STARTTLS, never authenticating in the clear) with SASL XOAUTH2, on the one
//! rustls stack, trusting the system roots plus `INBOXLINK_EXTRA_ROOT_CA`.
//! Every step has its own timeout and reports a stable code and a plain hint.

mod imap;
mod smtp;
mod tls;

use crate::codes::Code;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;

pub use tls::TlsTrust;

use crate::config::Endpoint;
use crate::domain::{AccessMode, CheckStepName};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Ok,
    Failed,
    Skipped,
}

/// One step as it ran: the service turns these into the check's report.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub name: CheckStepName,
    pub status: StepStatus,
    pub duration_ms: u64,
    /// The server's answer, sanitized.
    pub response: Option<String>,
    pub code: Option<Code>,
    pub hint: Option<String>,
}

/// Where and how to reach the mail servers.
#[derive(Clone)]
pub struct MailServers {
    pub imap: Endpoint,
    pub smtp: Endpoint,
    pub trust: TlsTrust,
    pub step_timeout: Duration,
}

/// Who checks, with which token.
pub struct Login<'a> {
    /// The mailbox (IMAP `user=`, and the sender of the test message).
    pub mailbox: &'a str,
    /// The SMTP `user=`: the mailbox, or the delegate for a shared mailbox.
    pub smtp_user: &'a str,
    pub token: &'a SecretString,
    pub access_mode: AccessMode,
}

/// A failed step: its code, what the server said, and what to do.
#[derive(Debug, Clone)]
pub struct StepFailure {
    pub code: Code,
    pub response: Option<String>,
    pub hint: String,
}

impl StepFailure {
    pub fn new(code: Code, response: Option<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            response,
            hint: hint.into(),
        }
    }
}

/// Collects the steps of a check.
pub struct Steps<'a> {
    pub steps: Vec<StepResult>,
    failed: bool,
    /// Text that must never appear in a reported response (the token), in
    /// any of the forms [`sanitize`] redacts.
    secret: &'a str,
    /// The `user=` values of the XOAUTH2 responses sent with the secret.
    users: Vec<String>,
}

impl<'a> Steps<'a> {
    pub fn new(secret: &'a str) -> Self {
        Self {
            steps: Vec::new(),
            failed: false,
            secret,
            users: Vec::new(),
        }
    }

    /// Also redacts the XOAUTH2 responses of these users in full.
    fn sends_as(&mut self, users: &[&str]) {
        for user in users {
            if !self.users.iter().any(|u| u == user) {
                self.users.push((*user).to_owned());
            }
        }
    }

    fn sanitize(&self, text: &str) -> String {
        let users: Vec<&str> = self.users.iter().map(String::as_str).collect();
        sanitize(text, self.secret, &users)
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Runs one step under the step timeout, unless an earlier one failed.
    pub async fn run<T, F>(&mut self, name: CheckStepName, timeout: Duration, f: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<(T, Option<String>), StepFailure>>,
    {
        if self.failed {
            self.skip(name);
            return None;
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(StepFailure::new(
                Code::Timeout,
                None,
                format!(
                    "The server did not answer within {} s; check the endpoint and the network, then try again.",
                    timeout.as_secs()
                ),
            )),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok((value, response)) => {
                self.steps.push(StepResult {
                    name,
                    status: StepStatus::Ok,
                    duration_ms,
                    response: response.map(|r| self.sanitize(&r)),
                    code: None,
                    hint: None,
                });
                Some(value)
            }
            Err(f) => {
                self.failed = true;
                self.steps.push(StepResult {
                    name,
                    status: StepStatus::Failed,
                    duration_ms,
                    response: f.response.map(|r| self.sanitize(&r)),
                    code: Some(f.code),
                    hint: Some(f.hint),
                });
                None
            }
        }
    }

    /// Records a step that did not run.
    pub fn skip(&mut self, name: CheckStepName) {
        self.steps.push(StepResult {
            name,
            status: StepStatus::Skipped,
            duration_ms: 0,
            response: None,
            code: None,
            hint: None,
        });
    }
}

/// The most characters of a server answer that a step reports.
const MAX_RESPONSE_CHARS: usize = 300;

const REDACTED: &str = "[REDACTED]";

/// A server answer fit to show: never the token (see [`secret_forms`]), then
/// one line, bounded. Redacting comes first so that cutting cannot leave part
/// of a token behind.
pub fn sanitize(text: &str, secret: &str, users: &[&str]) -> String {
    redact(text, &secret_forms(secret, users))
        .replace(['\r', '\n'], " ")
        .trim()
        .chars()
        .take(MAX_RESPONSE_CHARS)
        .collect()
}

/// The forms in which a server could echo the token: the token itself, its
/// base64, the base64 of the XOAUTH2 response for each of `users`, and, for a
/// response with any other user, the part of its base64 that encodes the
/// token alone (base64 works in groups of 3 bytes, so that part is the base64
/// of the token without its first 0, 1 or 2 bytes, cut to whole groups).
fn secret_forms(secret: &str, users: &[&str]) -> Vec<String> {
    if secret.is_empty() {
        return Vec::new();
    }
    let mut forms = vec![secret.to_owned()];
    // Shorter forms (under 8 characters) would redact ordinary words.
    if secret.len() >= 6 {
        forms.push(STANDARD.encode(secret));
    }
    forms.extend(users.iter().map(|u| STANDARD.encode(xoauth2(u, secret))));
    let bytes = secret.as_bytes();
    for skip in 0..3 {
        let rest = bytes.get(skip..).unwrap_or_default();
        let whole = rest.len() / 3 * 3;
        if whole >= 6 {
            forms.push(STANDARD.encode(&rest[..whole]));
        }
    }
    forms
}

/// `text` with every occurrence of any of `forms` replaced by `[REDACTED]`
/// (overlapping or adjacent occurrences become one).
fn redact(text: &str, forms: &[String]) -> String {
    let mut found: Vec<(usize, usize)> = forms
        .iter()
        .filter(|f| !f.is_empty())
        .flat_map(|f| {
            text.match_indices(f.as_str())
                .map(|(at, m)| (at, at + m.len()))
        })
        .collect();
    if found.is_empty() {
        return text.to_owned();
    }
    found.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(found.len());
    for (start, end) in found {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in merged {
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The SASL XOAUTH2 initial response (before base64).
pub fn xoauth2(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

impl MailServers {
    /// IMAP then SMTP, each step in order; stops at the first failure.
    pub async fn check(&self, steps: &mut Steps<'_>, login: &Login<'_>, send_test_message: bool) {
        steps.sends_as(&[login.mailbox, login.smtp_user]);
        imap::check(self, steps, login).await;
        smtp::check(self, steps, login, send_test_message).await;
    }

    /// Sends one message from the mailbox of `login` over SMTP submission
    /// with XOAUTH2 (the check's path); what the server said comes back
    /// sanitized, as in a check.
    pub async fn submit(
        &self,
        login: &Login<'_>,
        envelope: &lettre::address::Envelope,
        message: &[u8],
    ) -> Result<String, StepFailure> {
        use secrecy::ExposeSecret;
        let secret = login.token.expose_secret();
        let users = [login.mailbox, login.smtp_user];
        smtp::submit(self, login, envelope, message)
            .await
            .map(|r| sanitize(&r, secret, &users))
            .map_err(|mut f| {
                f.response = f.response.map(|r| sanitize(&r, secret, &users));
                f
            })
    }
}

/// Maps an I/O or TLS error of a connection attempt to a step failure. The
/// error may be an I/O error, a TLS error or one wrapping either (lettre's):
/// its chain is searched for the rustls error, and only without one is the
/// text read.
pub fn connect_failure(
    what: &str,
    endpoint: &Endpoint,
    e: &(dyn std::error::Error + 'static),
) -> StepFailure {
    let text = e.to_string();
    if let Some(tls) = find_rustls_error(e) {
        return tls_failure(what, endpoint, tls, text);
    }
    if find_io_error(e).is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
        return StepFailure::new(
            Code::Timeout,
            Some(text),
            format!(
                "The {what} server did not answer in time; check the endpoint and the network, then try again."
            ),
        );
    }
    let lower = text.to_lowercase();
    if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
    {
        if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            return name_mismatch(what, endpoint, text);
        }
        return untrusted(what, text);
    }
    if find_io_error(e).is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
        || lower.contains("tls")
        || lower.contains("handshake")
    {
        return tls_failed(what, text);
    }
    StepFailure::new(
        Code::Unreachable,
        Some(text),
        format!(
            "Cannot connect to {}:{}: check the endpoint, DNS, firewall and that the server is up.",
            endpoint.host, endpoint.port
        ),
    )
}

fn tls_failure(what: &str, endpoint: &Endpoint, e: &rustls::Error, text: String) -> StepFailure {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => name_mismatch(what, endpoint, text),
        rustls::Error::InvalidCertificate(_) => untrusted(what, text),
        _ => tls_failed(what, text),
    }
}

fn name_mismatch(what: &str, endpoint: &Endpoint, text: String) -> StepFailure {
    StepFailure::new(
        Code::TlsNameMismatch,
        Some(text),
        format!(
            "The {what} server's certificate is not valid for {}: check the configured endpoint name. No credentials were sent.",
            endpoint.host
        ),
    )
}

fn untrusted(what: &str, text: String) -> StepFailure {
    StepFailure::new(
        Code::TlsCertificateUntrusted,
        Some(text),
        format!(
            "The {what} server's certificate is not trusted: check the endpoint, or add its CA with INBOXLINK_EXTRA_ROOT_CA. No credentials were sent."
        ),
    )
}

fn tls_failed(what: &str, text: String) -> StepFailure {
    StepFailure::new(
        Code::TlsFailed,
        Some(text),
        format!("The TLS handshake with the {what} server failed; no credentials were sent."),
    )
}

/// The errors of `e`'s chain, looking inside I/O errors too (whose `source`
/// skips the error they wrap).
fn error_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        chain.push(err);
        if chain.len() > 16 {
            break;
        }
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    chain
}

fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    error_chain(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<rustls::Error>())
}

fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    error_chain(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<std::io::Error>())
}

/// Microsoft's "Suggested Backoff Time: N milliseconds" (IMAP and SMTP), in ms.
pub fn suggested_backoff_ms(text: &str) -> Option<u64> {
    const MARK: &str = "suggested backoff time";
    let lower = text.to_ascii_lowercase();
    let rest = &lower[lower.find(MARK)? + MARK.len()..];
    let digits: String = rest
        .trim_start_matches([':', ' ', '='])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// "wait N ms (about M minutes) before trying again".
pub fn backoff_advice(ms: u64) -> String {
    // The number is the mail server's: saturating, whatever it says.
    let about = match ms {
        0..1_000 => String::new(),
        1_000..90_000 => format!(" (about {} s)", ms.saturating_add(500) / 1_000),
        _ => format!(" (about {} minutes)", ms.saturating_add(30_000) / 60_000),
    };
    format!("wait {ms} ms{about} before trying again")
}

/// A scripted mail server for the tests of the IMAP and SMTP steps: real
/// client libraries, real server texts, no network beyond 127.0.0.1.
#[cfg(test)]
pub(crate) mod script {
    use secrecy::SecretString;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::Login;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccessMode;
    use secrecy::ExposeSecret;

    const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlLmNvbSJ9.c2lnbmF0dXJl";

    fn endpoint(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
        }
    }

    /// Whether any `n` consecutive characters of `secret` appear in `text`.
    fn leaks(text: &str, secret: &str, n: usize) -> bool {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(n)
            .any(|w| text.contains(&w.iter().collect::<String>()))
    }

    #[test]
    fn a_long_echo_is_redacted_before_it_is_cut() {
        // The token straddles the 300th character: cutting first left its start.
        let text = format!("{} {TOKEN} and more", "x".repeat(280));
        let clean = sanitize(&text, TOKEN, &[]);
        assert!(!leaks(&clean, TOKEN, 6), "{clean}");
        assert!(clean.ends_with("[REDACTED] and more"), "{clean}");
        assert!(clean.chars().count() <= MAX_RESPONSE_CHARS);

        let long = format!("{}{TOKEN}", "y".repeat(295));
        let clean = sanitize(&long, TOKEN, &[]);
        assert!(!leaks(&clean, TOKEN, 4), "{clean}");
        assert_eq!(clean.chars().count(), MAX_RESPONSE_CHARS);
    }

    #[test]
    fn the_base64_forms_of_the_token_are_redacted() {
        let b64 = STANDARD.encode(TOKEN);
        let clean = sanitize(&format!("535 echo {b64} end"), TOKEN, &[]);
        assert_eq!(clean, "535 echo [REDACTED] end");

        // The XOAUTH2 response of a user in play: gone whole.
        let response = STANDARD.encode(xoauth2(script::MAILBOX, TOKEN));
        let clean = sanitize(
            &format!("NO [{response}]"),
            TOKEN,
            &[script::MAILBOX, "other@x"],
        );
        assert_eq!(clean, "NO [[REDACTED]]");
    }

    #[test]
    fn the_xoauth2_response_of_any_user_is_redacted() {
        // Users of every length modulo 3, so the token starts at each base64 alignment.
        for user in ["a@b.c", "ab@b.c", "abc@b.c", "delegate@contoso.example"] {
            let prefix = format!("user={user}\x01auth=Bearer ");
            let response = STANDARD.encode(xoauth2(user, TOKEN));
            let clean = sanitize(&format!("echo {response} end"), TOKEN, &[]);
            let inner = clean
                .strip_prefix("echo ")
                .and_then(|c| c.strip_suffix(" end"))
                .expect("framing kept");
            let (before, after) = inner.split_once(REDACTED).expect("redacted");
            // What is left around the mark encodes the user and at most two
            // bytes of the token on each side.
            assert!(before.len() <= prefix.len() / 3 * 4 + 4, "{user}: {clean}");
            assert!(after.len() <= 8, "{user}: {clean}");
        }
    }

    #[test]
    fn sanitize_keeps_ordinary_answers() {
        assert_eq!(
            sanitize("  535 5.7.3 Authentication\r\n unsuccessful ", TOKEN, &[]),
            "535 5.7.3 Authentication   unsuccessful"
        );
        assert_eq!(sanitize("token abc here", "", &[]), "token abc here");
        // A short secret is redacted as itself, never as short base64 forms.
        assert_eq!(sanitize("abc YWJj", "abc", &[]), "[REDACTED] YWJj");
        let long = "z".repeat(400);
        assert_eq!(sanitize(&long, TOKEN, &[]).len(), MAX_RESPONSE_CHARS);
    }

    #[test]
    fn overlapping_forms_are_one_redaction() {
        let forms = vec!["abcdef".to_owned(), "defghi".to_owned(), "xyz".to_owned()];
        assert_eq!(
            redact("1abcdefghi2 xyz3", &forms),
            "1[REDACTED]2 [REDACTED]3"
        );
        assert_eq!(redact("plain", &forms), "plain");
    }

    #[tokio::test]
    async fn steps_redact_what_the_server_echoes() {
        let secret = TOKEN;
        let mut steps = Steps::new(secret);
        steps.sends_as(&["shared@contoso.example"]);
        let echoed = STANDARD.encode(xoauth2("shared@contoso.example", secret));
        let echo = echoed.clone();
        steps
            .run::<(), _>(
                CheckStepName::SmtpAuth,
                Duration::from_secs(5),
                async move {
                    Err(StepFailure::new(
                        Code::SmtpAuthFailed,
                        Some(format!("535 5.7.8 {}{echo}", "p".repeat(290))),
                        "hint",
                    ))
                },
            )
            .await;
        let response = steps.steps[0].response.clone().expect("response");
        assert!(!leaks(&response, &echoed, 4), "{response}");
        assert!(!leaks(&response, secret, 4), "{response}");
        assert!(steps.failed());
    }

    #[test]
    fn tls_errors_are_told_apart() {
        use rustls::CertificateError;
        let ep = Endpoint {
            host: "imap.contoso.example".into(),
            port: 993,
        };
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);

        let unknown = io(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        let f = connect_failure("IMAP", &ep, &unknown);
        assert_eq!(f.code, Code::TlsCertificateUntrusted);
        assert!(f.hint.contains("INBOXLINK_EXTRA_ROOT_CA"), "{}", f.hint);
        assert!(f.hint.contains("No credentials were sent"), "{}", f.hint);

        let expired = io(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert_eq!(
            connect_failure("IMAP", &ep, &expired).code,
            Code::TlsCertificateUntrusted
        );

        let expected =
            rustls::pki_types::ServerName::try_from("imap.contoso.example").expect("name");
        let mismatch = io(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: expected.to_owned(),
                presented: vec!["DnsName(\"localhost\")".into()],
            },
        ));
        let f = connect_failure("IMAP", &ep, &mismatch);
        assert_eq!(f.code, Code::TlsNameMismatch);
        assert!(f.hint.contains("imap.contoso.example"), "{}", f.hint);
        let bare = io(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert_eq!(
            connect_failure("IMAP", &ep, &bare).code,
            Code::TlsNameMismatch
        );

        let alert = io(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert_eq!(connect_failure("IMAP", &ep, &alert).code, Code::TlsFailed);
    }

    /// Wraps an error the way lettre's `tls error: …` does.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "tls error: {}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_wrapped_tls_error_is_found_in_the_chain() {
        let ep = endpoint(587);
        let mismatch = Wrapped(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
        ));
        let f = connect_failure("SMTP", &ep, &mismatch);
        assert_eq!(f.code, Code::TlsNameMismatch);
        assert!(f.response.expect("text").starts_with("tls error: "));

        let untrusted = Wrapped(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert_eq!(
            connect_failure("SMTP", &ep, &untrusted).code,
            Code::TlsCertificateUntrusted
        );
    }

    #[test]
    fn io_errors_are_unreachable_or_timeout() {
        let ep = endpoint(1);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let f = connect_failure("IMAP", &ep, &refused);
        assert_eq!(f.code, Code::Unreachable);
        assert!(f.hint.contains("127.0.0.1:1"), "{}", f.hint);
        let timed_out = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(connect_failure("IMAP", &ep, &timed_out).code, Code::Timeout);
    }

    fn servers(imap: u16, smtp: u16) -> MailServers {
        MailServers {
            imap: endpoint(imap),
            smtp: endpoint(smtp),
            trust: TlsTrust::new(None).expect("trust"),
            step_timeout: Duration::from_millis(300),
        }
    }

    fn outcome(steps: &Steps<'_>) -> Vec<(String, StepStatus, Option<String>)> {
        steps
            .steps
            .iter()
            .map(|s| {
                (
                    s.name.as_str().to_owned(),
                    s.status,
                    s.code.map(String::from),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_the_rest_is_skipped() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").port()
        };
        let token = script::token();
        let login = script::login(&token, AccessMode::Delegated);
        let mut steps = Steps::new(token.expose_secret());
        servers(closed, closed)
            .check(&mut steps, &login, false)
            .await;
        let got = outcome(&steps);
        assert_eq!(got[0].0, "imap_connect");
        assert_eq!(got[0].2.as_deref(), Some("unreachable"), "{got:?}");
        assert!(
            got[1..]
                .iter()
                .all(|(_, status, _)| *status == StepStatus::Skipped),
            "{got:?}"
        );
        assert_eq!(got.len(), 8, "{got:?}");

        // SMTP alone: its connect step says the same.
        let mut steps = Steps::new(token.expose_secret());
        smtp::check(&servers(closed, closed), &mut steps, &login, true).await;
        assert_eq!(
            steps.steps[0].code,
            Some(Code::Unreachable),
            "{:?}",
            outcome(&steps)
        );
        assert_eq!(steps.steps.len(), 5);
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        // Connections are queued by the kernel but nothing is ever answered.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = silent.local_addr().expect("address").port();
        let token = script::token();
        let login = script::login(&token, AccessMode::Delegated);

        let mut steps = Steps::new(token.expose_secret());
        imap::check(&servers(port, port), &mut steps, &login).await;
        assert_eq!(steps.steps[0].name.as_str(), "imap_connect");
        assert_eq!(steps.steps[0].code, Some(Code::Timeout));
        assert!(steps.steps[0].duration_ms >= 250);

        let mut steps = Steps::new(token.expose_secret());
        smtp::check(&servers(port, port), &mut steps, &login, false).await;
        assert_eq!(steps.steps[0].name.as_str(), "smtp_connect");
        assert_eq!(steps.steps[0].code, Some(Code::Timeout));
        drop(silent);
    }

    #[test]
    fn absurd_backoff_times_do_not_overflow() {
        let huge = format!("Suggested Backoff Time: {} milliseconds", u64::MAX);
        let ms = suggested_backoff_ms(&huge).expect("read");
        // The number told is the right one (a wrapping sum would say "about 0").
        assert!(
            backoff_advice(ms).contains(&format!("about {} minutes", u64::MAX / 60_000)),
            "{}",
            backoff_advice(ms)
        );
        // More digits than a u64 holds: not a number we can use.
        assert_eq!(
            suggested_backoff_ms("Suggested Backoff Time: 99999999999999999999999 ms"),
            None
        );
    }

    #[test]
    fn backoff_times_are_read_and_told() {
        assert_eq!(
            suggested_backoff_ms(
                "NO Request is throttled. Suggested Backoff Time: 299961 milliseconds"
            ),
            Some(299_961)
        );
        assert_eq!(
            suggested_backoff_ms("suggested backoff time:1500 ms"),
            Some(1500)
        );
        assert_eq!(suggested_backoff_ms("Request is throttled."), None);
        assert_eq!(
            backoff_advice(299_961),
            "wait 299961 ms (about 5 minutes) before trying again"
        );
        assert_eq!(
            backoff_advice(89_117),
            "wait 89117 ms (about 89 s) before trying again"
        );
        assert_eq!(backoff_advice(500), "wait 500 ms before trying again");
    }
}
