//! The connection check ("Check"): token -> IMAP -> SMTP (or, for the
//! `graph` transport, Graph token -> mailbox -> send), step by step,
//! stopping at the first failure; the report is built here from the steps
//! the mail adapter ran, and stored as the mailbox's last check.

use chrono::Utc;
use secrecy::ExposeSecret;
use serde::Deserialize;
use utoipa::ToSchema;

use super::Services;
use super::audit::Audit;
use super::events::{self, Event};
use super::lifecycle::{self, Change};
use super::mailboxes::{CheckReport, CheckStep, CheckStepStatus};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{AuditAction, CheckStepName, MailboxId, OrgId, Resource, Transport};
use crate::error::{Error, Result};
use crate::limits::Limited;
use crate::mail::{Login, StepResult, StepStatus, Steps};
use crate::store::{mailboxes, now};

/// Options of a check.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Also send a test message from the mailbox to itself (default false).
    #[serde(default)]
    pub send_test_message: bool,
}

const IMAP_STEPS: [CheckStepName; 4] = [
    CheckStepName::ImapConnect,
    CheckStepName::ImapAuth,
    CheckStepName::ImapSelect,
    CheckStepName::ImapLogout,
];

impl From<StepResult> for CheckStep {
    fn from(s: StepResult) -> Self {
        CheckStep {
            name: s.name,
            status: match s.status {
                StepStatus::Ok => CheckStepStatus::Ok,
                StepStatus::Failed => CheckStepStatus::Failed,
                StepStatus::Skipped => CheckStepStatus::Skipped,
            },
            duration_ms: s.duration_ms,
            response: s.response,
            code: s.code.map(String::from),
            hint: s.hint,
        }
    }
}

impl Services {
    pub async fn mailbox_check(
        &self,
        who: &Principal,
        id: MailboxId,
        input: CheckRequest,
    ) -> Result<CheckReport> {
        let org = who.require(Permission::MailboxesWrite)?.clone();
        self.limits.check(
            who,
            if input.send_test_message {
                Limited::CheckSend
            } else {
                Limited::Check
            },
        )?;
        // The mailbox must exist in the caller's organisation (404 otherwise).
        let transport = self.mailbox(&org, id).await?.transport;
        let (resource, token_step) = match transport {
            Transport::ImapSmtp => (Resource::Outlook, CheckStepName::Token),
            Transport::Graph => (Resource::Graph, CheckStepName::GraphToken),
        };
        let started = std::time::Instant::now();
        let token = self.access_token_for(&org, id, resource).await;
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut steps = match &token {
            Ok(t) => Steps::new(t.token.expose_secret()),
            Err(_) => Steps::new(""),
        };
        let mut report = Vec::new();
        match &token {
            Ok(t) => {
                report.push(CheckStep {
                    name: token_step,
                    status: CheckStepStatus::Ok,
                    duration_ms: elapsed,
                    response: Some(format!(
                        "valid until {}",
                        t.expires_at.format("%Y-%m-%d %H:%M UTC")
                    )),
                    code: None,
                    hint: None,
                });
                let login = Login {
                    mailbox: &t.mailbox,
                    smtp_user: t.smtp_user(),
                    token: &t.token,
                    access_mode: t.access_mode,
                };
                match transport {
                    Transport::ImapSmtp => {
                        self.mail
                            .servers(t.cloud)
                            .check(&mut steps, &login, input.send_test_message)
                            .await;
                        self.check_bridge(&mut steps, &org, id, t).await;
                    }
                    Transport::Graph => {
                        self.mail
                            .graph(t.cloud)
                            .check(&mut steps, &login, input.send_test_message)
                            .await;
                    }
                }
            }
            Err(e) => {
                report.push(token_failure(token_step, e, elapsed));
                for name in self.steps_after_token(transport, input.send_test_message) {
                    steps.skip(name);
                }
            }
        }
        let failed = steps.failed();
        report.extend(steps.steps.into_iter().map(CheckStep::from));
        let report = CheckReport {
            ok: !failed && token.is_ok(),
            checked_at: Utc::now(),
            steps: report,
        };
        let json = serde_json::to_string(&report).map_err(|e| Error::Internal(e.into()))?;
        let first_failed = report
            .steps
            .iter()
            .find(|s| s.status == CheckStepStatus::Failed);
        match first_failed {
            Some(step) => self.metrics.check(
                step.name.as_str(),
                step.code.as_deref().unwrap_or(Code::Internal.as_str()),
            ),
            None => self.metrics.check("all", Code::Ok.as_str()),
        }
        let outcome = first_failed
            .and_then(|s| s.code.as_deref())
            .and_then(Code::parse)
            .unwrap_or(Code::Ok);
        let actor = who.actor();
        let ok = report.ok;
        let failed_step = first_failed.map(|s| (s.name.as_str().to_owned(), s.code.clone()));
        self.store
            .write(move |c| {
                let before = mailboxes::get(c, &org, id)?;
                mailboxes::record_check(c, &org, id, &json, now())?;
                if let Some(event) = check_event(&before, ok, failed_step) {
                    events::record(c, &org, &event)?;
                }
                if ok {
                    // The servers accept the token: a mailbox a bridge login
                    // found refused works again.
                    lifecycle::transition(c, &org, id, Change::UpstreamAccepted, None)?;
                }
                Audit::mailbox(&org, actor, AuditAction::Checked, id)
                    .outcome(outcome)
                    .record(c)
            })
            .await?;
        Ok(report)
    }
}

