//! The bridge: the same IMAP and SMTP client work ([`crate::mail_client`])
//! through the bridge (a bridge password), directly against Dovecot (XOAUTH2
//! with the mailbox's token) and through email-oauth2-proxy
//! ([`crate::emailproxy`]), interleaved; and idle IMAP sessions held open
//! through the bridge and through the proxy, for their memory per session.
//!
//! The bridge presents the test CA's certificate, as Dovecot and the proxy
//! do, so every connection makes the same kind of TLS handshake (full, no
//! resumption) with the same client configuration.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa};
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;

use crate::api::{browser, create_credential, create_mailboxes, get_json, post_json, sign_in};
use crate::emailproxy::EmailProxy;
use crate::load::{ms, percentile};
use crate::mail_client::{Imap, Login, connector, message, smtp_send};
use crate::service::free_port;
use crate::table::{Goal, Table};
use crate::{Args, launch};

const SECTION: &str = "bridge";
/// Messages in the INBOX the first workload fetches.
const MESSAGES: usize = 50;
/// The large message of the throughput figure, and the folder it is in.
const BIG: usize = 10_000_000;
const BIG_FOLDER: &str = "Big";
/// The message submitted over SMTP.
const SUBMITTED: usize = 100 * 1024;
const RECIPIENT: &str = "someone@example.test";
/// Idle sessions opened at once.
const OPENING: usize = 16;

/// One way to the mailbox: where its IMAP and SMTP listeners are, and how
/// the client logs in there.
struct Target {
    name: &'static str,
    imap: SocketAddr,
    smtp: SocketAddr,
    login: Login,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("host:port")
}

