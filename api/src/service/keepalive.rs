//! The keep-alive: renews delegated grants before they age out, whether or
//! not anybody asks for a token.
//!
//! A refresh token lives 90 days from its issue, and each refresh issues a
//! new one. A mailbox that no integrating system reads for 90 days would die
//! (the "day 90" failure of other products), so every instance sweeps
//! periodically (`INBOXLINK_KEEPALIVE_INTERVAL_SECONDS`, first at start-up) and
//! refreshes the `active` delegated mailboxes whose refresh token is older than
//! `INBOXLINK_KEEPALIVE_AFTER_DAYS`, `INBOXLINK_KEEPALIVE_CONCURRENCY` at a
//! time. Each refresh goes through the token keeper, with its guards: instances
//! sweeping at once never refresh one mailbox twice. A failure is recorded on
//! the mailbox as it would be for a caller (`reauth_required`, an app
//! credential problem, or a transient `last_error`), so a revoked grant shows
//! up within one sweep instead of when someone next needs the mailbox. The
//! sweep also gives the client-secret expiry notices ([`super::notices`]).

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::Services;
use crate::store::{now, tokens};

/// At most this many grants per sweep; the rest wait for the next one.
const MAX_PER_SWEEP: i64 = 100_000;

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Grants that were due.
    pub due: usize,
    /// Of them, renewed (by this sweep or by someone else meanwhile).
    pub renewed: usize,
    /// Of them, not renewed: the mailbox now says why.
    pub failed: usize,
    /// Client-secret expiry notices given ([`super::notices`]).
    pub secret_notices: usize,
}

impl Services {
    /// Renews every grant that is due now, and reports what happened.
    pub async fn keepalive_sweep(&self) -> crate::error::Result<Sweep> {
        let started = Instant::now();
        let at = now();
        let issued_before = at - chrono::Duration::days(self.tokens.keepalive_after_days);
        let due = self
            .store
            .run(move |c| tokens::due_for_keepalive(c, issued_before, at, MAX_PER_SWEEP))
            .await?;
        let mut sweep = Sweep {
            due: due.len(),
            ..Sweep::default()
        };
        match self.secret_notices(at.date()).await {
            Ok(n) => sweep.secret_notices = n,
            Err(e) => {
                tracing::warn!(error = %e, "the secret-expiry notices failed; trying again at the next sweep")
            }
        }
        let mut results = futures_util::stream::iter(due)
            .map(|(org, id)| {
                // A task each: the refreshes run on all workers, and a panic
                // in one cannot end the sweep.
                let services = self.clone();
                tokio::spawn(async move { services.keep_alive(&org, id, at).await })
            })
            .buffer_unordered(self.tokens.keepalive_concurrency);
        while let Some(joined) = results.next().await {
            match joined
                .map_err(|e| anyhow::anyhow!(e).into())
                .and_then(|r| r)
            {
                Ok(()) => sweep.renewed += 1,
                Err(e) => {
                    sweep.failed += 1;
                    let e: crate::error::Error = e;
                    tracing::debug!(error = %e, "a keep-alive refresh failed");
                }
            }
        }
        self.metrics
            .keepalive_sweep(sweep.due, sweep.failed, started.elapsed());
        if sweep.due > 0 {
            tracing::info!(
                due = sweep.due,
                renewed = sweep.renewed,
                failed = sweep.failed,
                seconds = started.elapsed().as_secs_f64(),
                "keep-alive sweep"
            );
        }
        Ok(sweep)
    }
}

/// Sweeps now and then every `interval`, until the task is dropped.
pub async fn run(services: Services, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = services.keepalive_sweep().await {
            tracing::warn!(error = %e, "keep-alive sweep failed; trying again at the next interval");
        }
    }
}
