//! Mailboxes: an address, the app credential it signs in with, how it is
//! accessed, and where its authorization stands.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{PageRequest, Services, next_cursor, page_type, utc};
use crate::auth::Principal;
use crate::domain::{AccessMode, EmailAddress, Invalid, MailboxStatus, OrgId};
use crate::error::{Error, Result, Validator};
use crate::store::mailboxes::{self as store, MailboxChanges, MailboxRow, Refused, StatusFilter};
use crate::store::{app_credentials, now};

/// A mailbox connected (or to be connected) through an app credential.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Mailbox {
    pub id: Uuid,
    /// The mailbox address, in lower case.
    pub email: String,
    pub app_credential_id: Uuid,
    pub access_mode: AccessMode,
    /// A shared mailbox: a delegate signs in and accesses it.
    pub shared: bool,
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
    pub name: String,
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
    pub app_credential_id: Uuid,
    /// `delegated` (the default) or `app_only`.
    #[serde(default)]
    pub access_mode: AccessMode,
    /// A shared mailbox (default false).
    #[serde(default)]
    pub shared: bool,
}

/// Changes to a mailbox; absent fields stay as they are. Changing the address,
/// the app credential, the access mode or `shared` resets the authorization
/// (`inactive`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxUpdate {
    pub email: Option<String>,
    pub app_credential_id: Option<Uuid>,
    pub access_mode: Option<AccessMode>,
    pub shared: Option<bool>,
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

