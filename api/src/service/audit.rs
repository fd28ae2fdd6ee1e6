//! The audit log: who changed credentials and mailboxes, who started a
//! sign-in, each callback outcome and identity, each token handed out, each
//! request refused with 403 ([`crate::http::observe`]).
//! Append-only; never a secret value.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{PageRequest, Services, page_type, utc};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{
    Actor, AppCredentialId, AuditAction, AuditEventId, EmailAlertId, MailboxId, OrgId, TargetType,
    WebhookId,
};
use crate::error::Result;
use crate::store::audit::{self as store, AuditRow};
use crate::store::{AnyConnection, now};

/// One audited action.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    #[schema(value_type = Uuid)]
    pub id: AuditEventId,
    pub at: DateTime<Utc>,
    /// The `sub` of the caller, or `microsoft` (the token endpoint's answers),
    /// `browser` (what came through the browser) or `inboxlink` (the service).
    pub actor: String,
    /// E.g. `mailbox.sign_in_started`, `mailbox.signed_in`, `mailbox.access_token_issued`.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// `ok` or a failure code.
    pub outcome: String,
    /// Details such as the identity that signed in.
    pub detail: Option<serde_json::Value>,
}

page_type!(
    /// One page of audit events, newest first.
    AuditEventPage of AuditEvent
);

/// What an audit row is about.
#[derive(Debug, Clone)]
pub enum Target {
    Mailbox(MailboxId),
    AppCredential(AppCredentialId),
    Webhook(WebhookId),
    EmailAlert(EmailAlertId),
    /// A route pattern (requests refused with 403).
    Route(String),
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    pub org: &'a OrgId,
    pub actor: Actor,
    pub action: AuditAction,
    pub target: Target,
    pub outcome: Code,
    pub detail: Option<serde_json::Value>,
}

impl<'a> Audit<'a> {
    /// An action on a mailbox that succeeded.
    pub fn mailbox(org: &'a OrgId, actor: Actor, action: AuditAction, id: MailboxId) -> Self {
        Self {
            org,
            actor,
            action,
            target: Target::Mailbox(id),
            outcome: Code::Ok,
            detail: None,
        }
    }

    /// An action on an app credential that succeeded.
    pub fn app_credential(
        org: &'a OrgId,
        actor: Actor,
        action: AuditAction,
        id: AppCredentialId,
    ) -> Self {
        Self {
            org,
            actor,
            action,
            target: Target::AppCredential(id),
            outcome: Code::Ok,
            detail: None,
        }
    }

    /// A change of a webhook or an e-mail alert (`target`), which succeeded.
    pub fn notification(org: &'a OrgId, actor: Actor, action: AuditAction, target: Target) -> Self {
        Self {
            org,
            actor,
            action,
            target,
            outcome: Code::Ok,
            detail: None,
        }
    }

    pub fn outcome(mut self, outcome: Code) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Writes the event (inside the caller's transaction when there is one).
    pub fn record(self, conn: &mut AnyConnection) -> Result<()> {
        let (target_type, target_id) = match self.target {
            Target::Mailbox(id) => (TargetType::Mailbox, id.to_string()),
            Target::AppCredential(id) => (TargetType::AppCredential, id.to_string()),
            Target::Webhook(id) => (TargetType::Webhook, id.to_string()),
            Target::EmailAlert(id) => (TargetType::EmailAlert, id.to_string()),
            Target::Route(route) => (TargetType::Route, route),
        };
        store::insert(
            conn,
            &AuditRow {
                id: AuditEventId::new(),
                org: self.org.clone(),
                at: now(),
                actor: self.actor,
                action: self.action,
                target_type,
                target_id: Some(target_id),
                outcome: self.outcome,
                detail: self.detail.map(|d| d.to_string()),
            },
        )?;
        Ok(())
    }
}

impl Services {
    pub async fn audit_list(&self, who: &Principal, page: PageRequest) -> Result<AuditEventPage> {
        let org = who.require(Permission::AuditRead)?.clone();
        let (limit, before) = page.resolve()?;
        let rows = self
            .store
            .run(move |c| store::list(c, &org, before, limit))
            .await?;
        let items: Vec<AuditEvent> = rows
            .into_iter()
            .map(|r| AuditEvent {
                id: r.id,
                at: utc(r.at),
                actor: r.actor.to_string(),
                action: r.action.as_str().to_owned(),
                target_type: r.target_type.as_str().to_owned(),
                target_id: r.target_id,
                outcome: r.outcome.as_str().to_owned(),
                detail: r.detail.and_then(|d| serde_json::from_str(&d).ok()),
            })
            .collect();
        Ok(AuditEventPage::new(items, limit))
    }
}
