//! The direct POST, the baseline of the webhook figures: the request the
//! service's delivery makes (Standard Webhooks headers signed with the
//! webhook's secret, the JSON body, a 10 s deadline, no redirects, the answer
//! read), sent with reqwest over keep-alive connections, without the service.
//!
//! The latency baseline sends from this process. The throughput baseline runs
//! as a child process on core 0, where the service's sender runs
//! (`inboxlink-bench post`), so the receiver on core 1 gets the same share of
//! the machine in both runs.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use secrecy::SecretString;

/// The environment variable that hands the webhook secret to the child process.
const SECRET_ENV: &str = "INBOXLINK_BENCH_WEBHOOK_SECRET";

/// A client like the service's delivery client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(inboxlink::hooks::client::DEADLINE)
        .build()
        .expect("client")
}

/// One signed POST of `body` to `url` under a new `webhook-id`; returns that
/// id and when the request started. Panics unless the receiver answers 2xx.
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    secret: &SecretString,
    body: Vec<u8>,
) -> (String, Instant) {
    let id = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let signature = inboxlink::hooks::signing::signature_header(&[secret], &id, timestamp, &body);
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .expect("the direct POST");
    assert!(
        r.status().is_success(),
        "the receiver answered {}",
        r.status()
    );
    let _ = r.bytes().await.expect("the answer");
    (id, started)
}

/// Posts every body (one a line of `bodies`) to `url`, `concurrency` at a
/// time, in a child process pinned to core 0; returns its wall time.
pub fn in_child(
    url: &str,
    secret: &str,
    bodies: &Path,
    concurrency: usize,
) -> std::io::Result<Duration> {
    let started = Instant::now();
    let out = std::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(std::env::current_exe()?)
        .args(["post", "--url", url, "--concurrency"])
        .arg(concurrency.to_string())
        .arg("--bodies")
        .arg(bodies)
        .env(SECRET_ENV, secret)
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "the direct POSTs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(started.elapsed())
}

/// `inboxlink-bench post --url URL --concurrency N --bodies FILE` (the child of [`in_child`]).
pub async fn main(mut args: impl Iterator<Item = String>) {
    let (mut url, mut concurrency, mut bodies) = (None, 16, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()),
            "--concurrency" => concurrency = value().parse().expect("a number"),
            "--bodies" => bodies = Some(value()),
            other => panic!("unknown argument {other}"),
        }
    }
    let url = url.expect("--url");
    let secret =
        SecretString::from(std::env::var(SECRET_ENV).expect("the secret in the environment"));
    let text = std::fs::read_to_string(bodies.expect("--bodies")).expect("the bodies");
    let http = client();
    futures_util::stream::iter(text.lines().map(|l| l.as_bytes().to_vec()))
        .map(|body| send(&http, &url, &secret, body))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}
