//! `inboxlink-bench`: the benchmark behind `scripts/bench.sh`.
//!
//! Starts what it needs (the release service as a child process pinned to one
//! core, the fake Entra ID, Dovecot, and PostgreSQL when `TEST_POSTGRES_URL`
//! is set), measures, and prints one table of figures. Every figure is a
//! ratio against a baseline measured in the same run, or a count, because the
//! machines are shared and noisy. Writes the table as JSON too (`--out`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa};
use serde_json::{Value, json};

const TENANT: &str = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c";
const CLIENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const SECRET: &str = "Bench~secret.value_0123456789";

struct Args {
    mailboxes: usize,
    sign_ins: usize,
    checks: usize,
    seconds: u64,
    out: Option<String>,
    binary: String,
}

fn args() -> Args {
    let mut a = Args {
        mailboxes: 10_000,
        sign_ins: 200,
        checks: 100,
        seconds: 5,
        out: None,
        binary: "target/release/inboxlink".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                a.mailboxes = 500;
                a.sign_ins = 20;
                a.checks = 10;
                a.seconds = 2;
            }
            "--out" => a.out = it.next(),
            "--binary" => a.binary = it.next().expect("--binary PATH"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// One row of the result table.
struct Row {
    name: String,
    value: f64,
    unit: &'static str,
    goal: Option<String>,
    met: Option<bool>,
}

struct Table(Vec<Row>);

impl Table {
    fn add(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        let name = name.into();
        eprintln!("  {name}: {value:.3} {unit}");
        self.0.push(Row {
            name,
            value,
            unit,
            goal: None,
            met: None,
        });
    }

    fn goal(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        goal: &str,
        met: bool,
    ) {
        let name = name.into();
        eprintln!(
            "  {name}: {value:.3} {unit} (goal {goal}: {})",
            if met { "met" } else { "MISSED" }
        );
        self.0.push(Row {
            name,
            value,
            unit,
            goal: Some(goal.into()),
            met: Some(met),
        });
    }
}

/// The service as a child process, pinned to core 0.
struct Service {
    child: Child,
    base: String,
    token: String,
    service_token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn random_b64(n: usize) -> String {
    use rand::RngCore;
    let mut raw = vec![0u8; n];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

async fn start_service(
    a: &Args,
    database: Option<&str>,
    fake: &FakeEntra,
    mail: Option<(&Dovecot, &TestCa)>,
) -> (Service, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let secret = random_b64(48);
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0", &a.binary, "serve"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INBOXLINK_BIND", format!("127.0.0.1:{port}"))
        .env("INBOXLINK_DATA_DIR", dir.path())
        .env("INBOXLINK_MASTER_KEY", random_b64(32))
        .env("INBOXLINK_JWT_HS256_SECRET", &secret)
        .env("INBOXLINK_MS_AUTHORITY", fake.authority())
        .env("INBOXLINK_LOG", "warn")
        .env("INBOXLINK_DATABASE_POOL_SIZE", "16")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = database {
        cmd.env("INBOXLINK_DATABASE_URL", url);
    }
    if let Some((dovecot, ca)) = mail {
        cmd.env("INBOXLINK_IMAP_ENDPOINT", dovecot.imap_endpoint())
            .env("INBOXLINK_SMTP_ENDPOINT", dovecot.submission_endpoint())
            .env("INBOXLINK_EXTRA_ROOT_CA", ca.ca_file());
    }
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let child = cmd
        .spawn()
        .expect("the release binary starts (build it with cargo build --release)");
    let http = reqwest::Client::new();
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the service did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ready = started.elapsed();
    let mint = |role: &str| {
        let settings = inboxlink::config::JwtSettings {
            key: inboxlink::config::JwtKey::Hs256(secrecy::SecretBox::new(Box::new(
                secret.clone().into_bytes(),
            ))),
            issuer: "inboxlink".into(),
            audience: "inboxlink".into(),
            sub_claim: "sub".into(),
            org_claim: "org".into(),
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(30),
        };
        let request = inboxlink::auth::mint::TokenRequest {
            subject: "bench".into(),
            org: "bench".into(),
            roles: vec![role.into()],
            ttl: Duration::from_secs(3 * 3600),
        };
        inboxlink::auth::mint::mint(&settings, &request).expect("mint")
    };
    let service = Service {
        child,
        base,
        token: mint("admin"),
        service_token: mint("service"),
        _dir: dir,
    };
    (service, ready)
}

fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

/// Runs `wrk` pinned to core 1; returns (requests/s, p50 ms, p99 ms).
fn wrk(url: &str, token: Option<&str>, seconds: u64, connections: u32) -> (f64, f64, f64) {
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        "1",
        "wrk",
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk runs (scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let latency = |label: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(label))
            .map(|v| parse_wrk_duration(v.trim()))
            .unwrap_or(f64::NAN)
    };
    let non2xx = text.contains("Non-2xx");
    assert!(!non2xx, "wrk saw errors for {url}:\n{text}");
    (rps, latency("50%"), latency("99%"))
}

fn parse_wrk_duration(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// Open-loop load at a fixed rate from this process (core 1): p99 latency in ms.
async fn fixed_rate_p99(url: &str, token: &str, rate: f64, seconds: u64) -> f64 {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let total = (rate * seconds as f64) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (t.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        let (d, ok) = t.await.expect("task");
        assert!(ok, "a request failed under fixed-rate load");
        latencies.push(d);
    }
    latencies.sort();
    percentile(&latencies, 0.99).as_secs_f64() * 1000.0
}

async fn create_credential(http: &reqwest::Client, s: &Service) -> String {
    let r: Value = http
        .post(format!("{}/app-credentials", s.base))
        .bearer_auth(&s.token)
        .json(&json!({ "name": "Bench", "client_id": CLIENT_ID, "tenant_id": TENANT, "client_secret": SECRET }))
        .send()
        .await
        .expect("create credential")
        .json()
        .await
        .expect("json");
    r["id"].as_str().expect("id").to_owned()
}

/// Creates `n` mailboxes (16 at a time); returns their ids.
async fn create_mailboxes(
    http: &reqwest::Client,
    s: &Service,
    credential: &str,
    n: usize,
    prefix: &str,
) -> Vec<String> {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (http, base, token, credential) = (
                http.clone(),
                s.base.clone(),
                s.token.clone(),
                credential.to_owned(),
            );
            let email = format!("{prefix}{i}@contoso.cz");
            async move {
                let r: Value = http
                    .post(format!("{base}/mailboxes"))
                    .bearer_auth(token)
                    .json(&json!({ "email": email, "app_credential_id": credential }))
                    .send()
                    .await
                    .expect("create mailbox")
                    .json()
                    .await
                    .expect("json");
                r["id"].as_str().expect("id").to_owned()
            }
        })
        .buffered(16)
        .collect()
        .await
}

/// Refresh, then the browser's two hops: the fake's redirect and the callback.
async fn sign_in(http: &reqwest::Client, browser: &reqwest::Client, s: &Service, id: &str) {
    let r: Value = http
        .post(format!("{}/mailboxes/{id}/refresh", s.base))
        .bearer_auth(&s.token)
        .json(&json!({}))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    let url = r["authorization_url"].as_str().expect("url");
    let hop = browser.get(url).send().await.expect("authorize");
    let location = hop.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let page = browser.get(location).send().await.expect("callback");
    assert_eq!(page.status(), 200, "the sign-in completes");
}

/// The same authorization-code exchange done directly against the fake (the baseline).
async fn direct_code_flow(
    browser: &reqwest::Client,
    fake: &FakeEntra,
    redirect_uri: &str,
    user: &str,
) {
    let verifier = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let challenge = inboxlink_tests::fake_entra::pkce_s256(verifier);
    let authorize = format!(
        "{}/{TENANT}/oauth2/v2.0/authorize?client_id={CLIENT_ID}&response_type=code&redirect_uri={}&response_mode=query&scope={}&state=s&code_challenge={challenge}&code_challenge_method=S256&nonce=n&login_hint={user}",
        fake.authority(),
        urlencode(redirect_uri),
        urlencode(
            "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access openid profile email"
        ),
    );
    let hop = browser.get(authorize).send().await.expect("authorize");
    let location =
        url::Url::parse(hop.headers()["location"].to_str().expect("location")).expect("url");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let r = browser
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", fake.authority()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token");
    assert!(r.status().is_success());
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let a = args();
    let mut table = Table(Vec::new());
    let fake = FakeEntra::start().await;
    fake.register_app(TENANT, CLIENT_ID, SECRET);
    let http = reqwest::Client::new();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // 1. HTTP on SQLite and PostgreSQL.
    let mut backends = vec![("sqlite", None)];
    if let Ok(url) = std::env::var("TEST_POSTGRES_URL") {
        let db = format!("inboxlink_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = url::Url::parse(&url).expect("url");
        Command::new("psql")
            .arg(admin.as_str())
            .args(["-c", &format!("CREATE DATABASE {db}")])
            .output()
            .expect("psql");
        admin.set_path(&format!("/{db}"));
        backends.push(("postgres", Some(admin.to_string())));
    }
    for (name, url) in &backends {
        eprintln!("HTTP on {name}:");
        let (s, ready) = start_service(&a, url.as_deref(), &fake, None).await;
        if *name == "sqlite" {
            table.goal(
                "ready after start (ms)",
                ready.as_secs_f64() * 1000.0,
                "ms",
                "<= 300 ms",
                ready <= Duration::from_millis(300),
            );
            table.add(
                "resident memory idle (MiB)",
                rss_kib(s.child.id()) / 1024.0,
                "MiB",
            );
        }
        let credential = create_credential(&http, &s).await;
        let ids = create_mailboxes(&http, &s, &credential, a.mailboxes, "m").await;
        let (health, h50, h99) = wrk(&format!("{}/healthz", s.base), None, a.seconds, 32);
        let (get, g50, g99) = wrk(
            &format!("{}/mailboxes/{}", s.base, ids[ids.len() / 2]),
            Some(&s.token),
            a.seconds,
            32,
        );
        let (list, l50, l99) = wrk(
            &format!("{}/mailboxes?limit=50", s.base),
            Some(&s.token),
            a.seconds,
            32,
        );
        table.add(
            format!("{name}: healthz throughput (req/s)"),
            health,
            "req/s",
        );
        table.add(format!("{name}: healthz p50 / p99 (ms)"), h50, "ms");
        table.add(format!("{name}: healthz p99 (ms)"), h99, "ms");
        table.goal(
            format!("{name}: GET /mailboxes/{{id}} / healthz throughput"),
            get / health,
            "ratio",
            ">= 0.5",
            get / health >= 0.5,
        );
        table.add(format!("{name}: GET /mailboxes/{{id}} p50 (ms)"), g50, "ms");
        table.add(
            format!("{name}: GET /mailboxes/{{id}} p99 at full load (ms)"),
            g99,
            "ms",
        );
        table.goal(
            format!("{name}: GET /mailboxes?limit=50 / healthz throughput"),
            list / health,
            "ratio",
            ">= 0.5",
            list / health >= 0.5,
        );
        table.add(
            format!("{name}: GET /mailboxes?limit=50 p50 (ms)"),
            l50,
            "ms",
        );
        table.add(
            format!("{name}: GET /mailboxes?limit=50 p99 at full load (ms)"),
            l99,
            "ms",
        );
        let half = fixed_rate_p99(
            &format!("{}/mailboxes/{}", s.base, ids[0]),
            &s.token,
            (get / 2.0).max(10.0),
            a.seconds,
        )
        .await;
        table.goal(
            format!("{name}: GET /mailboxes/{{id}} p99 at half the max throughput (ms)"),
            half,
            "ms",
            "<= 10 ms",
            half <= 10.0,
        );
        drop(s);
    }

    // 2. Sign-in path and 3. refresh at scale, on SQLite.
    eprintln!("sign-in and refresh:");
    let (s, _) = start_service(&a, None, &fake, None).await;
    let credential = create_credential(&http, &s).await;
    let redirect_uri = format!("{}/oauth/callback", s.base);
    let sign_ids = create_mailboxes(&http, &s, &credential, a.sign_ins, "signin").await;
    let mut through_service = Vec::new();
    for id in &sign_ids {
        let t = Instant::now();
        sign_in(&http, &browser, &s, id).await;
        through_service.push(t.elapsed());
    }
    let mut direct = Vec::new();
    for i in 0..a.sign_ins {
        let t = Instant::now();
        direct_code_flow(
            &browser,
            &fake,
            &redirect_uri,
            &format!("direct{i}@contoso.cz"),
        )
        .await;
        direct.push(t.elapsed());
    }
    let (svc, _) = median(through_service);
    let (dir, _) = median(direct);
    table.add(
        "sign-in: refresh -> callback -> active, median (ms)",
        svc.as_secs_f64() * 1000.0,
        "ms",
    );
    table.add(
        "sign-in: direct authorize + token at the fake, median (ms)",
        dir.as_secs_f64() * 1000.0,
        "ms",
    );
    table.add(
        "sign-in: service / direct",
        svc.as_secs_f64() / dir.as_secs_f64(),
        "ratio",
    );

    // Refresh at scale: mailboxes signed in with 60 s access tokens (so stale), then all refreshed.
    fake.set_access_token_ttl(60);
    let scale_ids = create_mailboxes(&http, &s, &credential, a.mailboxes, "scale").await;
    {
        use futures_util::StreamExt;
        futures_util::stream::iter(scale_ids.iter())
            .map(|id| sign_in(&http, &browser, &s, id))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }
    fake.set_access_token_ttl(3600);
    fake.set_latency(Duration::from_millis(20));
    let concurrency = 64usize;
    let before = fake.token_calls("refresh_token");
    let t = Instant::now();
    {
        use futures_util::StreamExt;
        futures_util::stream::iter(scale_ids.iter())
            .map(|id| {
                let (http, base, token) = (http.clone(), s.base.clone(), s.service_token.clone());
                async move {
                    let r = http
                        .get(format!("{base}/mailboxes/{id}/access-token"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .expect("token");
                    assert!(r.status().is_success(), "refresh failed: {}", r.status());
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
    }
    let wall = t.elapsed();
    fake.set_latency(Duration::ZERO);
    let calls = fake.token_calls("refresh_token") - before;
    let floor = Duration::from_millis(20) * a.mailboxes as u32 / concurrency as u32;
    table.add("refresh at scale: mailboxes", a.mailboxes as f64, "count");
    table.goal(
        "refresh at scale: token calls at the fake / mailboxes",
        calls as f64 / a.mailboxes as f64,
        "ratio",
        "= 1",
        calls == a.mailboxes,
    );
    table.goal(
        format!("refresh at scale: wall / floor (20 ms x N / {concurrency})"),
        wall.as_secs_f64() / floor.as_secs_f64(),
        "ratio",
        "<= 1.25",
        wall.as_secs_f64() / floor.as_secs_f64() <= 1.25,
    );
    let rss = rss_kib(s.child.id()) / 1024.0;
    table.goal(
        format!(
            "resident memory after the refresh run, {} mailboxes (MiB)",
            a.mailboxes + a.sign_ins
        ),
        rss,
        "MiB",
        "<= 64 MiB",
        rss <= 64.0,
    );
    drop(s);

    // 4. Check against Dovecot, against the same steps done directly with the same libraries.
    eprintln!("check:");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::generate(dir.path());
    let sink = SmtpSink::start();
    match Dovecot::start(&fake.introspection_url(), &ca, &sink) {
        Ok(dovecot) => {
            let (s, _) = start_service(&a, None, &fake, Some((&dovecot, &ca))).await;
            let credential = create_credential(&http, &s).await;
            let id = create_mailboxes(&http, &s, &credential, 1, "check")
                .await
                .remove(0);
            sign_in(&http, &browser, &s, &id).await;
            let mut through_service = Vec::new();
            for _ in 0..a.checks {
                let t = Instant::now();
                let r: Value = http
                    .post(format!("{}/mailboxes/{id}/check", s.base))
                    .bearer_auth(&s.token)
                    .json(&json!({}))
                    .send()
                    .await
                    .expect("check")
                    .json()
                    .await
                    .expect("json");
                through_service.push(t.elapsed());
                assert_eq!(r["ok"], true, "{r}");
            }
            let token: Value = http
                .get(format!("{}/mailboxes/{id}/access-token", s.base))
                .bearer_auth(&s.service_token)
                .send()
                .await
                .expect("token")
                .json()
                .await
                .expect("json");
            let token = secrecy::SecretString::from(
                token["access_token"].as_str().expect("token").to_owned(),
            );
            let servers = inboxlink::mail::MailServers {
                imap: endpoint(&dovecot.imap_endpoint()),
                smtp: endpoint(&dovecot.submission_endpoint()),
                trust: inboxlink::mail::TlsTrust::new(Some(&ca.ca_file())).expect("trust"),
                step_timeout: Duration::from_secs(10),
            };
            let mut direct = Vec::new();
            for _ in 0..a.checks {
                let t = Instant::now();
                let mut steps = inboxlink::mail::Steps::new("");
                let login = inboxlink::mail::Login {
                    mailbox: "check0@contoso.cz",
                    smtp_user: "check0@contoso.cz",
                    token: &token,
                    access_mode: inboxlink::domain::AccessMode::Delegated,
                };
                servers.check(&mut steps, &login, false).await;
                assert!(!steps.failed(), "{:?}", steps.steps);
                direct.push(t.elapsed());
            }
            let (s50, s99) = median(through_service);
            let (d50, d99) = median(direct);
            table.add(
                "check through the service, median (ms)",
                s50.as_secs_f64() * 1000.0,
                "ms",
            );
            table.add(
                "check through the service, p99 (ms)",
                s99.as_secs_f64() * 1000.0,
                "ms",
            );
            table.add(
                "check done directly, median (ms)",
                d50.as_secs_f64() * 1000.0,
                "ms",
            );
            let ratio = s50.as_secs_f64() / d50.as_secs_f64();
            table.goal(
                "check: service / direct, median",
                ratio,
                "ratio",
                "<= 1.2",
                ratio <= 1.2,
            );
            table.add(
                "check: service / direct, p99",
                s99.as_secs_f64() / d99.as_secs_f64(),
                "ratio",
            );
        }
        Err(e) => eprintln!("  Dovecot could not start ({e}); check figures left out"),
    }

    // 5. Crypto per value.
    let cipher = inboxlink::crypto::Cipher::new(&[inboxlink::crypto::MasterKey::new([7; 32])]);
    let slot = inboxlink::crypto::Slot {
        table: "mailboxes",
        column: "access_token",
        row_id: "01a2",
    };
    let value = "x".repeat(1500);
    let n = 20_000;
    let t = Instant::now();
    let mut sealed = String::new();
    for _ in 0..n {
        sealed = cipher.encrypt_str(&value, slot);
    }
    let enc = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(cipher.decrypt(&sealed, slot).expect("decrypts"));
    }
    let dec = t.elapsed() / n;
    table.add("encrypt a 1.5 KB token (us)", enc.as_secs_f64() * 1e6, "us");
    table.goal(
        "decrypt a 1.5 KB token (us)",
        dec.as_secs_f64() * 1e6,
        "us",
        "<= 5 us",
        dec <= Duration::from_micros(5),
    );

    print_table(&table);
    if let Some(path) = &a.out {
        let rows: Vec<Value> = table
            .0
            .iter()
            .map(|r| json!({ "name": r.name, "value": r.value, "unit": r.unit, "goal": r.goal, "met": r.met }))
            .collect();
        let doc = json!({ "machine": machine(), "rows": rows });
        std::fs::write(path, serde_json::to_string_pretty(&doc).expect("json"))
            .expect("write the JSON");
        eprintln!("wrote {path}");
    }
}

fn endpoint(s: &str) -> inboxlink::config::Endpoint {
    let (host, port) = s.rsplit_once(':').expect("host:port");
    inboxlink::config::Endpoint {
        host: host.into(),
        port: port.parse().expect("port"),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    format!(
        "{cpu}, {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    )
}

fn print_table(table: &Table) {
    println!("| figure | value | unit | goal | met |");
    println!("|---|---:|---|---|---|");
    for r in &table.0 {
        println!(
            "| {} | {:.3} | {} | {} | {} |",
            r.name,
            r.value,
            r.unit,
            r.goal.as_deref().unwrap_or(""),
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            }
        );
    }
    println!("\nmachine: {}", machine());
}
