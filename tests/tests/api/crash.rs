//! The service as a separate process, killed with SIGKILL in the middle of a
//! burst of deliveries: after it is started again every event is delivered
//! (at least once; duplicates only of what was in flight at the kill).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inboxlink_tests::receiver::Receiver;
use serde_json::json;

use crate::helpers::{ORG, TestApp, TestAppBuilder, backend_tests};

const EVENTS: usize = 200;
const CONCURRENCY: usize = 8;

/// The service process on `port`, with the test instance's database and keys.
fn spawn(app: &TestApp, port: u16) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inboxlink-serve"));
    command
        .envs(app.vars())
        .env("INBOXLINK_BIND", format!("127.0.0.1:{port}"))
        .env("INBOXLINK_WEBHOOK_ALLOW_PRIVATE", "true")
        .env("INBOXLINK_DELIVERY_POLL_MS", "20")
        .env("INBOXLINK_DELIVERY_CONCURRENCY", CONCURRENCY.to_string())
        .env("INBOXLINK_DELIVERY_LEASE_SECONDS", "15")
        .env("INBOXLINK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().expect("the service starts")
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}/readyz");
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service on {port} did not become ready");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

backend_tests!(a_killed_instance_delivers_every_event_after_restart);
async fn a_killed_instance_delivers_every_event_after_restart(app: TestAppBuilder) {
    // Set up in-process, then hand the database to the process.
    let app = app.with_app_credential().start().await;
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_millis(50));
    app.new_webhook(&receiver.url("/hook"), Some(&["mailbox.created"]))
        .await;
    let cred = app.app_credential_id();
    app.stop(true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let port = free_port();
    let mut child = spawn(&app, port);
    wait_ready(port).await;
    let token = app.token(ORG, &["admin"]);
    let client = reqwest::Client::new();
    let creates = (0..EVENTS).map(|i| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let body = json!({ "email": format!("box{i}@contoso.cz"), "app_credential_id": cred });
            let r = client
                .post(format!("http://127.0.0.1:{port}/mailboxes"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("sent");
            assert_eq!(r.status(), 201);
        }
    });
    futures_util::future::join_all(creates).await;
    // Killed while delivering.
    receiver
        .wait_for("/hook", EVENTS / 4, Duration::from_secs(30))
        .await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let at_kill = receiver.received_on("/hook").len();
    assert!(at_kill < EVENTS, "the kill came in the middle ({at_kill})");

    let mut restarted = spawn(&app, port);
    wait_ready(port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut per_id: HashMap<String, usize> = HashMap::new();
    while Instant::now() < deadline {
        per_id.clear();
        for r in receiver.received_on("/hook") {
            *per_id
                .entry(r.header("webhook-id").expect("id").to_owned())
                .or_default() += 1;
        }
        if per_id.len() == EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    restarted.kill().expect("stopped");
    restarted.wait().expect("reaped");
    assert_eq!(per_id.len(), EVENTS, "every event was delivered");
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= CONCURRENCY,
        "duplicates only of what was in flight at the kill: {duplicates}"
    );
}
