//! Where events go: webhook endpoints and e-mail alerts, each an
//! organisation's row. Deleting one deletes its deliveries and their attempts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{deliveries, delivery_attempts, email_alerts, webhooks};
use super::{AnyConnection, StoreResult, found, touched};
use crate::codes::Code;
use crate::domain::{EmailAlertId, Language, MailboxId, OrgId, WebhookId};

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

pub fn insert_webhook(conn: &mut AnyConnection, row: &WebhookRow) -> StoreResult<()> {
    diesel::insert_into(webhooks::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get_webhook(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: WebhookId,
) -> StoreResult<WebhookRow> {
    found(
        webhooks::table
            .filter(webhooks::org.eq(org))
            .filter(webhooks::id.eq(id))
            .select(WebhookRow::as_select())
            .first(conn)
            .optional(),
        "webhook",
    )
}

pub fn list_webhooks(
    conn: &mut AnyConnection,
    org: &OrgId,
    after: Option<WebhookId>,
    limit: i64,
) -> StoreResult<Vec<WebhookRow>> {
    let mut query = webhooks::table
        .filter(webhooks::org.eq(org))
        .select(WebhookRow::as_select())
        .order(webhooks::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(webhooks::id.gt(after));
    }
    Ok(query.load(conn)?)
}

/// The organisation's enabled webhooks (for the fan-out of an event).
pub fn enabled_webhooks(conn: &mut AnyConnection, org: &OrgId) -> StoreResult<Vec<WebhookRow>> {
    Ok(webhooks::table
        .filter(webhooks::org.eq(org))
        .filter(webhooks::enabled.eq(true))
        .select(WebhookRow::as_select())
        .load(conn)?)
}

pub fn update_webhook(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: WebhookId,
    changes: &WebhookChanges,
) -> StoreResult<()> {
    touched(
        diesel::update(
            webhooks::table
                .filter(webhooks::org.eq(org))
                .filter(webhooks::id.eq(id)),
        )
        .set(changes)
        .execute(conn),
        "webhook",
    )
}

/// Deletes a webhook with its deliveries and their attempts.
pub fn delete_webhook(conn: &mut AnyConnection, org: &OrgId, id: WebhookId) -> StoreResult<()> {
    let target = id.to_string();
    diesel::delete(delivery_attempts::table.filter(delivery_attempts::target_id.eq(&target)))
        .execute(conn)?;
    diesel::delete(deliveries::table.filter(deliveries::target_id.eq(&target))).execute(conn)?;
    touched(
        diesel::delete(
            webhooks::table
                .filter(webhooks::org.eq(org))
                .filter(webhooks::id.eq(id)),
        )
        .execute(conn),
        "webhook",
    )
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

pub fn insert_email_alert(conn: &mut AnyConnection, row: &EmailAlertRow) -> StoreResult<()> {
    diesel::insert_into(email_alerts::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get_email_alert(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: EmailAlertId,
) -> StoreResult<EmailAlertRow> {
    found(
        email_alerts::table
            .filter(email_alerts::org.eq(org))
            .filter(email_alerts::id.eq(id))
            .select(EmailAlertRow::as_select())
            .first(conn)
            .optional(),
        "e-mail alert",
    )
}

pub fn list_email_alerts(
    conn: &mut AnyConnection,
    org: &OrgId,
    after: Option<EmailAlertId>,
    limit: i64,
) -> StoreResult<Vec<EmailAlertRow>> {
    let mut query = email_alerts::table
        .filter(email_alerts::org.eq(org))
        .select(EmailAlertRow::as_select())
        .order(email_alerts::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(email_alerts::id.gt(after));
    }
    Ok(query.load(conn)?)
}

pub fn enabled_email_alerts(
    conn: &mut AnyConnection,
    org: &OrgId,
) -> StoreResult<Vec<EmailAlertRow>> {
    Ok(email_alerts::table
        .filter(email_alerts::org.eq(org))
        .filter(email_alerts::enabled.eq(true))
        .select(EmailAlertRow::as_select())
        .load(conn)?)
}

pub fn update_email_alert(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: EmailAlertId,
    changes: &EmailAlertChanges,
) -> StoreResult<()> {
    touched(
        diesel::update(
            email_alerts::table
                .filter(email_alerts::org.eq(org))
                .filter(email_alerts::id.eq(id)),
        )
        .set(changes)
        .execute(conn),
        "e-mail alert",
    )
}

pub fn delete_email_alert(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: EmailAlertId,
) -> StoreResult<()> {
    let target = id.to_string();
    diesel::delete(delivery_attempts::table.filter(delivery_attempts::target_id.eq(&target)))
        .execute(conn)?;
    diesel::delete(deliveries::table.filter(deliveries::target_id.eq(&target))).execute(conn)?;
    touched(
        diesel::delete(
            email_alerts::table
                .filter(email_alerts::org.eq(org))
                .filter(email_alerts::id.eq(id)),
        )
        .execute(conn),
        "e-mail alert",
    )
}
