//! The read path: the hot reads are prepared once per connection (diesel's
//! statement cache works through the multi-backend connection), on both
//! backends; and the verifier's cache of accepted tokens ends an entry at the
//! token's expiry and when a JWKS key it was verified with is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::{Connection, InstrumentationEvent};
use inboxlink::auth::JwksRefresh;
use inboxlink::config::{Backend, DatabaseSettings, JwtKey};
use inboxlink::domain::{MailboxId, OrgId};
use inboxlink::store::{AnyConnection, Store, mailboxes, tokens};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::helpers::{TestApp, claims, http};

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
        let mut counts = counts.lock().expect("lock");
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
                    let counts = counts.lock().expect("lock");
                    after_round.push((counts.cached.len(), counts.started));
                }
                Ok(after_round)
            })
        })
        .await
        .expect("task")
        .expect("reads")
    };
    let counts = counts.lock().expect("lock");
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

/// The status and problem code of `GET /mailboxes` with `token`.
async fn answer(app: &TestApp, token: &str) -> (u16, Option<String>) {
    let r = http()
        .get(app.url("/mailboxes"))
        .bearer_auth(token)
        .send()
        .await
        .expect("response");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["code"].as_str().map(str::to_owned))
}

/// A token accepted (and so remembered) is refused from its `exp` on, as
/// one never seen before would be.
#[tokio::test]
async fn a_remembered_token_ends_at_its_expiry() {
    let app = TestApp::new()
        .with_settings(|s| s.jwt.leeway = Duration::ZERO)
        .start()
        .await;
    let exp = chrono::Utc::now().timestamp() + 2;
    let token =
        app.token_with(json!({ "sub": "u", "org": "acme", "roles": ["viewer"], "exp": exp }));
    for _ in 0..3 {
        assert_eq!(answer(&app, &token).await, (200, None), "valid until exp");
    }
    // jsonwebtoken accepts a token through the second of its `exp`.
    let until_exp = exp - chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_millis(1200 + 1000 * until_exp.max(0) as u64)).await;
    assert_eq!(
        answer(&app, &token).await,
        (401, Some("invalid_token".into())),
        "refused once expired"
    );
}

/// A JWKS URL whose keys can be replaced while the service runs.
struct Keys {
    url: String,
    body: Arc<Mutex<String>>,
}

impl Keys {
    async fn start(set: &JwkSet) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = Arc::new(Mutex::new(serde_json::to_string(set).expect("json")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/keys", listener.local_addr().expect("addr"));
        let served = body.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let body = served.lock().expect("lock").clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self { url, body }
    }

    fn replace(&self, set: &JwkSet) {
        *self.body.lock().expect("lock") = serde_json::to_string(set).expect("json");
    }
}

fn rsa_key(fixture: &str) -> (EncodingKey, Jwk) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(fixture);
    let key = EncodingKey::from_rsa_pem(&std::fs::read(path).expect("fixture")).expect("key");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some("key-1".into());
    (key, jwk)
}

/// A token accepted with a JWKS key is refused once the identity provider
/// has replaced that key (the same `kid`, another key), as a token never
/// seen before would be, although it has not expired.
#[tokio::test]
async fn a_remembered_jwks_token_ends_with_its_key() {
    let (key, jwk) = rsa_key("jwt-rs256-private.pem");
    let (_, other) = rsa_key("other-rs256-private.pem");
    let keys = Keys::start(&JwkSet { keys: vec![jwk] }).await;
    let url = url::Url::parse(&keys.url).expect("url");
    let app = TestApp::new()
        .with_settings(move |s| {
            s.jwt.key = JwtKey::JwksUrl(url.clone());
            // Every use past the TTL refreshes the keys in the background.
            s.jwt.jwks_refresh = JwksRefresh {
                ttl: Duration::ZERO,
                max_stale: Duration::from_secs(3600),
                min_refetch: Duration::ZERO,
            };
        })
        .start()
        .await;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("key-1".into());
    let c = claims(json!({ "sub": "u", "org": "acme", "roles": ["viewer"] }));
    let token = encode(&header, &c, &key).expect("sign");
    for _ in 0..3 {
        assert_eq!(answer(&app, &token).await, (200, None), "its key is served");
    }
    keys.replace(&JwkSet { keys: vec![other] });
    // The next use still has the old key and refreshes; the refresh brings the new one.
    let mut refused = None;
    for _ in 0..50 {
        let got = answer(&app, &token).await;
        if got.0 == 401 {
            refused = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        refused,
        Some((401, Some("invalid_token".into()))),
        "refused once its key is gone"
    );
}
