//! Talking to the mail servers: IMAP (implicit TLS) and SMTP submission
//! (STARTTLS, never authenticating in the clear) with SASL XOAUTH2, on the one
//! rustls stack, trusting the system roots plus `INBOXLINK_EXTRA_ROOT_CA`.
//! Every step has its own timeout and reports a stable code and a plain hint.

mod imap;
mod smtp;
mod tls;

use std::time::{Duration, Instant};

use secrecy::SecretString;

pub use tls::TlsTrust;

use crate::config::Endpoint;
use crate::domain::AccessMode;
use crate::service::mailboxes::{CheckStep, CheckStepStatus};

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
    pub code: &'static str,
    pub response: Option<String>,
    pub hint: String,
}

impl StepFailure {
    pub fn new(code: &'static str, response: Option<String>, hint: impl Into<String>) -> Self {
        Self {
            code,
            response,
            hint: hint.into(),
        }
    }
}

/// Collects the steps of a check.
pub struct Steps<'a> {
    pub steps: Vec<CheckStep>,
    failed: bool,
    /// Text that must never appear in a reported response (the token).
    secret: &'a str,
}

impl<'a> Steps<'a> {
    pub fn new(secret: &'a str) -> Self {
        Self {
            steps: Vec::new(),
            failed: false,
            secret,
        }
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Runs one step under the step timeout, unless an earlier one failed.
    pub async fn run<T, F>(&mut self, name: &str, timeout: Duration, f: F) -> Option<T>
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
                "timeout",
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
                self.steps.push(CheckStep {
                    name: name.into(),
                    status: CheckStepStatus::Ok,
                    duration_ms,
                    response: response.map(|r| sanitize(&r, self.secret)),
                    code: None,
                    hint: None,
                });
                Some(value)
            }
            Err(f) => {
                self.failed = true;
                self.steps.push(CheckStep {
                    name: name.into(),
                    status: CheckStepStatus::Failed,
                    duration_ms,
                    response: f.response.map(|r| sanitize(&r, self.secret)),
                    code: Some(f.code.into()),
                    hint: Some(f.hint),
                });
                None
            }
        }
    }

    /// Records a step that did not run.
    pub fn skip(&mut self, name: &str) {
        self.steps.push(CheckStep {
            name: name.into(),
            status: CheckStepStatus::Skipped,
            duration_ms: 0,
            response: None,
            code: None,
            hint: None,
        });
    }
}

/// A server answer fit to show: one line, bounded, never the token.
pub fn sanitize(text: &str, secret: &str) -> String {
    let mut clean: String = text
        .replace(['\r', '\n'], " ")
        .trim()
        .chars()
        .take(300)
        .collect();
    if !secret.is_empty() {
        clean = clean.replace(secret, "[REDACTED]");
    }
    clean
}

/// The SASL XOAUTH2 initial response (before base64).
pub fn xoauth2(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

impl MailServers {
    /// IMAP then SMTP, each step in order; stops at the first failure.
    pub async fn check(&self, steps: &mut Steps<'_>, login: &Login<'_>, send_test_message: bool) {
        imap::check(self, steps, login).await;
        smtp::check(self, steps, login, send_test_message).await;
    }
}

/// Maps an I/O or TLS error of a connection attempt to a step failure.
pub fn connect_failure(what: &str, endpoint: &Endpoint, e: &std::io::Error) -> StepFailure {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("unknown issuer")
    {
        if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            return StepFailure::new(
                "tls_name_mismatch",
                Some(text),
                format!(
                    "The {what} server's certificate is not valid for {}: check the configured endpoint name.",
                    endpoint.host
                ),
            );
        }
        return StepFailure::new(
            "tls_certificate_untrusted",
            Some(text),
            format!(
                "The {what} server's certificate is not trusted: check the endpoint, or add its CA with INBOXLINK_EXTRA_ROOT_CA. No credentials were sent."
            ),
        );
    }
    if matches!(e.kind(), std::io::ErrorKind::InvalidData)
        || lower.contains("tls")
        || lower.contains("handshake")
    {
        return StepFailure::new(
            "tls_failed",
            Some(text),
            format!("The TLS handshake with the {what} server failed; no credentials were sent."),
        );
    }
    StepFailure::new(
        "unreachable",
        Some(text),
        format!(
            "Cannot connect to {}:{}: check the endpoint, DNS, firewall and that the server is up.",
            endpoint.host, endpoint.port
        ),
    )
}
