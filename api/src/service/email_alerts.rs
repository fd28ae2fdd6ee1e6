//! E-mail alerts (admin): events turned into messages for people, sent from
//! one of the organisation's own mailboxes over SMTP submission with XOAUTH2
//! (the check's path), in Czech or English ([`super::alert_text`]). Each
//! matching event is one delivery, retried like a webhook's; at most one
//! message per entity and event type in 10 minutes (the others are
//! `suppressed`, see [`super::events::record`]). A sender that cannot send
//! shows as the alert's `last_error` and, when it starts failing, as an
//! `email_alert.failed` event (which is not sent through the failing alert).
//!
//! The file is long because it holds the resource's use cases (create,
//! list, read, change, delete) and the delivery of an alert (the message,
//! the sender's failure as the alert's state), which share its validation.

use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::{Audit, Target};
use super::delivery::Attempted;
use super::events::{self, Event, alert_default};
use super::webhooks::{event_types, shown_types, stored_types};
use super::{PageRequest, Services, double_option, page_type, utc};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{
    Actor, AuditAction, EmailAddress, EmailAlertId, Invalid, Language, MailboxId, OrgId,
};
use crate::error::{Error, Result, Validator};
use crate::mail::Login;
use crate::store::deliveries::DeliveryRow;
use crate::store::targets::{self, EmailAlertChanges, EmailAlertRow};
use crate::store::{AnyConnection, StoreError, StoreResult, if_found, mailboxes, now};

const MAX_RECIPIENTS: usize = 20;

/// Why the last alert could not be sent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertError {
    /// `alert_not_sent`, or the code of what failed (a token error, an SMTP step's code).
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

/// An e-mail alert.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EmailAlert {
    #[schema(value_type = Uuid)]
    pub id: EmailAlertId,
    /// The recipients.
    pub to: Vec<String>,
    /// The organisation's mailbox the alerts are sent from.
    #[schema(value_type = Uuid)]
    pub sender_mailbox_id: MailboxId,
    /// The event types it sends.
    pub events: Vec<String>,
    /// Every type that needs a person (the default): also those a newer version adds.
    pub all_events: bool,
    pub language: Language,
    pub enabled: bool,
    /// The last failure to send, until a message is sent again.
    pub last_error: Option<AlertError>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

page_type!(
    /// One page of e-mail alerts, oldest first.
    EmailAlertPage of EmailAlert
);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailAlertCreate {
    /// 1-20 addresses.
    pub to: Vec<String>,
    /// One of the organisation's mailboxes, connected, that may send.
    #[schema(value_type = Uuid)]
    pub sender_mailbox_id: MailboxId,
    /// Event types to send; leave out for every type that needs a person
    /// (all but `mailbox.created`, `mailbox.deleted` and `webhook.test`).
    pub events: Option<Vec<String>>,
    /// `cs` (default) or `en`.
    pub language: Option<Language>,
}

/// Only the fields given change; `events: null` is the default set again.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailAlertUpdate {
    pub to: Option<Vec<String>>,
    #[schema(value_type = Option<Uuid>)]
    pub sender_mailbox_id: Option<MailboxId>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Option<Vec<String>>>,
    pub language: Option<Language>,
    pub enabled: Option<bool>,
}

fn recipients(v: &mut Validator, to: &[String]) -> Option<String> {
    if to.is_empty() || to.len() > MAX_RECIPIENTS {
        v.push(
            "to",
            Invalid::new(
                Code::InvalidRecipients,
                format!("give 1-{MAX_RECIPIENTS} addresses"),
            ),
        );
        return None;
    }
    let mut ok = Vec::new();
    for (i, a) in to.iter().enumerate() {
        if let Some(a) = v.check(&format!("to[{i}]"), EmailAddress::parse(a)) {
            ok.push(a.as_str().to_owned());
        }
    }
    (ok.len() == to.len()).then(|| serde_json::to_string(&ok).expect("strings serialize"))
}

