//! Events, webhooks and e-mail alerts: how long events are kept, how
//! deliveries are retried and claimed, which webhook URLs are allowed, and
//! where an alert's link points.

use std::time::Duration;

use url::Url;

use super::ConfigError;
use super::raw::{RawSettings, given};
use super::validate::{number_in, parse, seconds};
use crate::hooks::schedule::{self, Schedule};

/// The settings of the event feed and its deliveries.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// `INBOXLINK_EVENT_RETENTION_DAYS` (default 30): events (and their
    /// deliveries) older than this are deleted.
    pub event_retention: chrono::Duration,
    /// `INBOXLINK_WEBHOOK_RETRY_SCHEDULE`.
    pub schedule: Schedule,
    /// `INBOXLINK_WEBHOOK_ALLOW_PRIVATE`: `http://` and private addresses allowed.
    pub allow_private: bool,
    /// `INBOXLINK_WEBHOOK_DISABLE_AFTER_HOURS` (default 120, 5 days): an
    /// endpoint failing this long is disabled.
    pub disable_after: chrono::Duration,
    /// `INBOXLINK_DELIVERY_POLL_MS` (default 200): how often an instance looks for due deliveries.
    pub poll: Duration,
    /// `INBOXLINK_DELIVERY_CONCURRENCY` (default 16): deliveries in flight per instance.
    pub concurrency: usize,
    /// `INBOXLINK_DELIVERY_ENDPOINT_CONCURRENCY` (default 4, at most
    /// `concurrency`): attempts in flight to one endpoint (a webhook or an
    /// e-mail alert) per instance, so endpoints that hang or answer slowly
    /// leave the other slots to the rest.
    pub endpoint_concurrency: usize,
    /// `INBOXLINK_DELIVERY_LEASE_SECONDS` (default 60): how long a claimed
    /// delivery is an instance's; longer than an attempt can take.
    pub lease: Duration,
    /// `INBOXLINK_FRONTEND_URL`: e-mail alerts link to `{frontend}/mailboxes/{id}`.
    pub frontend_url: Option<Url>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            event_retention: chrono::Duration::days(30),
            schedule: Schedule::default(),
            allow_private: false,
            disable_after: chrono::Duration::hours(120),
            poll: Duration::from_millis(200),
            concurrency: 16,
            endpoint_concurrency: 4,
            lease: Duration::from_secs(60),
            frontend_url: None,
        }
    }
}

pub(super) fn validate(raw: &RawSettings) -> Result<NotifySettings, ConfigError> {
    let days: i64 = parse(
        given!(raw.event_retention_days),
        "30",
        number_in(1..=3650, " days"),
    )?;
    let hours: i64 = parse(
        given!(raw.webhook_disable_after_hours),
        "120",
        number_in(0..=8760, " hours"),
    )?;
    let frontend_url = match raw.frontend_url.as_deref() {
        None => None,
        Some(v) => Some(
            Url::parse(v)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| ConfigError::new("FRONTEND_URL", "must be an http(s) URL"))?,
        ),
    };
    let concurrency: usize = parse(
        given!(raw.delivery_concurrency),
        "16",
        number_in(1..=1024, ""),
    )?;
    let endpoint_concurrency: usize = parse(
        given!(raw.delivery_endpoint_concurrency),
        "4",
        number_in(1..=1024, ""),
    )?;
    if endpoint_concurrency > concurrency {
        return Err(ConfigError::new(
            "DELIVERY_ENDPOINT_CONCURRENCY",
            "must not be more than INBOXLINK_DELIVERY_CONCURRENCY",
        ));
    }
    Ok(NotifySettings {
        event_retention: chrono::Duration::days(days),
        schedule: parse(
            given!(raw.webhook_retry_schedule),
            schedule::DEFAULT,
            Schedule::parse,
        )?,
        allow_private: parse(given!(raw.webhook_allow_private), "false", |v| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("must be `true` or `false`".into()),
        })?,
        disable_after: chrono::Duration::hours(hours),
        poll: Duration::from_millis(parse(
            given!(raw.delivery_poll_ms),
            "200",
            number_in(10..=60_000, " milliseconds"),
        )?),
        concurrency,
        endpoint_concurrency,
        // An attempt takes at most the 10 s deadline: a lease outlives it.
        lease: seconds(given!(raw.delivery_lease_seconds), "60", 15..=3600)?,
        frontend_url,
    })
}
