//! Mailbox rows: their settings, and their state (status, status detail,
//! tokens, token version), which only [`write_state`] changes - and only
//! the service's transition function calls it
//! (`crate::service::lifecycle`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{app_credentials, mailboxes};
use super::{AnyConnection, StoreResult, found, touched};
use crate::codes::Code;
use crate::domain::{AccessMode, AppCredentialId, MailboxId, MailboxStatus, OrgId, Transport};

const WHAT: &str = "mailbox";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mailboxes)]
pub struct MailboxRow {
    pub id: MailboxId,
    pub org: OrgId,
    /// As stored: text an older version accepted may not parse any more
    /// (`crate::store::addresses`), so it is read as text.
    pub email: String,
    pub app_credential_id: AppCredentialId,
    pub access_mode: AccessMode,
    pub shared: bool,
    pub status: MailboxStatus,
    pub status_code: Option<Code>,
    pub status_message: Option<String>,
    pub status_hint: Option<String>,
    pub authorized_as: Option<String>,
    pub refresh_token_issued_at: Option<NaiveDateTime>,
    pub last_refresh_at: Option<NaiveDateTime>,
    pub last_check: Option<String>,
    /// The Entra ID object id and tenant id the mailbox was connected with.
    pub identity_oid: Option<String>,
    pub identity_tid: Option<String>,
    pub transport: Transport,
    #[diesel(skip_insertion)]
    pub last_error_code: Option<Code>,
    #[diesel(skip_insertion)]
    pub last_error_message: Option<String>,
    #[diesel(skip_insertion)]
    pub last_error_at: Option<NaiveDateTime>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Settings an update may change; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = mailboxes)]
pub struct SettingsChange {
    pub email: Option<String>,
    pub app_credential_id: Option<AppCredentialId>,
    pub access_mode: Option<AccessMode>,
    pub shared: Option<bool>,
    pub transport: Option<Transport>,
    pub updated_at: Option<NaiveDateTime>,
}

/// A mailbox's new state, written in one statement; `None` leaves a column
/// as it is, `Some(None)` clears it.
#[derive(Debug, Default, Clone, PartialEq, AsChangeset)]
#[diesel(table_name = mailboxes)]
pub struct StateWrite {
    pub status: Option<MailboxStatus>,
    pub status_code: Option<Option<Code>>,
    pub status_message: Option<Option<String>>,
    pub status_hint: Option<Option<String>>,
    pub authorized_as: Option<Option<String>>,
    pub identity_oid: Option<Option<String>>,
    pub identity_tid: Option<Option<String>>,
    pub access_token: Option<Option<String>>,
    pub access_token_expires_at: Option<Option<NaiveDateTime>>,
    pub graph_access_token: Option<Option<String>>,
    pub graph_access_token_expires_at: Option<Option<NaiveDateTime>>,
    pub refresh_token: Option<Option<String>>,
    pub refresh_token_issued_at: Option<Option<NaiveDateTime>>,
    pub last_refresh_at: Option<Option<NaiveDateTime>>,
    pub refresh_lease_until: Option<Option<NaiveDateTime>>,
    pub last_error_code: Option<Option<Code>>,
    pub last_error_message: Option<Option<String>>,
    pub last_error_at: Option<Option<NaiveDateTime>>,
    pub updated_at: Option<NaiveDateTime>,
}

/// The organisation's mailbox with this id: where every query of one
/// mailbox starts (here and in [`super::tokens`]).
#[diesel::dsl::auto_type]
pub(super) fn by_id<'a>(org: &'a OrgId, id: MailboxId) -> _ {
    mailboxes::table
        .filter(mailboxes::org.eq(org))
        .filter(mailboxes::id.eq(id))
}

