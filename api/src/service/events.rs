//! The event feed: what happened that a person or a system may have to act
//! on, written by [`record`] in the transaction of the change itself (a
//! transactional outbox: a change that commits has its event, one that rolls
//! back has none), fanned out in the same transaction into one delivery per
//! matching webhook and e-mail alert, and read by `GET /events`.
//!
//! Who records what: the transition functions of [`super::lifecycle`] (a
//! mailbox's status, an app credential's problem), the mailbox use cases
//! (created, deleted), the check (failed, recovered: on the change only), the
//! keep-alive sweep (a client secret's expiry, each threshold once per
//! credential and expiry date, whichever instance finds it first), the
//! webhook use cases (test) and the delivery worker (a webhook disabled, an
//! e-mail alert's sender failing).
//!
//! The file is long because the feed is one contract: the event types and
//! their payloads, [`record`] with its fan-out and suppression, and the
//! feed's reading, which must agree on every name.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::{Services, page_type, utc};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{
    AccessMode, AppCredentialId, Channel, DeliveryId, DeliveryState, EmailAlertId, EventId,
    EventType, MailboxId, MailboxStatus, OrgId, WebhookId,
};
use crate::error::{Error, FieldError, Result};
use crate::store::deliveries::{self, DeliveryRow};
use crate::store::events::{self as store, EventRow};
use crate::store::targets;
use crate::store::{AnyConnection, StoreResult, now};

/// An e-mail alert sends at most one message per entity and event type in this long.
pub const ALERT_QUIET: chrono::Duration = chrono::Duration::minutes(10);

/// Something that happened, with what its event's `data` says.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    MailboxCreated {
        id: MailboxId,
        email: String,
        access_mode: AccessMode,
        status: MailboxStatus,
    },
    MailboxDeleted {
        id: MailboxId,
        email: String,
    },
    StatusChanged {
        id: MailboxId,
        email: String,
        from: MailboxStatus,
        to: MailboxStatus,
        /// The status detail's code after the change.
        code: Option<Code>,
    },
    CheckFailed {
        id: MailboxId,
        email: String,
        /// The first step that failed, and its code.
        step: String,
        code: Option<String>,
    },
    CheckRecovered {
        id: MailboxId,
        email: String,
    },
    SecretExpiring {
        id: AppCredentialId,
        name: String,
        expires_on: NaiveDate,
        days_left: i64,
        threshold_days: i64,
    },
    SecretExpired {
        id: AppCredentialId,
        name: String,
        expires_on: NaiveDate,
    },
    ProblemChanged {
        id: AppCredentialId,
        name: String,
        from: Option<Code>,
        to: Option<Code>,
    },
    WebhookTest {
        id: WebhookId,
    },
    WebhookDisabled {
        id: WebhookId,
        url: String,
        reason: Code,
    },
    EmailAlertFailed {
        id: EmailAlertId,
        sender_mailbox_id: MailboxId,
        code: Code,
        message: String,
    },
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match self {
            Event::MailboxCreated { .. } => EventType::MailboxCreated,
            Event::MailboxDeleted { .. } => EventType::MailboxDeleted,
            Event::StatusChanged { .. } => EventType::MailboxStatusChanged,
            Event::CheckFailed { .. } => EventType::MailboxCheckFailed,
            Event::CheckRecovered { .. } => EventType::MailboxCheckRecovered,
            Event::SecretExpiring { .. } => EventType::SecretExpiring,
            Event::SecretExpired { .. } => EventType::SecretExpired,
            Event::ProblemChanged { .. } => EventType::CredentialProblemChanged,
            Event::WebhookTest { .. } => EventType::WebhookTest,
            Event::WebhookDisabled { .. } => EventType::WebhookDisabled,
            Event::EmailAlertFailed { .. } => EventType::EmailAlertFailed,
        }
    }

    /// The entity the event is about: deliveries keep its events in order.
    pub fn subject(&self) -> String {
        match self {
            Event::MailboxCreated { id, .. }
            | Event::MailboxDeleted { id, .. }
            | Event::StatusChanged { id, .. }
            | Event::CheckFailed { id, .. }
            | Event::CheckRecovered { id, .. } => id.to_string(),
            Event::SecretExpiring { id, .. }
            | Event::SecretExpired { id, .. }
            | Event::ProblemChanged { id, .. } => id.to_string(),
            Event::WebhookTest { id } | Event::WebhookDisabled { id, .. } => id.to_string(),
            Event::EmailAlertFailed { id, .. } => id.to_string(),
        }
    }

    /// The event's `data`.
    pub fn data(&self) -> Value {
        let code = |c: &Option<Code>| c.map(Code::as_str);
        match self {
            Event::MailboxCreated {
                id,
                email,
                access_mode,
                status,
            } => json!({
                "mailbox_id": id, "email": email, "access_mode": access_mode, "status": status,
            }),
            Event::MailboxDeleted { id, email } => json!({ "mailbox_id": id, "email": email }),
            Event::StatusChanged {
                id,
                email,
                from,
                to,
                code: c,
            } => json!({
                "mailbox_id": id, "email": email, "from": from, "to": to, "status_code": code(c),
            }),
            Event::CheckFailed {
                id,
                email,
                step,
                code,
            } => json!({ "mailbox_id": id, "email": email, "step": step, "code": code }),
            Event::CheckRecovered { id, email } => json!({ "mailbox_id": id, "email": email }),
            Event::SecretExpiring {
                id,
                name,
                expires_on,
                days_left,
                threshold_days,
            } => json!({
                "app_credential_id": id, "name": name, "secret_expires_at": expires_on,
                "days_left": days_left, "threshold_days": threshold_days,
            }),
            Event::SecretExpired {
                id,
                name,
                expires_on,
            } => json!({ "app_credential_id": id, "name": name, "secret_expires_at": expires_on }),
            Event::ProblemChanged { id, name, from, to } => json!({
                "app_credential_id": id, "name": name, "from": code(from), "to": code(to),
            }),
            Event::WebhookTest { id } => json!({ "webhook_id": id }),
            Event::WebhookDisabled { id, url, reason } => {
                json!({ "webhook_id": id, "url": url, "reason": reason.as_str() })
            }
            Event::EmailAlertFailed {
                id,
                sender_mailbox_id,
                code,
                message,
            } => json!({
                "email_alert_id": id, "sender_mailbox_id": sender_mailbox_id,
                "code": code.as_str(), "message": message,
            }),
        }
    }
}

