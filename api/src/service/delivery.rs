//! The delivery worker, in every instance: claims due deliveries (leased, so
//! each attempt is one instance's; see [`crate::store::deliveries`]), makes
//! the attempt (a signed POST for a webhook, a message for an e-mail alert),
//! and records its outcome and the attempt in one transaction. The claim
//! reads what the webhook attempts need (the webhook, the event) in the same
//! trip to the database, and the outcomes that are ready are recorded
//! together, one transaction for many (each alone again if that one fails):
//! the database, not the POST, is what a delivery costs the service.
//!
//! A 2xx is delivered. Anything else is tried again after the schedule's next
//! delay, until the schedule is used up (`failed`). `410 Gone` disables the
//! webhook at once; a webhook whose deliveries have all failed for
//! `INBOXLINK_WEBHOOK_DISABLE_AFTER_HOURS` is disabled too, and each
//! disabling is a `webhook.disabled` event. Delivery is at least once: a
//! crash between the receiver's 2xx and the commit delivers again (with the
//! same `webhook-id`). On a graceful stop the worker claims nothing more,
//! lets the attempts in flight finish (they end within the 10 s deadline),
//! and gives back any lease it still holds.
//!
//! The file is long because the worker is one loop with one contract: the
//! claim, the attempt of each channel, the outcome's recording and what it
//! means for the target (a webhook disabled, an alert failing).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::Services;
use super::events::{self, Event};
use crate::codes::Code;
use crate::domain::{AttemptId, Channel, DeliveryState, EventId, WebhookId};
use crate::error::Result;
use crate::hooks::client::{Answer, Message};
use crate::store::deliveries::{self, AttemptOutcome, AttemptRow, DeliveryRow};
use crate::store::events::EventRow;
use crate::store::targets::{self, WebhookChanges, WebhookRow};
use crate::store::{AnyConnection, StoreResult, if_found, now, write_transaction};

/// How long a stopping worker waits for its attempts in flight.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// At most this many outcomes are recorded in one transaction.
const RECORD_BATCH: usize = 256;

/// A claimed delivery, with the webhook and the event its attempt needs when
/// the claim could read them (otherwise the attempt reads them itself, and
/// says what went wrong).
struct Claimed {
    delivery: DeliveryRow,
    webhook: Option<(WebhookRow, EventRow)>,
}

/// An attempt made, waiting for its outcome to be recorded, with its place
/// among the attempts in flight: given back once recorded, so at most the
/// concurrency's worth of attempts is ever made and not yet written down (what
/// a crash can deliver twice).
type Done = (DeliveryRow, Attempted, OwnedSemaphorePermit);

/// The body of a delivery: Standard Webhooks' `{type, timestamp, data}`.
pub fn body(event: &EventRow) -> Vec<u8> {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
    json!({
        "type": event.event_type.as_str(),
        "timestamp": event.occurred_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": data,
    })
    .to_string()
    .into_bytes()
}

/// What an attempt came to, whatever the channel.
#[derive(Debug, Clone)]
pub(crate) struct Attempted {
    pub delivered: bool,
    /// The target wants nothing more (a webhook's `410 Gone`).
    pub gone: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// What failed, where a code says it (an e-mail alert's sender).
    pub code: Option<Code>,
    pub duration: Duration,
    pub response: Option<String>,
}

impl From<Answer> for Attempted {
    fn from(a: Answer) -> Self {
        Attempted {
            delivered: a.delivered(),
            gone: a.gone(),
            status: a.status,
            error: a.error,
            code: None,
            duration: a.duration,
            response: a.response,
        }
    }
}

impl Attempted {
    pub fn failed(error: impl Into<String>, started: Instant) -> Self {
        Attempted {
            delivered: false,
            gone: false,
            status: None,
            error: Some(error.into()),
            code: None,
            duration: started.elapsed(),
            response: None,
        }
    }
}

