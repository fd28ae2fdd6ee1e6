//! Use cases, independent of HTTP: each takes the caller's organisation and
//! validated input, talks to the [`Store`], and returns contract types that
//! serialize as the API's JSON.

pub mod access_token;
pub mod alert_text;
pub mod app_credentials;
pub mod audit;
pub mod bridge;
pub mod bridge_passwords;
pub mod callback;
pub mod check;
pub mod consent;
pub mod delivery;
mod device_code;
pub mod email_alerts;
pub mod events;
pub mod housekeeping;
pub mod keepalive;
pub mod keeper;
pub mod lifecycle;
pub mod mailboxes;
pub mod notices;
pub mod operations;
mod paging;
pub mod setup;
pub mod signin;
pub mod webhooks;

use std::sync::Arc;

use crate::config::TokenSettings;
use crate::crypto::Cipher;
use crate::idp::Microsoft;
use crate::store::Store;

pub use paging::PageRequest;
pub(crate) use paging::{next_cursor, page_type};

/// Shared state of the use cases.
#[derive(Clone)]
pub struct Services {
    pub store: Store,
    pub cipher: Arc<Cipher>,
    /// `{public}/oauth/callback`, the redirect URI to register in Entra ID.
    pub redirect_uri: Arc<str>,
    /// Base URL of the service (`{public}`).
    pub public_url: Arc<str>,
    pub tokens: TokenSettings,
    pub return_url_allowlist: Arc<[url::Url]>,
    pub idp: Microsoft,
    pub keeper: Arc<keeper::TokenKeeper>,
    pub mail: crate::mail::MailRouting,
    /// This instance's Prometheus metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The metrics' mailbox counts, cached briefly.
    pub metrics_counts: Arc<operations::MailboxCounts>,
    /// Per-caller rate limits of the costly operations (this instance's buckets).
    pub limits: Arc<crate::limits::Limits>,
    /// Events, webhooks and e-mail alerts.
    pub notify: Arc<crate::config::notify::NotifySettings>,
    /// Posts webhook deliveries (the URL guard at every connection).
    pub webhook_sender: crate::hooks::client::Sender,
    /// The bridge's listeners and certificate on this instance.
    pub bridge: Arc<bridge::BridgeStatus>,
}

/// Serde helper: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

/// UTC timestamp as stored -> as shown.
pub(crate) fn utc(t: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}
