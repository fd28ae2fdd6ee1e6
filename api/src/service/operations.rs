//! What operators see of a running instance: the metrics exposition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::Services;
use crate::store::operations;

/// Mailboxes by status, as counted in the database.
type Counts = Vec<(crate::domain::MailboxStatus, i64)>;

/// The mailbox counts of the metrics, taken from the database at most once
/// per `ttl` (`INBOXLINK_METRICS_CACHE_SECONDS`): scrapes within it reuse
/// them, and concurrent scrapes wait for the one query under way.
#[derive(Debug)]
pub struct MailboxCounts {
    ttl: Duration,
    /// When the counts were taken, and the counts.
    cached: tokio::sync::Mutex<Option<(Instant, Counts)>>,
    queries: AtomicU64,
}

impl MailboxCounts {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            cached: tokio::sync::Mutex::new(None),
            queries: AtomicU64::new(0),
        }
    }

    /// How many times the counts were taken from the database.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Default for MailboxCounts {
    fn default() -> Self {
        Self::new(Duration::from_secs(15))
    }
}

impl Services {
    /// The metrics in the Prometheus text format, with the mailbox counts
    /// from the database (cached briefly; left out when the database does not answer).
    pub async fn metrics_text(&self) -> String {
        let counts = self.mailbox_counts().await;
        let queue = self
            .store
            .query(|c| {
                let (depth, oldest) = crate::store::deliveries::queue(c)?;
                let disabled = crate::store::targets::count_disabled_webhooks(c)?;
                Ok((depth, oldest, disabled))
            })
            .await;
        if let Ok((depth, oldest, disabled)) = queue {
            let age = oldest.map_or(0.0, |o| {
                (crate::store::now() - o).num_milliseconds().max(0) as f64 / 1000.0
            });
            self.metrics.delivery_queue(depth, age, disabled);
        }
        self.metrics.render_with_mailboxes(counts.as_deref())
    }

    async fn mailbox_counts(&self) -> Option<Counts> {
        let cache = &self.metrics_counts;
        // Held across the query: concurrent scrapes share its result.
        let mut cached = cache.cached.lock().await;
        if let Some((at, counts)) = cached.as_ref()
            && at.elapsed() < cache.ttl
        {
            return Some(counts.clone());
        }
        let expiring_before = Utc::now().naive_utc()
            - chrono::Duration::days(
                self.tokens.refresh_token_lifetime_days - self.tokens.expiring_days,
            );
        cache.queries.fetch_add(1, Ordering::Relaxed);
        let counts = self
            .store
            .run(move |c| operations::count_mailboxes_by_status(c, expiring_before))
            .await;
        match counts {
            Ok(counts) => {
                *cached = Some((Instant::now(), counts.clone()));
                Some(counts)
            }
            Err(e) => {
                // Not cached: the next scrape asks again.
                tracing::warn!(error = %e, "cannot count the mailboxes for the metrics");
                None
            }
        }
    }
}
