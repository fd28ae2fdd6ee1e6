//! Prometheus metrics of one service instance, exposed on `GET /metrics` in
//! the text format 0.0.4.
//!
//! - `inboxlink_http_requests_total{method,route,status}` and
//!   `inboxlink_http_request_duration_seconds{method,route}`: every request;
//!   `route` is the matched pattern (`/mailboxes/{id}`), `unmatched` when no
//!   route matched, so the label set stays small whatever paths are requested;
//! - `inboxlink_token_refresh_total{outcome}`: finished token refreshes, `ok`
//!   or the failure class (`transient`, `reauth`, `app_credential`, `setup`;
//!   `internal` for a failure before Microsoft was asked, e.g. a stored token
//!   that does not decrypt);
//! - `inboxlink_checks_total{step,code}`: connection checks, by the first
//!   failed step and its code, or `step="all",code="ok"`;
//! - `inboxlink_mailboxes{status}`: mailboxes by status (as the API shows it),
//!   counted in the database at scrape time;
//! - `inboxlink_auth_refusals_total{reason}`: refused requests, `missing_token`
//!   and `invalid_token` (401) or `forbidden` (403, the roles do not allow it);
//! - `inboxlink_deliveries_total{channel,outcome}` and
//!   `inboxlink_delivery_duration_seconds{channel}`: delivery attempts of this
//!   instance (`webhook` or `email_alert`; `delivered`, `failed` or `gone`);
//! - `inboxlink_delivery_queue_depth`, `inboxlink_delivery_oldest_pending_seconds`
//!   and `inboxlink_webhooks_disabled`: the queue and the disabled endpoints,
//!   over all organisations, counted in the database at scrape time;
//! - `inboxlink_bridge_sessions_total{protocol,outcome}` and
//!   `inboxlink_bridge_sessions_active{protocol}`: the bridge's sessions
//!   (`imap`, `smtp`), by how they ended (`relayed`, `logout`, `quit`,
//!   `refused`, `no_token`, `upstream_refused`, `idle`, …), and those open;
//! - `inboxlink_bridge_logins_refused_total{protocol,reason}`: bridge logins
//!   refused (`unknown`, `wrong`, `expired`, `revoked`, `unavailable`,
//!   `limited`), or
//!   accepted and not relayed (`no_token`, `upstream_refused`,
//!   `upstream_timeout`, `session_limit`);
//! - `inboxlink_bridge_bytes_total{protocol,direction}`: bytes the bridge
//!   relayed after a login, `to_upstream` (from the clients) and `to_client`;
//! - `inboxlink_bridge_upstream_failures_total{protocol,code}`: upstream
//!   logins of the bridge that failed, by the check's code
//!   (`imap_auth_failed`, `smtp_auth_disabled`, `unreachable`, `timeout`, …).
//!
//! The file is long because every metric of the service is declared and
//! documented here, in one registry, so that the list above and the
//! families served are one and the same.

use std::time::Duration;

use crate::codes::Code;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::MailboxStatus;
use crate::idp::Class;

/// What a token refresh came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Ok,
    Failed(Class),
    /// Failed before Microsoft was asked (a bug or a stored value that does not decrypt).
    Internal,
}

impl RefreshOutcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => Code::Ok.as_str(),
            Self::Failed(class) => class_label(class),
            Self::Internal => Code::Internal.as_str(),
        }
    }
}

/// The label of a failure class.
pub fn class_label(class: Class) -> &'static str {
    match class {
        Class::Transient => "transient",
        Class::Reauth => "reauth",
        Class::AppCredential => "app_credential",
        Class::Setup => "setup",
    }
}

/// The reasons of `inboxlink_auth_refusals_total`.
pub const AUTH_REFUSALS: [&str; 3] = [
    Code::MissingToken.as_str(),
    Code::InvalidToken.as_str(),
    Code::Forbidden.as_str(),
];

const STATUSES: [MailboxStatus; 5] = [
    MailboxStatus::Inactive,
    MailboxStatus::Active,
    MailboxStatus::Expiring,
    MailboxStatus::ReauthRequired,
    MailboxStatus::Error,
];

