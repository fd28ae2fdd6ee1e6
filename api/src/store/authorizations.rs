//! Pending sign-ins and admin-consent requests. The state is stored hashed;
//! consuming one deletes it, so it can be used once.
//!
//! [`consume`] is the one lookup not scoped by organisation: the public OAuth
//! callback knows only the state, and the row it finds names the organisation,
//! mailbox and app credential that the rest of the callback is bound to.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::authorizations;
use super::{AnyConnection, db_error};
use crate::domain::OrgId;
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = authorizations)]
pub struct AuthorizationRow {
    pub id: String,
    pub org: String,
    /// `sign_in` or `admin_consent`.
    pub kind: String,
    pub mailbox_id: Option<String>,
    pub app_credential_id: String,
    pub state_hash: String,
    /// Encrypted PKCE verifier.
    pub pkce_verifier: Option<String>,
    pub nonce: Option<String>,
    pub return_url: Option<String>,
    pub actor: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    /// Sign-ins: the mailbox's token version when the sign-in started; the
    /// callback writes its tokens only onto that version.
    pub token_version: Option<i64>,
}

pub fn insert(conn: &mut AnyConnection, row: &AuthorizationRow) -> Result<(), Error> {
    diesel::insert_into(authorizations::table)
        .values(row)
        .execute(conn)
        .map_err(db_error)?;
    Ok(())
}

/// Takes the authorization with this state hash: found and deleted in one go,
/// so of two concurrent callbacks with the same state only one gets it.
/// Expired ones are deleted too, and reported as `Err(Expired)`.
pub fn consume(
    conn: &mut AnyConnection,
    state_hash: &str,
    now: NaiveDateTime,
) -> Result<Consumed, Error> {
    let row = authorizations::table
        .filter(authorizations::state_hash.eq(state_hash))
        .select(AuthorizationRow::as_select())
        .first(conn)
        .optional()
        .map_err(db_error)?;
    let Some(row) = row else {
        return Ok(Consumed::Unknown);
    };
    let deleted = diesel::delete(authorizations::table.filter(authorizations::id.eq(&row.id)))
        .execute(conn)
        .map_err(db_error)?;
    Ok(match deleted {
        0 => Consumed::Unknown,
        _ if row.expires_at <= now => Consumed::Expired,
        _ => Consumed::Taken(Box::new(row)),
    })
}

pub enum Consumed {
    Taken(Box<AuthorizationRow>),
    Expired,
    Unknown,
}

/// Cancels the mailbox's pending sign-ins (its settings changed: a sign-in
/// started for the old settings must not complete).
pub fn delete_for_mailbox(
    conn: &mut AnyConnection,
    org: &OrgId,
    mailbox_id: &str,
) -> Result<usize, Error> {
    diesel::delete(
        authorizations::table
            .filter(authorizations::org.eq(org.as_str()))
            .filter(authorizations::mailbox_id.eq(mailbox_id)),
    )
    .execute(conn)
    .map_err(db_error)
}

/// Cancels the pending sign-ins and consent links of an app credential (its
/// client id, tenant or secret changed).
pub fn delete_for_app_credential(
    conn: &mut AnyConnection,
    org: &OrgId,
    app_credential_id: &str,
) -> Result<usize, Error> {
    diesel::delete(
        authorizations::table
            .filter(authorizations::org.eq(org.as_str()))
            .filter(authorizations::app_credential_id.eq(app_credential_id)),
    )
    .execute(conn)
    .map_err(db_error)
}

/// Removes authorizations (of every organisation) that expired before `now`.
pub fn purge_expired(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<usize, Error> {
    diesel::delete(authorizations::table.filter(authorizations::expires_at.lt(now)))
        .execute(conn)
        .map_err(db_error)
}
