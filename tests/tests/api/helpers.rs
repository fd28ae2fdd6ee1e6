//! Spawning the service for a test, minting tokens, capturing logs.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use base64::Engine;
use diesel::{Connection, PgConnection, RunQueryDsl};
use inboxlink::config::{Backend, LogFormat, LogSettings, Settings, Source};
use inboxlink::service::Services;
use serde_json::json;
use tempfile::TempDir;

/// Runs each named `async fn name(app: TestApp)` once on SQLite and once on PostgreSQL.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = crate::helpers::TestApp::spawn(inboxlink::config::Backend::Sqlite).await;
                super::$name(app).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = crate::helpers::TestApp::spawn_postgres().await else { return };
                super::$name(app).await
            }
        }
    )*};
}
pub(crate) use backend_tests;

pub const ISSUER: &str = "inboxlink-tests";
/// The metrics token every test instance is started with (`INBOXLINK_METRICS_TOKEN`).
pub const METRICS_TOKEN: &str = "metrics-token-of-the-tests-0123456789abcdef";
pub const AUDIENCE: &str = "inboxlink-api";

/// Everything the service logged during this test binary's run.
pub static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = LogWriter(buffer.clone());
    let settings = LogSettings {
        filter: "debug,actix_server=info,h2=info,hyper=info,reqwest=info".into(),
        format: LogFormat::Json,
    };
    inboxlink::telemetry::init(&settings, move || writer.clone());
    buffer
});

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured log so far, as text.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().expect("log buffer")).into_owned()
}