/// Whether a target's list of event types (`None`: its default) takes `t`.
pub(crate) fn wants(list: Option<&str>, default: fn(EventType) -> bool, t: EventType) -> bool {
    match list.and_then(|l| serde_json::from_str::<Vec<EventType>>(l).ok()) {
        Some(types) => types.contains(&t),
        None => default(t),
    }
}

/// What a webhook gets without a list: everything (`webhook.test` goes only
/// to the webhook tested, whatever its list).
pub(crate) fn webhook_default(t: EventType) -> bool {
    t != EventType::WebhookTest
}

/// What an e-mail alert sends without a list: what needs a person.
pub(crate) fn alert_default(t: EventType) -> bool {
    !matches!(
        t,
        EventType::MailboxCreated | EventType::MailboxDeleted | EventType::WebhookTest
    )
}

/// Records `event` in the caller's transaction, with one delivery for each
/// of the organisation's enabled webhooks and e-mail alerts that takes it
/// (`webhook.test`: only the webhook tested). Returns the event's id.
pub(crate) fn record(c: &mut AnyConnection, org: &OrgId, event: &Event) -> StoreResult<EventId> {
    let at = now();
    // Generated here, inside the writing transaction: on SQLite ids then
    // commit in their order, so the feed's cursor never skips one.
    let row = EventRow {
        id: EventId::new(),
        org: org.clone(),
        event_type: event.event_type(),
        subject_id: event.subject(),
        occurred_at: at,
        data: event.data().to_string(),
    };
    store::insert_event(c, &row)?;
    let t = row.event_type;
    let delivery = |channel, target: String, state| DeliveryRow {
        id: DeliveryId::new(),
        org: org.clone(),
        channel,
        target_id: target,
        event_id: row.id,
        subject_id: row.subject_id.clone(),
        state,
        attempts: 0,
        next_attempt_at: Some(at),
        lease_until: None,
        lease_owner: None,
        last_status: None,
        last_error: None,
        created_at: at,
        updated_at: at,
    };
    for hook in targets::enabled_webhooks(c, org)? {
        let take = match event {
            Event::WebhookTest { id } => hook.id == *id,
            _ => wants(hook.event_types.as_deref(), webhook_default, t),
        };
        if take {
            deliveries::insert_delivery(
                c,
                &delivery(
                    Channel::Webhook,
                    hook.id.to_string(),
                    DeliveryState::Pending,
                ),
            )?;
        }
    }
    for alert in targets::enabled_email_alerts(c, org)? {
        let target = alert.id.to_string();
        // An alert's own failure is not sent through it.
        if !wants(alert.event_types.as_deref(), alert_default, t) || target == row.subject_id {
            continue;
        }
        let last = deliveries::last_delivery_at(c, &target, &row.subject_id, t)?;
        let state = if last.is_some_and(|l| at - l < ALERT_QUIET) {
            DeliveryState::Suppressed
        } else {
            DeliveryState::Pending
        };
        let mut d = delivery(Channel::EmailAlert, target, state);
        if state == DeliveryState::Suppressed {
            d.next_attempt_at = None;
        }
        deliveries::insert_delivery(c, &d)?;
    }
    Ok(row.id)
}

