//! `inboxlink-bench`: the benchmark behind `scripts/bench.sh`.
//!
//! Starts what it needs (the release service as a child process pinned to
//! core 0, the fake Entra ID in this process, a private Dovecot, and
//! PostgreSQL when `TEST_POSTGRES_URL` names a cluster), measures, and prints
//! one table. Machines here are shared and noisy, so every figure with a goal
//! is a ratio against a baseline measured in the same run, or a count; the
//! absolute figures are there to read the ratios by. `scripts/bench.sh` pins
//! this process (and `wrk`) to core 1.

mod load;
mod service;
mod table;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa};
use serde_json::{Value, json};

use load::{median_p99, ms};
use service::{Launch, Service};
use table::{Goal, Table};

const TENANT: &str = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c";
const CLIENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const SECRET: &str = "Bench~secret.value_0123456789";
const SCOPES: &str = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access openid profile email";

const USAGE: &str = "\
inboxlink-bench: the benchmark. Run it through scripts/bench.sh, which builds
the release service, starts a throw-away PostgreSQL and pins the cores.

  --quick            1,000 mailboxes and shorter loads: a smoke test
  --binary PATH      the service to start (target/release/inboxlink)
  --criterion DIR    criterion's output to read the crypto figures from (target/criterion)
  --out FILE         the table as JSON (bench.json)
  --markdown FILE    the table as Markdown as well

PostgreSQL is measured when TEST_POSTGRES_URL names a cluster.";

struct Args {
    mailboxes: usize,
    sign_ins: usize,
    checks: usize,
    seconds: u64,
    concurrencies: Vec<usize>,
    out: PathBuf,
    markdown: Option<PathBuf>,
    binary: PathBuf,
    criterion: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        mailboxes: 10_000,
        sign_ins: 200,
        checks: 200,
        seconds: 10,
        concurrencies: vec![16, 64],
        out: "bench.json".into(),
        markdown: None,
        binary: "target/release/inboxlink".into(),
        criterion: "target/criterion".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--quick" => {
                a.mailboxes = 1_000;
                a.sign_ins = 50;
                a.checks = 30;
                a.seconds = 3;
            }
            "--out" => a.out = value().into(),
            "--markdown" => a.markdown = Some(value().into()),
            "--binary" => a.binary = value().into(),
            "--criterion" => a.criterion = value().into(),
            other => panic!("unknown argument {other} (see scripts/bench.sh)"),
        }
    }
    a
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let a = args();
    let mut t = Table::default();
    let fake = FakeEntra::start().await;
    fake.register_app(TENANT, CLIENT_ID, SECRET);

    resources_at_start(&a, &fake, &mut t).await;
    http_reads(&a, &fake, &mut t).await;
    sign_in_path(&a, &fake, &mut t).await;
    refresh_at_scale(&a, &fake, &mut t).await;
    check(&a, &fake, &mut t).await;
    crypto(&a, &mut t);

    let machine = table::machine();
    let markdown = t.markdown(&machine);
    println!("{markdown}");
    std::fs::write(
        &a.out,
        serde_json::to_string_pretty(&t.json(&machine)).expect("json"),
    )
    .expect("write the JSON");
    eprintln!("wrote {}", a.out.display());
    if let Some(path) = &a.markdown {
        std::fs::write(path, markdown).expect("write the Markdown");
    }
}

fn launch(a: &Args, dir: &std::path::Path, database: Option<String>, fake: &FakeEntra) -> Launch {
    Launch::new(&a.binary, dir, database, fake.authority())
}

/// A fresh PostgreSQL database in the cluster of `TEST_POSTGRES_URL`.
fn postgres_database() -> Option<String> {
    let url = std::env::var("TEST_POSTGRES_URL").ok()?;
    let name = format!("inboxlink_bench_{}", uuid::Uuid::new_v4().simple());
    let status = std::process::Command::new("psql")
        .arg(&url)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("psql runs");
    assert!(status.success(), "CREATE DATABASE failed");
    let mut db = url::Url::parse(&url).expect("TEST_POSTGRES_URL is a URL");
    db.set_path(&format!("/{name}"));
    Some(db.to_string())
}