pub struct TestApp {
    pub base: String,
    pub backend: Backend,
    pub services: Services,
    /// The SQLite file, for tests that read the raw bytes.
    pub sqlite_path: Option<PathBuf>,
    /// The PostgreSQL URL of this test's database.
    pub postgres_url: Option<String>,
    jwt_secret: String,
    /// The configuration it was started with, for a second instance on the same database.
    vars: Vec<(String, String)>,
    /// Stops this instance as SIGTERM does.
    pub handle: actix_web::dev::ServerHandle,
    /// The port of the metrics listener, when `INBOXLINK_METRICS_BIND` is set.
    pub metrics_port: Option<u16>,
    _dir: Arc<TempDir>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::spawn_with(Backend::Sqlite, &[]).await,
            Backend::Postgres => Self::spawn_postgres()
                .await
                .expect("PostgreSQL is available"),
        }
    }

    /// On PostgreSQL; `None` (the test is skipped, loudly) only outside CI when
    /// the developer asked for it with `TEST_SKIP_POSTGRES=1`.
    pub async fn spawn_postgres() -> Option<Self> {
        if postgres_admin_url().is_none() {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            if !in_ci && std::env::var("TEST_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
                eprintln!("SKIPPED on PostgreSQL: TEST_SKIP_POSTGRES=1");
                return None;
            }
            panic!(
                "TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh, which starts a throw-away PostgreSQL cluster"
            );
        }
        Some(Self::spawn_with(Backend::Postgres, &[]).await)
    }

    /// Spawns with extra configuration variables on top of the test defaults.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, String)]) -> Self {
        Self::spawn_tuned(backend, extra, |_| {}).await
    }

    /// Like [`Self::spawn_with`], then `tune` changes what no variable sets
    /// (e.g. the JWKS refresh intervals) before the service is built.
    pub async fn spawn_tuned(
        backend: Backend,
        extra: &[(&str, String)],
        tune: impl FnOnce(&mut Settings),
    ) -> Self {
        LazyLock::force(&LOGS);
        let dir = tempfile::tempdir().expect("temp dir");
        let jwt_secret = random_b64(48);
        let (db_url, sqlite_path, postgres_url) = match backend {
            Backend::Sqlite => {
                let path = dir.path().join("test.sqlite3");
                (format!("sqlite://{}", path.display()), Some(path), None)
            }
            Backend::Postgres => {
                let url = create_postgres_database().await;
                (url.clone(), None, Some(url))
            }
        };
        let mut vars: Vec<(&str, String)> = vec![
            ("INBOXLINK_BIND", "127.0.0.1:0".into()),
            ("INBOXLINK_DATA_DIR", dir.path().display().to_string()),
            ("INBOXLINK_DATABASE_URL", db_url),
            ("INBOXLINK_DATABASE_POOL_SIZE", "4".into()),
            ("INBOXLINK_MASTER_KEY", random_b64(32)),
            ("INBOXLINK_JWT_ISSUER", ISSUER.into()),
            ("INBOXLINK_JWT_AUDIENCE", AUDIENCE.into()),
            // Nothing listens there: tests that talk to an identity provider start the fake one.
            ("INBOXLINK_MS_AUTHORITY", "http://127.0.0.1:9".into()),
            // No background refreshes unless a test asks for them (token-call counts stay exact).
            ("INBOXLINK_KEEPALIVE_INTERVAL_SECONDS", "0".into()),
            // Metrics on the main listener, counted at every scrape (tests see fresh counts).
            ("INBOXLINK_METRICS_TOKEN", METRICS_TOKEN.into()),
            ("INBOXLINK_METRICS_CACHE_SECONDS", "0".into()),
        ];
        let replaces_jwt_key = extra.iter().any(|(k, _)| {
            k.starts_with("INBOXLINK_JWT_PUBLIC") || k.starts_with("INBOXLINK_JWT_JWKS")
        });
        if !replaces_jwt_key {
            vars.push(("INBOXLINK_JWT_HS256_SECRET", jwt_secret.clone()));
        }
        vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        vars.extend(extra.iter().cloned());
        let vars: Vec<(String, String)> =
            vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Self::start(
            backend,
            vars,
            jwt_secret,
            sqlite_path,
            postgres_url,
            Arc::new(dir),
            tune,
        )
        .await
    }

    async fn start(
        backend: Backend,
        vars: Vec<(String, String)>,
        jwt_secret: String,
        sqlite_path: Option<PathBuf>,
        postgres_url: Option<String>,
        dir: Arc<TempDir>,
        tune: impl FnOnce(&mut Settings),
    ) -> Self {
        let mut settings =
            Settings::from_source(&Source::from_pairs(vars.clone()).expect("known variables"))
                .expect("valid settings");
        tune(&mut settings);
        let app = inboxlink::Application::build(settings)
            .await
            .expect("the service starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let services = app.services().clone();
        let handle = app.handle();
        let metrics_port = app.metrics_port();
        tokio::spawn(app.run_until_stopped());
        Self {
            base,
            backend,
            services,
            sqlite_path,
            postgres_url,
            jwt_secret,
            vars,
            handle,
            metrics_port,
            _dir: dir,
        }
    }

    /// Another instance on the same database and keys, with some settings replaced.
    pub async fn with(&self, extra: &[(&str, String)]) -> Self {
        let mut vars = self.vars.clone();
        vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        Self::start(
            self.backend,
            vars,
            self.jwt_secret.clone(),
            self.sqlite_path.clone(),
            self.postgres_url.clone(),
            self._dir.clone(),
            |_| {},
        )
        .await
    }

    /// A second instance of the service on the same database, with the same keys.
    pub async fn sibling(&self) -> Self {
        Self::start(
            self.backend,
            self.vars.clone(),
            self.jwt_secret.clone(),
            self.sqlite_path.clone(),
            self.postgres_url.clone(),
            self._dir.clone(),
            |_| {},
        )
        .await
    }

    /// A valid HS256 token for `org` with `roles`.
    pub fn token(&self, org: &str, roles: &[&str]) -> String {
        self.token_with(json!({ "sub": "tester", "org": org, "roles": roles }))
    }

    /// A token signed with the service's key carrying `claims` plus valid `iss`, `aud`, `exp`
    /// (each can be overridden, or removed by setting it to null).
    pub fn token_with(&self, claims: serde_json::Value) -> String {
        sign_hs256(self.jwt_secret.as_bytes(), claims)
    }

    /// Like [`Self::token_with`], but signed with the service's secret under
    /// another HMAC algorithm (to prove the algorithm is pinned, not just the key).
    pub fn token_with_alg(&self, alg: jsonwebtoken::Algorithm, c: serde_json::Value) -> String {
        self.token_with_header(&jsonwebtoken::Header::new(alg), c)
    }

    /// Like [`Self::token_with`], under `header` (its `typ`, `crit`, ...).
    pub fn token_with_header(&self, header: &jsonwebtoken::Header, c: serde_json::Value) -> String {
        use jsonwebtoken::{EncodingKey, encode};
        encode(
            header,
            &claims(c),
            &EncodingKey::from_secret(self.jwt_secret.as_bytes()),
        )
        .expect("sign")
    }

    pub fn admin(&self, org: &str) -> inboxlink_sdk::Client {
        self.sdk(&self.token(org, &["admin"]))
    }

    pub fn sdk(&self, token: &str) -> inboxlink_sdk::Client {
        inboxlink_sdk::Client::with_token(&self.base, token).expect("client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Standard claims (valid for 10 minutes) merged with `claims`; null removes one.
pub fn claims(claims: serde_json::Value) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    let mut all = json!({ "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600 });
    for (k, v) in claims.as_object().expect("object").clone() {
        if v.is_null() {
            all.as_object_mut().expect("object").remove(&k);
        } else {
            all[k] = v;
        }
    }
    all
}

pub fn sign_hs256(secret: &[u8], c: serde_json::Value) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    encode(
        &Header::default(),
        &claims(c),
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

pub fn random_b64(bytes: usize) -> String {
    use rand::RngCore;
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn postgres_admin_url() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// A fresh database in the throw-away cluster; returns its URL.
async fn create_postgres_database() -> String {
    let admin = postgres_admin_url().expect("TEST_POSTGRES_URL");
    let name = format!("inboxlink_test_{}", uuid::Uuid::new_v4().simple());
    let admin_for_task = admin.clone();
    let name_for_task = name.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            PgConnection::establish(&admin_for_task).expect("connect to the test cluster");
        diesel::sql_query(format!("CREATE DATABASE {name_for_task}"))
            .execute(&mut conn)
            .expect("create database");
    })
    .await
    .expect("create database task");
    let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A plain HTTP client for what the SDK cannot send (malformed requests, raw tokens).
pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// A valid app credential body.
pub fn app_credential_body(name: &str, secret: &str) -> inboxlink_sdk::types::AppCredentialCreate {
    inboxlink_sdk::types::AppCredentialCreate {
        name: name.into(),
        provider: None,
        client_id: "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f".into(),
        tenant_id: "contoso.onmicrosoft.com".into(),
        client_secret: secret.into(),
        secret_expires_at: None,
    }
}

/// A delegated, unshared mailbox body.
pub fn mailbox_body(
    email: &str,
    app_credential_id: uuid::Uuid,
) -> inboxlink_sdk::types::MailboxCreate {
    inboxlink_sdk::types::MailboxCreate {
        email: email.into(),
        app_credential_id,
        access_mode: None,
        shared: None,
    }
}

/// A unique, realistic client secret Value.
pub fn new_secret() -> String {
    format!("Q8x~{}", uuid::Uuid::new_v4().simple())
}
