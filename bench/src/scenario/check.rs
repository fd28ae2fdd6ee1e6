//! The connection check through the service against the same IMAP and
//! SMTP steps run directly, against a private Dovecot.

use std::time::{Duration, Instant};

use inboxlink_tests::fake_entra::FakeEntra;
use inboxlink_tests::mail_servers::{Dovecot, SmtpSink, TestCa};
use serde_json::{Value, json};

use crate::api::{browser, create_credential, create_mailboxes, get_json, post_json, sign_in};
use crate::load::{median_p99, ms};
use crate::table::{Goal, Table};
use crate::{Args, launch};

/// Part 4 of the issue: `POST /mailboxes/{id}/check` against the same IMAP and SMTP steps done
/// directly with the same code (async-imap, lettre) and no service around it.
pub async fn check(a: &Args, fake: &FakeEntra, t: &mut Table) {
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
    l.mail_servers(&dovecot, &ca);
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
    let check_url = format!("{}/mailboxes/{id}/check", s.base);
    // Interleaved, so both see the same machine over time.
    let (mut through, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..a.checks {
        let started = Instant::now();
        let report = post_json(&http, &check_url, &s.admin, &json!({})).await;
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

fn endpoint(s: &str) -> inboxlink::config::Endpoint {
    let (host, port) = s.rsplit_once(':').expect("host:port");
    inboxlink::config::Endpoint {
        host: host.into(),
        port: port.parse().expect("port"),
    }
}