/// The sender must be one of the organisation's mailboxes.
fn known_sender(c: &mut AnyConnection, org: &crate::domain::OrgId, id: MailboxId) -> Result<()> {
    match mailboxes::get(c, org, id) {
        Ok(_) => Ok(()),
        Err(StoreError::NotFound(_)) => Err(Error::invalid_field(
            "sender_mailbox_id",
            Invalid::new(
                Code::UnknownMailbox,
                "no mailbox of the organisation has this id",
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

fn view(row: EmailAlertRow) -> EmailAlert {
    let (events, all_events) = shown_types(row.event_types.as_deref(), alert_default);
    let last_error = match (
        row.last_error_code,
        row.last_error_message,
        row.last_error_at,
    ) {
        (Some(code), message, Some(at)) => Some(AlertError {
            code: code.as_str().into(),
            message: message.unwrap_or_default(),
            at: utc(at),
        }),
        _ => None,
    };
    EmailAlert {
        id: row.id,
        to: serde_json::from_str(&row.recipients).unwrap_or_default(),
        sender_mailbox_id: row.sender_mailbox_id,
        events,
        all_events,
        language: row.language,
        enabled: row.enabled,
        last_error,
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    }
}

impl Services {
    pub async fn email_alert_create(
        &self,
        who: &Principal,
        input: EmailAlertCreate,
    ) -> Result<EmailAlert> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let mut v = Validator::default();
        let to = recipients(&mut v, &input.to);
        let types = event_types(&mut v, input.events.as_deref());
        v.finish()?;
        let (Some(to), Some(types)) = (to, types) else {
            unreachable!("validated above");
        };
        let at = now();
        let row = EmailAlertRow {
            id: EmailAlertId::new(),
            org: org.clone(),
            recipients: to,
            sender_mailbox_id: input.sender_mailbox_id,
            event_types: stored_types(types.as_deref()),
            language: input.language.unwrap_or_default(),
            enabled: true,
            last_error_code: None,
            last_error_message: None,
            last_error_at: None,
            created_at: at,
            updated_at: at,
        };
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                known_sender(c, &org, row.sender_mailbox_id)?;
                targets::insert_email_alert(c, &row)?;
                audit(&org, actor, AuditAction::EmailAlertCreated, row.id).record(c)?;
                Ok::<_, Error>(row)
            })
            .await?;
        tracing::info!(email_alert_id = %row.id, "e-mail alert created");
        Ok(view(row))
    }

    pub async fn email_alert_list(
        &self,
        who: &Principal,
        page: &PageRequest,
    ) -> Result<EmailAlertPage> {
        let (rows, limit) = self
            .org_page(
                who,
                Permission::NotificationsWrite,
                page,
                targets::list_email_alerts,
            )
            .await?;
        Ok(EmailAlertPage::new(
            rows.into_iter().map(view).collect(),
            limit,
        ))
    }

    pub async fn email_alert_get(&self, who: &Principal, id: EmailAlertId) -> Result<EmailAlert> {
        let row = self
            .org_row(
                who,
                Permission::NotificationsWrite,
                id,
                targets::get_email_alert,
            )
            .await?;
        Ok(view(row))
    }

    pub async fn email_alert_update(
        &self,
        who: &Principal,
        id: EmailAlertId,
        input: EmailAlertUpdate,
    ) -> Result<EmailAlert> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let mut v = Validator::default();
        let to = input.to.as_deref().map(|t| recipients(&mut v, t));
        let types = input
            .events
            .as_ref()
            .map(|e| event_types(&mut v, e.as_deref()));
        v.finish()?;
        let changes = EmailAlertChanges {
            recipients: to.map(|t| t.expect("validated")),
            sender_mailbox_id: input.sender_mailbox_id,
            event_types: types.map(|t| stored_types(t.expect("validated").as_deref())),
            language: input.language,
            enabled: input.enabled,
            updated_at: Some(now()),
            ..EmailAlertChanges::default()
        };
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                targets::get_email_alert(c, &org, id)?;
                if let Some(sender) = changes.sender_mailbox_id {
                    known_sender(c, &org, sender)?;
                }
                targets::update_email_alert(c, &org, id, &changes)?;
                if changes.enabled == Some(false) {
                    crate::store::deliveries::cancel_pending(c, &id.to_string())?;
                }
                audit(&org, actor, AuditAction::EmailAlertUpdated, id).record(c)?;
                Ok::<_, Error>(targets::get_email_alert(c, &org, id)?)
            })
            .await?;
        Ok(view(row))
    }

    pub async fn email_alert_delete(&self, who: &Principal, id: EmailAlertId) -> Result<()> {
        let org = who.require(Permission::NotificationsWrite)?.clone();
        let actor = who.actor();
        self.store
            .write(move |c| {
                targets::delete_email_alert(c, &org, id)?;
                audit(&org, actor, AuditAction::EmailAlertDeleted, id).record(c)
            })
            .await?;
        tracing::info!(email_alert_id = %id, "e-mail alert deleted");
        Ok(())
    }

    /// One attempt of an e-mail alert's delivery: the message, from the
    /// sender mailbox, to every recipient.
    pub(super) async fn attempt_email_alert(&self, d: &DeliveryRow) -> Result<Attempted> {
        let started = Instant::now();
        let (org, target, event_id) = (d.org.clone(), d.target_id.clone(), d.event_id);
        let Ok(id) = target.parse::<EmailAlertId>() else {
            return Ok(Attempted::failed("not an e-mail alert", started));
        };
        let (alert, event) = self
            .store
            .query(move |c| {
                Ok((
                    targets::get_email_alert(c, &org, id)?,
                    crate::store::events::get_event(c, event_id)?,
                ))
            })
            .await?;
        if !alert.enabled {
            return Ok(Attempted::failed("the e-mail alert is disabled", started));
        }
        let token = match self.access_token(&d.org, alert.sender_mailbox_id).await {
            Ok(t) => t,
            Err(e) => {
                let mut a = Attempted::failed(
                    format!("the sender mailbox has no usable token: {e}"),
                    started,
                );
                a.code = Some(e.code());
                return Ok(a);
            }
        };
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
        let text = super::alert_text::compose(
            event.event_type,
            &data,
            alert.language,
            self.notify.frontend_url.as_ref(),
        );
        let to: Vec<String> = serde_json::from_str(&alert.recipients).unwrap_or_default();
        let (envelope, message) = match message(&token.mailbox, &to, &text) {
            Ok(m) => m,
            Err(e) => {
                let mut a = Attempted::failed(e, started);
                a.code = Some(Code::InvalidMessage);
                return Ok(a);
            }
        };
        let login = Login {
            mailbox: &token.mailbox,
            smtp_user: token.smtp_user(),
            token: &token.token,
            access_mode: token.access_mode,
        };
        let servers = self.mail.servers(token.cloud);
        Ok(match servers.submit(&login, &envelope, &message).await {
            Ok(answer) => Attempted {
                delivered: true,
                gone: false,
                status: None,
                error: None,
                code: None,
                duration: started.elapsed(),
                response: Some(answer),
            },
            Err(f) => {
                let mut a = Attempted::failed(
                    match &f.response {
                        Some(r) => format!("{}: {r}", f.code),
                        None => format!("{}: {}", f.code, f.hint),
                    },
                    started,
                );
                a.code = Some(f.code);
                a
            }
        })
    }

    /// What an attempt means for its alert: a message sent clears the last
    /// error; a failure records it, and the first failure after a success is
    /// an `email_alert.failed` event.
    pub(super) fn email_alert_after(
        &self,
        c: &mut AnyConnection,
        d: &DeliveryRow,
        a: &Attempted,
        at: NaiveDateTime,
    ) -> StoreResult<()> {
        let Ok(id) = d.target_id.parse::<EmailAlertId>() else {
            return Ok(());
        };
        let Some(alert) = if_found(targets::get_email_alert(c, &d.org, id))? else {
            return Ok(());
        };
        if a.delivered {
            if alert.last_error_code.is_some() {
                let clear = EmailAlertChanges {
                    last_error_code: Some(None),
                    last_error_message: Some(None),
                    last_error_at: Some(None),
                    ..EmailAlertChanges::default()
                };
                targets::update_email_alert(c, &d.org, id, &clear)?;
            }
            return Ok(());
        }
        let code = a.code.unwrap_or(Code::AlertNotSent);
        let message = a.error.clone().unwrap_or_default();
        let changes = EmailAlertChanges {
            last_error_code: Some(Some(code)),
            last_error_message: Some(Some(message.clone())),
            last_error_at: Some(Some(at)),
            ..EmailAlertChanges::default()
        };
        targets::update_email_alert(c, &d.org, id, &changes)?;
        if alert.last_error_code.is_none() {
            let failed = Event::EmailAlertFailed {
                id,
                sender_mailbox_id: alert.sender_mailbox_id,
                code,
                message,
            };
            events::record(c, &d.org, &failed)?;
        }
        Ok(())
    }
}

