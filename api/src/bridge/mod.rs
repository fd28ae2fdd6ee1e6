//! The bridge: a second front door beside HTTP, for legacy clients that can
//! only log in with a user name and a password. A listener takes a bridge
//! password ([`crate::service::bridge_passwords`]), asks the token keeper
//! for the mailbox's token exactly as the access-token endpoint does, opens
//! the upstream session through the same `mail` adapter the check uses
//! (XOAUTH2), and from then on relays the session's bytes unchanged.
//!
//! Here: binding the listeners at start-up, and running them beside the
//! HTTP server. [`imap`] is the IMAP listener, [`sessions`] the per-mailbox
//! session limit, [`smtp`] the SMTP submission listeners, [`tls`] the
//! certificate.

mod failures;
mod imap;
mod sessions;
mod smtp;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};

use crate::config::bridge::BridgeSettings;
use crate::service::Services;
use crate::service::bridge::BridgeStatus;
use crate::service::bridge_passwords::{BridgeLogin, BridgeRefusal};

/// Accepts connections on `listener` until the task is dropped, each handled
/// by `handle` as a task of its own; a failed accept (out of file
/// descriptors, say) is logged and tried again after a moment.
async fn accept_each<Fut>(
    listener: TcpListener,
    protocol: &'static str,
    handle: impl Fn(TcpStream, SocketAddr) -> Fut,
) where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                // An interactive protocol of small writes: none waits for a delayed ACK.
                let _ = tcp.set_nodelay(true);
                tokio::spawn(handle(tcp, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "bridge {protocol}: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// The bridge's listeners, bound, with their certificate.
pub struct Bridge {
    imap: Option<tokio::net::TcpListener>,
    smtp: Option<tokio::net::TcpListener>,
    smtps: Option<tokio::net::TcpListener>,
    tls: Arc<tls::BridgeTls>,
    settings: BridgeSettings,
    status: BridgeStatus,
}

impl Bridge {
    /// Loads (or generates) the certificate and binds the configured
    /// listeners; `None` when no listener is configured.
    pub fn bind(
        settings: &BridgeSettings,
        data_dir: &std::path::Path,
        public_url: &url::Url,
    ) -> anyhow::Result<Option<Self>> {
        if !settings.enabled() {
            return Ok(None);
        }
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if let Some(host) = public_url.host_str() {
            let host = host.trim_matches(['[', ']']).to_owned();
            if !names.contains(&host) {
                names.push(host);
            }
        }
        let tls = tls::BridgeTls::load(&settings.certificate, data_dir, &names)?;
        let bind = |addr: Option<SocketAddr>, var: &str| -> anyhow::Result<_> {
            let Some(addr) = addr else {
                return Ok(None);
            };
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("{var}: cannot listen on {addr}"))?;
            listener.set_nonblocking(true)?;
            let local = listener.local_addr()?;
            Ok(Some((tokio::net::TcpListener::from_std(listener)?, local)))
        };
        let imap = bind(settings.imap_bind, "INBOXLINK_BRIDGE_IMAP_BIND")?;
        let smtp = bind(settings.smtp_bind, "INBOXLINK_BRIDGE_SMTP_BIND")?;
        let smtps = bind(settings.smtps_bind, "INBOXLINK_BRIDGE_SMTPS_BIND")?;
        let status = BridgeStatus {
            imap: imap.as_ref().map(|(_, a)| *a),
            smtp: smtp.as_ref().map(|(_, a)| *a),
            smtps: smtps.as_ref().map(|(_, a)| *a),
            fingerprint: Some(tls.fingerprint.clone()),
            self_signed: tls.generated,
            probes: Arc::default(),
        };
        tracing::info!(
            imap = ?status.imap,
            smtp = ?status.smtp,
            smtps = ?status.smtps,
            certificate = %tls.cert_path.display(),
            fingerprint_sha256 = %tls.fingerprint,
            self_signed = tls.generated,
            "bridge listening"
        );
        Ok(Some(Self {
            imap: imap.map(|(l, _)| l),
            smtp: smtp.map(|(l, _)| l),
            smtps: smtps.map(|(l, _)| l),
            tls: Arc::new(tls),
            settings: settings.clone(),
            status,
        }))
    }

    /// What `GET /bridge` shows.
    pub fn status(&self) -> &BridgeStatus {
        &self.status
    }

    /// Serves the listeners until the task is dropped (with the server).
    pub async fn run(self, services: Services) {
        let sessions = Arc::new(sessions::Sessions::new(
            self.settings.sessions_per_mailbox,
            self.settings.failed_login_wait,
        ));
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.config.clone());
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(listener) = self.imap {
            let limits = imap::Limits {
                idle: self.settings.imap_idle,
                password_recheck: self.settings.password_recheck,
            };
            tasks.spawn(imap::serve(
                listener,
                acceptor.clone(),
                services.clone(),
                sessions.clone(),
                limits,
            ));
        }
        for (listener, implicit) in [(self.smtp, false), (self.smtps, true)] {
            if let Some(listener) = listener {
                tasks.spawn(smtp::serve(
                    listener,
                    acceptor.clone(),
                    services.clone(),
                    sessions.clone(),
                    implicit,
                ));
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Why a listener refuses a login.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Password(BridgeRefusal),
    /// Too many failed logins of the user name or from the address: for this long.
    Limited(std::time::Duration),
}

/// How long an early upstream connection waits for its client's login.
const EARLY_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// An upstream connection opened as soon as a client connects, before its
/// login, so that connecting upstream overlaps the client's own TLS
/// handshake and greeting; only for an address that logged in with a
/// bridge password within the last day ([`sessions::Sessions::known`]),
/// so a stranger's connection never reaches the mailbox's server. It is
/// used by the session's first login that names a stored password within
/// [`EARLY_FOR`]; otherwise it is closed (a later login connects anew).
struct Early<G> {
    task: Option<tokio::task::JoinHandle<Result<G, tokio::time::error::Elapsed>>>,
    at: std::time::Instant,
    /// The cloud whose servers it connected to: a login to a mailbox of
    /// another cloud does not use it.
    cloud: crate::domain::Cloud,
}

impl<G: Send + 'static> Early<G> {
    /// Starts `connect` for `peer` if it is known; `None` otherwise.
    fn start<F>(
        services: &Services,
        sessions: &sessions::Sessions,
        peer: std::net::IpAddr,
        connect: impl FnOnce(crate::mail::MailServers) -> F,
    ) -> Option<Self>
    where
        F: std::future::Future<Output = G> + Send + 'static,
    {
        let cloud = sessions.known(peer)?;
        let opening = connect(services.mail.servers(cloud));
        let timeout = services.mail.step_timeout;
        Some(Early {
            task: Some(tokio::spawn(tokio::time::timeout(timeout, opening))),
            at: std::time::Instant::now(),
            cloud,
        })
    }

    /// The connection, unless it is too old or failed to open in time.
    async fn take(mut self, cloud: crate::domain::Cloud) -> Option<G> {
        if self.at.elapsed() > EARLY_FOR || self.cloud != cloud {
            return None;
        }
        match self.task.take()?.await {
            Ok(Ok(greeted)) => Some(greeted),
            _ => None,
        }
    }
}

impl<G> Drop for Early<G> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The upstream connection for a login: the early one if it is there and
/// usable, else a new one from `connect`.
async fn early_or<G: Send + 'static>(
    early: Option<Early<G>>,
    cloud: crate::domain::Cloud,
    connect: impl std::future::Future<Output = G>,
) -> G {
    match early {
        Some(early) => match early.take(cloud).await {
            Some(greeted) => greeted,
            None => connect.await,
        },
        None => connect.await,
    }
}

/// What a login prepares while its password is checked
/// ([`Services::bridge_login_with`]): the mailbox's access token and the
/// upstream connection, opened within the mail step timeout.
struct Warmed<G> {
    token: crate::error::Result<crate::service::keeper::AccessToken>,
    upstream: Result<G, tokio::time::error::Elapsed>,
}

impl<G> Warmed<G> {
    async fn new(
        services: &Services,
        org: crate::domain::OrgId,
        mailbox: crate::domain::MailboxId,
        connect: impl std::future::Future<Output = G>,
    ) -> Self {
        let (token, upstream) = tokio::join!(
            services.access_token(&org, mailbox),
            tokio::time::timeout(services.mail.step_timeout, connect),
        );
        Warmed { token, upstream }
    }
}

/// The upstream login's outcome, recorded: an accepted login marks the
/// mailbox as reached, a refusal goes to the mailbox's status, a timeout to
/// the metrics. `Err(Some(_))`: the refusal to explain to the client;
/// `Err(None)`: the server did not answer in time.
async fn upstream_login<R>(
    services: &Services,
    login: &BridgeLogin,
    upstream: crate::service::bridge::Upstream,
    opened: Result<Result<R, crate::mail::StepFailure>, tokio::time::error::Elapsed>,
) -> Result<R, Option<crate::mail::StepFailure>> {
    match opened {
        Ok(Ok(relay)) => {
            services.bridge_upstream_accepted(&login.org, login.mailbox_id);
            Ok(relay)
        }
        Ok(Err(failure)) => {
            services
                .bridge_upstream(&login.org, login.mailbox_id, upstream, Err(&failure))
                .await;
            Err(Some(failure))
        }
        Err(_) => {
            services
                .metrics
                .bridge_upstream_failure(upstream.label(), crate::codes::Code::Timeout.as_str());
            Err(None)
        }
    }
}

/// A login through the failed-login limits: refused without a check while
/// the user name or the address is limited; a refusal counts, a success
/// clears the user name. Each refusal is counted in the metrics. `warm`
/// runs alongside the password's check ([`Services::bridge_login_with`]).
async fn login<W, F>(
    services: &Services,
    sessions: &sessions::Sessions,
    protocol: &str,
    user: &str,
    password: &str,
    peer: std::net::IpAddr,
    warm: W,
) -> Result<(BridgeLogin, F::Output), Refused>
where
    W: FnOnce(&BridgeLogin) -> F,
    F: std::future::Future,
{
    if let Some(wait) = sessions.failures.refused_for(user, peer) {
        services.metrics.bridge_login_refused(protocol, "limited");
        tracing::info!(peer = %peer, protocol, "bridge: login refused, too many failed logins");
        return Err(Refused::Limited(wait));
    }
    match services.bridge_login_with(user, password, peer, warm).await {
        Ok(login) => {
            sessions.failures.succeeded(user);
            if login.0.password_id.is_some() {
                sessions.logged_in_from(peer, login.0.cloud);
            }
            Ok(login)
        }
        Err(refusal) => {
            if refusal != BridgeRefusal::Unavailable {
                sessions.failures.failed(user, peer);
            }
            services
                .metrics
                .bridge_login_refused(protocol, refusal.as_str());
            tracing::info!(peer = %peer, protocol, refusal = refusal.as_str(), "bridge: login refused");
            Err(Refused::Password(refusal))
        }
    }
}
