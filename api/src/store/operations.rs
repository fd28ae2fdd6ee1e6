//! Queries for operators, across every organisation: mailbox counts for the
//! metrics, and reading and re-writing the encrypted columns for `doctor` and
//! `rekey`. Nothing here is reachable with a caller's organisation; the
//! metrics only ever see counts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{app_credentials, authorizations, mailboxes, webhooks};
use super::{AnyConnection, StoreResult};
use crate::domain::{AccessMode, MailboxStatus};

/// Mailboxes by status as the API shows it: stored `active` delegated
/// mailboxes whose refresh token was issued at or before `expiring_before`
/// count as `expiring` (the same rule as the list filter).
pub fn count_mailboxes_by_status(
    conn: &mut AnyConnection,
    expiring_before: NaiveDateTime,
) -> StoreResult<Vec<(MailboxStatus, i64)>> {
    let mut counts: Vec<(MailboxStatus, i64)> = mailboxes::table
        .group_by(mailboxes::status)
        .select((mailboxes::status, diesel::dsl::count_star()))
        .load(conn)?;
    let expiring: i64 = mailboxes::table
        .filter(mailboxes::status.eq(MailboxStatus::Active))
        .filter(mailboxes::access_mode.eq(AccessMode::Delegated))
        .filter(mailboxes::refresh_token_issued_at.le(expiring_before))
        .count()
        .get_result(conn)?;
    if expiring > 0 {
        if let Some((_, active)) = counts.iter_mut().find(|(s, _)| *s == MailboxStatus::Active) {
            *active -= expiring;
        }
        counts.push((MailboxStatus::Expiring, expiring));
    }
    Ok(counts)
}

/// A column that holds ciphertext. Its table and column names are the
/// associated data of the values (with the row id), as the services encrypt them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretColumn {
    AppCredentialClientSecret,
    MailboxAccessToken,
    MailboxRefreshToken,
    MailboxGraphAccessToken,
    AuthorizationPkceVerifier,
    WebhookSecret,
    WebhookPreviousSecret,
}

impl SecretColumn {
    pub const ALL: [SecretColumn; 7] = [
        Self::AppCredentialClientSecret,
        Self::MailboxAccessToken,
        Self::MailboxRefreshToken,
        Self::MailboxGraphAccessToken,
        Self::AuthorizationPkceVerifier,
        Self::WebhookSecret,
        Self::WebhookPreviousSecret,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Self::AppCredentialClientSecret => "app_credentials",
            Self::MailboxAccessToken
            | Self::MailboxRefreshToken
            | Self::MailboxGraphAccessToken => "mailboxes",
            Self::AuthorizationPkceVerifier => "authorizations",
            Self::WebhookSecret | Self::WebhookPreviousSecret => "webhooks",
        }
    }

    pub fn column(self) -> &'static str {
        match self {
            Self::AppCredentialClientSecret => "client_secret",
            Self::MailboxAccessToken => "access_token",
            Self::MailboxRefreshToken => "refresh_token",
            Self::MailboxGraphAccessToken => "graph_access_token",
            Self::AuthorizationPkceVerifier => "pkce_verifier",
            Self::WebhookSecret => "secret",
            Self::WebhookPreviousSecret => "previous_secret",
        }
    }
}

/// Up to `limit` (row id, stored value) pairs of `column` with a value, in
/// row id order, after the row id `after`.
pub fn secret_page(
    conn: &mut AnyConnection,
    column: SecretColumn,
    after: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<(String, String)>> {
    let after = after.unwrap_or("");
    macro_rules! page {
        ($table:ident, $column:ident) => {
            $table::table
                .filter($table::id.gt(after))
                .filter($table::$column.is_not_null())
                .select(($table::id, $table::$column.assume_not_null()))
                .order($table::id.asc())
                .limit(limit)
                .load::<(String, String)>(conn)
        };
    }
    match column {
        SecretColumn::AppCredentialClientSecret => app_credentials::table
            .filter(app_credentials::id.gt(after))
            .select((app_credentials::id, app_credentials::client_secret))
            .order(app_credentials::id.asc())
            .limit(limit)
            .load::<(String, String)>(conn),
        SecretColumn::MailboxAccessToken => page!(mailboxes, access_token),
        SecretColumn::MailboxRefreshToken => page!(mailboxes, refresh_token),
        SecretColumn::MailboxGraphAccessToken => page!(mailboxes, graph_access_token),
        SecretColumn::AuthorizationPkceVerifier => page!(authorizations, pkce_verifier),
        SecretColumn::WebhookSecret => webhooks::table
            .filter(webhooks::id.gt(after))
            .select((webhooks::id, webhooks::secret))
            .order(webhooks::id.asc())
            .limit(limit)
            .load::<(String, String)>(conn),
        SecretColumn::WebhookPreviousSecret => page!(webhooks, previous_secret),
    }
    .map_err(Into::into)
}

/// Replaces the value of `column` in row `id` with `new` only if it still is
/// `old`: one statement, its own transaction, so a value a concurrent writer
/// stored meanwhile is never overwritten. Returns whether it was replaced.
pub fn replace_secret(
    conn: &mut AnyConnection,
    column: SecretColumn,
    id: &str,
    old: &str,
    new: &str,
) -> StoreResult<bool> {
    macro_rules! replace {
        ($table:ident, $column:ident) => {
            diesel::update(
                $table::table
                    .filter($table::id.eq(id))
                    .filter($table::$column.eq(old)),
            )
            .set($table::$column.eq(new))
            .execute(conn)
        };
    }
    let n = match column {
        SecretColumn::AppCredentialClientSecret => replace!(app_credentials, client_secret),
        SecretColumn::MailboxAccessToken => replace!(mailboxes, access_token),
        SecretColumn::MailboxRefreshToken => replace!(mailboxes, refresh_token),
        SecretColumn::MailboxGraphAccessToken => replace!(mailboxes, graph_access_token),
        SecretColumn::AuthorizationPkceVerifier => replace!(authorizations, pkce_verifier),
        SecretColumn::WebhookSecret => replace!(webhooks, secret),
        SecretColumn::WebhookPreviousSecret => replace!(webhooks, previous_secret),
    }?;
    Ok(n == 1)
}

/// The database's clock (PostgreSQL `now()`); `None` on SQLite, which has no
/// clock of its own (it is the process's).
pub fn database_now(conn: &mut AnyConnection) -> StoreResult<Option<NaiveDateTime>> {
    match conn {
        AnyConnection::Sqlite(_) => Ok(None),
        #[cfg(feature = "postgres")]
        AnyConnection::Postgresql(pg) => {
            #[derive(QueryableByName)]
            struct Now {
                #[diesel(sql_type = diesel::sql_types::Timestamp)]
                now: NaiveDateTime,
            }
            diesel::sql_query("SELECT (now() AT TIME ZONE 'UTC') AS now")
                .get_result::<Now>(pg)
                .map(|n| Some(n.now))
                .map_err(Into::into)
        }
    }
}
