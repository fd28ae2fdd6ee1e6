//! Authenticated reads against the unauthenticated `/healthz`, on SQLite
//! and PostgreSQL: at full load and in an open loop at half of it, with
//! HS256 tokens; then the same database served by an instance that verifies
//! RS256 tokens with a PEM public key, and by one that takes its keys from a
//! JWKS URL (served here), as a deployment behind an identity provider does.

use std::time::Duration;

use inboxlink_tests::fake_entra::FakeEntra;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::{browser, create_credential, create_mailboxes, sign_in};
use crate::load;
use crate::service::Service;
use crate::table::{Goal, Table};
use crate::{Args, launch, postgres_database};

const RS256_PRIVATE: &[u8] = include_bytes!("../../../tests/fixtures/jwt-rs256-private.pem");
const RS256_PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/jwt-rs256-public.pem");
const KID: &str = "bench-key-1";

/// The reads measured, each with its goal against `/healthz`.
const READS: [(&str, f64); 3] = [
    ("GET /mailboxes/{id}", 0.5),
    ("GET /mailboxes?limit=50", 0.2),
    ("GET /mailboxes/{id}/access-token", 0.4),
];

/// Part 1 of the issue: authenticated reads against `/healthz`, on SQLite and PostgreSQL.
pub async fn http_reads(a: &Args, fake: &FakeEntra, t: &mut Table) {
    let mut backends: Vec<(&'static str, Option<String>)> = vec![("SQLite", None)];
    match postgres_database() {
        Some(url) => backends.push(("PostgreSQL", Some(url))),
        None => eprintln!("TEST_POSTGRES_URL is not set: PostgreSQL figures left out"),
    }
    let jwks = JwksServer::start().await;
    for (name, url) in backends {
        eprintln!("HTTP on {name}:");
        let section = if name == "SQLite" {
            "http sqlite"
        } else {
            "http postgres"
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let mut instance = launch(a, dir.path(), url, fake);
        let s = instance.start().await;
        let http = reqwest::Client::new();
        let credential = create_credential(&http, &s, fake).await;
        let ids = create_mailboxes(&http, &s, &credential, a.mailboxes, "m").await;
        let signed_in = &ids[ids.len() / 3];
        sign_in(&http, &browser(), &s, signed_in).await;
        let urls = [
            format!("{}/mailboxes/{}", s.base, ids[ids.len() / 2]),
            format!("{}/mailboxes?limit=50", s.base),
            format!("{}/mailboxes/{signed_in}/access-token", s.base),
        ];
        let health = load::wrk(&format!("{}/healthz", s.base), None, a.seconds, 32);
        t.add(
            section,
            "GET /healthz (baseline) throughput",
            health.rps,
            "req/s",
        );
        t.add(section, "GET /healthz p50", health.p50_ms, "ms");
        t.add(section, "GET /healthz p99", health.p99_ms, "ms");
        for ((label, goal), url) in READS.iter().zip(&urls) {
            let full = load::wrk(url, Some(&s.admin), a.seconds, 32);
            t.add(section, format!("{label} throughput"), full.rps, "req/s");
            t.goal(
                section,
                format!("{label} throughput / healthz throughput"),
                full.rps / health.rps,
                "x",
                Goal::AtLeast(*goal),
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
        let sqlite = (name == "SQLite").then(|| dir.path().join("inboxlink.sqlite3"));
        reads_under_writes(a, &s, &urls[0], &ids, sqlite, t, section).await;
        drop(s);

        // The same database behind asymmetric keys: a PEM public key, then a JWKS URL.
        let pem = dir.path().join("jwt-rs256-public.pem");
        std::fs::write(&pem, RS256_PUBLIC).expect("write the public key");
        let kinds = [
            (
                "RS256, PEM key",
                "INBOXLINK_JWT_PUBLIC_KEY_FILE",
                pem.display().to_string(),
            ),
            (
                "RS256, JWKS URL",
                "INBOXLINK_JWT_JWKS_URL",
                jwks.url.clone(),
            ),
        ];
        for (kind, var, value) in kinds {
            instance
                .unset("INBOXLINK_JWT_PUBLIC_KEY_FILE")
                .unset("INBOXLINK_JWT_JWKS_URL")
                .set(var, value)
                .set("INBOXLINK_JWT_JWKS_ALLOW_HTTP", "true");
            let s = instance.start().await;
            let token = rs256_token();
            for ((label, goal), url) in READS.iter().zip(&urls) {
                let url = url.replacen(&base_of(url), &s.base, 1);
                let full = load::wrk(&url, Some(&token), a.seconds, 32);
                t.add(
                    section,
                    format!("{label} throughput, {kind}"),
                    full.rps,
                    "req/s",
                );
                t.goal(
                    section,
                    format!("{label} throughput, {kind} / healthz throughput"),
                    full.rps / health.rps,
                    "x",
                    Goal::AtLeast(*goal),
                );
            }
        }
        instance
            .unset("INBOXLINK_JWT_PUBLIC_KEY_FILE")
            .unset("INBOXLINK_JWT_JWKS_URL")
            .unset("INBOXLINK_JWT_JWKS_ALLOW_HTTP");
    }
}

/// Single reads in an open loop at 2,000 a second while 200 updates a second
/// (each a write transaction with its audit row) change other mailboxes. On
/// SQLite, also the duration of the read itself (`store::mailboxes::get` on a
/// connection of this process, the query a read on the async worker runs),
/// taken back to back during the writes.
async fn reads_under_writes(
    a: &Args,
    s: &Service,
    read: &str,
    ids: &[String],
    sqlite: Option<std::path::PathBuf>,
    t: &mut Table,
    section: &'static str,
) {
    let writes = {
        let http = reqwest::Client::new();
        let (base, token) = (s.base.clone(), s.admin.clone());
        let targets: Vec<String> = ids.iter().take(200).cloned().collect();
        let seconds = a.seconds;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let until = tokio::time::Instant::now() + Duration::from_secs(seconds + 1);
            let mut n = 0usize;
            while tokio::time::Instant::now() < until {
                tick.tick().await;
                let id = &targets[n % targets.len()];
                let transport = if (n / targets.len()).is_multiple_of(2) {
                    "graph"
                } else {
                    "imap_smtp"
                };
                let r = http
                    .patch(format!("{base}/mailboxes/{id}"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "transport": transport }))
                    .send()
                    .await
                    .expect("PATCH");
                assert!(r.status().is_success(), "PATCH: {}", r.status());
                n += 1;
            }
        })
    };
    let direct = sqlite.map(|path| {
        let id: inboxlink::domain::MailboxId = ids[ids.len() / 2].parse().expect("an id");
        let seconds = a.seconds;
        std::thread::spawn(move || read_durations(&path, id, seconds))
    });
    let open = load::open_loop(read, &s.admin, 2000.0, a.seconds).await;
    writes.await.expect("the writer");
    if let Some(direct) = direct {
        let durations = direct.join().expect("the reads");
        let at = |p: f64| load::percentile(&durations, p).as_secs_f64() * 1e6;
        for (label, p) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)] {
            t.add(
                section,
                format!("one row's read (store::mailboxes::get) beside 200 writes/s: {label}"),
                at(p),
                "us",
            );
        }
    }
    t.add(
        section,
        "GET /mailboxes/{id} at 2000/s beside 200 writes/s: p50",
        open.p50_ms,
        "ms",
    );
    t.goal(
        section,
        "GET /mailboxes/{id} at 2000/s beside 200 writes/s: p99",
        open.p99_ms,
        "ms",
        Goal::AtMost(10.0),
    );
}

