//! The service as a separate process (`inboxlink-serve`, the product's own
//! command line), configured through its environment as an operator would,
//! on a test instance's database and keys: started, killed with SIGKILL,
//! started again on the same port, and read from the outside (`/proc`):
//! open file descriptors, threads and resident memory.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{CLIENT_ID, ORG, TestApp};

pub struct Service {
    child: Option<Child>,
    pub port: u16,
    env: Vec<(String, String)>,
    pub token: String,
}

impl Service {
    /// Starts the service on a free port with `app`'s database, keys and
    /// fake Entra ID (if it has one), with `extra` variables on top; waits
    /// for `/readyz`.
    pub async fn start(app: &TestApp, extra: &[(&str, String)]) -> Service {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut env = app.vars();
        let mut set = |k: &str, v: String| {
            env.retain(|(name, _)| name != k);
            env.push((k.to_owned(), v));
        };
        set("INBOXLINK_BIND", format!("127.0.0.1:{port}"));
        set("INBOXLINK_PUBLIC_URL", base.clone());
        set("INBOXLINK_LOG", "warn".into());
        set("INBOXLINK_WEBHOOK_ALLOW_PRIVATE", "true".into());
        // The battery drives many calls from one caller: no per-caller limit.
        set(
            "INBOXLINK_RATE_LIMITS",
            "refresh=off,access_token=off,check=off,check_send=off,verify=off".into(),
        );
        if app.has_fake() {
            let fake = app.fake();
            set("INBOXLINK_MS_AUTHORITY", fake.authority());
            set("INBOXLINK_GRAPH_ENDPOINT", fake.authority());
            fake.add_redirect_uri(CLIENT_ID, &format!("{base}/oauth/callback"));
        }
        for (k, v) in extra {
            set(k, v.clone());
        }
        let mut service = Service {
            child: None,
            port,
            env,
            // Valid for the longest scenario (the tests' default is 10 minutes).
            token: app.token_with(serde_json::json!({
                "sub": "battery",
                "org": ORG,
                "roles": ["admin"],
                "exp": chrono::Utc::now().timestamp() + 6 * 3600,
            })),
        };
        service.spawn();
        service.wait_ready(Duration::from_secs(60)).await;
        service
    }

    fn spawn(&mut self) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_inboxlink-serve"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(command.spawn().expect("the service starts"));
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, patience: Duration) {
        let deadline = Instant::now() + patience;
        let url = self.url("/readyz");
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service on {} did not become ready", self.port);
    }

    /// SIGKILL, and the process reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    /// Started again on the same port, database and keys, after [`Self::kill`].
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready(Duration::from_secs(60)).await;
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Open file descriptors of the process.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A line of `/proc/<pid>/status` as a number (`Threads`, `VmRSS` in KiB).
    fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the process's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }

    pub fn threads(&self) -> u64 {
        self.status("Threads")
    }

    pub fn rss_kib(&self) -> u64 {
        self.status("VmRSS")
    }

    /// Whether the process is still running (not exited by itself).
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
