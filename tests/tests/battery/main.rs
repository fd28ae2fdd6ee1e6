//! The battery: faults, load and hostile conditions, against the service
//! run as a separate process (`inboxlink-serve`), each with a census of
//! mailboxes, tokens and events before and after. A test binary of its own,
//! so its load never runs beside the other binaries' timing-sensitive
//! tests (cargo runs test binaries one after the other); it shares their
//! fixtures (`tests/api/helpers`). The short form (the default) runs inside
//! the test command; `INBOXLINK_BATTERY=long` (what `scripts/battery.sh`
//! sets) runs the long form: the sizes and durations. Every scenario
//! prints its figures as `battery: …` lines, and appends them to
//! `INBOXLINK_BATTERY_OUT` when set (docs/reliability.md keeps the latest
//! long run's).

// The api binary's fixtures; this binary uses some of them.
#[allow(dead_code, unused_imports, unused_macros)]
#[path = "../api/helpers/mod.rs"]
mod helpers;

mod disk_full;
mod idp_outage;
mod kill;
mod load;
mod mail_down;
mod peers;
mod postgres_restart;
pub mod process;
mod receivers;
mod scale;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

pub use process::Service;

/// Which form of the battery runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Bounded for the test command.
    Short,
    /// The sizes and durations (minutes).
    Long,
}

pub fn form() -> Form {
    match std::env::var("INBOXLINK_BATTERY").as_deref() {
        Ok("long") => Form::Long,
        _ => Form::Short,
    }
}

/// `short` in the short form, `long` in the long one.
pub fn sized<T>(short: T, long: T) -> T {
    match form() {
        Form::Short => short,
        Form::Long => long,
    }
}

/// Prints one figure, and appends it to `INBOXLINK_BATTERY_OUT` when set.
pub fn figure(scenario: &str, name: &str, value: impl std::fmt::Display) {
    let line = format!("battery: {scenario} | {name} | {value}");
    println!("{line}");
    if let Ok(path) = std::env::var("INBOXLINK_BATTERY_OUT") {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("the battery's output file");
        writeln!(file, "{line}").expect("written");
    }
}

/// What the service holds, counted through its API.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    /// Mailboxes by status.
    pub mailboxes: BTreeMap<String, usize>,
    /// Events in the feed, by type.
    pub events: BTreeMap<String, usize>,
}

impl Census {
    pub fn mailbox_count(&self) -> usize {
        self.mailboxes.values().sum()
    }

    pub fn event_count(&self) -> usize {
        self.events.values().sum()
    }

    pub fn in_status(&self, status: &str) -> usize {
        self.mailboxes.get(status).copied().unwrap_or(0)
    }
}

impl std::fmt::Display for Census {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "{} mailboxes ({}); {} events ({})",
            self.mailbox_count(),
            join(&self.mailboxes),
            self.event_count(),
            join(&self.events)
        )
    }
}

/// Every page of a list (`items`, `next_cursor`), as an admin of `token`'s org.
pub async fn all_pages(base: &str, path: &str, token: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .query(&[("limit", "200")]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c.as_str())]);
        }
        let page: Value = request
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("a page")
            .error_for_status()
            .expect("a page answered 200")
            .json()
            .await
            .expect("a JSON page");
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// An answer as the scenarios tally it: its status, then for anything but
/// a success its problem code and content type, e.g. `503 unavailable
/// (application/problem+json)`; with its JSON body.
pub async fn tally(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = r.json().await.unwrap_or_default();
    let key = if (200..300).contains(&status) {
        status.to_string()
    } else {
        format!(
            "{status} {} ({kind})",
            body["code"].as_str().unwrap_or("no code")
        )
    };
    (status, key, body)
}

/// The ids of the mailboxes of `token`'s organisation, and the mailbox ids
/// its `mailbox.created` events name: equal when nothing is half-written.
pub async fn mailboxes_and_their_events(
    base: &str,
    token: &str,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mailboxes = all_pages(base, "/mailboxes", token)
        .await
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    let events = all_pages(base, "/events", token)
        .await
        .iter()
        .filter(|e| e["type"] == "mailbox.created")
        .filter_map(|e| e["data"]["mailbox_id"].as_str().map(str::to_owned))
        .collect();
    (mailboxes, events)
}

/// The census of the organisation of `token`.
pub async fn census(base: &str, token: &str) -> Census {
    let mut census = Census::default();
    for m in all_pages(base, "/mailboxes", token).await {
        let status = m["status"].as_str().unwrap_or("?").to_owned();
        *census.mailboxes.entry(status).or_default() += 1;
    }
    for e in all_pages(base, "/events", token).await {
        let kind = e["type"].as_str().unwrap_or("?").to_owned();
        *census.events.entry(kind).or_default() += 1;
    }
    census
}

/// The JSON body of `POST /mailboxes` for a delegated mailbox, as a caller
/// without the SDK sends it.
pub fn mailbox_json(email: &str, app_credential_id: uuid::Uuid) -> Value {
    serde_json::json!({ "email": email, "app_credential_id": app_credential_id })
}

/// The `p`-th percentile (0-100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// The backend's name, for figures.
pub fn backend(app: &crate::helpers::TestApp) -> &'static str {
    match app.backend {
        inboxlink::config::Backend::Sqlite => "SQLite",
        inboxlink::config::Backend::Postgres => "PostgreSQL",
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