/// One event of the feed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// UUID v7: the feed's order. A webhook delivery's `webhook-id`.
    #[schema(value_type = Uuid)]
    pub id: EventId,
    /// `mailbox.created`, `mailbox.deleted`, `mailbox.status_changed`,
    /// `mailbox.check_failed`, `mailbox.check_recovered`,
    /// `app_credential.secret_expiring`, `app_credential.secret_expired`,
    /// `app_credential.problem_changed`, `webhook.test`, `webhook.disabled`,
    /// `email_alert.failed`; a newer version may add types.
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    /// About the entity: its id, its email or name, `from` and `to` where a
    /// status changed, the status detail code (the README has an example per type).
    #[schema(value_type = Object)]
    pub data: Value,
}

impl From<EventRow> for EventView {
    fn from(row: EventRow) -> Self {
        EventView {
            id: row.id,
            event_type: row.event_type.as_str().into(),
            occurred_at: utc(row.occurred_at),
            data: serde_json::from_str(&row.data).unwrap_or(Value::Null),
        }
    }
}

page_type!(
    /// One page of events, oldest first.
    EventPage of EventView
);

/// The feed's query: after an event, of some types.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// The id of the last event seen (or a page's `next_cursor`): events after it.
    pub after: Option<String>,
    /// The same as `after` (the name the other lists use).
    pub cursor: Option<String>,
    /// Only these types, comma-separated (e.g. `mailbox.status_changed,mailbox.check_failed`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Events per page, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

impl EventQuery {
    fn resolve(&self) -> Result<(i64, Option<EventId>, Vec<EventType>)> {
        let mut errors = Vec::new();
        let cursor = match (self.after.as_deref(), self.cursor.as_deref()) {
            (Some(a), Some(c)) if !a.is_empty() && !c.is_empty() && a != c => {
                errors.push(FieldError {
                    field: "after".into(),
                    code: Code::InvalidCursor,
                    message: "give `after` or `cursor`, not both".into(),
                });
                None
            }
            (Some(a), _) if !a.is_empty() => Some(a.to_owned()),
            (_, c) => c.map(str::to_owned),
        };
        let paging = super::PageRequest {
            limit: self.limit,
            cursor,
        };
        let (limit, after) = match paging.resolve::<EventId>() {
            Ok(p) => p,
            Err(Error::Validation(mut e)) => {
                errors.append(&mut e);
                (0, None)
            }
            Err(e) => return Err(e),
        };
        let mut types = Vec::new();
        for t in self
            .event_type
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            match EventType::parse(t) {
                Some(t) => types.push(t),
                None => errors.push(FieldError {
                    field: "type".into(),
                    code: Code::InvalidEventType,
                    message: format!("`{t}` is not an event type"),
                }),
            }
        }
        if errors.is_empty() {
            Ok((limit, after, types))
        } else {
            Err(Error::Validation(errors))
        }
    }
}

impl Services {
    /// `GET /events`: the organisation's events after a cursor, oldest first.
    pub async fn events(&self, who: &Principal, query: &EventQuery) -> Result<EventPage> {
        let org = who.require(Permission::EventsRead)?.clone();
        let (limit, after, types) = query.resolve()?;
        let rows = self
            .store
            .query(move |c| store::list_events(c, &org, after, &types, limit))
            .await?;
        Ok(EventPage::new(
            rows.into_iter().map(EventView::from).collect(),
            limit,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_select_types_and_defaults_apply_without_one() {
        let list = serde_json::to_string(&[EventType::MailboxCheckFailed]).unwrap();
        assert!(wants(
            Some(&list),
            webhook_default,
            EventType::MailboxCheckFailed
        ));
        assert!(!wants(
            Some(&list),
            webhook_default,
            EventType::MailboxStatusChanged
        ));
        assert!(wants(None, webhook_default, EventType::MailboxCreated));
        assert!(!wants(None, alert_default, EventType::MailboxCreated));
        assert!(wants(None, alert_default, EventType::SecretExpiring));
    }

    #[test]
    fn every_event_names_its_entity_in_its_data() {
        let id = MailboxId::new();
        let e = Event::StatusChanged {
            id,
            email: "a@contoso.cz".into(),
            from: MailboxStatus::Active,
            to: MailboxStatus::ReauthRequired,
            code: Some(Code::GrantRevoked),
        };
        let data = e.data();
        assert_eq!(data["mailbox_id"], id.to_string());
        assert_eq!(data["from"], "active");
        assert_eq!(data["to"], "reauth_required");
        assert_eq!(data["status_code"], "grant_revoked");
        assert_eq!(e.subject(), id.to_string());
    }
}
