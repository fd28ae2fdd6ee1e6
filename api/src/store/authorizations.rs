//! Pending sign-ins and admin-consent requests. The state is stored hashed;
//! consuming one deletes it, so it can be used once.
//!
//! [`consume`] is the one lookup not scoped by organisation: the public OAuth
//! callback knows only the state, and the row it finds names the organisation,
//! mailbox and app credential that the rest of the callback is bound to.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::authorizations;
use super::{AnyConnection, StoreResult};
use crate::domain::{AppCredentialId, AuthorizationId, AuthorizationKind, MailboxId, OrgId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = authorizations)]
pub struct AuthorizationRow {
    pub id: AuthorizationId,
    pub org: OrgId,
    pub kind: AuthorizationKind,
    pub mailbox_id: Option<MailboxId>,
    pub app_credential_id: AppCredentialId,
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

pub fn insert(conn: &mut AnyConnection, row: &AuthorizationRow) -> StoreResult<()> {
    diesel::insert_into(authorizations::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Takes the authorization with this state hash: found and deleted in one go,
/// so of two concurrent callbacks with the same state only one gets it.
/// Expired ones are deleted too, and reported as `Expired`.
pub fn consume(
    conn: &mut AnyConnection,
    state_hash: &str,
    now: NaiveDateTime,
) -> StoreResult<Consumed> {
    let row = authorizations::table
        .filter(authorizations::state_hash.eq(state_hash))
        .select(AuthorizationRow::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else {
        return Ok(Consumed::Unknown);
    };
    let deleted = diesel::delete(authorizations::table.filter(authorizations::id.eq(row.id)))
        .execute(conn)?;
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
    mailbox_id: MailboxId,
) -> StoreResult<usize> {
    Ok(diesel::delete(
        authorizations::table
            .filter(authorizations::org.eq(org))
            .filter(authorizations::mailbox_id.eq(mailbox_id)),
    )
    .execute(conn)?)
}

/// Cancels the pending sign-ins and consent links of an app credential (its
/// client id, tenant or secret changed).
pub fn delete_for_app_credential(
    conn: &mut AnyConnection,
    org: &OrgId,
    app_credential_id: AppCredentialId,
) -> StoreResult<usize> {
    Ok(diesel::delete(
        authorizations::table
            .filter(authorizations::org.eq(org))
            .filter(authorizations::app_credential_id.eq(app_credential_id)),
    )
    .execute(conn)?)
}

/// Removes authorizations (of every organisation) that expired before `now`.
pub fn purge_expired(conn: &mut AnyConnection, now: NaiveDateTime) -> StoreResult<usize> {
    Ok(
        diesel::delete(authorizations::table.filter(authorizations::expires_at.lt(now)))
            .execute(conn)?,
    )
}
