//! The release service as a child process pinned to core 0, started as an
//! operator would (environment only), and the tokens to call it with.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// How to start one instance; [`Launch::start`] may be called again for
/// another instance on the same database and keys.
pub struct Launch {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub authority: String,
    pub env: Vec<(String, String)>,
    master_key: String,
    jwt_secret: String,
    metrics_token: String,
}

/// The benchmark measures throughput, so no per-caller limit applies.
const NO_RATE_LIMITS: &str =
    "setup=off,verify=off,refresh=off,check=off,check_send=off,access_token=off,admin_consent=off";

pub struct Service {
    child: Child,
    pub base: String,
    pub admin: String,
    pub service_token: String,
    /// `INBOXLINK_METRICS_TOKEN`, for `/metrics`.
    metrics_token: String,
    /// From spawning the process to `/readyz` answering 200.
    pub ready_after: Duration,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn random_b64(n: usize) -> String {
    use rand::RngCore;
    let mut raw = vec![0u8; n];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Launch {
    pub fn new(
        binary: &Path,
        data_dir: &Path,
        database_url: Option<String>,
        authority: String,
    ) -> Self {
        Self {
            binary: binary.to_owned(),
            data_dir: data_dir.to_owned(),
            database_url,
            authority,
            env: Vec::new(),
            master_key: random_b64(32),
            jwt_secret: random_b64(48),
            metrics_token: random_b64(32),
        }
    }

    /// The mailbox servers: the private Dovecot, trusted through the test CA.
    pub fn mail_servers(
        &mut self,
        dovecot: &inboxlink_tests::mail_servers::Dovecot,
        ca: &inboxlink_tests::mail_servers::TestCa,
    ) -> &mut Self {
        self.set("INBOXLINK_IMAP_ENDPOINT", dovecot.imap_endpoint())
            .set("INBOXLINK_SMTP_ENDPOINT", dovecot.submission_endpoint())
            .set(
                "INBOXLINK_EXTRA_ROOT_CA",
                ca.ca_file().display().to_string(),
            )
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Back to the service's default for `key`.
    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// The instance's own log (appended), in its data dir.
    fn log_file(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("service.log"))
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    pub async fn start(&self) -> Service {
        let port = free_port();
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0"])
            .arg(&self.binary)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("INBOXLINK_BIND", format!("127.0.0.1:{port}"))
            .env("INBOXLINK_DATA_DIR", &self.data_dir)
            .env("INBOXLINK_MASTER_KEY", &self.master_key)
            .env("INBOXLINK_MS_AUTHORITY", &self.authority)
            .env("INBOXLINK_LOG", "warn")
            .env("INBOXLINK_KEEPALIVE_INTERVAL_SECONDS", "0")
            .env("INBOXLINK_METRICS_TOKEN", &self.metrics_token)
            .env("INBOXLINK_RATE_LIMITS", NO_RATE_LIMITS)
            .stdout(Stdio::null())
            .stderr(self.log_file());
        if let Some(url) = &self.database_url {
            cmd.env("INBOXLINK_DATABASE_URL", url);
        }
        // One key source: the HS256 secret unless a public key or a JWKS URL is set.
        if !self
            .env
            .iter()
            .any(|(k, _)| k == "INBOXLINK_JWT_PUBLIC_KEY_FILE" || k == "INBOXLINK_JWT_JWKS_URL")
        {
            cmd.env("INBOXLINK_JWT_HS256_SECRET", &self.jwt_secret);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        let child = cmd.spawn().expect("the release binary starts");
        loop {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the service did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let ready_after = started.elapsed();
        Service {
            child,
            base,
            admin: self.mint("admin"),
            service_token: self.mint("service"),
            metrics_token: self.metrics_token.clone(),
            ready_after,
        }
    }

    fn mint(&self, role: &str) -> String {
        let settings = inboxlink::config::JwtSettings {
            key: inboxlink::config::JwtKey::Hs256(secrecy::SecretBox::new(Box::new(
                self.jwt_secret.clone().into_bytes(),
            ))),
            issuer: "inboxlink".into(),
            audience: "inboxlink".into(),
            sub_claim: "sub".into(),
            org_claim: "org".into(),
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(30),
            token_type: None,
            max_lifetime: Some(Duration::from_secs(inboxlink::config::MAX_LIFETIME_SECONDS)),
            jwks_refresh: Default::default(),
        };
        let request = inboxlink::auth::mint::TokenRequest {
            subject: format!("bench-{role}"),
            org: "bench".into(),
            roles: vec![role.into()],
            ttl: Duration::from_secs(6 * 3600),
        };
        inboxlink::auth::mint::mint(&settings, &request).expect("mint")
    }
}

/// Resident memory of process `pid` (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

impl Service {
    /// Resident memory of the process, in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_kib(self.child.id()) / 1024.0
    }

    /// CPU time the process has used (user and system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the command name in parentheses: utime and stime are the
        // 12th and 13th fields, in USER_HZ ticks (100 a second on Linux).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        match (ticks(11), ticks(12)) {
            (Some(u), Some(s)) => (u + s) / 100.0,
            _ => f64::NAN,
        }
    }

    /// One sample of a metric without labels from `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::Client::new()
            .get(format!("{}/metrics", self.base))
            .bearer_auth(&self.metrics_token)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }
}
