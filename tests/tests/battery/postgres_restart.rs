//! PostgreSQL restarted under load: a private cluster (scripts/postgres.sh,
//! so the rest of the suite keeps its own) is stopped as an operator's
//! restart stops it (`pg_ctl -m fast`: every session ends) while callers
//! read and create mailboxes, kept down for a while and started again. The
//! requests meanwhile answer 503 problem documents within their deadline
//! (never a 500, never a hang), the same service process serves again by
//! itself, and nothing is half-written: every mailbox has its
//! `mailbox.created` event and every such event its mailbox.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Service, census, figure, mailbox_json, ms, percentile, sized};
use crate::helpers::TestApp;

/// A caller gives up after this: the pool waits 10 s for a connection.
const DEADLINE: Duration = Duration::from_secs(15);

/// A PostgreSQL cluster of this test alone, through scripts/postgres.sh.
struct Cluster {
    url: String,
    dir: String,
    bindir: String,
}

fn postgres_sh(script: &str, env: &[(&str, &str)]) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {path} && {script}"))
        .envs(env.iter().copied())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "scripts/postgres.sh: {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Cluster {
    fn start() -> Cluster {
        let out = postgres_sh(
            r#"postgres_start 2>/dev/null && echo "$TEST_POSTGRES_URL $PG_TEST_DIR $PG_TEST_BINDIR""#,
            &[],
        );
        let mut parts = out.split(' ').map(str::to_owned);
        let mut next = || parts.next().expect("the cluster's URL, dir and bindir");
        Cluster {
            url: next(),
            dir: next(),
            bindir: next(),
        }
    }

    fn run(&self, function: &str) {
        postgres_sh(
            function,
            &[("PG_TEST_DIR", &self.dir), ("PG_TEST_BINDIR", &self.bindir)],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.run("postgres_stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_answers_503_and_recovers() {
    if TestApp::postgres().is_none() {
        return;
    }
    let down_for = sized(Duration::from_secs(5), Duration::from_secs(30));
    let workers = sized(8, 32);
    let n = sized(20, 200);
    let cluster = Cluster::start();
    let app = TestApp::postgres_in(&cluster.url)
        .with_fake_entra()
        .with_app_credential()
        .start()
        .await;
    let credential = app.app_credential_id();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(app.signed_in_mailbox(&format!("pg{i}@contoso.cz")).await);
    }
    app.stop(true).await;
    let service = Service::start(&app, &[]).await;
    let before = census(&service.base(), &service.token).await;

    let statuses = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let phase = Arc::new(Mutex::new("before"));
    let ids = Arc::new(ids);
    let stop_at = Instant::now() + Duration::from_secs(3) + down_for + Duration::from_secs(10);
    let load: Vec<_> = (0..workers)
        .map(|w| {
            let (ids, statuses, latencies, created, phase) = (
                ids.clone(),
                statuses.clone(),
                latencies.clone(),
                created.clone(),
                phase.clone(),
            );
            let (base, token) = (service.base(), service.token.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut i = w;
                while Instant::now() < stop_at {
                    i += workers;
                    let (what, request) = match i % 4 {
                        0 => (
                            "create",
                            client
                                .post(format!("{base}/mailboxes"))
                                .json(&mailbox_json(&format!("new{w}-{i}@contoso.cz"), credential)),
                        ),
                        1 => ("page", client.get(format!("{base}/mailboxes?limit=50"))),
                        _ => (
                            "read",
                            client.get(format!("{base}/mailboxes/{}", ids[i % ids.len()])),
                        ),
                    };
                    let at = *phase.lock().expect("lock");
                    let started = Instant::now();
                    let sent = request.bearer_auth(&token).timeout(DEADLINE).send().await;
                    let took = started.elapsed();
                    let key = match sent {
                        Ok(r) => {
                            let (status, key, body) = super::tally(r).await;
                            if what == "create" && status == 201 {
                                let id = body["id"].as_str().unwrap_or_default().to_owned();
                                created.lock().expect("lock").push(id);
                            }
                            key
                        }
                        Err(e) if e.is_timeout() => "no answer within the deadline".into(),
                        Err(e) => format!("transport error: {e}"),
                    };
                    latencies.lock().expect("lock").push(took);
                    *statuses
                        .lock()
                        .expect("lock")
                        .entry(format!("{at}: {what} {key}"))
                        .or_default() += 1;
                    if key != "200" && key != "201" {
                        // A caller backs off a little on an error, as clients do.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(3)).await;
    *phase.lock().expect("lock") = "during";
    let halted = Instant::now();
    cluster.run("postgres_halt");
    // The server is down: nothing listens on its port.
    let address = url::Url::parse(&cluster.url).expect("the cluster's URL");
    let port = address.port().expect("a port");
    let refused = std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
    tokio::time::sleep(down_for.saturating_sub(halted.elapsed())).await;
    cluster.run("postgres_serve");
    // Requests sent in the first seconds after the start may still meet a
    // pooled connection of before; from then on all must succeed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    *phase.lock().expect("lock") = "after";
    for worker in load {
        worker.await.expect("a load worker");
    }
    let after = census(&service.base(), &service.token).await;
    let statuses = statuses.lock().expect("lock").clone();
    let mut latencies = latencies.lock().expect("lock").clone();
    let created = created.lock().expect("lock").clone();

    // Nothing half-written: the mailboxes and their mailbox.created events match.
    let (mailboxes, created_events) =
        super::mailboxes_and_their_events(&service.base(), &service.token).await;

    let scenario = format!(
        "PostgreSQL restarted under load, down {}s, {workers} callers",
        down_for.as_secs()
    );
    figure(&scenario, "census before", &before);
    for (status, count) in &statuses {
        figure(&scenario, &format!("answers {status}"), count);
    }
    figure(
        &scenario,
        "answer p99",
        ms(percentile(&mut latencies, 99.0)),
    );
    figure(
        &scenario,
        "answer max",
        ms(percentile(&mut latencies, 100.0)),
    );
    figure(&scenario, "mailboxes created (201)", created.len());
    figure(&scenario, "census after", &after);

    for status in statuses.keys() {
        let (at, answer) = status.split_once(": ").expect("phase: answer");
        let answer = answer.split_once(' ').map_or("", |(_, a)| a);
        let ok = answer == "200" || answer == "201";
        let unavailable = answer.starts_with("503 unavailable (application/problem+json");
        match at {
            "during" => assert!(
                ok || unavailable,
                "during the restart only answers or 503 problem documents: {statuses:?}"
            ),
            _ => assert!(
                ok,
                "before and after the restart every call succeeds: {statuses:?}"
            ),
        }
    }
    // The server was down for `down_for`; callers waited for the pool (10 s)
    // and got an answer or a 503, as the phase checks above assert.
    assert!(refused, "PostgreSQL was down during the restart");
    assert!(
        statuses.keys().any(|s| s.starts_with("after")),
        "calls after the restart: {statuses:?}"
    );
    for id in &created {
        assert!(mailboxes.contains(id), "a created mailbox {id} is there");
    }
    let new: BTreeSet<String> = mailboxes
        .iter()
        .filter(|id| !ids.iter().any(|old| old.to_string() == **id))
        .cloned()
        .collect();
    let new_events: BTreeSet<String> = created_events
        .iter()
        .filter(|id| !ids.iter().any(|old| old.to_string() == **id))
        .cloned()
        .collect();
    assert_eq!(
        new, new_events,
        "every new mailbox has its event, and no event is orphaned"
    );
    assert_eq!(
        after.in_status("active"),
        before.in_status("active"),
        "the signed-in mailboxes are still active"
    );
}
