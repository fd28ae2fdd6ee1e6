//! The connection check ("Check"): token -> IMAP -> SMTP, step by step,
//! stopping at the first failure; the report is stored as the mailbox's last check.

use chrono::Utc;
use secrecy::ExposeSecret;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Services;
use super::audit::Audit;
use super::mailboxes::{CheckReport, CheckStep, CheckStepStatus};
use crate::auth::Principal;
use crate::domain::AccessMode;
use crate::error::Result;
use crate::mail::{Login, Steps};
use crate::store::{db_error, now};

/// Options of a check.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Also send a test message from the mailbox to itself (default false).
    #[serde(default)]
    pub send_test_message: bool,
}

const IMAP_STEPS: [&str; 4] = ["imap_connect", "imap_auth", "imap_select", "imap_logout"];

impl Services {
    pub async fn mailbox_check(
        &self,
        who: &Principal,
        id: Uuid,
        input: CheckRequest,
    ) -> Result<CheckReport> {
        // The mailbox must exist in the caller's organisation (404 otherwise).
        self.mailbox_get(&who.org, id).await?;
        let started = std::time::Instant::now();
        let token = self.access_token(&who.org, id).await;
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut steps = match &token {
            Ok(t) => Steps::new(t.token.expose_secret()),
            Err(_) => Steps::new(""),
        };
        match &token {
            Ok(t) => {
                steps.steps.push(CheckStep {
                    name: "token".into(),
                    status: CheckStepStatus::Ok,
                    duration_ms: elapsed,
                    response: Some(format!(
                        "valid until {}",
                        t.expires_at.format("%Y-%m-%d %H:%M UTC")
                    )),
                    code: None,
                    hint: None,
                });
                let smtp_user = match (t.access_mode, t.shared, &t.authorized_as) {
                    (AccessMode::Delegated, true, Some(delegate)) => delegate.clone(),
                    _ => t.mailbox.clone(),
                };
                let login = Login {
                    mailbox: &t.mailbox,
                    smtp_user: &smtp_user,
                    token: &t.token,
                    access_mode: t.access_mode,
                };
                self.mail
                    .check(&mut steps, &login, input.send_test_message)
                    .await;
            }
            Err(e) => {
                let problem = e.to_problem();
                steps.steps.push(CheckStep {
                    name: "token".into(),
                    status: CheckStepStatus::Failed,
                    duration_ms: elapsed,
                    response: Some(problem.detail.clone()),
                    code: Some(problem.code.clone()),
                    hint: Some(token_hint(&problem.code).into()),
                });
                for name in IMAP_STEPS {
                    steps.skip(name);
                }
                let smtp: &[&str] = if input.send_test_message {
                    &[
                        "smtp_connect",
                        "smtp_starttls",
                        "smtp_auth",
                        "smtp_send",
                        "smtp_quit",
                    ]
                } else {
                    &["smtp_connect", "smtp_starttls", "smtp_auth", "smtp_quit"]
                };
                smtp.iter().for_each(|n| steps.skip(n));
            }
        }
        let report = CheckReport {
            ok: !steps.failed() && token.is_ok(),
            checked_at: Utc::now(),
            steps: steps.steps,
        };
        let json = serde_json::to_string(&report).map_err(|e| crate::Error::Internal(e.into()))?;
        let first_failed = report
            .steps
            .iter()
            .find(|s| s.status == CheckStepStatus::Failed);
        match first_failed {
            Some(step) => self
                .metrics
                .check(&step.name, step.code.as_deref().unwrap_or("unknown")),
            None => self.metrics.check("all", "ok"),
        }
        let failed = first_failed.and_then(|s| s.code.clone());
        let (org, actor, mid) = (who.org.clone(), who.subject.clone(), id.to_string());
        self.store
            .run(move |c| {
                use crate::store::schema::mailboxes;
                use diesel::prelude::*;
                diesel::update(
                    mailboxes::table
                        .filter(mailboxes::org.eq(org.as_str()))
                        .filter(mailboxes::id.eq(&mid)),
                )
                .set((
                    mailboxes::last_check.eq(Some(json)),
                    mailboxes::updated_at.eq(now()),
                ))
                .execute(c)
                .map_err(db_error)?;
                Audit {
                    org: &org,
                    actor: &actor,
                    action: "mailbox.checked",
                    target_type: "mailbox",
                    target_id: Some(&mid),
                    outcome: failed.as_deref().unwrap_or("ok"),
                    detail: None,
                }
                .record(c)
            })
            .await?;
        Ok(report)
    }
}

fn token_hint(code: &str) -> &'static str {
    match code {
        "mailbox_not_authorized" => "Authorize the mailbox first: use Refresh and sign in.",
        "reauth_required" => "Sign in again with Refresh.",
        "app_credential_invalid" => {
            "Fix the app credential (see its verify and setup views), then try again."
        }
        "unavailable" => "Microsoft is busy or unreachable; try again later.",
        _ => "See the mailbox's status detail.",
    }
}
