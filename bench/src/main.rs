//! `inboxlink-bench`: the benchmark behind `scripts/bench.sh`.
//!
//! Starts what it needs (the release service as a child process pinned to
//! core 0, the fake Entra ID in this process, a private Dovecot, and
//! PostgreSQL when `TEST_POSTGRES_URL` names a cluster), measures, and prints
//! one table. Machines here are shared and noisy, so every figure with a goal
//! is a ratio against a baseline measured in the same run, or a count; the
//! absolute figures are there to read the ratios by. `scripts/bench.sh` pins
//! this process (and `wrk`) to core 1.
//!
//! Here: the arguments and the run. Each measurement is a module of
//! [`scenario`]; [`api`] drives the service and the fake as a client does;
//! [`post`] is the direct webhook POST the delivery figures are read against.

mod api;
mod emailproxy;
mod load;
mod mail_client;
mod post;
mod scenario;
mod service;
mod table;

use std::path::PathBuf;

use inboxlink_tests::fake_entra::FakeEntra;

use service::Launch;
use table::Table;

const TENANT: &str = "6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c";
const CLIENT_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const SECRET: &str = "Bench~secret.value_0123456789";
const SCOPES: &str = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access openid profile email";

const USAGE: &str = "\
inboxlink-bench: the benchmark. Run it through scripts/bench.sh, which builds
the release service, starts a throw-away PostgreSQL and pins the cores.

  --quick            1,000 mailboxes and shorter loads: a smoke test
  --only PARTS       only these parts, comma-separated: resources, http, sign-in,
                     refresh, check, webhooks, bridge, crypto (default: all)
  --webhook-changes N  status changes timed from the transition to the receiver (10,000)
  --webhook-burst N  queued deliveries the delivery rate is measured on (10,000)
  --bridge-sessions N  idle IMAP sessions held open through each bridge (1,000)
  --emailproxy PYTHON  the Python that runs email-oauth2-proxy, for the bridge's
                     second baseline (scripts/bench.sh installs it)
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
    /// Status changes in the webhook latency run, and the mailboxes they go round.
    webhook_changes: usize,
    webhook_mailboxes: usize,
    /// Deliveries queued for the webhook throughput run.
    webhook_burst: usize,
    /// Repetitions of each IMAP and SMTP workload through each bridge, of
    /// the 10 MB FETCH, and the idle sessions held open.
    bridge_reps: usize,
    bridge_big_reps: usize,
    bridge_sessions: usize,
    /// The virtualenv's Python with email-oauth2-proxy (`None`: not measured).
    emailproxy: Option<PathBuf>,
    /// The parts to run (`None`: all).
    only: Option<Vec<String>>,
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
        webhook_changes: 10_000,
        webhook_mailboxes: 1_000,
        webhook_burst: 10_000,
        bridge_reps: 100,
        bridge_big_reps: 20,
        bridge_sessions: 1_000,
        emailproxy: None,
        only: None,
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
                a.webhook_changes = 1_000;
                a.webhook_mailboxes = 100;
                a.webhook_burst = 1_000;
                a.bridge_reps = 20;
                a.bridge_big_reps = 5;
                a.bridge_sessions = 200;
            }
            "--only" => a.only = Some(value().split(',').map(str::to_owned).collect()),
            "--webhook-changes" => a.webhook_changes = value().parse().expect("a number"),
            "--webhook-burst" => a.webhook_burst = value().parse().expect("a number"),
            "--bridge-sessions" => a.bridge_sessions = value().parse().expect("a number"),
            "--emailproxy" => a.emailproxy = Some(value().into()),
            "--out" => a.out = value().into(),
            "--markdown" => a.markdown = Some(value().into()),
            "--binary" => a.binary = value().into(),
            "--criterion" => a.criterion = value().into(),
            other => panic!("unknown argument {other} (see scripts/bench.sh)"),
        }
    }
    a
}

impl Args {
    /// Whether `--only` leaves this part in.
    fn runs(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|parts| parts.iter().any(|p| p == part))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    // The direct POSTs of the webhook baseline, as a child process (see `post`).
    if std::env::args().nth(1).as_deref() == Some("post") {
        return post::main(std::env::args().skip(2)).await;
    }
    let a = args();
    let mut t = Table::default();
    let fake = FakeEntra::start().await;
    fake.register_app(TENANT, CLIENT_ID, SECRET);

    if a.runs("resources") {
        scenario::resources::resources_at_start(&a, &fake, &mut t).await;
    }
    if a.runs("http") {
        scenario::http_reads::http_reads(&a, &fake, &mut t).await;
    }
    if a.runs("sign-in") {
        scenario::sign_in::sign_in_path(&a, &fake, &mut t).await;
    }
    if a.runs("refresh") {
        scenario::refresh::refresh_at_scale(&a, &fake, &mut t).await;
    }
    if a.runs("check") {
        scenario::check::check(&a, &fake, &mut t).await;
    }
    if a.runs("webhooks") {
        scenario::webhooks::webhooks(&a, &fake, &mut t).await;
    }
    if a.runs("bridge") {
        scenario::bridge::bridge(&a, &fake, &mut t).await;
    }
    if a.runs("crypto") {
        scenario::crypto::crypto(&a, &mut t);
    }

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
