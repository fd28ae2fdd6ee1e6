//! The audit log: who changed credentials and mailboxes, who started a
//! sign-in, each callback outcome and identity, each token handed out, each
//! request refused with 403 ([`crate::http::observe`]).
//! Append-only; never a secret value.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{PageRequest, Services, next_cursor, page_type, utc};
use crate::domain::OrgId;
use crate::error::{Error, Result};
use crate::store::audit::{self as store, AuditRow};
use crate::store::{AnyConnection, now};

/// One audited action.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The `sub` of the caller, or `microsoft` for callback outcomes.
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

/// An event to record.
pub struct Audit<'a> {
    pub org: &'a OrgId,
    pub actor: &'a str,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: Option<serde_json::Value>,
}

impl Audit<'_> {
    /// Writes the event (inside the caller's transaction when there is one).
    pub fn record(self, conn: &mut AnyConnection) -> Result<()> {
        store::insert(
            conn,
            &AuditRow {
                id: Uuid::now_v7().to_string(),
                org: self.org.as_str().to_owned(),
                at: now(),
                actor: self.actor.to_owned(),
                action: self.action.to_owned(),
                target_type: self.target_type.to_owned(),
                target_id: self.target_id.map(str::to_owned),
                outcome: self.outcome.to_owned(),
                detail: self.detail.map(|d| d.to_string()),
            },
        )
    }
}

impl Services {
    pub async fn audit_list(&self, org: &OrgId, page: PageRequest) -> Result<AuditEventPage> {
        let (limit, before) = page.resolve()?;
        let org = org.clone();
        let rows = self
            .store
            .run(move |c| store::list(c, &org, before.as_deref(), limit))
            .await?;
        let items = rows
            .into_iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: Uuid::try_parse(&r.id).map_err(|e| Error::Internal(e.into()))?,
                    at: utc(r.at),
                    actor: r.actor,
                    action: r.action,
                    target_type: r.target_type,
                    target_id: r.target_id,
                    outcome: r.outcome,
                    detail: r.detail.and_then(|d| serde_json::from_str(&d).ok()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = next_cursor(&items, limit, |e| e.id.to_string());
        Ok(AuditEventPage { items, next_cursor })
    }
}
