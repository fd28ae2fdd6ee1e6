//! Building and running the service. Tests call the same [`Application::build`]
//! with port 0 and read the bound port.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::auth::Verifier;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::http;
use crate::service::Services;
use crate::store::Store;
use crate::telemetry::RequestSpan;

/// After SIGTERM or SIGINT the listener closes at once and requests in
/// flight (and the token refreshes they wait for) get this long to finish.
pub const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Application {
    port: u16,
    public_url: url::Url,
    server: Server,
    /// The listener serving only `/metrics` (`INBOXLINK_METRICS_BIND`), and its port.
    metrics_server: Option<(Server, u16)>,
    services: Services,
    /// The bridge's listeners, when configured.
    bridge: Option<crate::bridge::Bridge>,
}

impl Application {
    /// Connects the database, applies migrations and binds the listener.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let metrics_listener = match settings.protection.metrics.bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .with_context(|| format!("INBOXLINK_METRICS_BIND: cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let local = listener.local_addr()?;
        if !settings.public_url_explicit {
            settings.public_url = format!("http://{local}").parse()?;
        }
        let db = settings.database.clone_settings();
        // Before there is a `Store` to `run` on: connecting and migrating are
        // blocking, once, at start-up.
        #[expect(clippy::disallowed_methods, reason = "no Store yet")]
        let store = tokio::task::spawn_blocking(move || -> anyhow::Result<Store> {
            let store = Store::connect(&db)?;
            let applied = crate::service::lifecycle::migrate(&store)?;
            if !applied.is_empty() {
                tracing::info!(migrations = ?applied, "database migrated");
            }
            Ok(store)
        })
        .await??;
        let bridge = crate::bridge::Bridge::bind(
            &settings.bridge,
            &settings.data_dir,
            &settings.public_url,
        )?;
        let http_client = http_client(&settings)?;
        let verifier = Verifier::new(&settings.jwt, http_client.clone())?;
        let services = Services {
            store,
            cipher: Arc::new(Cipher::new(&settings.master_keys)),
            redirect_uri: settings.redirect_uri().into(),
            public_url: settings.public_url.as_str().trim_end_matches('/').into(),
            tokens: settings.tokens,
            return_url_allowlist: settings.return_url_allowlist.clone().into(),
            idp: crate::idp::Microsoft::new(
                settings.ms_authority.clone(),
                idp_http_client(&settings)?,
            )
            .with_max_concurrency(settings.protection.idp_max_concurrency),
            keeper: Arc::default(),
            mail: crate::mail::MailRouting {
                imap: settings.imap_endpoint.clone(),
                smtp: settings.smtp_endpoint.clone(),
                graph: settings.graph_endpoint.clone(),
                graph_http: graph_http_client(&settings)?,
                trust: crate::mail::TlsTrust::new(settings.extra_root_ca.as_deref())?,
                step_timeout: settings.check_step_timeout,
            },
            metrics: Arc::default(),
            metrics_counts: Arc::new(crate::service::operations::MailboxCounts::new(
                settings.protection.metrics.cache,
            )),
            limits: Arc::new(crate::limits::Limits::new(&settings.protection.rate_limits)),
            notify: Arc::new(settings.notify.clone()),
            webhook_sender: webhook_sender(&settings)?,
            bridge: Arc::new(
                bridge
                    .as_ref()
                    .map(|b| b.status().clone())
                    .unwrap_or_default(),
            ),
        };
        let port = local.port();
        let services_data = web::Data::new(services.clone());
        let verifier = web::Data::new(verifier);
        let metrics_gate = web::Data::new(http::health::MetricsGate::main(
            &settings.protection.metrics,
        ));
        let metrics_server = match metrics_listener {
            Some(listener) => Some(metrics_server(
                listener,
                &services,
                http::health::MetricsGate::private(&settings.protection.metrics),
            )?),
            None => None,
        };
        let server = HttpServer::new(move || {
            use utoipa_actix_web::AppExt;
            app(services_data.clone())
                .app_data(verifier.clone())
                .app_data(metrics_gate.clone())
                .into_utoipa_app()
                .configure(http::api)
                .into_app()
                .configure(http::rest)
                .default_service(web::to(http::not_found))
        })
        .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
        .listen(listener)?
        .run();
        Ok(Self {
            port,
            public_url: settings.public_url.clone(),
            server,
            metrics_server,
            services,
            bridge,
        })
    }

    /// The port of the metrics listener, when `INBOXLINK_METRICS_BIND` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base URL the service is reached at (`{public}` of the redirect URI).
    pub fn public_url(&self) -> &url::Url {
        &self.public_url
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Stops the server as SIGTERM does (`stop(true)`: gracefully).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish
    /// (for up to [`SHUTDOWN_TIMEOUT`]).
    ///
    /// The keep-alive ([`crate::service::keepalive`]) runs beside the server
    /// and stops with it; a refresh it had under way is cut off, which is
    /// harmless: the lease lapses and Microsoft does not revoke the refresh
    /// token that is still stored. Housekeeping
    /// ([`crate::service::housekeeping`]) runs every minute beside it. The
    /// metrics listener, if any, stops with the main one.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let keepalive = self.services.tokens.keepalive_interval.map(|interval| {
            tokio::spawn(crate::service::keepalive::run(
                self.services.clone(),
                interval,
            ))
        });
        let housekeeping = tokio::spawn(crate::service::housekeeping::run(self.services.clone()));
        let (stop_delivery, stopping) = tokio::sync::watch::channel(false);
        let delivery = tokio::spawn(crate::service::delivery::run(
            self.services.clone(),
            stopping,
        ));
        let bridge = self
            .bridge
            .map(|b| tokio::spawn(b.run(self.services.clone())));
        let metrics = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let result = self.server.await;
        if let Some(task) = keepalive {
            task.abort();
        }
        housekeeping.abort();
        if let Some(task) = bridge {
            task.abort();
        }
        // Attempts in flight finish, leases still held are given back.
        stop_delivery.send_replace(true);
        drop(delivery.await);
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            drop(task.await);
        }
        result
    }
}

