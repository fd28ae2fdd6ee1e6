//! Authenticated reads against the unauthenticated `/healthz`, on SQLite
//! and PostgreSQL: at full load and in an open loop at half of it.

use inboxlink_tests::fake_entra::FakeEntra;

use crate::api::{create_credential, create_mailboxes};
use crate::load;
use crate::table::{Goal, Table};
use crate::{Args, launch, postgres_database};

/// Part 1 of the issue: authenticated reads against `/healthz`, on SQLite and PostgreSQL.
pub async fn http_reads(a: &Args, fake: &FakeEntra, t: &mut Table) {
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
