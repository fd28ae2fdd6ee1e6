//! The service under test, built like crates.io's `TestApp`: [`TestApp::new`]
//! gives a [`TestAppBuilder`], whose `with_*` methods add typed settings and
//! fixtures; [`TestAppBuilder::start`] spawns the service in-process on port
//! 0 over a fresh database (a SQLite file, or a new database in the
//! PostgreSQL cluster named by `TEST_POSTGRES_URL`).
//!
//! ```ignore
//! let app = TestApp::new()
//!     .with_settings(|s| s.tokens.refresh_lease = Duration::from_secs(2))
//!     .with_fake_entra()
//!     .with_mailbox()
//!     .start()
//!     .await;
//! let page = app.sign_in(app.mailbox_id()).await;
//! ```

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use inboxlink::config::{Backend, Settings, Source};
use inboxlink::service::Services;
use inboxlink_tests::fake_entra::FakeEntra;
use tempfile::TempDir;

use super::fixtures::{CLIENT_ID, MAILBOX, SECRET, TENANT, TENANT_DOMAIN};
use super::{AUDIENCE, ISSUER, LOGS, METRICS_TOKEN, postgres, random_b64};

/// A typed change to the validated settings, applied before the service is built.
type Tune = Arc<dyn Fn(&mut Settings) + Send + Sync>;

/// What every instance of one test shares: the database, the data dir, the keys.
#[derive(Clone)]
pub(super) struct Origin {
    pub(super) backend: Backend,
    /// The test defaults, as the configuration contract's variables.
    vars: Vec<(String, String)>,
    pub(super) jwt_secret: String,
    pub(super) sqlite_path: Option<PathBuf>,
    pub(super) postgres_url: Option<String>,
    _dir: Arc<TempDir>,
}

impl Origin {
    async fn new(backend: Backend, cluster: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let jwt_secret = random_b64(48);
        let (db_url, sqlite_path, postgres_url) = match backend {
            Backend::Sqlite => {
                let path = dir.path().join("test.sqlite3");
                (format!("sqlite://{}", path.display()), Some(path), None)
            }
            Backend::Postgres => {
                let url = postgres::create_database(cluster).await;
                (url.clone(), None, Some(url))
            }
        };
        let vars = [
            ("INBOXLINK_BIND", "127.0.0.1:0".to_owned()),
            ("INBOXLINK_DATA_DIR", dir.path().display().to_string()),
            ("INBOXLINK_DATABASE_URL", db_url),
            ("INBOXLINK_DATABASE_POOL_SIZE", "4".into()),
            ("INBOXLINK_MASTER_KEY", random_b64(32)),
            ("INBOXLINK_JWT_HS256_SECRET", jwt_secret.clone()),
            ("INBOXLINK_JWT_ISSUER", ISSUER.into()),
            ("INBOXLINK_JWT_AUDIENCE", AUDIENCE.into()),
            // Nothing listens there: `with_fake_entra` points the service at the fake.
            ("INBOXLINK_MS_AUTHORITY", "http://127.0.0.1:9".into()),
            // No background refreshes unless a test asks for them (token-call counts stay exact).
            ("INBOXLINK_KEEPALIVE_INTERVAL_SECONDS", "0".into()),
            // Metrics on the main listener, counted at every scrape (tests see fresh counts).
            ("INBOXLINK_METRICS_TOKEN", METRICS_TOKEN.into()),
            ("INBOXLINK_METRICS_CACHE_SECONDS", "0".into()),
        ];
        Self {
            backend,
            vars: vars.map(|(k, v)| (k.to_owned(), v)).to_vec(),
            jwt_secret,
            sqlite_path,
            postgres_url,
            _dir: Arc::new(dir),
        }
    }
}

/// A running instance of the service, and the fixtures it was started with.
pub struct TestApp {
    pub base: String,
    pub backend: Backend,
    /// The port of the metrics listener, when one is configured.
    pub metrics_port: Option<u16>,
    pub(super) services: Services,
    pub(super) origin: Origin,
    handle: actix_web::dev::ServerHandle,
    tunes: Vec<Tune>,
    fake: Option<FakeEntra>,
    app_credential: Option<uuid::Uuid>,
    mailbox: Option<uuid::Uuid>,
}

