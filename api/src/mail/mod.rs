//! Talking to the mail servers: IMAP (implicit TLS) and SMTP submission
//! (STARTTLS, never authenticating in the clear) with SASL XOAUTH2, on the one
//! rustls stack, trusting the system roots plus `INBOXLINK_EXTRA_ROOT_CA`.
//! Every step has its own timeout and reports a stable code and a plain hint.
//!
//! Here: a step's result and the collector of a check's steps. `connect`
//! tells a failed connection's causes apart, `redact` keeps the token out
//! of every server answer a step reports, `script` is the tests' scripted
//! server.

pub(crate) mod bridge_probe;
mod connect;
mod graph;
pub(crate) mod imap;
mod redact;
#[cfg(test)]
pub(crate) mod script;
pub(crate) mod smtp;
mod smtp_relay;
mod tls;

use crate::codes::Code;
use std::time::{Duration, Instant};

use secrecy::SecretString;

pub use bridge_probe::{fingerprint as bridge_fingerprint, imap_login as bridge_imap_login};
pub use connect::connect_failure;
pub use graph::GraphApi;
pub use imap::{
    Greeted as ImapGreeted, RELAY_BUFFER as IMAP_RELAY_BUFFER, Relay as ImapRelay,
    connect_relay as connect_imap_relay,
};
pub use redact::sanitize;
pub use smtp_relay::{
    Greeted as SmtpGreeted, NotGreeted as SmtpNotGreeted, Relay as SmtpRelay, Reply as SmtpReply,
    connect_relay as connect_smtp_relay, read_reply as read_smtp_reply,
};
pub use tls::TlsTrust;

use crate::config::Endpoint;
use crate::domain::{AccessMode, CheckStepName, Cloud};

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

/// The mail servers of every cloud: the configured ones
/// (`INBOXLINK_IMAP_ENDPOINT`, `INBOXLINK_SMTP_ENDPOINT`,
/// `INBOXLINK_GRAPH_ENDPOINT`) where set, else each cloud's own.
#[derive(Clone)]
pub struct MailRouting {
    pub imap: Option<Endpoint>,
    pub smtp: Option<Endpoint>,
    pub graph: Option<url::Url>,
    /// The client of Graph requests (no redirects followed).
    pub graph_http: reqwest::Client,
    pub trust: TlsTrust,
    pub step_timeout: Duration,
}

impl MailRouting {
    /// Where the mailboxes of `cloud` are reached.
    pub fn servers(&self, cloud: Cloud) -> MailServers {
        let own = cloud.endpoints();
        let or_own = |set: &Option<Endpoint>, host: &str, port: u16| {
            set.clone().unwrap_or_else(|| Endpoint {
                host: host.to_owned(),
                port,
            })
        };
        MailServers {
            imap: or_own(&self.imap, own.imap_host, crate::domain::IMAP_PORT),
            smtp: or_own(&self.smtp, own.smtp_host, crate::domain::SMTP_PORT),
            trust: self.trust.clone(),
            step_timeout: self.step_timeout,
        }
    }

    /// Where Microsoft Graph is for the mailboxes of `cloud`.
    pub fn graph(&self, cloud: Cloud) -> GraphApi {
        GraphApi {
            base: self.graph.clone().unwrap_or_else(|| {
                url::Url::parse(cloud.endpoints().graph).expect("the cloud table holds URLs")
            }),
            http: self.graph_http.clone(),
            step_timeout: self.step_timeout,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AccessMode;
    use secrecy::ExposeSecret;

    fn servers(imap: u16, smtp: u16) -> MailServers {
        MailServers {
            imap: script::endpoint(imap),
            smtp: script::endpoint(smtp),
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

    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "a unit test of the routing: nothing is sent"
    )]
    fn each_cloud_has_its_own_servers_unless_they_are_configured() {
        let routing = |imap: Option<Endpoint>| MailRouting {
            imap,
            smtp: None,
            graph: None,
            graph_http: reqwest::Client::new(),
            trust: TlsTrust::new(None).expect("trust"),
            step_timeout: Duration::from_secs(1),
        };
        let own = routing(None);
        assert_eq!(
            own.graph(Cloud::UsgovDod).base.as_str(),
            "https://dod-graph.microsoft.us/"
        );
        let usgov = own.servers(Cloud::Usgov);
        assert_eq!(
            (usgov.imap.host.as_str(), usgov.imap.port),
            ("outlook.office365.us", 993)
        );
        assert_eq!(
            (usgov.smtp.host.as_str(), usgov.smtp.port),
            ("smtp.office365.us", 587)
        );
        let china = own.servers(Cloud::China);
        assert_eq!(china.imap.host, "partner.outlook.cn");
        let set = Endpoint {
            host: "127.0.0.1".into(),
            port: 1993,
        };
        let configured = routing(Some(set)).servers(Cloud::China);
        assert_eq!(
            (configured.imap.host.as_str(), configured.imap.port),
            ("127.0.0.1", 1993)
        );
        assert_eq!(
            configured.smtp.host, "smtp.partner.outlook.cn",
            "only IMAP was configured"
        );
    }
}