pub async fn bridge(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("bridge:");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::generate(dir.path());
    let sink = SmtpSink::start();
    let dovecot = match Dovecot::start_with_sessions(
        &fake.introspection_url(),
        &ca,
        &sink,
        a.bridge_sessions,
    ) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("  Dovecot could not start ({e}): bridge figures left out (run as root)");
            return;
        }
    };
    let (imap_port, smtp_port) = (free_port(), free_port());
    let data = tempfile::tempdir().expect("temp dir");
    let mut l = launch(a, data.path(), None, fake);
    l.mail_servers(&dovecot, &ca)
        .set(
            "INBOXLINK_BRIDGE_IMAP_BIND",
            format!("127.0.0.1:{imap_port}"),
        )
        .set(
            "INBOXLINK_BRIDGE_SMTP_BIND",
            format!("127.0.0.1:{smtp_port}"),
        )
        .set(
            "INBOXLINK_BRIDGE_TLS_CERT_FILE",
            ca.cert_file().display().to_string(),
        )
        .set(
            "INBOXLINK_BRIDGE_TLS_KEY_FILE",
            ca.key_file().display().to_string(),
        )
        .set(
            "INBOXLINK_BRIDGE_SESSIONS_PER_MAILBOX",
            a.bridge_sessions.clamp(10, 1000).to_string(),
        );
    let s = l.start().await;
    let http = reqwest::Client::new();
    let credential = create_credential(&http, &s, fake).await;
    let id = create_mailboxes(&http, &s, &credential, 1, "bridge")
        .await
        .remove(0);
    let mailbox = "bridge0@contoso.cz";
    sign_in(&http, &browser(), &s, &id).await;
    dovecot.deliver(mailbox, MESSAGES);
    let created = post_json(
        &http,
        &format!("{}/mailboxes/{id}/bridge-passwords", s.base),
        &s.admin,
        &json!({ "name": "Bench" }),
    )
    .await;
    let token: Value = get_json(
        &http,
        &format!("{}/mailboxes/{id}/access-token", s.base),
        &s.service_token,
    )
    .await;
    let tls = connector(&ca.client_config());
    let bridge = Target {
        name: "the bridge",
        imap: addr(&format!("127.0.0.1:{imap_port}")),
        smtp: addr(&format!("127.0.0.1:{smtp_port}")),
        login: Login::Password {
            user: created["username"].as_str().expect("username").to_owned(),
            password: created["password"].as_str().expect("password").to_owned(),
        },
    };
    let direct = Target {
        name: "Dovecot directly",
        imap: addr(&dovecot.imap_endpoint()),
        smtp: addr(&dovecot.submission_endpoint()),
        login: Login::XOauth2 {
            user: mailbox.to_owned(),
            token: token["access_token"].as_str().expect("token").to_owned(),
        },
    };
    put_big_message(&direct, &tls, mailbox).await;

    let mut targets = vec![bridge, direct];
    let proxy = match &a.emailproxy {
        Some(python) => start_proxy(python, &dovecot, &ca, fake, mailbox, &tls).await,
        None => {
            eprintln!("  --emailproxy not given: email-oauth2-proxy's figures left out");
            None
        }
    };
    if let Some(p) = &proxy {
        targets.push(Target {
            name: "email-oauth2-proxy",
            imap: p.imap,
            smtp: p.smtp,
            login: Login::Password {
                user: mailbox.to_owned(),
                // Any password: the proxy encrypts its cached token with it.
                password: "bench-proxy-password".to_owned(),
            },
        });
    }

    let submitted = message(mailbox, RECIPIENT, "Bench submission", SUBMITTED);
    // Warm-up: one of each on each target.
    for target in &targets {
        fetch_inbox(target, &tls).await.expect("a warm-up FETCH");
        send(target, &tls, mailbox, &submitted)
            .await
            .expect("a warm-up submission");
    }

    let n = a.bridge_reps;
    let fetches = interleaved(&targets, n, |target| fetch_inbox(target, &tls)).await;
    report_latency(
        t,
        &targets,
        &fetches,
        "IMAP login + SELECT + FETCH of 50 messages",
        n,
    );
    let mut sessions = Vec::new();
    for target in &targets {
        sessions.push(big_session(target, &tls).await);
    }
    let mut rates = vec![Vec::new(); targets.len()];
    for _ in 0..a.bridge_big_reps {
        for (i, session) in sessions.iter_mut().enumerate() {
            rates[i].push(fetch_big(session, targets[i].name).await);
        }
    }
    drop(sessions);
    report_throughput(t, &targets, rates, a.bridge_big_reps);
    let sends = interleaved(&targets, n, |target| {
        send(target, &tls, mailbox, &submitted)
    })
    .await;
    report_latency(
        t,
        &targets,
        &sends,
        "SMTP login + send of a 100 KB message",
        n,
    );

    let rss = || s.rss_mib() * 1024.0;
    let (bridge_kib, bridge_errors) = idle(&targets[0], &tls, a.bridge_sessions, rss).await;
    let sessions_name = format!("{} idle IMAP sessions", a.bridge_sessions);
    t.goal(
        SECTION,
        format!("{sessions_name} through the bridge: resident memory per session"),
        bridge_kib,
        "KiB",
        Goal::AtMost(64.0),
    );
    t.goal(
        SECTION,
        format!("{sessions_name} through the bridge: sessions that failed"),
        bridge_errors as f64,
        "",
        Goal::Exactly(0.0),
    );
    if let (Some(p), Some(target)) = (&proxy, targets.get(2)) {
        // Dovecot lets the bridge's sessions go first.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (kib, errors) = idle(target, &tls, a.bridge_sessions, || p.rss_kib()).await;
        t.add(
            SECTION,
            format!("{sessions_name} through email-oauth2-proxy: resident memory per session"),
            kib,
            "KiB",
        );
        t.add(
            SECTION,
            format!("{sessions_name} through email-oauth2-proxy: sessions that failed"),
            errors as f64,
            "",
        );
        t.goal(
            SECTION,
            "idle session memory, bridge / email-oauth2-proxy",
            bridge_kib / kib,
            "x",
            Goal::AtMost(1.0),
        );
    }
    drop(proxy);
}