/// Back-to-back reads of one mailbox row for `seconds` (pausing 0.1 ms
/// between reads), each timed; sorted.
fn read_durations(
    path: &std::path::Path,
    id: inboxlink::domain::MailboxId,
    seconds: u64,
) -> Vec<Duration> {
    use std::time::Instant;
    let store = inboxlink::store::Store::connect(&inboxlink::config::DatabaseSettings {
        backend: inboxlink::config::Backend::Sqlite,
        url: path.display().to_string().into(),
        pool_size: 1,
    })
    .expect("open the benchmark's SQLite file");
    let org = inboxlink::domain::OrgId::parse("bench").expect("org");
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut durations = Vec::new();
    store
        .blocking(|c| {
            while Instant::now() < until {
                let started = Instant::now();
                inboxlink::store::mailboxes::get(c, &org, id)?;
                durations.push(started.elapsed());
                std::thread::sleep(Duration::from_micros(100));
            }
            Ok(())
        })
        .expect("the reads");
    durations.sort();
    durations
}

/// `http://host:port` of a URL.
fn base_of(url: &str) -> String {
    let u = url::Url::parse(url).expect("url");
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().expect("host"),
        u.port().expect("port")
    )
}

/// An admin's RS256 token, signed with the fixture's key, valid for 6 hours.
fn rs256_token() -> String {
    let key = EncodingKey::from_rsa_pem(RS256_PRIVATE).expect("the fixture's key");
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "inboxlink", "aud": "inboxlink", "iat": now, "nbf": now,
        "exp": now + 6 * 3600, "sub": "bench-admin", "org": "bench", "roles": ["admin"],
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.into());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// A JWKS URL on core 1 (this process) with the fixture's public key as [`KID`].
struct JwksServer {
    url: String,
}

impl JwksServer {
    async fn start() -> Self {
        let key = EncodingKey::from_rsa_pem(RS256_PRIVATE).expect("the fixture's key");
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some(KID.into());
        let body = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("json");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/keys", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let body = body.clone();
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
        Self { url }
    }
}