/// How a [`TestApp`] is to be started; see the module docs.
#[must_use = "start it: `.start().await`"]
pub struct TestAppBuilder {
    backend: Backend,
    origin: Option<Origin>,
    tunes: Vec<Tune>,
    fake: Fake,
    app_credential: Option<uuid::Uuid>,
    mailbox: Option<uuid::Uuid>,
    want_app_credential: bool,
    want_mailbox: bool,
    /// The PostgreSQL cluster of [`TestApp::postgres_in`].
    cluster: Option<String>,
}

enum Fake {
    None,
    /// To be started and set up.
    Start,
    /// Started by the test, to be set up.
    Started(FakeEntra),
    /// Set up for an earlier instance.
    Running(FakeEntra),
}

impl TestApp {
    /// A builder on SQLite.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> TestAppBuilder {
        TestAppBuilder::on(Backend::Sqlite)
    }

    /// A builder on PostgreSQL; `None` (the test is skipped, loudly) only
    /// outside CI when the developer asked for it with `TEST_SKIP_POSTGRES=1`.
    pub fn postgres() -> Option<TestAppBuilder> {
        postgres::available().then(|| TestAppBuilder::on(Backend::Postgres))
    }

    /// A builder on a fresh database in another PostgreSQL cluster than the
    /// suite's (`admin_url`: its `postgres` database), e.g. one a test
    /// restarts.
    #[allow(dead_code)] // the battery's binary (tests/battery) uses it
    pub fn postgres_in(admin_url: &str) -> TestAppBuilder {
        TestAppBuilder {
            cluster: Some(admin_url.to_owned()),
            ..TestAppBuilder::on(Backend::Postgres)
        }
    }

    /// Another instance on the same database and keys, with the same
    /// settings and fixtures; its builder adds to them.
    pub fn restart(&self) -> TestAppBuilder {
        TestAppBuilder {
            origin: Some(self.origin.clone()),
            tunes: self.tunes.clone(),
            fake: self.fake.clone().map_or(Fake::None, Fake::Running),
            app_credential: self.app_credential,
            mailbox: self.mailbox,
            ..TestAppBuilder::on(self.backend)
        }
    }

    /// A second instance exactly like this one, on the same database.
    pub async fn sibling(&self) -> TestApp {
        self.restart().start().await
    }

    /// Stops this instance as SIGTERM does (`graceful`) or at once.
    pub fn stop(&self, graceful: bool) -> impl Future<Output = ()> + Send + 'static {
        self.handle.stop(graceful)
    }

    /// The configuration of this instance's database, keys and JWT as the
    /// contract's variables (for a service started as a process); the
    /// typed settings of `with_settings` are not among them.
    pub fn vars(&self) -> Vec<(String, String)> {
        self.origin.vars.clone()
    }

    /// The fake Entra ID of `with_fake_entra`.
    pub fn fake(&self) -> &FakeEntra {
        self.fake.as_ref().expect("started `with_fake_entra()`")
    }

    /// The SQLite file of an instance on SQLite.
    #[allow(dead_code)] // the battery's binary (tests/battery) uses it
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.origin.sqlite_path.clone()
    }

    pub fn has_fake(&self) -> bool {
        self.fake.is_some()
    }

    /// The app credential of `with_app_credential` (or `with_mailbox`).
    pub fn app_credential_id(&self) -> uuid::Uuid {
        self.app_credential
            .expect("started `with_app_credential()`")
    }

    /// The mailbox ([`MAILBOX`], delegated) of `with_mailbox`.
    pub fn mailbox_id(&self) -> uuid::Uuid {
        self.mailbox.expect("started `with_mailbox()`")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl TestAppBuilder {
    fn on(backend: Backend) -> Self {
        Self {
            backend,
            origin: None,
            tunes: Vec::new(),
            fake: Fake::None,
            app_credential: None,
            mailbox: None,
            want_app_credential: false,
            want_mailbox: false,
            cluster: None,
        }
    }

    /// Changes the validated settings before the service is built, e.g.
    /// `.with_settings(|s| s.tokens.refresh_lease = Duration::from_secs(2))`.
    /// Kept for every restart of the app.
    pub fn with_settings(mut self, tune: impl Fn(&mut Settings) + Send + Sync + 'static) -> Self {
        self.tunes.push(Arc::new(tune));
        self
    }

    /// A fresh fake Entra ID with one app registered ([`TENANT`],
    /// [`CLIENT_ID`], [`SECRET`]; verified domain [`TENANT_DOMAIN`]); the
    /// service talks to it as its Microsoft authority, and every instance's
    /// redirect URI is registered on the app.
    pub fn with_fake_entra(mut self) -> Self {
        self.fake = Fake::Start;
        self
    }

    /// Like [`Self::with_fake_entra`], with a fake the test started itself
    /// (e.g. because a mail server must know its introspection URL first).
    pub fn with_started_fake_entra(mut self, fake: FakeEntra) -> Self {
        self.fake = Fake::Started(fake);
        self
    }

    /// An app credential of the organisation [`super::ORG`]: the fake's app
    /// (its secret expiring in 200 days) with `with_fake_entra`, else a
    /// placeholder app no identity provider knows.
    pub fn with_app_credential(mut self) -> Self {
        self.want_app_credential = true;
        self
    }

    /// A delegated, unshared mailbox [`MAILBOX`] on the app credential.
    pub fn with_mailbox(mut self) -> Self {
        self.want_mailbox = true;
        self.with_app_credential()
    }

    pub async fn start(self) -> TestApp {
        LazyLock::force(&LOGS);
        let origin = match self.origin {
            Some(origin) => origin,
            None => Origin::new(self.backend, self.cluster.as_deref()).await,
        };
        let mut tunes = self.tunes;
        // Webhooks go to receivers on this machine, and deliveries are picked up
        // quickly; a test's own settings come after and may change either.
        tunes.insert(
            0,
            Arc::new(|s| {
                s.notify.allow_private = true;
                s.notify.poll = std::time::Duration::from_millis(20);
            }),
        );
        let (fake, set_up) = match self.fake {
            Fake::None => (None, false),
            Fake::Running(fake) => (Some(fake), false),
            Fake::Started(fake) => (Some(fake), true),
            Fake::Start => (Some(FakeEntra::start().await), true),
        };
        if let Some(fake) = fake.as_ref().filter(|_| set_up) {
            fake.register_app(TENANT, CLIENT_ID, SECRET);
            fake.add_domain(TENANT, TENANT_DOMAIN);
            let authority = url::Url::parse(&fake.authority()).expect("authority");
            // First, so that a test's own settings can still change it.
            tunes.insert(
                0,
                Arc::new(move |s| {
                    // The fake serves Microsoft Graph too.
                    s.graph_endpoint = Some(authority.clone());
                    s.ms_authority = Some(authority.clone());
                }),
            );
        }
        let source = Source::from_pairs(origin.vars.clone()).expect("known variables");
        let mut settings = Settings::from_source(&source).expect("valid settings");
        for tune in &tunes {
            tune(&mut settings);
        }
        let app = inboxlink::Application::build(settings)
            .await
            .expect("the service starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let (services, handle, metrics_port) =
            (app.services().clone(), app.handle(), app.metrics_port());
        tokio::spawn(app.run_until_stopped());
        if let Some(fake) = &fake {
            fake.add_redirect_uri(CLIENT_ID, &format!("{base}/oauth/callback"));
        }
        let mut app = TestApp {
            base,
            backend: origin.backend,
            metrics_port,
            services,
            origin,
            handle,
            tunes,
            fake,
            app_credential: self.app_credential,
            mailbox: self.mailbox,
        };
        if self.want_app_credential && app.app_credential.is_none() {
            app.app_credential = Some(app.new_app_credential().await);
        }
        if self.want_mailbox && app.mailbox.is_none() {
            app.mailbox = Some(app.new_mailbox(MAILBOX).await);
        }
        app
    }
}
