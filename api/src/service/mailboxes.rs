//! Mailboxes: an address, the app credential it signs in with, how it is
//! accessed, and where its authorization stands.
//!
//! The file is long because the resource's contract types (the spec's
//! documented schemas, the last check's report among them) stand beside the
//! use cases that fill them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::audit::Audit;
use super::events::{self, Event};
use super::lifecycle::{self, Change};
use super::{PageRequest, Services, page_type, utc};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{
    AccessMode, AppCredentialId, AuditAction, CheckStepName, EmailAddress, Invalid, MailboxId,
    MailboxStatus, OrgId, Transport,
};
use crate::error::{Error, Result, Validator};
use crate::store::mailboxes::{self as store, MailboxRow, SettingsChange, StatusFilter};
use crate::store::{AnyConnection, StoreError, app_credentials, now};

/// A mailbox connected (or to be connected) through an app credential.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Mailbox {
    #[schema(value_type = Uuid)]
    pub id: MailboxId,
    /// The mailbox address, in lower case.
    pub email: String,
    #[schema(value_type = Uuid)]
    pub app_credential_id: AppCredentialId,
    pub access_mode: AccessMode,
    /// A shared mailbox: a delegate signs in and accesses it.
    pub shared: bool,
    /// How its mail is reached, and what its check runs: `imap_smtp` or
    /// `graph` (Microsoft Graph; its app credential needs `graph: true` for
    /// a delegated mailbox).
    pub transport: Transport,
    pub status: MailboxStatus,
    /// Why the mailbox is in its status, and what to do; null when all is well.
    pub status_detail: Option<StatusDetail>,
    /// Days the current authorization stays valid without a new sign-in; null until authorized.
    pub validity_days: Option<i64>,
    /// The account that signed in (the delegate for a shared mailbox); null until authorized.
    pub authorized_as: Option<String>,
    pub last_refresh_at: Option<DateTime<Utc>>,
    /// The result of the last connection check; null until checked.
    pub last_check: Option<CheckReport>,
    /// The last transient failure (Microsoft busy or unreachable) since the last
    /// successful refresh; the status is left as it was. Null when there is none.
    pub last_error: Option<LastError>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A transient failure: its code, what happened, and when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LastError {
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// A machine code, a message and what to do about it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct StatusDetail {
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
}

impl StatusDetail {
    /// A stored code and message, with the catalogue's hint when none is stored.
    pub fn stored(code: Code, message: Option<String>, hint: Option<String>) -> Self {
        Self {
            code: code.into(),
            message: message.unwrap_or_default(),
            hint: hint.or_else(|| code.hint().map(str::to_owned)),
        }
    }
}

/// A connection check: token, IMAP and SMTP, step by step.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckReport {
    pub ok: bool,
    pub checked_at: DateTime<Utc>,
    pub steps: Vec<CheckStep>,
}

/// One step of a connection check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckStep {
    #[schema(value_type = String)]
    pub name: CheckStepName,
    pub status: CheckStepStatus,
    pub duration_ms: u64,
    /// The server's answer, sanitized.
    pub response: Option<String>,
    pub code: Option<String>,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CheckStepStatus {
    Ok,
    Failed,
    Skipped,
}

/// A new mailbox.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxCreate {
    pub email: String,
    #[schema(value_type = Uuid)]
    pub app_credential_id: AppCredentialId,
    /// `delegated` (the default) or `app_only`.
    #[serde(default)]
    pub access_mode: AccessMode,
    /// A shared mailbox (default false).
    #[serde(default)]
    pub shared: bool,
    /// `imap_smtp` (the default) or `graph`.
    #[serde(default)]
    pub transport: Transport,
}

/// Changes to a mailbox; absent fields stay as they are. Changing the address,
/// the app credential, the access mode or `shared` resets the authorization
/// (`inactive`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxUpdate {
    pub email: Option<String>,
    #[schema(value_type = Option<Uuid>)]
    pub app_credential_id: Option<AppCredentialId>,
    pub access_mode: Option<AccessMode>,
    pub shared: Option<bool>,
    /// Another transport keeps the authorization: both use the same grant.
    pub transport: Option<Transport>,
}

/// Filter of the mailbox list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MailboxFilter {
    /// Only mailboxes in this status.
    pub status: Option<MailboxStatus>,
}

page_type!(
    /// One page of mailboxes.
    MailboxPage of Mailbox
);

/// The secret expiry dates of app credentials, for the validity of app-only mailboxes.
type Expiry = HashMap<AppCredentialId, NaiveDate>;