/// The proxy, started and signed in (its first client login waits for the
/// sign-in); `None`, said why, when it does not work.
async fn start_proxy(
    python: &std::path::Path,
    dovecot: &Dovecot,
    ca: &TestCa,
    fake: &FakeEntra,
    mailbox: &str,
    tls: &TlsConnector,
) -> Option<EmailProxy> {
    let proxy = match EmailProxy::start(python, dovecot, ca, fake, mailbox).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("  email-oauth2-proxy did not start: {e}");
            return None;
        }
    };
    let (imap, tls2) = (proxy.imap, tls.clone());
    let login = Login::Password {
        user: mailbox.to_owned(),
        password: "bench-proxy-password".to_owned(),
    };
    let first = tokio::spawn(async move {
        let mut session = Imap::connect(imap, &tls2).await?;
        session.login(&login).await?;
        session.command("LOGOUT").await.map(drop)
    });
    let signed_in = proxy.authorize(&browser()).await;
    let first = first.await.expect("the first login's task");
    match (signed_in, first) {
        (Ok(()), Ok(())) => Some(proxy),
        (s, f) => {
            eprintln!(
                "  email-oauth2-proxy's first login failed ({:?}, {:?}); its log:\n{}",
                s.err(),
                f.err(),
                proxy.log_text()
            );
            None
        }
    }
}

/// `n` rounds, each running `work` once on every target in turn.
async fn interleaved<'t, F, Fut>(targets: &'t [Target], n: usize, work: F) -> Vec<Vec<Duration>>
where
    F: Fn(&'t Target) -> Fut,
    Fut: std::future::Future<Output = io::Result<Duration>>,
{
    let mut times = vec![Vec::with_capacity(n); targets.len()];
    for _ in 0..n {
        for (i, target) in targets.iter().enumerate() {
            let d = work(target)
                .await
                .unwrap_or_else(|e| panic!("through {}: {e}", target.name));
            times[i].push(d);
        }
    }
    times
}

/// Connect, log in, `SELECT INBOX`, `FETCH` all 50 messages, `LOGOUT`.
async fn fetch_inbox(target: &Target, tls: &TlsConnector) -> io::Result<Duration> {
    let started = Instant::now();
    let mut imap = Imap::connect(target.imap, tls).await?;
    imap.login(&target.login).await?;
    let selected = imap.command("SELECT INBOX").await?;
    let fetched = imap
        .command(&format!("FETCH 1:{MESSAGES} (FLAGS BODY.PEEK[])"))
        .await?;
    imap.command("LOGOUT").await?;
    let took = started.elapsed();
    if selected.exists != Some(MESSAGES as u32) || fetched.literals != MESSAGES {
        return Err(io::Error::other(format!(
            "{:?} messages, {} fetched",
            selected.exists, fetched.literals
        )));
    }
    Ok(took)
}

/// Connect, `STARTTLS`, log in, submit `message`, `QUIT`.
async fn send(
    target: &Target,
    tls: &TlsConnector,
    from: &str,
    message: &[u8],
) -> io::Result<Duration> {
    let started = Instant::now();
    smtp_send(target.smtp, tls, &target.login, from, RECIPIENT, message).await?;
    Ok(started.elapsed())
}

/// The 10 MB message, appended directly to its own folder.
async fn put_big_message(direct: &Target, tls: &TlsConnector, mailbox: &str) {
    let big = message("sender@example.test", mailbox, "Big", BIG);
    let mut imap = Imap::connect(direct.imap, tls).await.expect("Dovecot");
    imap.login(&direct.login).await.expect("XOAUTH2 at Dovecot");
    imap.command(&format!("CREATE {BIG_FOLDER}"))
        .await
        .expect("CREATE");
    imap.append(BIG_FOLDER, &big).await.expect("APPEND");
    imap.command("LOGOUT").await.expect("LOGOUT");
}

/// A session with the big message's folder selected.
async fn big_session(target: &Target, tls: &TlsConnector) -> Imap {
    let mut imap = Imap::connect(target.imap, tls)
        .await
        .unwrap_or_else(|e| panic!("through {}: {e}", target.name));
    imap.login(&target.login)
        .await
        .unwrap_or_else(|e| panic!("login through {}: {e}", target.name));
    imap.command(&format!("SELECT {BIG_FOLDER}"))
        .await
        .unwrap_or_else(|e| panic!("SELECT through {}: {e}", target.name));
    imap
}

/// One `FETCH` of the big message; MB/s.
async fn fetch_big(imap: &mut Imap, name: &str) -> f64 {
    let started = Instant::now();
    let fetched = imap
        .command("FETCH 1 (BODY.PEEK[])")
        .await
        .unwrap_or_else(|e| panic!("the big FETCH through {name}: {e}"));
    let secs = started.elapsed().as_secs_f64();
    assert!(
        fetched.literal_bytes >= BIG - 100,
        "the big message through {name}: {} bytes",
        fetched.literal_bytes
    );
    fetched.literal_bytes as f64 / 1e6 / secs
}

/// `n` sessions logged in with `SELECT INBOX`, held open: the growth of
/// `rss` (KiB) per session, and how many failed to open or to answer a
/// `NOOP` once all were open.
async fn idle(
    target: &Target,
    tls: &TlsConnector,
    n: usize,
    rss: impl Fn() -> f64,
) -> (f64, usize) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss();
    let opened: Vec<io::Result<Imap>> = futures_util::stream::iter(0..n)
        .map(|_| async {
            let mut imap = Imap::connect(target.imap, tls).await?;
            imap.login(&target.login).await?;
            imap.command("SELECT INBOX").await?;
            Ok(imap)
        })
        .buffer_unordered(OPENING)
        .collect()
        .await;
    let mut failed = opened.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = opened.iter().find(|r| r.is_err()) {
        eprintln!("  through {}: a session failed: {e}", target.name);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss();
    let mut open: Vec<Imap> = opened.into_iter().filter_map(Result::ok).collect();
    for imap in &mut open {
        if imap.command("NOOP").await.is_err() {
            failed += 1;
        }
    }
    eprintln!(
        "  through {}: {} KiB before, {} KiB with {} sessions open",
        target.name,
        before,
        after,
        open.len()
    );
    ((after - before) / n as f64, failed)
}

fn median_p90(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.9))
}