/// What every listener serves with: the security headers, the request
/// metrics and ids ([`http::observe`]), the request span, and the use cases.
fn app(
    services: web::Data<Services>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(middleware::from_fn(http::headers::security_headers))
        .wrap(middleware::from_fn(http::observe::observe))
        .wrap(TracingLogger::<RequestSpan>::new())
        .app_data(services)
}

/// The listener that serves only `/metrics` (built on the same [`app`] as
/// the main one).
fn metrics_server(
    listener: TcpListener,
    services: &Services,
    gate: http::health::MetricsGate,
) -> anyhow::Result<(Server, u16)> {
    let port = listener.local_addr()?.port();
    let services_data = web::Data::new(services.clone());
    let gate = web::Data::new(gate);
    let server = HttpServer::new(move || {
        app(services_data.clone())
            .app_data(gate.clone())
            .service(http::health::metrics)
            .service(web::resource("/metrics").to(http::method_not_allowed))
            .default_service(web::to(http::not_found))
    })
    .workers(1)
    .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
    .listen(listener)?
    .run();
    Ok((server, port))
}

/// The outbound HTTP client (rustls, system roots plus `INBOXLINK_EXTRA_ROOT_CA`).
pub fn http_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    Ok(http_client_builder(settings)?.build()?)
}

/// The client for the identity provider: it follows no redirect (a token
/// request carries secrets that must not be re-posted to a `Location`), and
/// speaks HTTPS only unless the authority is configured as `http://`.
pub fn idp_http_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    Ok(http_client_builder(settings)?
        .redirect(reqwest::redirect::Policy::none())
        .https_only(
            settings
                .ms_authority
                .as_ref()
                .is_none_or(|a| a.scheme() == "https"),
        )
        .build()?)
}

/// The client of Microsoft Graph: it follows no redirect (a request carries
/// a bearer token), and speaks HTTPS only unless the Graph endpoint is
/// configured as `http://`.
pub fn graph_http_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    Ok(http_client_builder(settings)?
        .redirect(reqwest::redirect::Policy::none())
        .https_only(
            settings
                .graph_endpoint
                .as_ref()
                .is_none_or(|a| a.scheme() == "https"),
        )
        .build()?)
}

/// The client of webhook deliveries: every connection through the URL
/// guard's resolver, no redirects followed, `https://` only unless private
/// targets are allowed.
pub fn webhook_sender(settings: &Settings) -> anyhow::Result<crate::hooks::client::Sender> {
    use crate::hooks::guard::{Policy, Resolver};
    let policy = Policy {
        allow_private: settings.notify.allow_private,
    };
    let http = http_client_builder(settings)?
        .dns_resolver(Resolver::shared(policy))
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!policy.allow_private)
        .timeout(crate::hooks::client::DEADLINE)
        .build()?;
    Ok(crate::hooks::client::Sender { http, policy })
}

#[expect(
    clippy::disallowed_methods,
    reason = "the service's one HTTP client is built here (api/clippy.toml)"
)]
fn http_client_builder(settings: &Settings) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("inboxlink/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30));
    if let Some(path) = &settings.extra_root_ca {
        let pem = std::fs::read(path)
            .with_context(|| format!("INBOXLINK_EXTRA_ROOT_CA: cannot read {}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("INBOXLINK_EXTRA_ROOT_CA: {} is not PEM", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}