impl Services {
    pub async fn mailbox_create(&self, who: &Principal, input: MailboxCreate) -> Result<Mailbox> {
        let org = who.require(Permission::MailboxesWrite)?.clone();
        let mut v = Validator::default();
        let email = v.check("email", EmailAddress::parse(&input.email));
        v.finish()?;
        let email = email.expect("validated");
        let at = now();
        let row = MailboxRow {
            id: MailboxId::new(),
            org: org.clone(),
            email: email.as_str().to_owned(),
            app_credential_id: input.app_credential_id,
            access_mode: input.access_mode,
            shared: input.shared,
            transport: input.transport,
            status: MailboxStatus::Inactive,
            status_code: Some(Code::NotAuthorized),
            status_message: Some("The mailbox has not been authorized yet.".into()),
            status_hint: Some(sign_in_hint(input.access_mode).into()),
            authorized_as: None,
            refresh_token_issued_at: None,
            last_refresh_at: None,
            last_check: None,
            identity_oid: None,
            identity_tid: None,
            last_error_code: None,
            last_error_message: None,
            last_error_at: None,
            version: 0,
            created_at: at,
            updated_at: at,
        };
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                ensure_app_credential(c, &org, row.app_credential_id)?;
                store::insert(c, &row).map_err(|e| refusal(e, &row.email))?;
                Audit::mailbox(&org, actor, AuditAction::MailboxCreated, row.id).record(c)?;
                let created = Event::MailboxCreated {
                    id: row.id,
                    email: row.email.clone(),
                    access_mode: row.access_mode,
                    status: row.status,
                };
                events::record(c, &org, &created)?;
                with_expiry(c, &org, row)
            })
            .await?;
        tracing::info!(mailbox_id = %row.0.id, "mailbox created");
        self.mailbox_view(row.0, &row.1)
    }

    pub async fn mailbox_get(&self, who: &Principal, id: MailboxId) -> Result<Mailbox> {
        let org = who.require(Permission::MailboxesRead)?;
        self.mailbox(org, id).await
    }

    /// The mailbox's view (for use cases that authorized already).
    pub(crate) async fn mailbox(&self, org: &OrgId, id: MailboxId) -> Result<Mailbox> {
        let org = org.clone();
        let row = self
            .store
            .run(move |c| {
                let row = store::get(c, &org, id)?;
                with_expiry(c, &org, row)
            })
            .await?;
        self.mailbox_view(row.0, &row.1)
    }

    pub async fn mailbox_list(
        &self,
        who: &Principal,
        filter: MailboxFilter,
        page: PageRequest,
    ) -> Result<MailboxPage> {
        let org = who.require(Permission::MailboxesRead)?.clone();
        let (limit, after) = page.resolve()?;
        let expiring_before = Utc::now().naive_utc()
            - chrono::Duration::days(
                self.tokens.refresh_token_lifetime_days - self.tokens.expiring_days,
            );
        let status = filter.status.map(|s| match s {
            MailboxStatus::Active => StatusFilter::Active { expiring_before },
            MailboxStatus::Expiring => StatusFilter::Expiring { expiring_before },
            other => StatusFilter::Stored(other),
        });
        let (rows, expiry) = self
            .store
            .run(move |c| {
                let rows = store::list(c, &org, status, after, limit)?;
                let mut ids: Vec<AppCredentialId> = rows
                    .iter()
                    .filter(|r| r.access_mode == AccessMode::AppOnly)
                    .map(|r| r.app_credential_id)
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let expiry = if ids.is_empty() {
                    HashMap::new()
                } else {
                    store::secret_expiry(c, &org, &ids)?
                };
                Ok::<_, Error>((rows, expiry))
            })
            .await?;
        let items = rows
            .into_iter()
            .map(|r| self.mailbox_view(r, &expiry))
            .collect::<Result<Vec<_>>>()?;
        Ok(MailboxPage::new(items, limit))
    }

    pub async fn mailbox_update(
        &self,
        who: &Principal,
        id: MailboxId,
        input: MailboxUpdate,
    ) -> Result<Mailbox> {
        let org = who.require(Permission::MailboxesWrite)?.clone();
        let mut v = Validator::default();
        let email = v
            .check(
                "email",
                input.email.as_deref().map(EmailAddress::parse).transpose(),
            )
            .flatten();
        v.finish()?;
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                let current = store::get(c, &org, id)?;
                if let Some(app) = input.app_credential_id {
                    ensure_app_credential(c, &org, app)?;
                }
                let changes = SettingsChange {
                    email: email
                        .map(|e| e.as_str().to_owned())
                        .filter(|e| *e != current.email),
                    app_credential_id: input
                        .app_credential_id
                        .filter(|a| *a != current.app_credential_id),
                    access_mode: input.access_mode.filter(|m| *m != current.access_mode),
                    shared: input.shared.filter(|s| *s != current.shared),
                    transport: input.transport.filter(|t| *t != current.transport),
                    updated_at: Some(now()),
                };
                // The authorization belongs to the settings it was made for:
                // another address, app, mode, or shared flag needs a new sign-in
                // (the identity pin depends on `shared`).
                let reset = changes.email.is_some()
                    || changes.app_credential_id.is_some()
                    || changes.access_mode.is_some()
                    || changes.shared.is_some();
                let email = changes.email.clone().unwrap_or_default();
                store::update_settings(c, &org, id, &changes).map_err(|e| refusal(e, &email))?;
                if reset {
                    let mode = changes.access_mode.unwrap_or(current.access_mode);
                    lifecycle::transition(c, &org, id, Change::GrantEnded { mode }, None)?;
                }
                Audit::mailbox(&org, actor, AuditAction::MailboxUpdated, id).record(c)?;
                let row = store::get(c, &org, id)?;
                with_expiry(c, &org, row)
            })
            .await?;
        tracing::info!(mailbox_id = %row.0.id, "mailbox updated");
        self.mailbox_view(row.0, &row.1)
    }

    pub async fn mailbox_delete(&self, who: &Principal, id: MailboxId) -> Result<()> {
        let org = who.require(Permission::MailboxesDelete)?.clone();
        let actor = who.actor();
        self.store
            .write(move |c| {
                let email = store::get(c, &org, id)?.email;
                store::delete(c, &org, id)?;
                Audit::mailbox(&org, actor, AuditAction::MailboxDeleted, id).record(c)?;
                events::record(c, &org, &Event::MailboxDeleted { id, email })?;
                Ok::<_, Error>(())
            })
            .await?;
        tracing::info!(mailbox_id = %id, "mailbox deleted");
        Ok(())
    }

    fn mailbox_view(&self, row: MailboxRow, secret_expiry: &Expiry) -> Result<Mailbox> {
        let mut status = row.status;
        let validity_days = match row.access_mode {
            AccessMode::Delegated => row.refresh_token_issued_at.map(|issued| {
                let age = Utc::now().naive_utc() - issued;
                (self.tokens.refresh_token_lifetime_days - age.num_days()).max(0)
            }),
            // App-only access lasts as long as the client secret, when its expiry is known.
            AccessMode::AppOnly if status != MailboxStatus::Inactive => secret_expiry
                .get(&row.app_credential_id)
                .map(|d| (*d - Utc::now().date_naive()).num_days().max(0)),
            AccessMode::AppOnly => None,
        };
        if status == MailboxStatus::Active
            && row.access_mode == AccessMode::Delegated
            && validity_days.is_some_and(|d| d <= self.tokens.expiring_days)
        {
            status = MailboxStatus::Expiring;
        }
        let last_check = match row.last_check.as_deref() {
            None => None,
            Some(json) => Some(serde_json::from_str(json).map_err(|e| {
                Error::Internal(anyhow::anyhow!(
                    "mailbox {}: stored last check is invalid: {e}",
                    row.id
                ))
            })?),
        };
        Ok(Mailbox {
            id: row.id,
            email: row.email,
            app_credential_id: row.app_credential_id,
            access_mode: row.access_mode,
            shared: row.shared,
            transport: row.transport,
            status,
            status_detail: row.status_code.map(|code| StatusDetail {
                code: code.into(),
                message: row.status_message.unwrap_or_default(),
                hint: row.status_hint,
            }),
            validity_days,
            authorized_as: row.authorized_as,
            last_refresh_at: row.last_refresh_at.map(utc),
            last_check,
            last_error: match (
                row.last_error_code,
                row.last_error_message,
                row.last_error_at,
            ) {
                (Some(code), message, Some(at)) => Some(LastError {
                    code: code.into(),
                    message: message.unwrap_or_default(),
                    at: utc(at),
                }),
                _ => None,
            },
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        })
    }
}

