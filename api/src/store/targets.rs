//! Where events go: webhook endpoints and e-mail alerts, each an
//! organisation's row. Deleting one deletes its deliveries and their attempts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{deliveries, delivery_attempts, email_alerts, webhooks};
use super::{AnyConnection, StoreResult, found, touched};
use crate::codes::Code;
use crate::domain::{EmailAlertId, Language, MailboxId, OrgId, WebhookId};

/// The functions every kind of target has, written once: `$table` has the
/// columns `id` and `org` (and `enabled`), `$row` is its whole row and
/// `$changes` what an update may change. Every function but `insert` is
/// scoped to one organisation; a row of another organisation is not found.
macro_rules! target_table {
    (
        table: $table:ident,
        row: $row:ty,
        id: $id:ty,
        changes: $changes:ty,
        what: $what:literal,
        fns: $insert:ident, $get:ident, $list:ident, $enabled:ident, $update:ident, $delete:ident $(,)?
    ) => {
        pub fn $insert(conn: &mut AnyConnection, row: &$row) -> StoreResult<()> {
            diesel::insert_into($table::table)
                .values(row)
                .execute(conn)?;
            Ok(())
        }

        pub fn $get(conn: &mut AnyConnection, org: &OrgId, id: $id) -> StoreResult<$row> {
            found(
                $table::table
                    .filter($table::org.eq(org))
                    .filter($table::id.eq(id))
                    .select(<$row>::as_select())
                    .first(conn)
                    .optional(),
                $what,
            )
        }

        /// One page in id order, after the cursor `after`.
        pub fn $list(
            conn: &mut AnyConnection,
            org: &OrgId,
            after: Option<$id>,
            limit: i64,
        ) -> StoreResult<Vec<$row>> {
            let rows = $table::table
                .filter($table::org.eq(org))
                .select(<$row>::as_select());
            Ok(id_page!(rows, $table::id, after after, limit).load(conn)?)
        }

        /// The organisation's enabled targets (for the fan-out of an event).
        pub fn $enabled(conn: &mut AnyConnection, org: &OrgId) -> StoreResult<Vec<$row>> {
            Ok($table::table
                .filter($table::org.eq(org))
                .filter($table::enabled.eq(true))
                .select(<$row>::as_select())
                .load(conn)?)
        }

        pub fn $update(
            conn: &mut AnyConnection,
            org: &OrgId,
            id: $id,
            changes: &$changes,
        ) -> StoreResult<()> {
            touched(
                diesel::update(
                    $table::table
                        .filter($table::org.eq(org))
                        .filter($table::id.eq(id)),
                )
                .set(changes)
                .execute(conn),
                $what,
            )
        }

        /// Deletes the target with its deliveries and their attempts.
        pub fn $delete(conn: &mut AnyConnection, org: &OrgId, id: $id) -> StoreResult<()> {
            let target = id.to_string();
            diesel::delete(
                delivery_attempts::table.filter(delivery_attempts::target_id.eq(&target)),
            )
            .execute(conn)?;
            diesel::delete(deliveries::table.filter(deliveries::target_id.eq(&target)))
                .execute(conn)?;
            touched(
                diesel::delete(
                    $table::table
                        .filter($table::org.eq(org))
                        .filter($table::id.eq(id)),
                )
                .execute(conn),
                $what,
            )
        }
    };
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
pub struct WebhookRow {
    pub id: WebhookId,
    pub org: OrgId,
    pub url: String,
    /// A JSON array of event types; `None`: every type.
    pub event_types: Option<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Sealed.
    pub secret: String,
    /// Sealed; signs too until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<NaiveDateTime>,
    pub failing_since: Option<NaiveDateTime>,
    pub disabled_reason: Option<Code>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Columns a webhook update may change; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = webhooks)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub event_types: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub secret: Option<String>,
    pub previous_secret: Option<Option<String>>,
    pub previous_secret_until: Option<Option<NaiveDateTime>>,
    pub failing_since: Option<Option<NaiveDateTime>>,
    pub disabled_reason: Option<Option<Code>>,
    pub updated_at: Option<NaiveDateTime>,
}

target_table! {
    table: webhooks,
    row: WebhookRow,
    id: WebhookId,
    changes: WebhookChanges,
    what: "webhook",
    fns: insert_webhook, get_webhook, list_webhooks, enabled_webhooks, update_webhook, delete_webhook,
}

/// How many webhooks are disabled (the metrics; every organisation).
pub fn count_disabled_webhooks(conn: &mut AnyConnection) -> StoreResult<i64> {
    Ok(webhooks::table
        .filter(webhooks::enabled.eq(false))
        .count()
        .get_result(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_alerts)]
pub struct EmailAlertRow {
    pub id: EmailAlertId,
    pub org: OrgId,
    /// A JSON array of addresses.
    pub recipients: String,
    pub sender_mailbox_id: MailboxId,
    pub event_types: Option<String>,
    pub language: Language,
    pub enabled: bool,
    pub last_error_code: Option<Code>,
    pub last_error_message: Option<String>,
    pub last_error_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Columns an e-mail alert update may change.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = email_alerts)]
pub struct EmailAlertChanges {
    pub recipients: Option<String>,
    pub sender_mailbox_id: Option<MailboxId>,
    pub event_types: Option<Option<String>>,
    pub language: Option<Language>,
    pub enabled: Option<bool>,
    pub last_error_code: Option<Option<Code>>,
    pub last_error_message: Option<Option<String>>,
    pub last_error_at: Option<Option<NaiveDateTime>>,
    pub updated_at: Option<NaiveDateTime>,
}

target_table! {
    table: email_alerts,
    row: EmailAlertRow,
    id: EmailAlertId,
    changes: EmailAlertChanges,
    what: "e-mail alert",
    fns: insert_email_alert, get_email_alert, list_email_alerts, enabled_email_alerts, update_email_alert, delete_email_alert,
}
