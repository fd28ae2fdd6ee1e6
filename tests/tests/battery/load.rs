//! Sustained mixed traffic against the service process: single reads,
//! pages, access tokens, refresh starts followed through the sign-in to the
//! callback, and checks against a real Dovecot, sent at a fixed rate (an
//! open loop: a slow answer does not slow the senders). The long form first
//! measures the mix's maximum rate (a closed loop) and then runs ten minutes
//! at 80% of it. No answer is a 5xx or a transport error, the open
//! descriptors do not grow, and (long form) resident memory grows less
//! than 10% after the warm-up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa};

use super::{Form, Service, figure, form, ms, percentile, sized};
use crate::helpers::{TestAppBuilder, backend_tests, follow};

/// Longer than the HTTP keep-alive (5 s): the idle service's connections are closed.
const IDLE: Duration = Duration::from_secs(7);

/// What one request of the mix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Read,
    Page,
    AccessToken,
    SignIn,
    Check,
}

impl Kind {
    /// The mix: of every 40 requests, 16 reads, 8 pages, 12 access tokens,
    /// 2 refresh starts with their sign-in and callback, 2 checks.
    fn nth(i: usize) -> Kind {
        match i % 40 {
            0..16 => Kind::Read,
            16..24 => Kind::Page,
            24..36 => Kind::AccessToken,
            36 | 37 => Kind::SignIn,
            _ => Kind::Check,
        }
    }
}

#[derive(Default)]
struct Record {
    answers: BTreeMap<String, usize>,
    latencies: BTreeMap<Kind, Vec<Duration>>,
}

struct Mix {
    base: String,
    token: String,
    ids: Vec<uuid::Uuid>,
    client: reqwest::Client,
    record: Mutex<Record>,
}

impl Mix {
    /// Sends the `i`-th request of the mix and records its answer.
    async fn send(&self, i: usize) {
        let kind = Kind::nth(i);
        let id = self.ids[(i * 7919) % self.ids.len()];
        let started = Instant::now();
        let answer = match kind {
            Kind::Read => self.get(&format!("/mailboxes/{id}")).await,
            Kind::Page => self.get("/mailboxes?limit=50").await,
            Kind::AccessToken => self.get(&format!("/mailboxes/{id}/access-token")).await,
            Kind::SignIn => self.sign_in(id).await,
            Kind::Check => self.check(id).await,
        };
        let took = started.elapsed();
        let mut record = self.record.lock().expect("lock");
        *record
            .answers
            .entry(format!("{kind:?} {answer}"))
            .or_default() += 1;
        record.latencies.entry(kind).or_default().push(took);
    }

    async fn get(&self, path: &str) -> String {
        let sent = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        status(sent).await
    }

    /// A check: `200 ok`, or the HTTP status, or the first failed step.
    async fn check(&self, id: uuid::Uuid) -> String {
        let sent = self
            .client
            .post(format!("{}/mailboxes/{id}/check", self.base))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({}))
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 200 => {
                let report: serde_json::Value = r.json().await.unwrap_or_default();
                if report["ok"] == true {
                    "200 ok".into()
                } else {
                    let failed = report["steps"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|s| s["status"] == "failed")
                        .map(|s| format!("{} {}", s["name"], s["code"]));
                    format!("200 failed at {}", failed.unwrap_or_default())
                }
            }
            other => status(other).await,
        }
    }

    /// A refresh start, then its authorization URL followed as a browser
    /// does, to the service's callback page.
    async fn sign_in(&self, id: uuid::Uuid) -> String {
        let sent = self
            .client
            .post(format!("{}/mailboxes/{id}/refresh", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let started = match sent {
            Ok(r) if r.status() == 200 => r.json::<serde_json::Value>().await.unwrap_or_default(),
            other => return format!("refresh {}", status(other).await),
        };
        match started["authorization_url"].as_str() {
            Some(url) => format!("callback {}", follow(url).await.status.as_u16()),
            None => format!("refresh 200 without a sign-in URL: {started}"),
        }
    }
}

async fn status(sent: reqwest::Result<reqwest::Response>) -> String {
    match sent {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) if e.is_timeout() => "no answer in time".into(),
        Err(e) => format!("transport error: {e}"),
    }
}

/// The mix in a closed loop of `connections` for `seconds`: requests a second.
async fn maximum(mix: &Arc<Mix>, connections: usize, seconds: u64) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (mix, next) = (mix.clone(), next.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    mix.send(next.fetch_add(1, Ordering::Relaxed)).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("a worker");
    }
    next.load(Ordering::Relaxed) as f64 / seconds as f64
}

