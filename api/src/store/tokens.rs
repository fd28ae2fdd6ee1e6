//! A mailbox's tokens (ciphertext) and the guard that lets one caller at a
//! time refresh them, across threads and instances: a short lease taken with
//! a conditional update, and writes checked against the token version read,
//! so an older token never overwrites a newer one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::mailboxes;
use super::{AnyConnection, db_error};
use crate::domain::OrgId;
use crate::error::Error;

/// What the token keeper reads of a mailbox.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mailboxes)]
pub struct TokenRow {
    pub id: String,
    pub org: String,
    pub email: String,
    pub app_credential_id: String,
    pub access_mode: String,
    pub shared: bool,
    pub status: String,
    pub authorized_as: Option<String>,
    pub access_token: Option<String>,
    pub access_token_expires_at: Option<NaiveDateTime>,
    pub refresh_token: Option<String>,
    pub refresh_token_issued_at: Option<NaiveDateTime>,
    pub token_version: i64,
    pub refresh_lease_until: Option<NaiveDateTime>,
    /// The last transient failure of a refresh, if it is not resolved yet.
    pub last_error_message: Option<String>,
    pub last_error_at: Option<NaiveDateTime>,
}

impl TokenRow {
    /// The row as [`write_tokens`] leaves it after writing `w` over it.
    pub fn with_written(mut self, w: TokenWrite) -> Self {
        self.access_token = w.access_token.or(self.access_token);
        self.access_token_expires_at = w.access_token_expires_at.or(self.access_token_expires_at);
        if w.refresh_token.is_some() {
            self.refresh_token = w.refresh_token;
            self.refresh_token_issued_at = w.refresh_token_issued_at;
        }
        if let Some(status) = w.status {
            self.status = status;
        }
        self.token_version += 1;
        self.refresh_lease_until = None;
        self.last_error_message = None;
        self.last_error_at = None;
        self
    }
}

pub fn get(conn: &mut AnyConnection, org: &OrgId, id: &str) -> Result<TokenRow, Error> {
    mailboxes::table
        .filter(mailboxes::org.eq(org.as_str()))
        .filter(mailboxes::id.eq(id))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()
        .map_err(db_error)?
        .ok_or(Error::not_found("mailbox"))
}

/// Takes the refresh lease if nobody holds an unexpired one and the tokens are
/// still at `version`. Exactly one concurrent caller wins.
pub fn take_lease(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    version: i64,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<bool, Error> {
    let n = diesel::update(
        mailboxes::table
            .filter(mailboxes::org.eq(org.as_str()))
            .filter(mailboxes::id.eq(id))
            .filter(mailboxes::token_version.eq(version))
            .filter(
                mailboxes::refresh_lease_until
                    .is_null()
                    .or(mailboxes::refresh_lease_until.lt(now)),
            ),
    )
    .set(mailboxes::refresh_lease_until.eq(Some(until)))
    .execute(conn)
    .map_err(db_error)?;
    Ok(n == 1)
}

pub fn release_lease(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    version: i64,
) -> Result<(), Error> {
    diesel::update(
        mailboxes::table
            .filter(mailboxes::org.eq(org.as_str()))
            .filter(mailboxes::id.eq(id))
            .filter(mailboxes::token_version.eq(version)),
    )
    .set(mailboxes::refresh_lease_until.eq(None::<NaiveDateTime>))
    .execute(conn)
    .map_err(db_error)?;
    Ok(())
}

/// New tokens, written together.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = mailboxes, treat_none_as_null = false)]
pub struct TokenWrite {
    pub access_token: Option<String>,
    pub access_token_expires_at: Option<NaiveDateTime>,
    /// `None` keeps the stored refresh token (a response without one never erases it).
    pub refresh_token: Option<String>,
    pub refresh_token_issued_at: Option<NaiveDateTime>,
    pub last_refresh_at: Option<NaiveDateTime>,
    pub status: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

/// Writes `tokens` if the row is still at `version`; bumps the version, clears
/// the lease and the last error. Returns whether it was written.
pub fn write_tokens(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    version: i64,
    tokens: &TokenWrite,
) -> Result<bool, Error> {
    let n = diesel::update(
        mailboxes::table
            .filter(mailboxes::org.eq(org.as_str()))
            .filter(mailboxes::id.eq(id))
            .filter(mailboxes::token_version.eq(version)),
    )
    .set((
        tokens,
        mailboxes::token_version.eq(version + 1),
        mailboxes::refresh_lease_until.eq(None::<NaiveDateTime>),
        mailboxes::last_error_code.eq(None::<String>),
        mailboxes::last_error_message.eq(None::<String>),
        mailboxes::last_error_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map_err(db_error)?;
    Ok(n == 1)
}

/// Records a transient failure; the status stays as it is.
pub fn record_error(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    code: &str,
    message: &str,
    at: NaiveDateTime,
) -> Result<(), Error> {
    diesel::update(
        mailboxes::table
            .filter(mailboxes::org.eq(org.as_str()))
            .filter(mailboxes::id.eq(id)),
    )
    .set((
        mailboxes::last_error_code.eq(Some(code)),
        mailboxes::last_error_message.eq(Some(message)),
        mailboxes::last_error_at.eq(Some(at)),
    ))
    .execute(conn)
    .map_err(db_error)?;
    Ok(())
}

/// Ends the current grant when the mailbox's settings change: bumps the token
/// version, so a refresh already under way cannot write the old settings'
/// tokens back (its write is checked against the version it read), and drops
/// any lease.
pub fn invalidate(conn: &mut AnyConnection, org: &OrgId, id: &str) -> Result<(), Error> {
    diesel::update(
        mailboxes::table
            .filter(mailboxes::org.eq(org.as_str()))
            .filter(mailboxes::id.eq(id)),
    )
    .set((
        mailboxes::token_version.eq(mailboxes::token_version + 1),
        mailboxes::refresh_lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map_err(db_error)?;
    Ok(())
}

/// Delegated grants due for the keep-alive, in every organisation (this is
/// housekeeping, not a caller's query): `active` mailboxes whose refresh token
/// was issued before `issued_before` and whose refresh nobody holds, oldest
/// first, as `(org, id)`.
pub fn due_for_keepalive(
    conn: &mut AnyConnection,
    issued_before: NaiveDateTime,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<(String, String)>, Error> {
    mailboxes::table
        .filter(mailboxes::access_mode.eq("delegated"))
        .filter(mailboxes::status.eq("active"))
        .filter(mailboxes::refresh_token.is_not_null())
        .filter(mailboxes::refresh_token_issued_at.lt(issued_before))
        .filter(
            mailboxes::refresh_lease_until
                .is_null()
                .or(mailboxes::refresh_lease_until.lt(now)),
        )
        .order((
            mailboxes::refresh_token_issued_at.asc(),
            mailboxes::id.asc(),
        ))
        .limit(limit)
        .select((mailboxes::org, mailboxes::id))
        .load(conn)
        .map_err(db_error)
}
