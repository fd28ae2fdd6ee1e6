//! What the token keeper reads of a mailbox (the ciphertext of its tokens,
//! its state and token version), and the lease that lets one caller at a
//! time refresh them across instances: a short lease taken with a
//! conditional update. Token writes themselves are state writes
//! ([`super::mailboxes::write_state`]), checked against the token version
//! read, so an older token never overwrites a newer one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::mailboxes::by_id;
use super::schema::{app_credentials, mailboxes};
use super::{AnyConnection, StoreResult, found};
use crate::codes::Code;
use crate::domain::{AccessMode, AppCredentialId, Cloud, MailboxId, MailboxStatus, OrgId};

/// What the token keeper and the transition function read of a mailbox.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mailboxes)]
pub struct TokenRow {
    pub id: MailboxId,
    pub org: OrgId,
    pub email: String,
    pub app_credential_id: AppCredentialId,
    pub access_mode: AccessMode,
    pub shared: bool,
    pub status: MailboxStatus,
    pub status_code: Option<Code>,
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
    /// The cloud of its app credential: where its mail servers are.
    #[diesel(select_expression = app_credentials::cloud)]
    pub cloud: Cloud,
    /// Its Graph access token (sealed), beside the Exchange one.
    pub graph_access_token: Option<String>,
    pub graph_access_token_expires_at: Option<NaiveDateTime>,
    /// Whether its app credential's sign-ins ask for Graph's permissions.
    #[diesel(select_expression = app_credentials::graph)]
    pub graph: bool,
}

impl TokenRow {
    /// Whether the mailbox holds a grant: a refresh token (delegated) or an
    /// access token (app-only).
    pub fn has_grant(&self) -> bool {
        match self.access_mode {
            AccessMode::Delegated => self.refresh_token.is_some(),
            AccessMode::AppOnly => self.access_token.is_some(),
        }
    }
}

pub fn get(conn: &mut AnyConnection, org: &OrgId, id: MailboxId) -> StoreResult<TokenRow> {
    found(
        by_id(org, id)
            .inner_join(app_credentials::table)
            .select(TokenRow::as_select())
            .first(conn)
            .optional(),
        "mailbox",
    )
}

/// Takes the refresh lease if nobody holds an unexpired one and the tokens are
/// still at `version`. Exactly one concurrent caller wins.
pub fn take_lease(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: MailboxId,
    version: i64,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> StoreResult<bool> {
    let n = diesel::update(
        by_id(org, id)
            .filter(mailboxes::token_version.eq(version))
            .filter(
                mailboxes::refresh_lease_until
                    .is_null()
                    .or(mailboxes::refresh_lease_until.lt(now)),
            ),
    )
    .set(mailboxes::refresh_lease_until.eq(Some(until)))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn release_lease(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: MailboxId,
    version: i64,
) -> StoreResult<()> {
    diesel::update(by_id(org, id).filter(mailboxes::token_version.eq(version)))
        .set(mailboxes::refresh_lease_until.eq(None::<NaiveDateTime>))
        .execute(conn)?;
    Ok(())
}

/// Delegated grants due for the keep-alive, in every organisation (this is
/// housekeeping, not a caller's query): `active` mailboxes whose refresh token
/// was issued before `issued_before` and whose refresh nobody holds, oldest
/// first.
pub fn due_for_keepalive(
    conn: &mut AnyConnection,
    issued_before: NaiveDateTime,
    now: NaiveDateTime,
    limit: i64,
) -> StoreResult<Vec<(OrgId, MailboxId)>> {
    Ok(mailboxes::table
        .filter(mailboxes::access_mode.eq(AccessMode::Delegated))
        .filter(mailboxes::status.eq(MailboxStatus::Active))
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
        .load(conn)?)
}
