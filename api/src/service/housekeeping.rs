//! Housekeeping, every minute beside the keep-alive: deletes expired
//! sign-ins and admin-consent requests (requests no longer do), and forgets
//! rate-limit buckets of callers that stopped calling, and deletes events
//! older than `INBOXLINK_EVENT_RETENTION_DAYS` with their deliveries, so
//! nothing grows without bound.

use std::time::Duration;

use super::Services;
use crate::error::Result;
use crate::store::{authorizations, events, now};

/// How often [`run`] does a pass.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Housekeeping {
    /// Expired authorizations deleted (of every organisation).
    pub expired_authorizations: usize,
    /// Callers the rate limiter still remembers.
    pub limited_callers: usize,
    /// Events deleted after the retention time (of every organisation).
    pub old_events: usize,
}

impl Services {
    /// One housekeeping pass.
    pub async fn housekeeping(&self) -> Result<Housekeeping> {
        let limited_callers = self.limits.retain_recent();
        let expired_authorizations = self
            .store
            .run(|c| authorizations::purge_expired(c, now()))
            .await?;
        let before = now() - self.notify.event_retention;
        let old_events = self
            .store
            .run(move |c| events::purge_events(c, before))
            .await?;
        Ok(Housekeeping {
            expired_authorizations,
            limited_callers,
            old_events,
        })
    }
}

/// A pass every [`INTERVAL`], until the task is aborted.
pub async fn run(services: Services) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match services.housekeeping().await {
            Ok(done) => tracing::debug!(
                expired_authorizations = done.expired_authorizations,
                limited_callers = done.limited_callers,
                old_events = done.old_events,
                "housekeeping done"
            ),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; trying again next time"),
        }
    }
}
