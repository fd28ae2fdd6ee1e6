//! `GET /bridge` (any role): where the bridge's listeners are and which
//! certificate they present, for the people who set up the clients.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Services;
use crate::auth::{Permission, Principal};
use crate::error::Result;

/// What the bridge runs with on this instance (set at start-up).
#[derive(Debug, Clone, Default)]
pub struct BridgeStatus {
    pub imap: Option<SocketAddr>,
    pub smtp: Option<SocketAddr>,
    pub smtps: Option<SocketAddr>,
    /// SHA-256 of the certificate (`AB:CD:…`), when a listener runs.
    pub fingerprint: Option<String>,
    /// The certificate was generated into the data dir (self-signed).
    pub self_signed: bool,
}

/// One listener.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BridgeListener {
    pub enabled: bool,
    /// The address it listens on (`host:port`), when enabled.
    pub address: Option<String>,
}

impl BridgeListener {
    fn of(addr: Option<SocketAddr>) -> Self {
        Self {
            enabled: addr.is_some(),
            address: addr.map(|a| a.to_string()),
        }
    }
}

/// The bridge's listeners and their certificate.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BridgeInfo {
    /// IMAP over implicit TLS (`INBOXLINK_BRIDGE_IMAP_BIND`, like port 993).
    pub imap: BridgeListener,
    /// SMTP submission with STARTTLS (`INBOXLINK_BRIDGE_SMTP_BIND`, like port 587).
    pub smtp: BridgeListener,
    /// SMTP submission over implicit TLS (`INBOXLINK_BRIDGE_SMTPS_BIND`, like port 465).
    pub smtps: BridgeListener,
    /// SHA-256 fingerprint of the certificate the listeners present
    /// (`AB:CD:…`), to pin or compare in a client; `null` when no listener runs.
    pub tls_fingerprint_sha256: Option<String>,
    /// Whether the certificate is the self-signed one Inboxlink generated
    /// (clients must be told to trust it, or pin the fingerprint).
    pub self_signed: bool,
}

impl Services {
    pub async fn bridge_get(&self, who: &Principal) -> Result<BridgeInfo> {
        who.require(Permission::BridgeRead)?;
        let s = &self.bridge;
        Ok(BridgeInfo {
            imap: BridgeListener::of(s.imap),
            smtp: BridgeListener::of(s.smtp),
            smtps: BridgeListener::of(s.smtps),
            tls_fingerprint_sha256: s.fingerprint.clone(),
            self_signed: s.self_signed && s.fingerprint.is_some(),
        })
    }
}