impl Services {
    pub async fn mailbox_create(&self, who: &Principal, input: MailboxCreate) -> Result<Mailbox> {
        let org = &who.org;
        let mut v = Validator::default();
        let email = v.check("email", EmailAddress::parse(&input.email));
        v.finish()?;
        let email = email.expect("validated");
        let at = now();
        let row = MailboxRow {
            id: Uuid::now_v7().to_string(),
            org: org.as_str().to_owned(),
            email: email.as_str().to_owned(),
            app_credential_id: input.app_credential_id.to_string(),
            access_mode: input.access_mode.as_str().to_owned(),
            shared: input.shared,
            status: MailboxStatus::Inactive.as_str().to_owned(),
            status_code: Some("not_authorized".into()),
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
        let (org, actor) = (org.clone(), who.subject.clone());
        let row = self
            .store
            .run(move |c| {
                crate::store::write_transaction(c, |c| {
                    ensure_app_credential(c, &org, &row.app_credential_id)?;
                    store::insert(c, &row)?.map_err(|r| refusal(r, &row.email))?;
                    audit_change(c, &org, &actor, "mailbox.created", &row.id)?;
                    with_expiry(c, &org, row)
                })
            })
            .await?;
        tracing::info!(mailbox_id = %row.0.id, "mailbox created");
        self.mailbox_view(row.0, &row.1)
    }

    pub async fn mailbox_get(&self, org: &OrgId, id: Uuid) -> Result<Mailbox> {
        let org = org.clone();
        let row = self
            .store
            .run(move |c| {
                let row = store::get(c, &org, &id.to_string())?;
                with_expiry(c, &org, row)
            })
            .await?;
        self.mailbox_view(row.0, &row.1)
    }

    pub async fn mailbox_list(
        &self,
        org: &OrgId,
        filter: MailboxFilter,
        page: PageRequest,
    ) -> Result<MailboxPage> {
        let (limit, after) = page.resolve()?;
        let org = org.clone();
        let expiring_before = Utc::now().naive_utc()
            - chrono::Duration::days(
                self.tokens.refresh_token_lifetime_days - self.tokens.expiring_days,
            );
        let status = filter.status.map(|s| match s {
            MailboxStatus::Active => StatusFilter::Active { expiring_before },
            MailboxStatus::Expiring => StatusFilter::Expiring { expiring_before },
            other => StatusFilter::Stored(other.as_str()),
        });
        let (rows, expiry) = self
            .store
            .run(move |c| {
                let rows = store::list(c, &org, status, after.as_deref(), limit)?;
                let mut ids: Vec<String> = rows
                    .iter()
                    .filter(|r| r.access_mode == AccessMode::AppOnly.as_str())
                    .map(|r| r.app_credential_id.clone())
                    .collect();
                ids.sort_unstable();
                ids.dedup();
                let expiry = if ids.is_empty() {
                    HashMap::new()
                } else {
                    store::secret_expiry(c, &org, &ids)?
                };
                Ok((rows, expiry))
            })
            .await?;
        let items = rows
            .into_iter()
            .map(|r| self.mailbox_view(r, &expiry))
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = next_cursor(&items, limit, |m| m.id.to_string());
        Ok(MailboxPage { items, next_cursor })
    }

    pub async fn mailbox_update(
        &self,
        who: &Principal,
        id: Uuid,
        input: MailboxUpdate,
    ) -> Result<Mailbox> {
        let mut v = Validator::default();
        let email = v
            .check(
                "email",
                input.email.as_deref().map(EmailAddress::parse).transpose(),
            )
            .flatten();
        v.finish()?;
        let (org, actor) = (who.org.clone(), who.subject.clone());
        let id = id.to_string();
        let row = self
            .store
            .run(move |c| {
                crate::store::write_transaction(c, |c| {
                    let current = store::get(c, &org, &id)?;
                    if let Some(app) = input.app_credential_id {
                        ensure_app_credential(c, &org, &app.to_string())?;
                    }
                    let email = email
                        .map(|e| e.as_str().to_owned())
                        .filter(|e| *e != current.email);
                    let app = input
                        .app_credential_id
                        .map(|a| a.to_string())
                        .filter(|a| *a != current.app_credential_id);
                    let mode = input
                        .access_mode
                        .map(AccessMode::as_str)
                        .filter(|m| *m != current.access_mode);
                    let shared = input.shared.filter(|s| *s != current.shared);
                    // The authorization belongs to the settings it was made for:
                    // another address, app, mode, or shared flag needs a new sign-in
                    // (the identity pin depends on `shared`).
                    let reset =
                        email.is_some() || app.is_some() || mode.is_some() || shared.is_some();
                    let new_mode = input
                        .access_mode
                        .or_else(|| AccessMode::from_db(&current.access_mode))
                        .unwrap_or_default();
                    let mut changes = MailboxChanges {
                        email: email.clone(),
                        app_credential_id: app,
                        access_mode: mode.map(str::to_owned),
                        shared,
                        updated_at: Some(now()),
                        ..Default::default()
                    };
                    if reset {
                        changes.status = Some(MailboxStatus::Inactive.as_str().to_owned());
                        changes.status_code = Some(Some("not_authorized".into()));
                        changes.status_message = Some(Some(
                            "The mailbox settings changed; it must be authorized again.".into(),
                        ));
                        changes.status_hint = Some(Some(sign_in_hint(new_mode).into()));
                        changes.authorized_as = Some(None);
                        changes.refresh_token_issued_at = Some(None);
                        // The old tokens belonged to the old settings.
                        changes.access_token = Some(None);
                        changes.access_token_expires_at = Some(None);
                        changes.refresh_token = Some(None);
                        // The pinned identity was the old settings' account.
                        changes.identity_oid = Some(None);
                        changes.identity_tid = Some(None);
                    }
                    store::update(c, &org, &id, &changes)?
                        .map_err(|r| refusal(r, email.as_deref().unwrap_or_default()))?;
                    if reset {
                        // A refresh or a sign-in under way was for the old settings.
                        crate::store::tokens::invalidate(c, &org, &id)?;
                        crate::store::authorizations::delete_for_mailbox(c, &org, &id)?;
                    }
                    audit_change(c, &org, &actor, "mailbox.updated", &id)?;
                    let row = store::get(c, &org, &id)?;
                    with_expiry(c, &org, row)
                })
            })
            .await?;
        tracing::info!(mailbox_id = %row.0.id, "mailbox updated");
        self.mailbox_view(row.0, &row.1)
    }

    pub async fn mailbox_delete(&self, who: &Principal, id: Uuid) -> Result<()> {
        let (org, actor) = (who.org.clone(), who.subject.clone());
        self.store
            .run(move |c| {
                let id = id.to_string();
                crate::store::write_transaction(c, |c| {
                    store::delete(c, &org, &id)?;
                    audit_change(c, &org, &actor, "mailbox.deleted", &id)
                })
            })
            .await?;
        tracing::info!(mailbox_id = %id, "mailbox deleted");
        Ok(())
    }

    fn mailbox_view(
        &self,
        row: MailboxRow,
        secret_expiry: &HashMap<String, NaiveDate>,
    ) -> Result<Mailbox> {
        let corrupt = |what: &str| {
            Error::Internal(anyhow::anyhow!(
                "mailbox {}: stored {what} is invalid",
                row.id
            ))
        };
        let mut status = MailboxStatus::from_db(&row.status).ok_or_else(|| corrupt("status"))?;
        let access_mode =
            AccessMode::from_db(&row.access_mode).ok_or_else(|| corrupt("access mode"))?;
        let validity_days = match access_mode {
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
            && access_mode == AccessMode::Delegated
            && validity_days.is_some_and(|d| d <= self.tokens.expiring_days)
        {
            status = MailboxStatus::Expiring;
        }
        let last_check = match row.last_check.as_deref() {
            None => None,
            Some(json) => Some(serde_json::from_str(json).map_err(|_| corrupt("last check"))?),
        };
        Ok(Mailbox {
            id: Uuid::try_parse(&row.id).map_err(|_| corrupt("id"))?,
            email: row.email,
            app_credential_id: Uuid::try_parse(&row.app_credential_id)
                .map_err(|_| corrupt("app credential id"))?,
            access_mode,
            shared: row.shared,
            status,
            status_detail: row.status_code.map(|code| StatusDetail {
                code,
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
                    code,
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
    c: &mut crate::store::AnyConnection,
    org: &OrgId,
    row: MailboxRow,
) -> Result<(MailboxRow, HashMap<String, NaiveDate>)> {
    if row.access_mode != AccessMode::AppOnly.as_str() {
        return Ok((row, HashMap::new()));
    }
    let expiry = store::secret_expiry(c, org, std::slice::from_ref(&row.app_credential_id))?;
    Ok((row, expiry))
}

/// The audit row of a change made through the API, in the change's transaction.
fn audit_change(
    c: &mut crate::store::AnyConnection,
    org: &OrgId,
    actor: &str,
    action: &str,
    id: &str,
) -> Result<()> {
    super::audit::Audit {
        org,
        actor,
        action,
        target_type: "mailbox",
        target_id: Some(id),
        outcome: "ok",
        detail: None,
    }
    .record(c)
}

fn sign_in_hint(mode: AccessMode) -> &'static str {
    match mode {
        AccessMode::Delegated => "Use Refresh and sign in with the mailbox account once.",
        AccessMode::AppOnly => "Use Refresh to obtain an app-only token.",
    }
}

fn ensure_app_credential(c: &mut crate::store::AnyConnection, org: &OrgId, id: &str) -> Result<()> {
    match app_credentials::get(c, org, id) {
        Err(Error::NotFound { .. }) => Err(Error::invalid_field(
            "app_credential_id",
            Invalid::new("unknown_app_credential", "no app credential with this id"),
        )),
        other => other.map(|_| ()),
    }
}

fn refusal(refused: Refused, email: &str) -> Error {
    match refused {
        Refused::EmailTaken => email_taken(email),
        Refused::UnknownAppCredential => Error::invalid_field(
            "app_credential_id",
            Invalid::new("unknown_app_credential", "no app credential with this id"),
        ),
    }
}

fn email_taken(email: &str) -> Error {
    Error::Conflict {
        code: "mailbox_exists",
        detail: format!("a mailbox with the address {email} already exists"),
        mailboxes: vec![email.to_owned()],
    }
}
