//! Webhook endpoints (admin): create with a secret shown once, read, change,
//! delete, rotate the secret (the previous one keeps signing for 24 hours),
//! queue a `webhook.test` event for one endpoint, list its delivery
//! attempts, retry a delivery. URLs pass the [`crate::hooks::guard`] policy
//! when saved (and again at every connection). Secrets are sealed like every
//! other secret and never shown again, logged or audited.
//!
//! The file is long because it holds every use case of the resource
//! (including the secret's rotation and the attempts' pages) and their
//! contract types, which the spec and the SDK are generated from.

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{Audit, Target};
use super::events::{self, Event, webhook_default};
use super::{PageRequest, Services, double_option, page_type, utc};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::crypto::Slot;
use crate::domain::{
    Actor, AttemptId, AuditAction, DeliveryId, DeliveryState, EventId, EventType, Invalid, OrgId,
    WebhookId,
};
use crate::error::{Error, Result, Validator};
use crate::hooks::signing;
use crate::store::deliveries::{self, AttemptRow};
use crate::store::now;
use crate::store::targets::{self, WebhookChanges, WebhookRow};

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);
const TABLE: &str = "webhooks";
const URL_MAX: usize = 2000;
const DESCRIPTION_MAX: usize = 500;

/// A webhook endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    #[schema(value_type = Uuid)]
    pub id: WebhookId,
    pub url: String,
    /// The event types it receives (every type when `all_events`).
    pub events: Vec<String>,
    /// Subscribed to every type, also those a newer version adds.
    pub all_events: bool,
    pub description: Option<String>,
    /// Disabled endpoints get nothing; `disabled_reason` says why.
    pub enabled: bool,
    /// Why the service disabled it (`webhook_gone`, `webhook_failing`), or
    /// `null` when enabled or disabled by a caller.
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed (`null`: the last one succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs (after a rotation).
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A webhook with its secret: the answer of create, the only time it is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` + base64 of 32 random bytes: the key of the signatures
    /// (Standard Webhooks). Shown only here.
    pub secret: String,
}

/// The answer of `rotate-secret`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret; shown only here.
    pub secret: String,
    /// Deliveries until then carry signatures with both secrets.
    pub previous_secret_valid_until: DateTime<Utc>,
}

page_type!(
    /// One page of webhooks, oldest first.
    WebhookPage of Webhook
);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// `https://` to a public address (`http://` and private addresses only
    /// with `INBOXLINK_WEBHOOK_ALLOW_PRIVATE=true`).
    pub url: String,
    /// Event types to receive; leave out for every type.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

/// Only the fields given change; `events: null` subscribes to every type,
/// `description: null` clears it, `enabled: true` re-enables a disabled endpoint.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    pub url: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// The answer of `test`: the event queued.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueuedEvent {
    #[schema(value_type = Uuid)]
    pub event_id: EventId,
}

/// The answer of a retry: the delivery, due now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetriedDelivery {
    #[schema(value_type = Uuid)]
    pub delivery_id: DeliveryId,
    pub state: DeliveryState,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    #[schema(value_type = Uuid)]
    pub id: AttemptId,
    /// Retry this delivery with `POST .../deliveries/{delivery_id}/retry`.
    #[schema(value_type = Uuid)]
    pub delivery_id: DeliveryId,
    /// The event (the `webhook-id` header).
    #[schema(value_type = Uuid)]
    pub event_id: EventId,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// Why there is no status (timeout, refused address, connection reset).
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The start of the receiver's answer (at most 1 KB).
    pub response: Option<String>,
    /// When the next attempt is due (`null`: none; delivered, or the schedule is used up).
    pub next_retry_at: Option<DateTime<Utc>>,
}

page_type!(
    /// One page of delivery attempts, newest first.
    DeliveryAttemptPage of DeliveryAttempt
);

impl From<AttemptRow> for DeliveryAttempt {
    fn from(r: AttemptRow) -> Self {
        DeliveryAttempt {
            id: r.id,
            delivery_id: r.delivery_id,
            event_id: r.event_id,
            attempt: r.attempt,
            at: utc(r.at),
            status_code: r.status_code,
            error: r.error,
            duration_ms: r.duration_ms,
            response: r.response,
            next_retry_at: r.next_retry_at.map(utc),
        }
    }
}