/// Median and p90 of each target, and the bridge's median against the others'.
fn report_latency(
    t: &mut Table,
    targets: &[Target],
    times: &[Vec<Duration>],
    work: &str,
    n: usize,
) {
    let stats: Vec<(Duration, Duration)> = times.iter().cloned().map(median_p90).collect();
    for (target, (p50, p90)) in targets.iter().zip(&stats) {
        t.add(
            SECTION,
            format!("{work}, through {}: median of {n}", target.name),
            ms(*p50),
            "ms",
        );
        t.add(
            SECTION,
            format!("{work}, through {}: p90", target.name),
            ms(*p90),
            "ms",
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    t.goal(
        SECTION,
        format!("{work}: bridge / direct, median"),
        ratio(stats[0].0, stats[1].0),
        "x",
        Goal::AtMost(1.2),
    );
    t.add(
        SECTION,
        format!("{work}: bridge / direct, p90"),
        ratio(stats[0].1, stats[1].1),
        "x",
    );
    if let Some((p50, _)) = stats.get(2) {
        t.goal(
            SECTION,
            format!("{work}: bridge / email-oauth2-proxy, median"),
            ratio(stats[0].0, *p50),
            "x",
            Goal::AtMost(1.0),
        );
    }
}

fn report_throughput(t: &mut Table, targets: &[Target], rates: Vec<Vec<f64>>, n: usize) {
    let work = "FETCH of a 10 MB message";
    let medians: Vec<f64> = rates
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    for (target, m) in targets.iter().zip(&medians) {
        t.add(
            SECTION,
            format!("{work}, through {}: median of {n}", target.name),
            *m,
            "MB/s",
        );
    }
    t.goal(
        SECTION,
        format!("{work}: bridge / direct, median"),
        medians[0] / medians[1],
        "x",
        Goal::AtLeast(0.8),
    );
    if let Some(m) = medians.get(2) {
        t.goal(
            SECTION,
            format!("{work}: bridge / email-oauth2-proxy, median"),
            medians[0] / m,
            "x",
            Goal::AtLeast(1.0),
        );
    }
}
