//! Mailbox rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::mailboxes;
use super::{AnyConnection, db_error, is_unique_violation};
use crate::domain::OrgId;
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mailboxes)]
pub struct MailboxRow {
    pub id: String,
    pub org: String,
    pub email: String,
    pub app_credential_id: String,
    pub access_mode: String,
    pub shared: bool,
    pub status: String,
    pub status_code: Option<String>,
    pub status_message: Option<String>,
    pub status_hint: Option<String>,
    pub authorized_as: Option<String>,
    pub refresh_token_issued_at: Option<NaiveDateTime>,
    pub last_refresh_at: Option<NaiveDateTime>,
    pub last_check: Option<String>,
    /// The Entra ID object id and tenant id the mailbox was connected with.
    pub identity_oid: Option<String>,
    pub identity_tid: Option<String>,
    #[diesel(skip_insertion)]
    pub last_error_code: Option<String>,
    #[diesel(skip_insertion)]
    pub last_error_message: Option<String>,
    #[diesel(skip_insertion)]
    pub last_error_at: Option<NaiveDateTime>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Columns an update may change; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = mailboxes)]
pub struct MailboxChanges {
    pub email: Option<String>,
    pub app_credential_id: Option<String>,
    pub access_mode: Option<String>,
    pub shared: Option<bool>,
    pub status: Option<String>,
    pub status_code: Option<Option<String>>,
    pub status_message: Option<Option<String>>,
    pub status_hint: Option<Option<String>>,
    pub authorized_as: Option<Option<String>>,
    pub refresh_token_issued_at: Option<Option<NaiveDateTime>>,
    pub access_token: Option<Option<String>>,
    pub access_token_expires_at: Option<Option<NaiveDateTime>>,
    pub refresh_token: Option<Option<String>>,
    pub identity_oid: Option<Option<String>>,
    pub identity_tid: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

/// Why an insert or update was refused by a constraint.
#[derive(Debug)]
pub enum Refused {
    /// The address is already used by another mailbox of the organisation.
    EmailTaken,
    /// The app credential is not (or no longer) one of the organisation's.
    UnknownAppCredential,
}

fn refused(e: diesel::result::Error) -> Result<Refused, Error> {
    if is_unique_violation(&e) {
        Ok(Refused::EmailTaken)
    } else if super::is_foreign_key_violation(&e) {
        Ok(Refused::UnknownAppCredential)
    } else {
        Err(db_error(e))
    }
}

pub fn insert(conn: &mut AnyConnection, row: &MailboxRow) -> Result<Result<(), Refused>, Error> {
    match diesel::insert_into(mailboxes::table)
        .values(row)
        .execute(conn)
    {
        Ok(_) => Ok(Ok(())),
        Err(e) => refused(e).map(Err),
    }
}

pub fn get(conn: &mut AnyConnection, org: &OrgId, id: &str) -> Result<MailboxRow, Error> {
    mailboxes::table
        .filter(mailboxes::org.eq(org.as_str()))
        .filter(mailboxes::id.eq(id))
        .select(MailboxRow::as_select())
        .first(conn)
        .optional()
        .map_err(db_error)?
        .ok_or(Error::not_found("mailbox"))
}

/// One page in id (= creation) order, starting after `after`, optionally of one status.
pub fn list(
    conn: &mut AnyConnection,
    org: &OrgId,
    status: Option<StatusFilter>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<MailboxRow>, Error> {
    let mut query = mailboxes::table
        .filter(mailboxes::org.eq(org.as_str()))
        .select(MailboxRow::as_select())
        .order(mailboxes::id.asc())
        .limit(limit)
        .into_boxed();
    match status {
        None => {}
        Some(StatusFilter::Stored(status)) => query = query.filter(mailboxes::status.eq(status)),
        Some(StatusFilter::Active { expiring_before }) => {
            query = query.filter(mailboxes::status.eq("active")).filter(
                mailboxes::access_mode
                    .ne("delegated")
                    .or(mailboxes::refresh_token_issued_at.is_null())
                    .or(mailboxes::refresh_token_issued_at.gt(expiring_before)),
            )
        }
        Some(StatusFilter::Expiring { expiring_before }) => {
            query = query
                .filter(mailboxes::status.eq("active"))
                .filter(mailboxes::access_mode.eq("delegated"))
                .filter(mailboxes::refresh_token_issued_at.le(expiring_before))
        }
    }
    if let Some(after) = after {
        query = query.filter(mailboxes::id.gt(after.to_owned()));
    }
    query.load(conn).map_err(db_error)
}

/// Which mailboxes a list shows. `active` and `expiring` are both stored as
/// `active`; a delegated mailbox whose refresh token was issued at or before
/// `expiring_before` is shown as `expiring`.
pub enum StatusFilter {
    Stored(&'static str),
    Active { expiring_before: NaiveDateTime },
    Expiring { expiring_before: NaiveDateTime },
}

/// The secret expiry dates of the organisation's app credentials with these ids.
pub fn secret_expiry(
    conn: &mut AnyConnection,
    org: &OrgId,
    ids: &[String],
) -> Result<std::collections::HashMap<String, chrono::NaiveDate>, Error> {
    use super::schema::app_credentials;
    let rows: Vec<(String, Option<chrono::NaiveDate>)> = app_credentials::table
        .filter(app_credentials::org.eq(org.as_str()))
        .filter(app_credentials::id.eq_any(ids))
        .select((app_credentials::id, app_credentials::secret_expires_at))
        .load(conn)
        .map_err(db_error)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, d)| d.map(|d| (id, d)))
        .collect())
}

/// Applies `changes` and bumps the row version.
pub fn update(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    changes: &MailboxChanges,
) -> Result<Result<(), Refused>, Error> {
    let target = mailboxes::table
        .filter(mailboxes::org.eq(org.as_str()))
        .filter(mailboxes::id.eq(id));
    match diesel::update(target)
        .set((changes, mailboxes::version.eq(mailboxes::version + 1)))
        .execute(conn)
    {
        Ok(0) => Err(Error::not_found("mailbox")),
        Ok(_) => Ok(Ok(())),
        Err(e) => refused(e).map(Err),
    }
}

pub fn delete(conn: &mut AnyConnection, org: &OrgId, id: &str) -> Result<(), Error> {
    let n = diesel::delete(
        mailboxes::table
            .filter(mailboxes::org.eq(org.as_str()))
            .filter(mailboxes::id.eq(id)),
    )
    .execute(conn)
    .map_err(db_error)?;
    if n == 0 {
        Err(Error::not_found("mailbox"))
    } else {
        Ok(())
    }
}
