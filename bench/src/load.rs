//! Load generators: `wrk` (closed loop, for the maximum throughput) and an
//! open-loop generator at a fixed rate (for latency at a given load, timed
//! from when each request was due, so a slow answer cannot hide the requests
//! queued behind it). Both run on core 1, the service on core 0.

use std::process::Command;
use std::time::{Duration, Instant};

/// What one `wrk` run measured.
pub struct Closed {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `wrk` on core 1 with one thread and `connections` connections.
pub fn wrk(url: &str, token: Option<&str>, seconds: u64, connections: u32) -> Closed {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1", "wrk", "-t1"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency");
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk runs (scripts/bench.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed for {url}:\n{text}");
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw error answers for {url}:\n{text}"
    );
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("wrk prints Requests/sec");
    let latency = |label: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(label))
            .map(|v| wrk_ms(v.trim()))
            .unwrap_or(f64::NAN)
    };
    Closed {
        rps,
        p50_ms: latency("50%"),
        p99_ms: latency("99%"),
    }
}

fn wrk_ms(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// What one open-loop run measured.
pub struct Open {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub achieved_rps: f64,
}

/// `rate` requests per second for `seconds`, each timed from when it was due.
pub async fn open_loop(url: &str, token: &str, rate: f64, seconds: u64) -> Open {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("client");
    let total = (rate * seconds as f64) as usize;
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let ok = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (due.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        let (d, ok) = t.await.expect("task");
        assert!(ok, "a request failed under the open-loop load");
        latencies.push(d);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    Open {
        p50_ms: ms(percentile(&latencies, 0.50)),
        p99_ms: ms(percentile(&latencies, 0.99)),
        achieved_rps: total as f64 / elapsed,
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and p99 of unsorted samples.
pub fn median_p99(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (percentile(&v, 0.5), percentile(&v, 0.99))
}