/// Inserts a mailbox; `Unique` when the organisation has the address,
/// `ForeignKey` when the app credential is not the organisation's.
pub fn insert(conn: &mut AnyConnection, row: &MailboxRow) -> StoreResult<()> {
    diesel::insert_into(mailboxes::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, org: &OrgId, id: MailboxId) -> StoreResult<MailboxRow> {
    found(
        by_id(org, id)
            .select(MailboxRow::as_select())
            .first(conn)
            .optional(),
        WHAT,
    )
}

/// Which mailboxes a list shows. `active` and `expiring` are both stored as
/// `active`; a delegated mailbox whose refresh token was issued at or before
/// `expiring_before` is shown as `expiring`.
pub enum StatusFilter {
    Stored(MailboxStatus),
    Active { expiring_before: NaiveDateTime },
    Expiring { expiring_before: NaiveDateTime },
}

/// One page in id (= creation) order, starting after `after`, optionally of one status.
pub fn list(
    conn: &mut AnyConnection,
    org: &OrgId,
    status: Option<StatusFilter>,
    after: Option<MailboxId>,
    limit: i64,
) -> StoreResult<Vec<MailboxRow>> {
    let rows = mailboxes::table
        .filter(mailboxes::org.eq(org))
        .select(MailboxRow::as_select());
    let mut query = id_page!(rows, mailboxes::id, after after, limit);
    match status {
        None => {}
        Some(StatusFilter::Stored(status)) => query = query.filter(mailboxes::status.eq(status)),
        Some(StatusFilter::Active { expiring_before }) => {
            query = query
                .filter(mailboxes::status.eq(MailboxStatus::Active))
                .filter(
                    mailboxes::access_mode
                        .ne(AccessMode::Delegated)
                        .or(mailboxes::refresh_token_issued_at.is_null())
                        .or(mailboxes::refresh_token_issued_at.gt(expiring_before)),
                )
        }
        Some(StatusFilter::Expiring { expiring_before }) => {
            query = query
                .filter(mailboxes::status.eq(MailboxStatus::Active))
                .filter(mailboxes::access_mode.eq(AccessMode::Delegated))
                .filter(mailboxes::refresh_token_issued_at.le(expiring_before))
        }
    }
    Ok(query.load(conn)?)
}

/// The addresses of the organisation's mailboxes that use an app credential
/// (of one access mode, if given), in address order.
pub fn emails_using(
    conn: &mut AnyConnection,
    org: &OrgId,
    app_credential_id: AppCredentialId,
    mode: Option<AccessMode>,
) -> StoreResult<Vec<String>> {
    let mut query = mailboxes::table
        .filter(mailboxes::org.eq(org))
        .filter(mailboxes::app_credential_id.eq(app_credential_id))
        .select(mailboxes::email)
        .order(mailboxes::email.asc())
        .into_boxed();
    if let Some(mode) = mode {
        query = query.filter(mailboxes::access_mode.eq(mode));
    }
    Ok(query.load(conn)?)
}

/// The ids of the organisation's mailboxes that use an app credential.
pub fn ids_using(
    conn: &mut AnyConnection,
    org: &OrgId,
    app_credential_id: AppCredentialId,
) -> StoreResult<Vec<MailboxId>> {
    Ok(mailboxes::table
        .filter(mailboxes::org.eq(org))
        .filter(mailboxes::app_credential_id.eq(app_credential_id))
        .select(mailboxes::id)
        .order(mailboxes::id.asc())
        .load(conn)?)
}

/// The secret expiry dates of the organisation's app credentials with these ids.
pub fn secret_expiry(
    conn: &mut AnyConnection,
    org: &OrgId,
    ids: &[AppCredentialId],
) -> StoreResult<std::collections::HashMap<AppCredentialId, chrono::NaiveDate>> {
    let rows: Vec<(AppCredentialId, Option<chrono::NaiveDate>)> = app_credentials::table
        .filter(app_credentials::org.eq(org))
        .filter(app_credentials::id.eq_any(ids))
        .select((app_credentials::id, app_credentials::secret_expires_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, d)| d.map(|d| (id, d)))
        .collect())
}

/// Applies settings changes and bumps the row version.
pub fn update_settings(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: MailboxId,
    changes: &SettingsChange,
) -> StoreResult<()> {
    let rows = diesel::update(by_id(org, id))
        .set((changes, mailboxes::version.eq(mailboxes::version + 1)))
        .execute(conn);
    touched(rows, WHAT)
}

/// Writes a new state, if the tokens are still at `token_version` (when it is
/// given); `bump` moves the token version on (a token write, or the end of a
/// grant). Returns whether the row was written.
pub fn write_state(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: MailboxId,
    token_version: Option<i64>,
    bump: bool,
    state: &StateWrite,
) -> StoreResult<bool> {
    let mut target = diesel::update(by_id(org, id)).into_boxed();
    if let Some(v) = token_version {
        target = target.filter(mailboxes::token_version.eq(v));
    }
    let bump_by = i64::from(bump);
    let n = target
        .set((
            state,
            mailboxes::version.eq(mailboxes::version + 1),
            mailboxes::token_version.eq(mailboxes::token_version + bump_by),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Stores the report of a connection check.
pub fn record_check(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: MailboxId,
    report: &str,
    at: NaiveDateTime,
) -> StoreResult<()> {
    diesel::update(by_id(org, id))
        .set((
            mailboxes::last_check.eq(Some(report)),
            mailboxes::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut AnyConnection, org: &OrgId, id: MailboxId) -> StoreResult<()> {
    touched(diesel::delete(by_id(org, id)).execute(conn), WHAT)
}
