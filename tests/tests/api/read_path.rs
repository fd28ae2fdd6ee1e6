//! The read path's database side: the hot reads are prepared once per
//! connection (diesel's statement cache works through the multi-backend
//! connection), on both backends.

use std::sync::{Arc, Mutex};

use diesel::connection::{Connection, InstrumentationEvent};
use inboxlink::config::{Backend, DatabaseSettings};
use inboxlink::domain::{MailboxId, OrgId};
use inboxlink::store::{AnyConnection, Store, mailboxes, tokens};

use crate::helpers::TestApp;

/// What the connection prepared for its statement cache, and the queries it ran.
#[derive(Default)]
struct Counts {
    cached: Vec<String>,
    started: usize,
}

fn store_of(app: &TestApp) -> Store {
    let url = app
        .vars()
        .into_iter()
        .find_map(|(k, v)| (k == "INBOXLINK_DATABASE_URL").then_some(v))
        .expect("the test's database URL");
    let backend = if url.starts_with("postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let url = url.strip_prefix("sqlite://").unwrap_or(&url).to_owned();
    Store::connect(&DatabaseSettings {
        backend,
        url: url.into(),
        pool_size: 1,
    })
    .expect("connect")
}

fn count(c: &mut AnyConnection, counts: &Arc<Mutex<Counts>>) {
    let counts = counts.clone();
    c.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        let mut counts = counts.lock().unwrap();
        match event {
            InstrumentationEvent::CacheQuery { sql, .. } => counts.cached.push(sql.to_owned()),
            InstrumentationEvent::StartQuery { .. } => counts.started += 1,
            _ => {}
        }
    });
}

/// Three rounds of the reads behind `GET /mailboxes/{id}`, `GET /mailboxes`
/// and `GET /mailboxes/{id}/access-token`: the first prepares each statement
/// into the cache, the others find it there.
async fn reads_are_prepared_once(app: TestApp) {
    let store = store_of(&app);
    let org = OrgId::parse("acme").expect("org");
    let id = MailboxId::new();
    let counts = Arc::new(Mutex::new(Counts::default()));
    let rounds = {
        let counts = counts.clone();
        tokio::task::spawn_blocking(move || {
            store.blocking(|c| {
                count(c, &counts);
                let mut after_round = Vec::new();
                for _ in 0..3 {
                    assert!(mailboxes::get(c, &org, id).is_err(), "no such mailbox");
                    assert!(tokens::get(c, &org, id).is_err(), "no such mailbox");
                    mailboxes::list(c, &org, None, None, 50)?;
                    mailboxes::list(c, &org, None, Some(id), 50)?;
                    let counts = counts.lock().unwrap();
                    after_round.push((counts.cached.len(), counts.started));
                }
                Ok(after_round)
            })
        })
        .await
        .expect("task")
        .expect("reads")
    };
    let counts = counts.lock().unwrap();
    assert_eq!(
        rounds,
        [(4, 4), (4, 8), (4, 12)],
        "each of the four statements is prepared into the cache once and found there after: {:#?}",
        counts.cached
    );
}

#[tokio::test]
async fn hot_reads_are_prepared_once_sqlite() {
    reads_are_prepared_once(TestApp::new().start().await).await;
}

#[tokio::test]
async fn hot_reads_are_prepared_once_postgres() {
    let Some(app) = TestApp::postgres() else {
        return;
    };
    reads_are_prepared_once(app.start().await).await;
}