/// A list of event types, checked; `None`: every type.
pub(crate) fn event_types(
    v: &mut Validator,
    list: Option<&[String]>,
) -> Option<Option<Vec<EventType>>> {
    let Some(list) = list else {
        return Some(None);
    };
    if list.is_empty() {
        v.push(
            "events",
            Invalid::new(
                Code::InvalidEventType,
                "give at least one event type, or leave `events` out for every type",
            ),
        );
        return None;
    }
    let mut types = Vec::new();
    let mut ok = true;
    for (i, t) in list.iter().enumerate() {
        match EventType::parse(t) {
            Some(t) if !types.contains(&t) => types.push(t),
            Some(_) => {}
            None => {
                ok = false;
                v.push(
                    &format!("events[{i}]"),
                    Invalid::new(
                        Code::InvalidEventType,
                        format!("`{t}` is not an event type"),
                    ),
                );
            }
        }
    }
    ok.then_some(Some(types))
}

/// The stored form of a list of event types.
pub(crate) fn stored_types(types: Option<&[EventType]>) -> Option<String> {
    types.map(|t| serde_json::to_string(t).expect("event types serialize"))
}

/// The shown form: the types, and whether it is every type.
pub(crate) fn shown_types(
    stored: Option<&str>,
    default: fn(EventType) -> bool,
) -> (Vec<String>, bool) {
    let chosen = stored.and_then(|s| serde_json::from_str::<Vec<EventType>>(s).ok());
    let all = chosen.is_none();
    let types = EventType::ALL
        .iter()
        .copied()
        .filter(|t| match &chosen {
            Some(list) => list.contains(t),
            None => default(*t),
        })
        .map(|t| t.as_str().to_owned())
        .collect();
    (types, all)
}

pub(crate) fn description(v: &mut Validator, text: Option<&str>) -> Option<Option<String>> {
    let Some(text) = text else {
        return Some(None);
    };
    let text = text.trim();
    if text.chars().count() > DESCRIPTION_MAX || text.chars().any(char::is_control) {
        v.push(
            "description",
            Invalid::new(
                Code::InvalidDescription,
                format!("at most {DESCRIPTION_MAX} characters, no control characters"),
            ),
        );
        return None;
    }
    Some((!text.is_empty()).then(|| text.to_owned()))
}

fn url_field(v: &mut Validator, text: &str) -> Option<url::Url> {
    let parsed = url::Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    match parsed {
        Some(u) if text.len() <= URL_MAX => Some(u),
        _ => {
            v.push(
                "url",
                Invalid::new(
                    Code::InvalidUrl,
                    format!("an absolute http(s) URL of at most {URL_MAX} characters"),
                ),
            );
            None
        }
    }
}

impl Services {
    fn seal_webhook_secret(&self, id: WebhookId, column: &str, secret: &SecretString) -> String {
        self.cipher.encrypt_str(
            secret.expose_secret(),
            Slot {
                table: TABLE,
                column,
                row_id: &id.to_string(),
            },
        )
    }

    /// The secrets a delivery is signed with now: the current one, and the
    /// previous one during its overlap.
    pub(crate) fn webhook_secrets(
        &self,
        row: &WebhookRow,
        at: NaiveDateTime,
    ) -> Result<Vec<SecretString>> {
        let open = |column: &str, stored: &str| {
            self.cipher
                .decrypt_string(
                    stored,
                    Slot {
                        table: TABLE,
                        column,
                        row_id: &row.id.to_string(),
                    },
                )
                .map_err(|e| Error::Internal(anyhow::anyhow!("webhook {}: {e}", row.id)))
        };
        let mut secrets = vec![open("secret", &row.secret)?];
        if let (Some(previous), Some(until)) = (&row.previous_secret, row.previous_secret_until)
            && until > at
        {
            secrets.push(open("previous_secret", previous)?);
        }
        Ok(secrets)
    }

    /// The URL policy's verdict, as the API's refusal.
    async fn allowed_url(&self, url: &url::Url) -> Result<()> {
        self.webhook_sender
            .policy
            .check(url)
            .await
            .map_err(|e| Error::refused(Code::WebhookUrlNotAllowed, e.0))
    }