impl Services {
    /// The steps a check of `transport` runs after its token step, in order.
    fn steps_after_token(&self, transport: Transport, send: bool) -> Vec<CheckStepName> {
        use CheckStepName::*;
        let mut names = match transport {
            Transport::Graph => vec![GraphMailbox],
            Transport::ImapSmtp => IMAP_STEPS
                .into_iter()
                .chain([SmtpConnect, SmtpStarttls, SmtpAuth])
                .collect(),
        };
        match transport {
            Transport::Graph if send => names.push(GraphSend),
            Transport::Graph => {}
            Transport::ImapSmtp => {
                if send {
                    names.push(SmtpSend);
                }
                names.push(SmtpQuit);
                if self.bridge.imap.is_some() {
                    names.push(Bridge);
                }
            }
        }
        names
    }

    /// The `bridge` step, where this instance runs the bridge's IMAP
    /// listener: a login through it with a one-time credential
    /// (`crate::mail::bridge_imap_login`).
    async fn check_bridge(
        &self,
        steps: &mut Steps<'_>,
        org: &OrgId,
        id: MailboxId,
        token: &super::keeper::AccessToken,
    ) {
        let address = token.mailbox.as_str();
        let (Some(bind), Some(fingerprint)) =
            (self.bridge.imap, self.bridge.fingerprint.as_deref())
        else {
            return;
        };
        let username = super::bridge_passwords::probe_username(address, id);
        let password = self.bridge.probes.issue(&username, org, id, token.cloud);
        let login = crate::mail::bridge_imap_login(bind, fingerprint, &username, &password);
        steps
            .run(CheckStepName::Bridge, self.mail.step_timeout, login)
            .await;
    }
}

/// The event of a check that changed the picture: the first failure after
/// a passing check (or the first check ever failing), or a pass after a
/// failure. A check like the one before has none.
fn check_event(
    before: &mailboxes::MailboxRow,
    ok: bool,
    failed_step: Option<(String, Option<String>)>,
) -> Option<Event> {
    let passed_before = before
        .last_check
        .as_deref()
        .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        .and_then(|v| v.get("ok").and_then(serde_json::Value::as_bool));
    let (id, email) = (before.id, before.email.clone());
    match (passed_before, ok) {
        (Some(false), true) => Some(Event::CheckRecovered { id, email }),
        (None | Some(true), false) => {
            let (step, code) = failed_step.unwrap_or_else(|| ("token".into(), None));
            Some(Event::CheckFailed {
                id,
                email,
                step,
                code,
            })
        }
        _ => None,
    }
}

/// The token step of a check that got no token: the API error, explained.
fn token_failure(name: CheckStepName, e: &Error, duration_ms: u64) -> CheckStep {
    let problem = e.to_problem();
    CheckStep {
        name,
        status: CheckStepStatus::Failed,
        duration_ms,
        response: Some(problem.detail.clone()),
        code: Some(problem.code.clone()),
        hint: Some(
            e.code()
                .hint()
                .unwrap_or("See the mailbox's status detail.")
                .into(),
        ),
    }
}
