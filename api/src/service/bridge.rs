//! `GET /bridge` (any role): where the bridge's listeners are and which
//! certificate they present, for the people who set up the clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Services;
use super::audit::Audit;
use super::lifecycle::{self, Change, Detail};
use crate::auth::{Permission, Principal};
use crate::domain::{Actor, AuditAction, Cloud, MailboxId, MailboxStatus, OrgId};
use crate::error::Result;
use crate::mail::StepFailure;
use crate::service::bridge_passwords::BRIDGE_ACTOR;

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
    /// The check's one-time logins through the listeners.
    pub probes: Arc<BridgeProbes>,
}

/// One-time credentials with which the connection check logs in through
/// the bridge's own IMAP listener: issued for one mailbox, good for one
/// login within [`PROBE_LIFETIME`], kept only in this instance's memory
/// (the check connects to this instance's listener).
#[derive(Debug, Default)]
pub struct BridgeProbes {
    issued: Mutex<HashMap<String, Probe>>,
}

#[derive(Debug)]
struct Probe {
    username: String,
    org: OrgId,
    mailbox: MailboxId,
    cloud: Cloud,
    until: Instant,
}

/// How long a probe's credential is good for.
pub const PROBE_LIFETIME: Duration = Duration::from_secs(60);
/// What every probe's password starts with; a bridge password cannot (it
/// is in groups of four letters and digits).
const PROBE_PREFIX: &str = "inboxlink-check-";

impl BridgeProbes {
    /// A new one-time password for `username` naming the mailbox.
    pub fn issue(
        &self,
        username: &str,
        org: &OrgId,
        mailbox: MailboxId,
        cloud: Cloud,
    ) -> SecretString {
        use rand::distr::{Alphanumeric, SampleString};
        let secret = format!(
            "{PROBE_PREFIX}{}",
            Alphanumeric.sample_string(&mut rand::rng(), 32)
        );
        let mut issued = self.issued.lock().expect("probe lock");
        let now = Instant::now();
        issued.retain(|_, p| p.until > now);
        issued.insert(
            secret.clone(),
            Probe {
                username: username.to_owned(),
                org: org.clone(),
                mailbox,
                cloud,
                until: now + PROBE_LIFETIME,
            },
        );
        SecretString::from(secret)
    }

    /// The mailbox a probe's login is for, once: `None` for any other
    /// password (which is then checked as a bridge password).
    pub fn take(&self, username: &str, password: &str) -> Option<(OrgId, MailboxId, Cloud)> {
        if !password.starts_with(PROBE_PREFIX) {
            return None;
        }
        let probe = self.issued.lock().expect("probe lock").remove(password)?;
        let good = probe.until > Instant::now() && probe.username == username;
        good.then_some((probe.org, probe.mailbox, probe.cloud))
    }
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

/// Which of the mailbox's servers a bridge session logs in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Imap,
    Smtp,
}

impl Upstream {
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Imap => "IMAP",
            Upstream::Smtp => "SMTP",
        }
    }

    /// The metrics' `protocol` label.
    pub fn label(self) -> &'static str {
        match self {
            Upstream::Imap => "imap",
            Upstream::Smtp => "smtp",
        }
    }
}

impl Services {
    /// [`Self::bridge_upstream`] of a server that accepted the token, off
    /// the login's path (it only matters to a mailbox a server refused before).
    pub(crate) fn bridge_upstream_accepted(&self, org: &OrgId, id: MailboxId) {
        let (services, org) = (self.clone(), org.clone());
        tokio::spawn(async move {
            // Which server accepted does not matter to the change.
            services
                .bridge_upstream(&org, id, Upstream::Imap, Ok(()))
                .await;
        });
    }

    /// What a bridge login learnt of the mailbox's server: it accepted the
    /// token (`Ok`), or answered (`Err`). A refusal of the token turns an
    /// `active` mailbox `error`, with the server's answer and the fix, and
    /// is audited; an acceptance turns such a mailbox `active` again. Other
    /// failures (the server unreachable, busy) change nothing. Counted in
    /// the metrics either way.
    pub(crate) async fn bridge_upstream(
        &self,
        org: &OrgId,
        id: MailboxId,
        upstream: Upstream,
        result: std::result::Result<(), &StepFailure>,
    ) {
        let change = match result {
            Ok(()) => {
                // Nearly always nothing to do: a read, not a write transaction per login.
                let rorg = org.clone();
                let read = move |c: &mut _| crate::store::tokens::get(c, &rorg, id);
                let refused_before = self.store.query(read).await.is_ok_and(|row| {
                    row.status == MailboxStatus::Error
                        && row.status_code.is_some_and(lifecycle::upstream_refusal)
                });
                if !refused_before {
                    return;
                }
                Change::UpstreamAccepted
            }
            Err(failure) => {
                self.metrics
                    .bridge_upstream_failure(upstream.label(), failure.code.as_str());
                if !lifecycle::upstream_refusal(failure.code) {
                    return;
                }
                let said = failure
                    .response
                    .as_deref()
                    .map(|r| format!(" It answered: {r}"))
                    .unwrap_or_default();
                Change::UpstreamRefused {
                    detail: Detail::new(
                        failure.code,
                        format!(
                            "The mailbox's {} server refused Inboxlink's token at a bridge login.{said}",
                            upstream.as_str()
                        ),
                        failure.hint.clone(),
                    ),
                }
            }
        };
        let refused = matches!(change, Change::UpstreamRefused { .. });
        let code = result.err().map(|f| f.code);
        let org = org.clone();
        let written = self
            .store
            .write(move |c| {
                let audit = code.map(|code| {
                    Audit::mailbox(
                        &org,
                        Actor::Caller(BRIDGE_ACTOR.to_owned()),
                        AuditAction::BridgeUpstreamRefused,
                        id,
                    )
                    .outcome(code)
                    .detail(serde_json::json!({ "server": upstream.as_str() }))
                });
                lifecycle::transition(c, &org, id, change, audit).map(drop)
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(mailbox_id = %id, refused, error = %e, "bridge: the mailbox's state was not updated");
        }
    }
}