/// A row with the secret expiry of its app credential (the validity of
/// app-only access; a delegated mailbox's validity is its refresh token's, so
/// it needs no second query).
fn with_expiry(
    c: &mut AnyConnection,
    org: &OrgId,
    row: MailboxRow,
) -> Result<(MailboxRow, Expiry)> {
    if row.access_mode != AccessMode::AppOnly {
        return Ok((row, HashMap::new()));
    }
    let expiry = store::secret_expiry(c, org, &[row.app_credential_id])?;
    Ok((row, expiry))
}

/// What to do to authorize a mailbox of this access mode.
pub(crate) fn sign_in_hint(mode: AccessMode) -> &'static str {
    match mode {
        AccessMode::Delegated => "Use Refresh and sign in with the mailbox account once.",
        AccessMode::AppOnly => "Use Refresh to obtain an app-only token.",
    }
}

fn unknown_app_credential() -> Error {
    Error::invalid_field(
        "app_credential_id",
        Invalid::new(Code::UnknownAppCredential, "no app credential with this id"),
    )
}

fn ensure_app_credential(c: &mut AnyConnection, org: &OrgId, id: AppCredentialId) -> Result<()> {
    match app_credentials::get(c, org, id) {
        Err(StoreError::NotFound(_)) => Err(unknown_app_credential()),
        other => other.map(drop).map_err(Error::from),
    }
}

/// What a constraint's refusal of a mailbox write means.
fn refusal(e: StoreError, email: &str) -> Error {
    match e {
        StoreError::Unique => Error::Refused {
            code: Code::MailboxExists,
            detail: format!("a mailbox with the address {email} already exists"),
            mailboxes: vec![email.to_owned()],
        },
        StoreError::ForeignKey => unknown_app_credential(),
        other => other.into(),
    }
}
