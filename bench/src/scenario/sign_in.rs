//! The sign-in path through the service against the same token request
//! made directly to the fake.

use std::time::Instant;

use inboxlink_tests::fake_entra::FakeEntra;
use serde_json::Value;

use crate::api::{
    authorize_directly, browser, create_credential, create_mailboxes, get_json, redeem_directly,
    sign_in,
};
use crate::load::{median_p99, ms};
use crate::table::Table;
use crate::{Args, launch};

/// Part 2 of the issue: refresh -> the fake's sign-in -> callback -> active, per mailbox, against
/// the same authorization-code token request made directly to the fake.
pub async fn sign_in_path(a: &Args, fake: &FakeEntra, t: &mut Table) {
    eprintln!("sign-in path:");
    let dir = tempfile::tempdir().expect("temp dir");
    let s = launch(a, dir.path(), None, fake).start().await;
    let http = reqwest::Client::new();
    let browser = browser();
    let credential = create_credential(&http, &s, fake).await;
    let ids = create_mailboxes(&http, &s, &credential, a.sign_ins, "signin").await;
    let before = fake.token_calls("authorization_code");
    let mut through = Vec::with_capacity(ids.len());
    for id in &ids {
        let started = Instant::now();
        sign_in(&http, &browser, &s, id).await;
        let mailbox: Value = get_json(&http, &format!("{}/mailboxes/{id}", s.base), &s.admin).await;
        assert_eq!(mailbox["status"], "active");
        through.push(started.elapsed());
    }
    assert_eq!(fake.token_calls("authorization_code") - before, ids.len());
    let redirect_uri = format!("{}/oauth/callback", s.base);
    let mut direct = Vec::with_capacity(ids.len());
    for i in 0..a.sign_ins {
        let code = authorize_directly(
            &browser,
            fake,
            &redirect_uri,
            &format!("direct{i}@contoso.cz"),
        )
        .await;
        let started = Instant::now();
        redeem_directly(&browser, fake, &redirect_uri, &code).await;
        direct.push(started.elapsed());
    }
    let (svc, svc99) = median_p99(through);
    let (dir50, _) = median_p99(direct);
    t.add(
        "sign-in",
        format!("refresh -> callback -> active, median of {}", a.sign_ins),
        ms(svc),
        "ms",
    );
    t.add(
        "sign-in",
        "refresh -> callback -> active, p99",
        ms(svc99),
        "ms",
    );
    t.add(
        "sign-in",
        "the same token request directly to the fake, median",
        ms(dir50),
        "ms",
    );
    t.add(
        "sign-in",
        "sign-in path / direct token request",
        svc.as_secs_f64() / dir50.as_secs_f64(),
        "x",
    );
}
