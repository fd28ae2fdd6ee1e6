//! The bridge's listeners (IMAP with implicit TLS, SMTP submission with
//! STARTTLS, SMTP with implicit TLS), their certificate, and the limits of
//! their sessions. Every listener is off unless its address is given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::raw::{RawSettings, given};
use super::validate::{number_in, parse, seconds, socket_addr};

/// Where the bridge's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeCertificate {
    /// `INBOXLINK_BRIDGE_TLS_CERT_FILE` and `INBOXLINK_BRIDGE_TLS_KEY_FILE` (PEM).
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate generated into the data dir on the first
    /// start (never overwritten).
    Generated,
}

#[derive(Debug, Clone)]
pub struct BridgeSettings {
    /// `INBOXLINK_BRIDGE_IMAP_BIND`: IMAP over implicit TLS (like port 993).
    pub imap_bind: Option<SocketAddr>,
    /// `INBOXLINK_BRIDGE_SMTP_BIND`: SMTP submission, STARTTLS required (like 587).
    pub smtp_bind: Option<SocketAddr>,
    /// `INBOXLINK_BRIDGE_SMTPS_BIND`: SMTP submission over implicit TLS (like 465).
    pub smtps_bind: Option<SocketAddr>,
    pub certificate: BridgeCertificate,
    /// `INBOXLINK_BRIDGE_SESSIONS_PER_MAILBOX` (default 10): open sessions
    /// of one mailbox through this instance.
    pub sessions_per_mailbox: usize,
    /// `INBOXLINK_BRIDGE_IMAP_IDLE_SECONDS` (default 1800, RFC 3501's 30
    /// minutes): a session in which neither side sent anything this long ends.
    pub imap_idle: Duration,
    /// How often an open session checks that its bridge password was not
    /// revoked and has not expired (fixed; tests shorten it).
    pub password_recheck: Duration,
    /// How long a user name or an address is first refused after its
    /// failed logins (fixed at 1 s, doubling; tests lengthen it).
    pub failed_login_wait: Duration,
}

impl BridgeSettings {
    /// Whether any listener is configured.
    pub fn enabled(&self) -> bool {
        self.imap_bind.is_some() || self.smtp_bind.is_some() || self.smtps_bind.is_some()
    }
}

impl Default for BridgeSettings {
    fn default() -> Self {
        Self {
            imap_bind: None,
            smtp_bind: None,
            smtps_bind: None,
            certificate: BridgeCertificate::Generated,
            sessions_per_mailbox: 10,
            imap_idle: Duration::from_secs(1800),
            password_recheck: Duration::from_secs(30),
            failed_login_wait: Duration::from_secs(1),
        }
    }
}

pub(super) fn validate(raw: &RawSettings, api: SocketAddr) -> Result<BridgeSettings, ConfigError> {
    let bind = |g: super::raw::Given<'_>, example: &'static str| match g.value {
        None => Ok(None),
        Some(_) => parse(g, "", socket_addr(example)).map(Some),
    };
    let imap_bind = bind(given!(raw.bridge_imap_bind), "0.0.0.0:993")?;
    let smtp_bind = bind(given!(raw.bridge_smtp_bind), "0.0.0.0:587")?;
    let smtps_bind = bind(given!(raw.bridge_smtps_bind), "0.0.0.0:465")?;
    let named = [
        ("BRIDGE_IMAP_BIND", imap_bind),
        ("BRIDGE_SMTP_BIND", smtp_bind),
        ("BRIDGE_SMTPS_BIND", smtps_bind),
    ];
    for (i, (name, addr)) in named.iter().enumerate() {
        let Some(addr) = addr.filter(|a| a.port() != 0) else {
            continue;
        };
        if addr == api {
            return Err(ConfigError::new(
                name,
                format!("{addr} is INBOXLINK_BIND's address: give each listener its own"),
            ));
        }
        if let Some((other, _)) = named[..i].iter().find(|(_, a)| *a == Some(addr)) {
            return Err(ConfigError::new(
                name,
                format!("{addr} is also INBOXLINK_{other}: give each listener its own"),
            ));
        }
    }
    let file = |v: Option<&str>| v.map(PathBuf::from);
    let certificate = match (
        file(raw.bridge_tls_cert_file.as_deref()),
        file(raw.bridge_tls_key_file.as_deref()),
    ) {
        (Some(cert), Some(key)) => BridgeCertificate::Files { cert, key },
        (None, None) => BridgeCertificate::Generated,
        (Some(_), None) => {
            return Err(ConfigError::new(
                "BRIDGE_TLS_KEY_FILE",
                "INBOXLINK_BRIDGE_TLS_CERT_FILE is set: give the certificate's private key too (PEM)",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "BRIDGE_TLS_CERT_FILE",
                "INBOXLINK_BRIDGE_TLS_KEY_FILE is set: give its certificate (chain) too (PEM)",
            ));
        }
    };
    Ok(BridgeSettings {
        imap_bind,
        smtp_bind,
        smtps_bind,
        certificate,
        sessions_per_mailbox: parse(
            given!(raw.bridge_sessions_per_mailbox),
            "10",
            number_in(1..=1000, ""),
        )?,
        imap_idle: seconds(given!(raw.bridge_imap_idle_seconds), "1800", 1..=86_400)?,
        password_recheck: BridgeSettings::default().password_recheck,
        failed_login_wait: BridgeSettings::default().failed_login_wait,
    })
}