    pub async fn webhook_create(
        &self,
        who: &Principal,
        input: WebhookCreate,
    ) -> Result<WebhookWithSecret> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let mut v = Validator::default();
        let url = url_field(&mut v, &input.url);
        let types = event_types(&mut v, input.events.as_deref());
        let description = description(&mut v, input.description.as_deref());
        v.finish()?;
        let (Some(url), Some(types), Some(description)) = (url, types, description) else {
            unreachable!("validated above");
        };
        self.allowed_url(&url).await?;
        let id = WebhookId::new();
        let secret = signing::new_secret();
        let at = now();
        let row = WebhookRow {
            id,
            org: org.clone(),
            url: url.to_string(),
            event_types: stored_types(types.as_deref()),
            description,
            enabled: true,
            secret: self.seal_webhook_secret(id, "secret", &secret),
            previous_secret: None,
            previous_secret_until: None,
            failing_since: None,
            disabled_reason: None,
            created_at: at,
            updated_at: at,
        };
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                targets::insert_webhook(c, &row)?;
                audit(&org, actor, AuditAction::WebhookCreated, row.id).record(c)?;
                Ok::<_, Error>(row)
            })
            .await?;
        tracing::info!(webhook_id = %row.id, "webhook created");
        Ok(WebhookWithSecret {
            webhook: webhook_view(row),
            secret: secret.expose_secret().to_owned(),
        })
    }

    pub async fn webhook_list(&self, who: &Principal, page: &PageRequest) -> Result<WebhookPage> {
        let (rows, limit) = self
            .org_page(
                who,
                Permission::NotificationsWrite,
                page,
                targets::list_webhooks,
            )
            .await?;
        Ok(WebhookPage::new(
            rows.into_iter().map(webhook_view).collect(),
            limit,
        ))
    }

    pub async fn webhook_get(&self, who: &Principal, id: WebhookId) -> Result<Webhook> {
        let row = self
            .org_row(
                who,
                Permission::NotificationsWrite,
                id,
                targets::get_webhook,
            )
            .await?;
        Ok(webhook_view(row))
    }

    pub async fn webhook_update(
        &self,
        who: &Principal,
        id: WebhookId,
        input: WebhookUpdate,
    ) -> Result<Webhook> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let mut v = Validator::default();
        let url = input.url.as_deref().map(|u| url_field(&mut v, u));
        let types = input
            .events
            .as_ref()
            .map(|e| event_types(&mut v, e.as_deref()));
        let description = input
            .description
            .as_ref()
            .map(|d| description(&mut v, d.as_deref()));
        v.finish()?;
        let url = url.map(|u| u.expect("validated"));
        if let Some(url) = &url {
            self.allowed_url(url).await?;
        }
        let at = now();
        let mut changes = WebhookChanges {
            url: url.map(|u| u.to_string()),
            event_types: types.map(|t| stored_types(t.expect("validated").as_deref())),
            description: description.map(|d| d.expect("validated")),
            enabled: input.enabled,
            updated_at: Some(at),
            ..WebhookChanges::default()
        };
        if input.enabled == Some(true) {
            changes.failing_since = Some(None);
            changes.disabled_reason = Some(None);
        }
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                targets::get_webhook(c, &org, id)?;
                targets::update_webhook(c, &org, id, &changes)?;
                if changes.enabled == Some(false) {
                    deliveries::cancel_pending(c, &id.to_string())?;
                }
                audit(&org, actor, AuditAction::WebhookUpdated, id).record(c)?;
                Ok::<_, Error>(targets::get_webhook(c, &org, id)?)
            })
            .await?;
        Ok(webhook_view(row))
    }

    pub async fn webhook_delete(&self, who: &Principal, id: WebhookId) -> Result<()> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let actor = who.actor();
        self.store
            .write(move |c| {
                targets::delete_webhook(c, &org, id)?;
                audit(&org, actor, AuditAction::WebhookDeleted, id).record(c)
            })
            .await?;
        tracing::info!(webhook_id = %id, "webhook deleted");
        Ok(())
    }

    pub async fn webhook_rotate_secret(
        &self,
        who: &Principal,
        id: WebhookId,
    ) -> Result<RotatedSecret> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let secret = signing::new_secret();
        let sealed = self.seal_webhook_secret(id, "secret", &secret);
        let services = self.clone();
        let actor = who.actor();
        let until = self
            .store
            .write(move |c| {
                let row = targets::get_webhook(c, &org, id)?;
                let at = now();
                let current = services
                    .webhook_secrets(&row, at)?
                    .into_iter()
                    .next()
                    .expect("the current secret");
                let until = at + ROTATION_OVERLAP;
                let changes = WebhookChanges {
                    secret: Some(sealed),
                    previous_secret: Some(Some(services.seal_webhook_secret(
                        id,
                        "previous_secret",
                        &current,
                    ))),
                    previous_secret_until: Some(Some(until)),
                    updated_at: Some(at),
                    ..WebhookChanges::default()
                };
                targets::update_webhook(c, &org, id, &changes)?;
                audit(&org, actor, AuditAction::WebhookSecretRotated, id).record(c)?;
                Ok::<_, Error>(until)
            })
            .await?;
        tracing::info!(webhook_id = %id, "webhook secret rotated");
        Ok(RotatedSecret {
            secret: secret.expose_secret().to_owned(),
            previous_secret_valid_until: utc(until),
        })
    }

    /// Queues a `webhook.test` event for this endpoint alone.
    pub async fn webhook_test(&self, who: &Principal, id: WebhookId) -> Result<QueuedEvent> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let event_id = self
            .store
            .write(move |c| {
                let row = targets::get_webhook(c, &org, id)?;
                if !row.enabled {
                    return Err(Error::refused(
                        Code::WebhookDisabled,
                        "the webhook is disabled; enable it first (PATCH with enabled: true)",
                    ));
                }
                Ok(events::record(c, &org, &Event::WebhookTest { id })?)
            })
            .await?;
        Ok(QueuedEvent { event_id })
    }

    pub async fn webhook_deliveries(
        &self,
        who: &Principal,
        id: WebhookId,
        page: &PageRequest,
    ) -> Result<DeliveryAttemptPage> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let (limit, before) = page.resolve::<AttemptId>()?;
        let rows = self
            .store
            .query(move |c| {
                targets::get_webhook(c, &org, id)?;
                deliveries::list_attempts(c, &org, &id.to_string(), before, limit)
            })
            .await?;
        Ok(DeliveryAttemptPage::new(
            rows.into_iter().map(DeliveryAttempt::from).collect(),
            limit,
        ))
    }

    pub async fn webhook_retry(
        &self,
        who: &Principal,
        id: WebhookId,
        delivery: DeliveryId,
    ) -> Result<RetriedDelivery> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let actor = who.actor();
        self.store
            .write(move |c| {
                let hook = targets::get_webhook(c, &org, id)?;
                let d = deliveries::get_delivery(c, &org, delivery)?;
                if d.target_id != id.to_string() {
                    return Err(Error::not_found("delivery"));
                }
                if !hook.enabled {
                    return Err(Error::refused(
                        Code::WebhookDisabled,
                        "the webhook is disabled; enable it first (PATCH with enabled: true)",
                    ));
                }
                deliveries::retry_delivery(c, &org, delivery, now())?;
                audit(&org, actor, AuditAction::WebhookDeliveryRetried, id)
                    .detail(serde_json::json!({ "delivery_id": delivery }))
                    .record(c)
            })
            .await?;
        Ok(RetriedDelivery {
            delivery_id: delivery,
            state: DeliveryState::Pending,
        })
    }
}

/// The audit row of a change of webhook `id` (never its secret).
fn audit(org: &OrgId, actor: Actor, action: AuditAction, id: WebhookId) -> Audit<'_> {
    Audit::notification(org, actor, action, Target::Webhook(id))
}

fn webhook_view(row: WebhookRow) -> Webhook {
    let (events, all_events) = shown_types(row.event_types.as_deref(), webhook_default);
    let at = now();
    Webhook {
        id: row.id,
        url: row.url,
        events,
        all_events,
        description: row.description,
        enabled: row.enabled,
        disabled_reason: row.disabled_reason.map(String::from),
        failing_since: row.failing_since.map(utc),
        previous_secret_valid_until: row.previous_secret_until.filter(|u| *u > at).map(utc),
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    }
}