/// The instance's registry and its metrics.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    token_refresh: IntCounterVec,
    checks: IntCounterVec,
    mailboxes: IntGaugeVec,
    keepalive_sweeps: prometheus::IntCounter,
    keepalive_due: prometheus::IntCounter,
    keepalive_failed: prometheus::IntCounter,
    keepalive_last_seconds: prometheus::Gauge,
    auth_refusals: IntCounterVec,
    deliveries: IntCounterVec,
    delivery_duration: HistogramVec,
    queue_depth: prometheus::IntGauge,
    oldest_pending: prometheus::Gauge,
    webhooks_disabled: prometheus::IntGauge,
    bridge_sessions: IntCounterVec,
    bridge_active: IntGaugeVec,
    bridge_refused: IntCounterVec,
    bridge_bytes: IntCounterVec,
    bridge_upstream_failures: IntCounterVec,
    /// Serialises scrapes: each sets the mailbox gauge, then renders.
    scrape: std::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `metric`, registered in `registry`. Names and labels are constants: an
/// invalid or repeated one is a bug.
fn registered<M>(registry: &Registry, metric: prometheus::Result<M>) -> M
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric names");
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = registered(
            &registry,
            IntCounterVec::new(
                Opts::new("inboxlink_http_requests_total", "HTTP requests answered"),
                &["method", "route", "status"],
            ),
        );
        let http_duration = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "inboxlink_http_request_duration_seconds",
                    "Time to answer an HTTP request (until the response head)",
                ),
                &["method", "route"],
            ),
        );
        let token_refresh = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "inboxlink_token_refresh_total",
                    "Finished token refreshes by outcome (ok or the failure class)",
                ),
                &["outcome"],
            ),
        );
        let checks = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "inboxlink_checks_total",
                    "Connection checks by the first failed step and its code (step=all, code=ok when all passed)",
                ),
                &["step", "code"],
            ),
        );
        let mailboxes = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "inboxlink_mailboxes",
                    "Mailboxes by status, over all organisations",
                ),
                &["status"],
            ),
        );
        let keepalive_sweeps = registered(
            &registry,
            prometheus::IntCounter::new(
                "inboxlink_keepalive_sweeps_total",
                "Keep-alive sweeps finished by this instance",
            ),
        );
        let keepalive_due = registered(
            &registry,
            prometheus::IntCounter::new(
                "inboxlink_keepalive_due_total",
                "Grants found due for renewal by the keep-alive",
            ),
        );
        let keepalive_failed = registered(
            &registry,
            prometheus::IntCounter::new(
                "inboxlink_keepalive_failed_total",
                "Grants the keep-alive could not renew (the mailbox says why)",
            ),
        );
        let keepalive_last_seconds = registered(
            &registry,
            prometheus::Gauge::new(
                "inboxlink_keepalive_last_sweep_seconds",
                "How long the last keep-alive sweep took",
            ),
        );
        let auth_refusals = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "inboxlink_auth_refusals_total",
                    "Requests refused: no or an invalid token (401), or roles that do not allow it (403)",
                ),
                &["reason"],
            ),
        );
        for reason in AUTH_REFUSALS {
            auth_refusals.with_label_values(&[reason]);
        }
        let deliveries = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "inboxlink_deliveries_total",
                    "Delivery attempts by channel (webhook, email_alert) and outcome (delivered, failed, gone)",
                ),
                &["channel", "outcome"],
            ),
        );
        for channel in ["webhook", "email_alert"] {
            for outcome in ["delivered", "failed", "gone"] {
                deliveries.with_label_values(&[channel, outcome]);
            }
        }
        let delivery_duration = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "inboxlink_delivery_duration_seconds",
                    "How long a delivery attempt took (a webhook's POST, an alert's SMTP session)",
                ),
                &["channel"],
            ),
        );
        let queue_depth = registered(
            &registry,
            prometheus::IntGauge::new(
                "inboxlink_delivery_queue_depth",
                "Deliveries pending, over all organisations",
            ),
        );
        let oldest_pending = registered(
            &registry,
            prometheus::Gauge::new(
                "inboxlink_delivery_oldest_pending_seconds",
                "Age of the oldest pending delivery (0 when none is pending)",
            ),
        );
        let webhooks_disabled = registered(
            &registry,
            prometheus::IntGauge::new(
                "inboxlink_webhooks_disabled",
                "Disabled webhook endpoints, over all organisations",
            ),
        );
        let bridge_sessions = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "inboxlink_bridge_sessions_total",
                    "Bridge sessions by protocol (imap, smtp) and how they ended",
                ),
                &["protocol", "outcome"],
            ),
        );
        let bridge_active = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "inboxlink_bridge_sessions_active",
                    "Bridge sessions open on this instance, by protocol",
                ),
                &["protocol"],
            ),
        );
        let bridge_refused = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "inboxlink_bridge_logins_refused_total",
                    "Bridge logins refused by protocol and reason (unknown, wrong, expired, revoked, unavailable, limited; no_token, upstream_refused, upstream_timeout, session_limit)",
                ),
                &["protocol", "reason"],
            ),
        );
        let bridge_bytes = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "inboxlink_bridge_bytes_total",
                    "Bytes the bridge relayed after a login, by protocol and direction (to_upstream, to_client)",
                ),
                &["protocol", "direction"],
            ),
        );
        let bridge_upstream_failures = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "inboxlink_bridge_upstream_failures_total",
                    "Upstream logins of the bridge that failed, by protocol and the check's code",
                ),
                &["protocol", "code"],
            ),
        );
        for protocol in ["imap", "smtp"] {
            bridge_active.with_label_values(&[protocol]);
            for direction in ["to_upstream", "to_client"] {
                bridge_bytes.with_label_values(&[protocol, direction]);
            }
        }
        // Every outcome and status is shown from the start, at zero.
        for outcome in [
            RefreshOutcome::Ok,
            RefreshOutcome::Failed(Class::Transient),
            RefreshOutcome::Failed(Class::Reauth),
            RefreshOutcome::Failed(Class::AppCredential),
            RefreshOutcome::Failed(Class::Setup),
            RefreshOutcome::Internal,
        ] {
            token_refresh.with_label_values(&[outcome.label()]);
        }
        checks.with_label_values(&["all", "ok"]);
        for status in STATUSES {
            mailboxes.with_label_values(&[status.as_str()]);
        }
        Self {
            registry,
            http_requests,
            http_duration,
            token_refresh,
            checks,
            mailboxes,
            keepalive_sweeps,
            keepalive_due,
            keepalive_failed,
            keepalive_last_seconds,
            auth_refusals,
            deliveries,
            delivery_duration,
            queue_depth,
            oldest_pending,
            webhooks_disabled,
            bridge_sessions,
            bridge_active,
            bridge_refused,
            bridge_bytes,
            bridge_upstream_failures,
            scrape: std::sync::Mutex::new(()),
        }
    }

    /// A bridge session opened (`opened`) or ended with `outcome`.
    pub fn bridge_session(&self, protocol: &str, ended: Option<&str>) {
        match ended {
            None => self.bridge_active.with_label_values(&[protocol]).inc(),
            Some(outcome) => {
                self.bridge_active.with_label_values(&[protocol]).dec();
                self.bridge_sessions
                    .with_label_values(&[protocol, outcome])
                    .inc();
            }
        }
    }

    /// A bridge login refused for `reason`.
    pub fn bridge_login_refused(&self, protocol: &str, reason: &str) {
        self.bridge_refused
            .with_label_values(&[protocol, reason])
            .inc();
    }

    /// Bytes relayed by a bridge session: from its client, and to it.
    pub fn bridge_bytes(&self, protocol: &str, to_upstream: u64, to_client: u64) {
        let count = |direction, n| {
            self.bridge_bytes
                .with_label_values(&[protocol, direction])
                .inc_by(n);
        };
        count("to_upstream", to_upstream);
        count("to_client", to_client);
    }

    /// A bridge login the mailbox's server refused or did not answer, by the check's code.
    pub fn bridge_upstream_failure(&self, protocol: &str, code: &str) {
        self.bridge_upstream_failures
            .with_label_values(&[protocol, code])
            .inc();
    }

    /// Counts one answered request. `route` is the matched pattern, or `None`.
    pub fn observe_request(
        &self,
        method: &str,
        route: Option<&str>,
        status: u16,
        elapsed: Duration,
    ) {
        let method = known_method(method);
        let route = route.unwrap_or("unmatched");
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a refused request; `reason` is one of [`AUTH_REFUSALS`].
    pub fn auth_refusal(&self, reason: &'static str) {
        if AUTH_REFUSALS.contains(&reason) {
            self.auth_refusals.with_label_values(&[reason]).inc();
        }
    }

    pub fn token_refresh(&self, outcome: RefreshOutcome) {
        self.token_refresh
            .with_label_values(&[outcome.label()])
            .inc();
    }

    /// Counts a finished keep-alive sweep.
    /// Counts a keep-alive sweep: how many grants were due, how many failed.
    pub fn keepalive_sweep(&self, due: usize, failed: usize, took: Duration) {
        self.keepalive_sweeps.inc();
        self.keepalive_due.inc_by(due as u64);
        self.keepalive_failed.inc_by(failed as u64);
        self.keepalive_last_seconds.set(took.as_secs_f64());
    }

    /// Counts a delivery attempt.
    pub fn delivery(&self, channel: &str, outcome: &str, took: Duration) {
        self.deliveries.with_label_values(&[channel, outcome]).inc();
        self.delivery_duration
            .with_label_values(&[channel])
            .observe(took.as_secs_f64());
    }

    /// Sets the queue gauges: pending deliveries, the oldest's age, disabled webhooks.
    pub fn delivery_queue(&self, depth: i64, oldest_seconds: f64, disabled: i64) {
        self.queue_depth.set(depth);
        self.oldest_pending.set(oldest_seconds);
        self.webhooks_disabled.set(disabled);
    }

    /// Counts a check: the first failed step and its code, or `("all", "ok")`.
    pub fn check(&self, step: &str, code: &str) {
        self.checks.with_label_values(&[step, code]).inc();
    }

    /// The text exposition format 0.0.4, with the mailbox counts replaced by
    /// `counts` (statuses not given are shown as 0). `None` when they could
    /// not be counted: the series are left out rather than show stale numbers.
    pub fn render_with_mailboxes(&self, counts: Option<&[(MailboxStatus, i64)]>) -> String {
        let _one_at_a_time = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.set_mailboxes(counts);
        self.render()
    }

    fn set_mailboxes(&self, counts: Option<&[(MailboxStatus, i64)]>) {
        self.mailboxes.reset();
        let Some(counts) = counts else {
            return;
        };
        for status in STATUSES {
            self.mailboxes.with_label_values(&[status.as_str()]).set(0);
        }
        for (status, n) in counts {
            self.mailboxes.with_label_values(&[status.as_str()]).set(*n);
        }
    }

    /// The text exposition format 0.0.4.
    fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Standard methods as themselves, anything else as `other` (bounded labels).
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_families_with_labels() {
        let m = Metrics::new();
        m.observe_request(
            "GET",
            Some("/mailboxes/{id}"),
            404,
            Duration::from_millis(3),
        );
        m.observe_request("BREW", None, 404, Duration::from_millis(1));
        m.token_refresh(RefreshOutcome::Failed(Class::Reauth));
        m.check("imap_auth", "imap_auth_failed");
        m.auth_refusal("forbidden");
        let text = m.render_with_mailboxes(Some(&[(MailboxStatus::Active, 2)]));
        for line in [
            r#"inboxlink_http_requests_total{method="GET",route="/mailboxes/{id}",status="404"} 1"#,
            r#"inboxlink_http_requests_total{method="other",route="unmatched",status="404"} 1"#,
            r#"inboxlink_http_request_duration_seconds_count{method="GET",route="/mailboxes/{id}"} 1"#,
            r#"inboxlink_token_refresh_total{outcome="reauth"} 1"#,
            r#"inboxlink_token_refresh_total{outcome="ok"} 0"#,
            r#"inboxlink_checks_total{code="imap_auth_failed",step="imap_auth"} 1"#,
            r#"inboxlink_mailboxes{status="active"} 2"#,
            r#"inboxlink_mailboxes{status="error"} 0"#,
            r#"inboxlink_auth_refusals_total{reason="forbidden"} 1"#,
            r#"inboxlink_auth_refusals_total{reason="missing_token"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(
            !m.render_with_mailboxes(None)
                .contains("inboxlink_mailboxes{")
        );
    }
}
