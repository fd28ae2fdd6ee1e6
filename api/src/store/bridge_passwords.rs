//! Bridge passwords: rows of an organisation's mailbox, each an Argon2id
//! hash and the non-secret selector that finds it. The bridge's login looks
//! a password up by its selector alone ([`by_selector`]), before anyone
//! knows the organisation: the one exception to "every query takes the
//! caller's organisation" here, and it returns the row's own.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{app_credentials, bridge_logins, bridge_passwords, mailboxes};
use super::{AnyConnection, StoreResult, found, touched};
use crate::domain::{BridgePasswordId, Cloud, MailboxId, OrgId};

const WHAT: &str = "bridge password";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = bridge_passwords)]
pub struct BridgePasswordRow {
    pub id: BridgePasswordId,
    pub org: OrgId,
    pub mailbox_id: MailboxId,
    pub name: String,
    /// The password's first characters: finds the row, proves nothing.
    pub selector: String,
    /// The Argon2id PHC string of the whole password.
    pub hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    /// The peer address of the last login.
    pub last_used_from: Option<String>,
}

pub fn insert(conn: &mut AnyConnection, row: &BridgePasswordRow) -> StoreResult<()> {
    diesel::insert_into(bridge_passwords::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The mailbox's passwords that are not revoked, oldest first, after `after`.
pub fn list(
    conn: &mut AnyConnection,
    org: &OrgId,
    mailbox: MailboxId,
    after: Option<BridgePasswordId>,
    limit: i64,
) -> StoreResult<Vec<BridgePasswordRow>> {
    let rows = bridge_passwords::table
        .filter(bridge_passwords::org.eq(org))
        .filter(bridge_passwords::mailbox_id.eq(mailbox))
        .filter(bridge_passwords::revoked_at.is_null())
        .select(BridgePasswordRow::as_select());
    Ok(id_page!(rows, bridge_passwords::id, after after, limit).load(conn)?)
}

/// A password of the mailbox that is not revoked.
pub fn get(
    conn: &mut AnyConnection,
    org: &OrgId,
    mailbox: MailboxId,
    id: BridgePasswordId,
) -> StoreResult<BridgePasswordRow> {
    found(
        bridge_passwords::table
            .filter(bridge_passwords::org.eq(org))
            .filter(bridge_passwords::mailbox_id.eq(mailbox))
            .filter(bridge_passwords::id.eq(id))
            .filter(bridge_passwords::revoked_at.is_null())
            .select(BridgePasswordRow::as_select())
            .first(conn)
            .optional(),
        WHAT,
    )
}

/// Revokes a password of the mailbox that is not revoked yet.
pub fn revoke(
    conn: &mut AnyConnection,
    org: &OrgId,
    mailbox: MailboxId,
    id: BridgePasswordId,
    at: NaiveDateTime,
) -> StoreResult<BridgePasswordRow> {
    let row = get(conn, org, mailbox, id)?;
    touched(
        diesel::update(
            bridge_passwords::table
                .filter(bridge_passwords::id.eq(id))
                .filter(bridge_passwords::revoked_at.is_null()),
        )
        .set(bridge_passwords::revoked_at.eq(at))
        .execute(conn),
        WHAT,
    )?;
    Ok(row)
}

/// A password by its selector, with its mailbox's current address and the
/// cloud of the mailbox's app credential (the bridge's login; any
/// organisation, see the module documentation).
pub fn by_selector(
    conn: &mut AnyConnection,
    selector: &str,
) -> StoreResult<Option<(BridgePasswordRow, String, Cloud)>> {
    Ok(bridge_passwords::table
        .inner_join(mailboxes::table.inner_join(app_credentials::table))
        .filter(bridge_passwords::selector.eq(selector))
        .filter(mailboxes::org.eq(bridge_passwords::org))
        .select((
            BridgePasswordRow::as_select(),
            mailboxes::email,
            app_credentials::cloud,
        ))
        .first(conn)
        .optional()?)
}

/// Whether the password is neither revoked nor expired at `at` (`false`
/// for one that is gone with its mailbox).
pub fn usable(
    conn: &mut AnyConnection,
    id: BridgePasswordId,
    at: NaiveDateTime,
) -> StoreResult<bool> {
    let found: Option<(Option<NaiveDateTime>, Option<NaiveDateTime>)> = bridge_passwords::table
        .filter(bridge_passwords::id.eq(id))
        .select((bridge_passwords::revoked_at, bridge_passwords::expires_at))
        .first(conn)
        .optional()?;
    Ok(found.is_some_and(|(revoked, expires)| revoked.is_none() && expires.is_none_or(|e| e > at)))
}

/// Records a login with the password: when and from where.
pub fn record_use(
    conn: &mut AnyConnection,
    id: BridgePasswordId,
    at: NaiveDateTime,
    from: &str,
) -> StoreResult<()> {
    diesel::update(bridge_passwords::table.filter(bridge_passwords::id.eq(id)))
        .set((
            bridge_passwords::last_used_at.eq(at),
            bridge_passwords::last_used_from.eq(from),
        ))
        .execute(conn)?;
    Ok(())
}

/// What a login is to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginNews {
    /// The first login of the password from this address.
    NewAddress,
    /// The first login from this address on this UTC day.
    FirstToday,
    /// Audited already today.
    Known,
}

/// Notes a login of the password from `from` at `at`, and tells whether
/// the audit log must hear of it: once per address, then once per address
/// and UTC day.
pub fn note_login(
    conn: &mut AnyConnection,
    id: BridgePasswordId,
    from: &str,
    at: NaiveDateTime,
) -> StoreResult<LoginNews> {
    let midnight = at.date().and_hms_opt(0, 0, 0).unwrap_or(at);
    let here = bridge_logins::table
        .filter(bridge_logins::password_id.eq(id))
        .filter(bridge_logins::address.eq(from));
    let renewed = diesel::update(here.filter(bridge_logins::last_audited_at.lt(midnight)))
        .set(bridge_logins::last_audited_at.eq(at))
        .execute(conn)?;
    if renewed > 0 {
        return Ok(LoginNews::FirstToday);
    }
    let known: i64 = here.count().get_result(conn)?;
    if known > 0 {
        return Ok(LoginNews::Known);
    }
    diesel::insert_into(bridge_logins::table)
        .values((
            bridge_logins::password_id.eq(id),
            bridge_logins::address.eq(from),
            bridge_logins::first_at.eq(at),
            bridge_logins::last_audited_at.eq(at),
        ))
        .execute(conn)?;
    Ok(LoginNews::NewAddress)
}

/// How many mailboxes of any organisation have this address (whether the
/// address alone names one mailbox).
pub fn mailboxes_with_address(conn: &mut AnyConnection, email: &str) -> StoreResult<i64> {
    Ok(mailboxes::table
        .filter(mailboxes::email.eq(email))
        .count()
        .get_result(conn)?)
}