/// Runs the worker until `stop` turns true, then stops as the module says.
pub async fn run(services: Services, mut stop: watch::Receiver<bool>) {
    let owner = format!("instance-{}", uuid::Uuid::now_v7());
    let settings = services.notify.clone();
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks = JoinSet::new();
    let (done, outcomes) = mpsc::unbounded_channel::<Done>();
    // Told after each batch of outcomes is written: their leases are gone,
    // so an endpoint at its cap (`endpoint_concurrency`) can take more now,
    // not at the next poll.
    let recorded = Arc::new(tokio::sync::Notify::new());
    let recorder = tokio::spawn(record_outcomes(
        services.clone(),
        owner.clone(),
        outcomes,
        recorded.clone(),
    ));
    tracing::debug!(%owner, "delivery worker started");
    loop {
        while tasks.try_join_next().is_some() {}
        if *stop.borrow() {
            break;
        }
        if permits.available_permits() == 0 {
            // Every slot is taken: claim again as soon as one is given back.
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                freed = permits.acquire() => drop(freed),
            }
            continue;
        }
        let free = permits.available_permits();
        let claimed = {
            let owner = owner.clone();
            let lease = chrono::Duration::from_std(settings.lease).unwrap_or_default();
            let limit = i64::try_from(free).unwrap_or(i64::MAX);
            let per_target = i64::try_from(settings.endpoint_concurrency).unwrap_or(1);
            match services
                .store
                .query(move |c| {
                    let at = now();
                    let due = deliveries::claim_due(c, &owner, at, at + lease, limit, per_target)?;
                    Ok(with_what_they_need(c, due))
                })
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; trying again");
                    Vec::new()
                }
            }
        };
        let full = claimed.len() == free;
        for d in claimed {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let services = services.clone();
            let done = done.clone();
            tasks.spawn(async move {
                let attempted = services.attempt(&d).await;
                // The recorder ends only after every sender is gone.
                let _ = done.send((d.delivery, attempted, permit));
            });
        }
        // More may be due at once: claim again as soon as a slot is free.
        if full {
            continue;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            () = tokio::time::sleep(settings.poll) => {}
            () = recorded.notified() => {}
        }
    }
    let finished = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    // What the finished attempts sent is recorded before the leases go back.
    drop(done);
    if let Err(e) = recorder.await {
        tracing::warn!(error = %e, "recording delivery outcomes stopped early");
    }
    let released = {
        let owner = owner.clone();
        services
            .store
            .query(move |c| deliveries::release_leases(c, &owner))
            .await
    };
    match released {
        Ok(n) => tracing::info!(released = n, "delivery worker stopped"),
        Err(e) => {
            tracing::warn!(error = %e, "delivery worker stopped; its leases lapse by themselves")
        }
    }
}

/// Reads, for the claimed webhook deliveries, their webhooks (each once) and
/// events. A row that cannot be read is left for the attempt to read again.
fn with_what_they_need(c: &mut AnyConnection, due: Vec<DeliveryRow>) -> Vec<Claimed> {
    let mut hooks: HashMap<WebhookId, Option<WebhookRow>> = HashMap::new();
    let mut events: HashMap<EventId, Option<EventRow>> = HashMap::new();
    due.into_iter()
        .map(|delivery| {
            let webhook = match (delivery.channel, delivery.target_id.parse::<WebhookId>()) {
                (Channel::Webhook, Ok(id)) => {
                    let hook = hooks
                        .entry(id)
                        .or_insert_with(|| targets::get_webhook(c, &delivery.org, id).ok())
                        .clone();
                    let event = events
                        .entry(delivery.event_id)
                        .or_insert_with(|| {
                            crate::store::events::get_event(c, delivery.event_id).ok()
                        })
                        .clone();
                    hook.zip(event)
                }
                _ => None,
            };
            Claimed { delivery, webhook }
        })
        .collect()
}

