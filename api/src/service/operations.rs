//! What operators see of a running instance: the metrics exposition.

use chrono::Utc;

use super::Services;
use crate::store::operations;

impl Services {
    /// The metrics in the Prometheus text format, with the mailbox counts
    /// taken from the database now (left out when the database does not answer).
    pub async fn metrics_text(&self) -> String {
        let expiring_before = Utc::now().naive_utc()
            - chrono::Duration::days(
                self.tokens.refresh_token_lifetime_days - self.tokens.expiring_days,
            );
        let counts = self
            .store
            .run(move |c| operations::count_mailboxes_by_status(c, expiring_before))
            .await;
        match counts {
            Ok(counts) => self.metrics.render_with_mailboxes(Some(&counts)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the mailboxes for the metrics");
                self.metrics.render_with_mailboxes(None)
            }
        }
    }
}