/// Part 5 of the issue: start-up time and resident memory of an idle instance.
async fn resources_at_start(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("start-up and memory:");
    let dir = tempfile::tempdir().expect("temp dir");
    let l = launch(a, dir.path(), None, fake);
    let first = l.start().await;
    let idle = first.rss_mib();
    let fresh = first.ready_after;
    drop(first);
    let mut again = Vec::new();
    for _ in 0..5 {
        again.push(l.start().await.ready_after);
    }
    let (restart, _) = median_p99(again);
    t.goal(
        "resources",
        "start to /readyz, new SQLite database (migrations)",
        ms(fresh),
        "ms",
        Goal::AtMost(300.0),
    );
    t.goal(
        "resources",
        "start to /readyz, existing database (median of 5)",
        ms(restart),
        "ms",
        Goal::AtMost(300.0),
    );
    t.add("resources", "resident memory, idle", idle, "MiB");
}

/// Part 1 of the issue: authenticated reads against `/healthz`, on SQLite and PostgreSQL.
async fn http_reads(a: &Args, fake: &FakeEntra, t: &mut Table) {
    let mut backends: Vec<(&'static str, Option<String>)> = vec![("SQLite", None)];
    match postgres_database() {
        Some(url) => backends.push(("PostgreSQL", Some(url))),
        None => eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL figures left out"),
    }
    for (name, url) in backends {
        eprintln!("HTTP on {name}:");
        let section = if name == "SQLite" {
            "http sqlite"
        } else {
            "http postgres"
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let s = launch(a, dir.path(), url, fake).start().await;
        let http = reqwest::Client::new();
        let credential = create_credential(&http, &s, fake).await;
        let ids = create_mailboxes(&http, &s, &credential, a.mailboxes, "m").await;
        let one = format!("{}/mailboxes/{}", s.base, ids[ids.len() / 2]);
        let page = format!("{}/mailboxes?limit=50", s.base);
        let health = load::wrk(&format!("{}/healthz", s.base), None, a.seconds, 32);
        t.add(
            section,
            "GET /healthz (baseline) throughput",
            health.rps,
            "req/s",
        );
        t.add(section, "GET /healthz p50", health.p50_ms, "ms");
        t.add(section, "GET /healthz p99", health.p99_ms, "ms");
        for (label, url) in [
            ("GET /mailboxes/{id}", &one),
            ("GET /mailboxes?limit=50", &page),
        ] {
            let full = load::wrk(url, Some(&s.admin), a.seconds, 32);
            t.add(section, format!("{label} throughput"), full.rps, "req/s");
            t.goal(
                section,
                format!("{label} throughput / healthz throughput"),
                full.rps / health.rps,
                "x",
                Goal::AtLeast(0.5),
            );
            t.add(
                section,
                format!("{label} p50 at full load (32 connections)"),
                full.p50_ms,
                "ms",
            );
            t.add(
                section,
                format!("{label} p99 at full load (32 connections)"),
                full.p99_ms,
                "ms",
            );
            let half = load::open_loop(url, &s.admin, full.rps / 2.0, a.seconds).await;
            t.add(
                section,
                format!("{label} open loop at half the max: rate achieved"),
                half.achieved_rps,
                "req/s",
            );
            t.add(
                section,
                format!("{label} p50 at half the max"),
                half.p50_ms,
                "ms",
            );
            t.goal(
                section,
                format!("{label} p99 at half the max"),
                half.p99_ms,
                "ms",
                Goal::AtMost(10.0),
            );
        }
    }
}

/// Part 2 of the issue: refresh -> the fake's sign-in -> callback -> active, per mailbox, against
/// the same authorization-code token request made directly to the fake.
async fn sign_in_path(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("sign-in path:");
    let dir = tempfile::tempdir().expect("temp dir");
    let s = launch(a, dir.path(), None, fake).start().await;
    let http = reqwest::Client::new();
    let browser = browser();
    let credential = create_credential(&http, &s, fake).await;
    let ids = create_mailboxes(&http, &s, &credential, a.sign_ins, "signin").await;
    let before = fake.token_calls("authorization_code");
    let mut through = Vec::with_capacity(ids.len());
    for id in &ids {
        let started = Instant::now();
        sign_in(&http, &browser, &s, id).await;
        let mailbox: Value = get_json(&http, &format!("{}/mailboxes/{id}", s.base), &s.admin).await;
        assert_eq!(mailbox["status"], "active");
        through.push(started.elapsed());
    }
    assert_eq!(fake.token_calls("authorization_code") - before, ids.len());
    let redirect_uri = format!("{}/oauth/callback", s.base);
    let mut direct = Vec::with_capacity(ids.len());
    for i in 0..a.sign_ins {
        let code = authorize_directly(
            &browser,
            fake,
            &redirect_uri,
            &format!("direct{i}@contoso.cz"),
        )
        .await;
        let started = Instant::now();
        redeem_directly(&browser, fake, &redirect_uri, &code).await;
        direct.push(started.elapsed());
    }
    let (svc, svc99) = median_p99(through);
    let (dir50, _) = median_p99(direct);
    t.add(
        "sign-in",
        format!("refresh -> callback -> active, median of {}", a.sign_ins),
        ms(svc),
        "ms",
    );
    t.add(
        "sign-in",
        "refresh -> callback -> active, p99",
        ms(svc99),
        "ms",
    );
    t.add(
        "sign-in",
        "the same token request directly to the fake, median",
        ms(dir50),
        "ms",
    );
    t.add(
        "sign-in",
        "sign-in path / direct token request",
        svc.as_secs_f64() / dir50.as_secs_f64(),
        "x",
    );
}

/// Part 3 of the issue: the keep-alive refreshing every grant at once, through the token keeper,
/// against the fake with 20 ms latency per token request.
async fn refresh_at_scale(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("refresh at scale:");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut l = launch(a, dir.path(), None, fake);
    let s = l.start().await;
    let http = reqwest::Client::new();
    let browser = browser();
    let credential = create_credential(&http, &s, fake).await;
    let ids = create_mailboxes(&http, &s, &credential, a.mailboxes, "scale").await;
    // Signed in with access tokens that are stale at once (60 s < the 5-minute margin).
    fake.set_access_token_ttl(60);
    futures_util::stream::iter(ids.iter())
        .map(|id| sign_in(&http, &browser, &s, id))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    fake.set_access_token_ttl(3600);
    drop(s);
    fake.set_latency(Duration::from_millis(20));
    for &concurrency in &a.concurrencies {
        // A new instance whose start-up sweep finds every grant due (older than 0 days).
        let before = fake.token_calls("refresh_token");
        l.set("INBOXLINK_KEEPALIVE_INTERVAL_SECONDS", "3600")
            .set("INBOXLINK_KEEPALIVE_AFTER_DAYS", "0")
            .set("INBOXLINK_KEEPALIVE_CONCURRENCY", concurrency.to_string())
            // As many token requests in flight as the sweep runs refreshes.
            .set("INBOXLINK_IDP_MAX_CONCURRENCY", concurrency.to_string());
        let s = l.start().await;
        let waited = Instant::now();
        while s
            .metric("inboxlink_keepalive_sweeps_total")
            .await
            .unwrap_or(0.0)
            < 1.0
        {
            assert!(
                waited.elapsed() < Duration::from_secs(900),
                "the sweep did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let wall = s
            .metric("inboxlink_keepalive_last_sweep_seconds")
            .await
            .expect("sweep duration");
        let failed = s
            .metric("inboxlink_keepalive_failed_total")
            .await
            .unwrap_or(f64::NAN);
        let calls = fake.token_calls("refresh_token") - before;
        let floor = 0.020 * a.mailboxes as f64 / concurrency as f64;
        let section = "refresh at scale";
        t.add(
            section,
            format!(
                "concurrency {concurrency}: wall time for {} grants",
                a.mailboxes
            ),
            wall,
            "s",
        );
        t.add(
            section,
            format!(
                "concurrency {concurrency}: floor {} x 20 ms / {concurrency}",
                a.mailboxes
            ),
            floor,
            "s",
        );
        t.goal(
            section,
            format!("concurrency {concurrency}: wall / floor"),
            wall / floor,
            "x",
            Goal::AtMost(1.25),
        );
        t.goal(
            section,
            format!("concurrency {concurrency}: token calls at the fake / grants"),
            calls as f64 / a.mailboxes as f64,
            "x",
            Goal::Exactly(1.0),
        );
        t.goal(
            section,
            format!("concurrency {concurrency}: refreshes failed"),
            failed,
            "count",
            Goal::Exactly(0.0),
        );
        if concurrency == a.concurrencies[0] {
            t.goal(
                "resources",
                format!(
                    "resident memory with {} mailboxes, after the refresh run",
                    a.mailboxes
                ),
                s.rss_mib(),
                "MiB",
                Goal::AtMost(64.0),
            );
        }
    }
    fake.set_latency(Duration::ZERO);
}

/// Part 4 of the issue: `POST /mailboxes/{id}/check` against the same IMAP and SMTP steps done
/// directly with the same code (async-imap, lettre) and no service around it.
async fn check(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("check:");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::generate(dir.path());
    let sink = SmtpSink::start();
    let dovecot = match Dovecot::start(&fake.introspection_url(), &ca, &sink) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("  Dovecot could not start ({e}): check figures left out (run as root)");
            return;
        }
    };
    let data = tempfile::tempdir().expect("temp dir");
    let mut l = launch(a, data.path(), None, fake);
    l.set("INBOXLINK_IMAP_ENDPOINT", dovecot.imap_endpoint())
        .set("INBOXLINK_SMTP_ENDPOINT", dovecot.submission_endpoint())
        .set(
            "INBOXLINK_EXTRA_ROOT_CA",
            ca.ca_file().display().to_string(),
        );
    let s = l.start().await;
    let http = reqwest::Client::new();
    let credential = create_credential(&http, &s, fake).await;
    let id = create_mailboxes(&http, &s, &credential, 1, "check")
        .await
        .remove(0);
    sign_in(&http, &browser(), &s, &id).await;
    dovecot.deliver("check0@contoso.cz", 10);

    let token: Value = get_json(
        &http,
        &format!("{}/mailboxes/{id}/access-token", s.base),
        &s.service_token,
    )
    .await;
    let token =
        secrecy::SecretString::from(token["access_token"].as_str().expect("token").to_owned());
    let servers = inboxlink::mail::MailServers {
        imap: endpoint(&dovecot.imap_endpoint()),
        smtp: endpoint(&dovecot.submission_endpoint()),
        trust: inboxlink::mail::TlsTrust::new(Some(&ca.ca_file())).expect("trust"),
        step_timeout: Duration::from_secs(10),
    };
    let login = inboxlink::mail::Login {
        mailbox: "check0@contoso.cz",
        smtp_user: "check0@contoso.cz",
        token: &token,
        access_mode: inboxlink::domain::AccessMode::Delegated,
    };
    // Interleaved, so both see the same machine over time.
    let (mut through, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..a.checks {
        let started = Instant::now();
        let report: Value = http
            .post(format!("{}/mailboxes/{id}/check", s.base))
            .bearer_auth(&s.admin)
            .json(&json!({}))
            .send()
            .await
            .expect("check")
            .json()
            .await
            .expect("json");
        through.push(started.elapsed());
        assert_eq!(report["ok"], true, "{report}");

        let started = Instant::now();
        let mut steps = inboxlink::mail::Steps::new("");
        servers.check(&mut steps, &login, false).await;
        direct.push(started.elapsed());
        assert!(!steps.failed(), "{:?}", steps.steps);
    }
    let (s50, s99) = median_p99(through);
    let (d50, d99) = median_p99(direct);
    t.add(
        "check",
        format!("through the service, median of {}", a.checks),
        ms(s50),
        "ms",
    );
    t.add("check", "through the service, p99", ms(s99), "ms");
    t.add("check", "the same steps directly, median", ms(d50), "ms");
    t.add("check", "the same steps directly, p99", ms(d99), "ms");
    t.goal(
        "check",
        "service / direct, median",
        s50.as_secs_f64() / d50.as_secs_f64(),
        "x",
        Goal::AtMost(1.2),
    );
    t.goal(
        "check",
        "service / direct, p99",
        s99.as_secs_f64() / d99.as_secs_f64(),
        "x",
        Goal::AtMost(1.2),
    );
}

/// Part 5 of the issue: encryption per value, from criterion's estimates (`cargo bench --bench crypto`).
fn crypto(a: &Args, t: &mut Table) {
    for (name, label, goal) in [
        ("encrypt_token_1500", "encrypt a 1.5 KB token", None),
        (
            "decrypt_token_1500",
            "decrypt a 1.5 KB token",
            Some(Goal::AtMost(5.0)),
        ),
        ("encrypt_secret_40", "encrypt a 40-byte client secret", None),
        (
            "decrypt_secret_40",
            "decrypt a 40-byte client secret",
            Some(Goal::AtMost(5.0)),
        ),
    ] {
        let path = a.criterion.join(name).join("new").join("estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!(
                "  {} is missing: run cargo bench -p inboxlink --bench crypto",
                path.display()
            );
            continue;
        };
        let estimates: Value = serde_json::from_str(&text).expect("criterion estimates");
        let us = estimates["median"]["point_estimate"]
            .as_f64()
            .expect("median")
            / 1000.0;
        match goal {
            Some(g) => t.goal(
                "crypto (criterion)",
                format!("{label}, median"),
                us,
                "us",
                g,
            ),
            None => t.add("crypto (criterion)", format!("{label}, median"), us, "us"),
        }
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = http.get(url).bearer_auth(token).send().await.expect("GET");
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.expect("json")
}

async fn create_credential(http: &reqwest::Client, s: &Service, fake: &FakeEntra) -> String {
    // Each instance listens on its own port: register its redirect URI.
    fake.add_redirect_uri(CLIENT_ID, &format!("{}/oauth/callback", s.base));
    let r: Value = http
        .post(format!("{}/app-credentials", s.base))
        .bearer_auth(&s.admin)
        .json(&json!({ "name": "Bench", "client_id": CLIENT_ID, "tenant_id": TENANT, "client_secret": SECRET }))
        .send()
        .await
        .expect("create credential")
        .json()
        .await
        .expect("json");
    r["id"].as_str().expect("id").to_owned()
}

/// Creates `n` mailboxes (16 requests at a time); returns their ids.
async fn create_mailboxes(
    http: &reqwest::Client,
    s: &Service,
    credential: &str,
    n: usize,
    prefix: &str,
) -> Vec<String> {
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (http, base, token, credential) = (
                http.clone(),
                s.base.clone(),
                s.admin.clone(),
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
        .bearer_auth(&s.admin)
        .json(&json!({}))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    let url = r["authorization_url"].as_str().expect("a sign-in URL");
    let hop = browser.get(url).send().await.expect("authorize");
    let location = hop.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let page = browser.get(location).send().await.expect("callback");
    assert_eq!(page.status(), 200, "the sign-in completes");
}

const VERIFIER: &str = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

/// The fake's sign-in for `user` done by hand; returns the code.
async fn authorize_directly(
    browser: &reqwest::Client,
    fake: &FakeEntra,
    redirect_uri: &str,
    user: &str,
) -> String {
    let challenge = inboxlink_tests::fake_entra::pkce_s256(VERIFIER);
    let mut url = url::Url::parse(&format!(
        "{}/{TENANT}/oauth2/v2.0/authorize",
        fake.authority()
    ))
    .expect("url");
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_mode", "query")
        .append_pair("scope", SCOPES)
        .append_pair("state", "bench")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("nonce", "bench")
        .append_pair("login_hint", user);
    let hop = browser.get(url).send().await.expect("authorize");
    let location =
        url::Url::parse(hop.headers()["location"].to_str().expect("location")).expect("url");
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

/// The authorization-code token request, as the service makes it.
async fn redeem_directly(http: &reqwest::Client, fake: &FakeEntra, redirect_uri: &str, code: &str) {
    let r = http
        .post(format!("{}/{TENANT}/oauth2/v2.0/token", fake.authority()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token");
    assert!(r.status().is_success(), "the fake redeemed the code");
    let _: Value = r.json().await.expect("tokens");
}

fn endpoint(s: &str) -> inboxlink::config::Endpoint {
    let (host, port) = s.rsplit_once(':').expect("host:port");
    inboxlink::config::Endpoint {
        host: host.into(),
        port: port.parse().expect("port"),
    }
}