/// Records the outcomes the attempts send, as many as are ready in one
/// transaction; ends when every sender is gone and all is recorded.
async fn record_outcomes(
    services: Services,
    owner: String,
    mut outcomes: mpsc::UnboundedReceiver<Done>,
    recorded_signal: Arc<tokio::sync::Notify>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    while outcomes.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let ready = std::mem::take(&mut batch);
        let s = services.clone();
        let owner = owner.clone();
        let recorded = services
            .store
            .run(move |c| {
                let together = write_transaction(c, |c| {
                    ready
                        .iter()
                        .try_for_each(|(d, a, _)| s.record_attempt(c, d, &owner, a))
                });
                if together.is_ok() || ready.len() == 1 {
                    return together;
                }
                // One outcome that cannot be written must not hold back the rest.
                for (d, a, _) in &ready {
                    if let Err(e) = write_transaction(c, |c| s.record_attempt(c, d, &owner, a)) {
                        tracing::warn!(delivery_id = %d.id, error = %e, "a delivery attempt could not be recorded; it is tried again when its lease lapses");
                    }
                }
                Ok(())
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "a delivery attempt could not be recorded; it is tried again when its lease lapses");
        }
        recorded_signal.notify_one();
    }
}

impl Services {
    /// Makes one attempt of a claimed delivery; the recorder writes it down.
    async fn attempt(&self, claimed: &Claimed) -> Attempted {
        let started = Instant::now();
        let d = &claimed.delivery;
        let outcome = match d.channel {
            Channel::Webhook => self.attempt_webhook(d, claimed.webhook.clone()).await,
            Channel::EmailAlert => self.attempt_email_alert(d).await,
        };
        let attempted = match outcome {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(delivery_id = %d.id, error = %e, "a delivery could not be attempted");
                Attempted::failed("the service could not make the attempt", started)
            }
        };
        let label = if attempted.delivered {
            "delivered"
        } else if attempted.gone {
            "gone"
        } else {
            "failed"
        };
        self.metrics
            .delivery(d.channel.as_str(), label, attempted.duration);
        attempted
    }

    async fn attempt_webhook(
        &self,
        d: &DeliveryRow,
        read: Option<(WebhookRow, EventRow)>,
    ) -> Result<Attempted> {
        let (org, target, event_id) = (d.org.clone(), d.target_id.clone(), d.event_id);
        let (hook, event) = match read {
            Some(read) => read,
            None => {
                self.store
                    .query(move |c| {
                        let id: WebhookId = target.parse().map_err(|_| {
                            crate::store::StoreError::Other(anyhow::anyhow!(
                                "a delivery's target is not a webhook id"
                            ))
                        })?;
                        Ok((
                            targets::get_webhook(c, &org, id)?,
                            crate::store::events::get_event(c, event_id)?,
                        ))
                    })
                    .await?
            }
        };
        let started = Instant::now();
        if !hook.enabled {
            return Ok(Attempted::failed("the webhook is disabled", started));
        }
        let url: url::Url = hook
            .url
            .parse()
            .map_err(|e| anyhow::anyhow!("stored webhook URL: {e}"))?;
        let at = now();
        let secrets = self.webhook_secrets(&hook, at)?;
        let body = body(&event);
        let answer = self
            .webhook_sender
            .post(Message {
                url: &url,
                id: &event.id.to_string(),
                timestamp: at.and_utc().timestamp(),
                body: &body,
                secrets: secrets.iter().collect(),
            })
            .await;
        Ok(answer.into())
    }

    /// Writes an attempt's outcome onto its delivery (if this instance still
    /// holds the lease), the attempt row, and what it means for the target.
    fn record_attempt(
        &self,
        c: &mut AnyConnection,
        d: &DeliveryRow,
        owner: &str,
        a: &Attempted,
    ) -> StoreResult<()> {
        let at = now();
        let attempt = d.attempts + 1;
        let retry_in = (!a.delivered && !a.gone)
            .then(|| {
                self.notify
                    .schedule
                    .after(u32::try_from(attempt).unwrap_or(u32::MAX))
            })
            .flatten();
        let next = retry_in.map(|r| at + chrono::Duration::from_std(r).unwrap_or_default());
        let state = if a.delivered {
            DeliveryState::Delivered
        } else if next.is_some() {
            DeliveryState::Pending
        } else {
            DeliveryState::Failed
        };
        let error = a.error.clone().or_else(|| {
            a.status
                .filter(|_| !a.delivered)
                .map(|s| format!("the receiver answered {s}"))
        });
        let outcome = AttemptOutcome {
            state,
            attempts: attempt,
            next_attempt_at: next,
            lease_until: None,
            lease_owner: None,
            last_status: a.status.map(i32::from),
            last_error: error.clone(),
            updated_at: at,
        };
        if !deliveries::finish_attempt(c, d.id, owner, &outcome)? {
            // The lease lapsed and another instance took the delivery over.
            return Ok(());
        }
        deliveries::insert_attempt(
            c,
            &AttemptRow {
                id: AttemptId::new(),
                org: d.org.clone(),
                delivery_id: d.id,
                target_id: d.target_id.clone(),
                event_id: d.event_id,
                attempt,
                at,
                status_code: a.status.map(i32::from),
                error,
                duration_ms: i64::try_from(a.duration.as_millis()).unwrap_or(i64::MAX),
                response: a.response.clone(),
                next_retry_at: next,
            },
        )?;
        match d.channel {
            Channel::Webhook => self.webhook_after(c, d, a, at),
            Channel::EmailAlert => self.email_alert_after(c, d, a, at),
        }
    }

    /// What an attempt means for its webhook: a success ends a run of
    /// failures; `410` or failures for too long disable it.
    fn webhook_after(
        &self,
        c: &mut AnyConnection,
        d: &DeliveryRow,
        a: &Attempted,
        at: NaiveDateTime,
    ) -> StoreResult<()> {
        let Ok(id) = d.target_id.parse::<WebhookId>() else {
            return Ok(());
        };
        let Some(hook) = if_found(targets::get_webhook(c, &d.org, id))? else {
            return Ok(());
        };
        if a.delivered {
            if hook.failing_since.is_some() {
                let clear = WebhookChanges {
                    failing_since: Some(None),
                    ..WebhookChanges::default()
                };
                targets::update_webhook(c, &d.org, id, &clear)?;
            }
            return Ok(());
        }
        let since = hook.failing_since.unwrap_or(at);
        let reason = if a.gone {
            Some(Code::WebhookGone)
        } else if at - since >= self.notify.disable_after {
            Some(Code::WebhookFailing)
        } else {
            None
        };
        match reason {
            Some(reason) if hook.enabled => disable(c, &hook, reason, at),
            _ if hook.failing_since.is_none() => {
                let changes = WebhookChanges {
                    failing_since: Some(Some(at)),
                    ..WebhookChanges::default()
                };
                targets::update_webhook(c, &d.org, id, &changes)
            }
            _ => Ok(()),
        }
    }
}

/// Disables a webhook for `reason`, cancels what it still had to get, and
/// says so in a `webhook.disabled` event.
fn disable(
    c: &mut AnyConnection,
    hook: &WebhookRow,
    reason: Code,
    at: NaiveDateTime,
) -> StoreResult<()> {
    let changes = WebhookChanges {
        enabled: Some(false),
        disabled_reason: Some(Some(reason)),
        failing_since: Some(hook.failing_since.or(Some(at))),
        updated_at: Some(at),
        ..WebhookChanges::default()
    };
    targets::update_webhook(c, &hook.org, hook.id, &changes)?;
    deliveries::cancel_pending(c, &hook.id.to_string())?;
    tracing::warn!(webhook_id = %hook.id, reason = %reason, "webhook disabled");
    let event = Event::WebhookDisabled {
        id: hook.id,
        url: hook.url.clone(),
        reason,
    };
    events::record(c, &hook.org, &event).map(|_| ())
}