backend_tests!(mixed_traffic_at_a_steady_rate_holds);
async fn mixed_traffic_at_a_steady_rate_holds(app: TestAppBuilder) {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeEntra::start().await;
    let ca = TestCa::generate(dir.path());
    let sink = SmtpSink::start();
    let dovecot = Dovecot::start(&fake.introspection_url(), &ca, &sink).expect("Dovecot starts");
    let n = sized(40, 400);
    let app = super::kill::unlimited(app)
        .with_started_fake_entra(fake)
        .with_app_credential()
        .start()
        .await;
    let ids = super::kill::stale_mailboxes(&app, n).await;
    app.stop(true).await;
    let service = Service::start(
        &app,
        &[
            ("INBOXLINK_IMAP_ENDPOINT", dovecot.imap_endpoint()),
            ("INBOXLINK_SMTP_ENDPOINT", dovecot.submission_endpoint()),
            (
                "INBOXLINK_EXTRA_ROOT_CA",
                ca.ca_file().display().to_string(),
            ),
            ("INBOXLINK_DATABASE_POOL_SIZE", "8".into()),
        ],
    )
    .await;
    let mix = Arc::new(Mix {
        base: service.base(),
        token: service.token.clone(),
        ids,
        // Idle connections closed before the service's keep-alive (5 s)
        // closes them, as a well-behaved client does: no request is sent on
        // a connection the service is closing at that moment.
        client: reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(3))
            .build()
            .expect("a client"),
        record: Mutex::new(Record::default()),
    });

    // A burst first (every pooled database connection opened), then the
    // descriptors of the idle service, once the HTTP keep-alive (5 s) has
    // closed the burst's connections: the baseline the end is held to.
    let (rate, seconds) = match form() {
        Form::Short => {
            maximum(&mix, 32, 3).await;
            (40.0, 15)
        }
        Form::Long => {
            let max = maximum(&mix, 32, 30).await;
            figure(
                "load",
                "maximum of the mix, 32 connections (req/s)",
                format!("{max:.0}"),
            );
            (max * 0.8, 600)
        }
    };
    *mix.record.lock().expect("lock") = Record::default();
    tokio::time::sleep(IDLE).await;
    let idle_fds_before = service.fds();

    // The open loop: one request every 1/rate s, each in a task of its own.
    let interval = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let warm_up = Duration::from_secs(seconds / 5);
    let mut samples: Vec<(Duration, u64, usize)> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_sample = Duration::ZERO;
    let mut i = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        let due = interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let mix = mix.clone();
        tasks.spawn(async move { mix.send(i).await });
        i += 1;
        while tasks.try_join_next().is_some() {}
        if started.elapsed() >= next_sample {
            samples.push((started.elapsed(), service.rss_kib(), service.fds()));
            next_sample += Duration::from_secs(1);
        }
    }
    while tasks.join_next().await.is_some() {}
    let sent = i;
    tokio::time::sleep(IDLE).await;
    let idle_fds_after = service.fds();
    samples.push((started.elapsed(), service.rss_kib(), idle_fds_after));

    let record = std::mem::take(&mut *mix.record.lock().expect("lock"));
    let after_warm_up = samples
        .iter()
        .find(|(at, _, _)| *at >= warm_up)
        .copied()
        .expect("a sample after the warm-up");
    let last = *samples.last().expect("a sample");
    let rss_growth = (last.1 as f64 - after_warm_up.1 as f64) / after_warm_up.1 as f64;
    let scenario = format!(
        "mixed load, {rate:.0} req/s for {seconds}s, {n} mailboxes ({})",
        super::backend(&app)
    );
    figure(&scenario, "requests sent", sent);
    for (answer, count) in &record.answers {
        figure(&scenario, &format!("answers {answer}"), count);
    }
    let mut latencies = record.latencies;
    for (kind, samples) in latencies.iter_mut() {
        figure(
            &scenario,
            &format!("{kind:?} p50"),
            ms(percentile(samples, 50.0)),
        );
        figure(
            &scenario,
            &format!("{kind:?} p99"),
            ms(percentile(samples, 99.0)),
        );
    }
    figure(
        &scenario,
        "resident memory after the warm-up -> at the end",
        format!(
            "{} -> {} KiB ({:+.1}%)",
            after_warm_up.1,
            last.1,
            rss_growth * 100.0
        ),
    );
    figure(
        &scenario,
        "open descriptors after the warm-up -> at the end",
        format!("{} -> {}", after_warm_up.2, last.2),
    );
    let step = (samples.len() / 10).max(1);
    let curve: Vec<String> = samples
        .iter()
        .step_by(step)
        .chain(samples.last())
        .map(|(at, rss, _)| format!("{}s {} MiB", at.as_secs(), rss / 1024))
        .collect();
    figure(&scenario, "resident memory over the run", curve.join(", "));
    figure(
        &scenario,
        "open descriptors idle, before -> after",
        format!("{idle_fds_before} -> {idle_fds_after}"),
    );

    for answer in record.answers.keys() {
        let ok = answer.ends_with(" 200") || answer.ends_with(" 200 ok");
        assert!(
            ok,
            "every answer a success, no 5xx, no transport error: {:?}",
            record.answers
        );
    }
    assert_eq!(
        record.answers.values().sum::<usize>(),
        sent,
        "every request answered"
    );
    assert!(
        idle_fds_after <= idle_fds_before + 2,
        "no descriptor growth: {idle_fds_before} -> {idle_fds_after} when idle"
    );
    if form() == Form::Long {
        assert!(
            rss_growth < 0.10,
            "resident memory flat: {:+.1}%",
            rss_growth * 100.0
        );
    }
    drop(dovecot);
}