/// The audit row of a change of e-mail alert `id`.
fn audit(org: &OrgId, actor: Actor, action: AuditAction, id: EmailAlertId) -> Audit<'_> {
    Audit::notification(org, actor, action, Target::EmailAlert(id))
}

/// The envelope and the formatted message of an alert.
fn message(
    from: &str,
    to: &[String],
    text: &super::alert_text::Text,
) -> std::result::Result<(lettre::address::Envelope, Vec<u8>), String> {
    use lettre::message::{Mailbox, header::ContentType};
    let sender: lettre::Address = from.parse().map_err(|e| format!("the sender: {e}"))?;
    let mut builder = lettre::Message::builder()
        .from(Mailbox::new(Some("Inboxlink".into()), sender.clone()))
        .subject(text.subject.clone());
    let mut rcpt = Vec::new();
    for a in to {
        let a: lettre::Address = a.parse().map_err(|e| format!("a recipient: {e}"))?;
        builder = builder.to(Mailbox::new(None, a.clone()));
        rcpt.push(a);
    }
    let message = builder
        .header(ContentType::TEXT_PLAIN)
        .body(text.body.clone())
        .map_err(|e| e.to_string())?;
    let envelope = lettre::address::Envelope::new(Some(sender), rcpt).map_err(|e| e.to_string())?;
    Ok((envelope, message.formatted()))
}
