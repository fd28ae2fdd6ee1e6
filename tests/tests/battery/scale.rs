//! Scale: many mailboxes in many organisations, generated directly in the
//! database (SQL over the product's schema, not through the API, so a
//! million rows take minutes instead of hours), then the service started on
//! them as a process and measured from the outside: the start-up to
//! `/readyz`, `GET /mailboxes?limit=50` with and without a status filter (a
//! typical organisation, `ORG` with N/1000 mailboxes, and the largest, with
//! N/10) and a walk of the whole list by `next_cursor`, the events feed, the
//! keep-alive's selection of due grants (the store function it calls, timed
//! directly), a metrics scrape (mailboxes counted by status across every
//! organisation), the database size per mailbox, and (PostgreSQL) the plans
//! of those queries.
//!
//! What is generated, for N mailboxes over 1,000 organisations: `ORG` holds
//! N/1000, `scale-big` N/10, and 998 others share the rest; each has its own
//! app credential (a copy of the one the test app made, with a new id).
//! Mailboxes are created over two years (ids UUID v7 of their creation
//! time, interleaved across organisations): 87% active delegated (their
//! refresh token issued within 6 days for 90% of them, 7-75 days ago (due
//! for the keep-alive) for 7%, 76-89 days ago (due and shown `expiring`)
//! for 3%), 3% active app-only, 2% `reauth_required`, 7% `inactive`, 1%
//! `error`. A signed-in mailbox holds sealed tokens of realistic size (an
//! access token of 2,716 characters, a refresh token of 2,050: random
//! bytes, never decrypted: these mailboxes are never refreshed). Three
//! events per mailbox over the last 25 days (inside the feed's retention).
//! The same model computes in Rust what every organisation must show.
//! The file is long because it holds both generators (one SQL dialect each),
//! that model, and the measurements with their plans.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use inboxlink::config::{Backend, Settings, Source};
use inboxlink::store::{Store, tokens};
use serde_json::Value;

use super::{Service, backend, figure, ms, percentile, sized};
use crate::helpers::{METRICS_TOKEN, ORG, TestApp};

/// The largest organisation: N/10 mailboxes.
const BIG: &str = "scale-big";
const DAY_MS: i64 = 86_400_000;
/// The service's defaults: grants older than this are due for the keep-alive
/// (INBOXLINK_KEEPALIVE_AFTER_DAYS), and shown `expiring` after 90 - 14 days.
const KEEPALIVE_AFTER_DAYS: i64 = 7;
const EXPIRING_AFTER_DAYS: i64 = 76;
/// The keep-alive's limit per sweep (`MAX_PER_SWEEP` in service/keepalive.rs).
const MAX_PER_SWEEP: i64 = 100_000;
const EVENTS_PER_MAILBOX: u64 = 3;
/// Sealed values: `v1.<key id>.` and the base64url of nonce, token and tag,
/// for an access token of 2,000 bytes and a refresh token of 1,500.
const ACCESS_BYTES: usize = 12 + 2000 + 16;
const REFRESH_BYTES: usize = 12 + 1500 + 16;
const PAGE: usize = 50;

// The model of the generated rows, in Rust and (below) in SQL: the same
// integer arithmetic on the mailbox's number `i`.

const R_MULT: u64 = 2_654_435_761;
const G_MULT: u64 = 2_246_822_519;

fn hash(i: u64, mult: u64) -> u64 {
    (i * mult % 4_294_967_296) / 65_536
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Active,
    AppOnly,
    Reauth,
    Inactive,
    Error,
}

fn kind(i: u64) -> Kind {
    match hash(i, R_MULT) % 100 {
        0..87 => Kind::Active,
        87..90 => Kind::AppOnly,
        90..92 => Kind::Reauth,
        92..99 => Kind::Inactive,
        _ => Kind::Error,
    }
}

/// 0-999: how old the grant of an active delegated mailbox is (see `age_seconds`).
fn grant(i: u64) -> u64 {
    hash(i, G_MULT) % 1000
}

/// The organisation of mailbox `i`: 0 is `ORG` (N/1000), 1 is [`BIG`] (N/10).
fn org_index(i: u64) -> u64 {
    match i % 1000 {
        0..100 => 1,
        100 => 0,
        s => 2 + ((i / 1000) * 899 + s - 101) % 998,
    }
}

fn org_name(k: u64) -> String {
    match k {
        0 => ORG.to_owned(),
        1 => BIG.to_owned(),
        k => format!("scale-org-{k:04}"),
    }
}

/// The status the API shows for mailbox `i`.
fn shown(i: u64) -> &'static str {
    match kind(i) {
        Kind::Active if grant(i) >= 970 => "expiring",
        Kind::Active | Kind::AppOnly => "active",
        Kind::Reauth => "reauth_required",
        Kind::Inactive => "inactive",
        Kind::Error => "error",
    }
}

fn due(i: u64) -> bool {
    kind(i) == Kind::Active && grant(i) >= 900
}

/// What the model says about the generated rows.
#[derive(Debug, Default)]
struct Expected {
    /// Mailboxes by organisation index, by shown status.
    by_org: BTreeMap<u64, BTreeMap<&'static str, usize>>,
    due: usize,
}

impl Expected {
    fn of(n: u64) -> Self {
        let mut e = Expected::default();
        for i in 0..n {
            *e.by_org
                .entry(org_index(i))
                .or_default()
                .entry(shown(i))
                .or_default() += 1;
            e.due += usize::from(due(i));
        }
        e
    }

    fn count(&self, k: u64, status: Option<&str>) -> usize {
        let statuses = &self.by_org[&k];
        match status {
            None => statuses.values().sum(),
            Some(s) => statuses.get(s).copied().unwrap_or(0),
        }
    }
}

// The same model in SQL (integer arithmetic reads the same in both dialects).

fn sql_hash(i: &str, mult: u64) -> String {
    format!("((({i}) * {mult}) % 4294967296 / 65536)")
}

const SQL_KIND: &str = "CASE WHEN q1.r < 87 THEN 'active' WHEN q1.r < 90 THEN 'app' \
    WHEN q1.r < 92 THEN 'reauth' WHEN q1.r < 99 THEN 'inactive' ELSE 'error' END";

/// Seconds since the grant, from `g` (0-999): under 6 days for 90%, 7-75
/// days for 7%, 76-89 days for 3%.
const SQL_AGE: &str = "CASE WHEN q1.g < 900 THEN q1.g * 576 \
    WHEN q1.g < 970 THEN 604800 + (q1.g - 900) * 85165 \
    ELSE 6566400 + (q1.g - 970) * 37440 END";

fn sql_org(i: &str) -> String {
    format!(
        "CASE WHEN ({i}) % 1000 < 100 THEN 1 WHEN ({i}) % 1000 = 100 THEN 0 \
         ELSE 2 + ((({i}) / 1000) * 899 + ({i}) % 1000 - 101) % 998 END"
    )
}

/// The dialect's pieces, around the generation time `t_ms` (Unix ms).
struct Dialect {
    backend: Backend,
    t_ms: i64,
    n: u64,
}

impl Dialect {
    /// A TIMESTAMP from Unix milliseconds (SQLite: the text diesel reads).
    fn ts(&self, ms: &str) -> String {
        match self.backend {
            Backend::Postgres => format!("(TIMESTAMP 'epoch' + ({ms}) * INTERVAL '1 millisecond')"),
            Backend::Sqlite => {
                format!("strftime('%Y-%m-%d %H:%M:%f', ({ms}) / 1000.0, 'unixepoch')")
            }
        }
    }

    /// A UUID v7 (lower-case text) of the time `ms`, its other bits from `seed`.
    fn uuid(&self, ms: &str, seed: &str) -> String {
        match self.backend {
            Backend::Postgres => {
                let h = format!("lpad(to_hex(({ms})::bigint), 12, '0')");
                let r = format!("md5(({seed})::text)");
                format!(
                    "(substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-7' || substr({r}, 1, 3) \
                     || '-8' || substr({r}, 4, 3) || '-' || substr({r}, 7, 12))"
                )
            }
            Backend::Sqlite => format!(
                "printf('%08x-%04x-7%03x-8%03x-%012x', ({ms}) >> 16, ({ms}) & 65535, \
                 (({seed}) * 2654435761) % 4096, (({seed}) * 40503 + 7) % 4096, \
                 (({seed}) * 257489 + 12345) % 281474976710656)"
            ),
        }
    }

    /// `WITH` clause and `FROM` item of the numbers 0..count, as column `x`.
    fn series(&self, count: u64) -> (String, String) {
        match self.backend {
            Backend::Postgres => (
                String::new(),
                format!("generate_series(0::bigint, {}) AS s(x)", count - 1),
            ),
            Backend::Sqlite => (
                format!(
                    "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < {})",
                    count - 1
                ),
                "s".to_owned(),
            ),
        }
    }

    /// The sealed access and refresh tokens of the row (`q.i`), and the join that provides them.
    fn tokens(&self) -> (String, String, &'static str) {
        match self.backend {
            Backend::Postgres => (
                "b.access".into(),
                "b.refresh".into(),
                "JOIN blobs b ON b.b = q.i % 1000",
            ),
            Backend::Sqlite => (
                format!(
                    "'v1.0a1b2c3d.' || lower(hex(randomblob({})))",
                    b64_len(ACCESS_BYTES) / 2
                ),
                format!(
                    "'v1.0a1b2c3d.' || lower(hex(randomblob({})))",
                    b64_len(REFRESH_BYTES) / 2
                ),
                "",
            ),
        }
    }

    /// Created over two years, up to 90 days ago, in the order of `i`.
    fn created_ms(&self, i: &str) -> String {
        let start = self.t_ms - 730 * DAY_MS;
        let step = 640 * DAY_MS / self.n as i64;
        format!("({start} + ({i}) * {step})")
    }

    fn mailboxes(&self) -> String {
        let (with, from) = self.series(self.n);
        let (access, refresh, join) = self.tokens();
        let t = self.t_ms;
        let grant_ms = format!("({t} - q.age * 1000)");
        let app_ms = format!("({t} - q.g * 3600)");
        let id = self.uuid(&self.created_ms("q.i"), "q.i * 3 + 1");
        let oid = self.uuid(&self.created_ms("q.i"), "q.i * 3 + 2");
        let email = "('user' || q.i || '@o' || q.k || '.example.com')";
        format!(
            "{with} INSERT INTO mailboxes (id, org, email, app_credential_id, access_mode, shared, \
             transport, status, status_code, status_message, status_hint, authorized_as, \
             identity_oid, identity_tid, refresh_token_issued_at, last_refresh_at, access_token, \
             access_token_expires_at, refresh_token, token_version, version, created_at, updated_at) \
             SELECT {id}, o.org, {email}, o.cred, \
               CASE WHEN q.kind = 'app' THEN 'app_only' ELSE 'delegated' END, FALSE, 'imap_smtp', \
               CASE q.kind WHEN 'active' THEN 'active' WHEN 'app' THEN 'active' \
                 WHEN 'reauth' THEN 'reauth_required' WHEN 'inactive' THEN 'inactive' ELSE 'error' END, \
               CASE q.kind WHEN 'reauth' THEN 'grant_revoked' WHEN 'inactive' THEN 'not_authorized' \
                 WHEN 'error' THEN 'invalid_address' END, \
               CASE q.kind WHEN 'reauth' THEN 'The authorization was revoked (for example after a password reset).' \
                 WHEN 'inactive' THEN 'The mailbox has not been authorized yet.' \
                 WHEN 'error' THEN 'The stored address is not a bare mailbox address.' END, \
               CASE q.kind WHEN 'reauth' THEN 'Sign in again with Refresh.' END, \
               CASE WHEN q.kind IN ('active', 'reauth') THEN {email} END, \
               CASE WHEN q.kind IN ('active', 'reauth') THEN {oid} END, \
               CASE WHEN q.kind IN ('active', 'reauth') THEN '9188040d-6c67-4c5b-b112-36a304b66dad' END, \
               CASE q.kind WHEN 'active' THEN {grant} WHEN 'reauth' THEN {old} END, \
               CASE q.kind WHEN 'active' THEN {grant} WHEN 'app' THEN {app} END, \
               CASE WHEN q.kind IN ('active', 'app') THEN {access} END, \
               CASE q.kind WHEN 'active' THEN {grant_exp} WHEN 'app' THEN {app_exp} END, \
               CASE WHEN q.kind = 'active' THEN {refresh} END, \
               CASE WHEN q.kind = 'inactive' THEN 0 ELSE 1 END, \
               CASE WHEN q.kind = 'inactive' THEN 0 ELSE 2 END, \
               {created}, {created} \
             FROM (SELECT q1.i, q1.k, q1.g, {SQL_KIND} AS kind, {SQL_AGE} AS age \
                   FROM (SELECT x AS i, {k} AS k, {r} % 100 AS r, {g} % 1000 AS g FROM {from}) AS q1) AS q \
             JOIN orgs o ON o.k = q.k {join}",
            grant = self.ts(&grant_ms),
            old = self.ts(&(t - 95 * DAY_MS).to_string()),
            app = self.ts(&app_ms),
            grant_exp = self.ts(&format!("({grant_ms} + 3600000)")),
            app_exp = self.ts(&format!("({app_ms} + 3600000)")),
            created = self.ts(&self.created_ms("q.i")),
            k = sql_org("x"),
            r = sql_hash("x", R_MULT),
            g = sql_hash("x", G_MULT),
        )
    }

    fn events(&self) -> String {
        let count = self.n * EVENTS_PER_MAILBOX;
        let (with, from) = self.series(count);
        let start = self.t_ms - 25 * DAY_MS;
        let step = 25 * DAY_MS / count as i64;
        let at = format!("({start} + q.j * {step})");
        let mailbox = self.uuid(&self.created_ms("q.i"), "q.i * 3 + 1");
        let head = format!(
            "'{{\"mailbox_id\":\"' || {mailbox} || '\",\"email\":\"user' || q.i || '@o' || q.k || '.example.com\"'"
        );
        format!(
            "{with} INSERT INTO events (id, org, type, subject_id, occurred_at, data) \
             SELECT {id}, o.org, \
               CASE WHEN q.e = 1 OR (q.e = 2 AND q.kind = 'reauth') THEN 'mailbox.status_changed' \
                 ELSE 'mailbox.check_recovered' END, \
               {mailbox}, {at_ts}, \
               CASE WHEN q.e = 1 THEN {head} || ',\"from\":\"inactive\",\"to\":\"active\",\"status_code\":null}}' \
                 WHEN q.e = 2 AND q.kind = 'reauth' \
                 THEN {head} || ',\"from\":\"active\",\"to\":\"reauth_required\",\"status_code\":\"grant_revoked\"}}' \
                 ELSE {head} || '}}' END \
             FROM (SELECT q1.j, q1.i, q1.e, q1.k, {SQL_KIND} AS kind \
                   FROM (SELECT x AS j, x / {EVENTS_PER_MAILBOX} AS i, x % {EVENTS_PER_MAILBOX} AS e, \
                           {k} AS k, {r} % 100 AS r FROM {from}) AS q1) AS q \
             JOIN orgs o ON o.k = q.k",
            id = self.uuid(&at, "q.j * 5 + 2"),
            at_ts = self.ts(&at),
            k = sql_org(&format!("x / {EVENTS_PER_MAILBOX}")),
            r = sql_hash(&format!("x / {EVENTS_PER_MAILBOX}"), R_MULT),
        )
    }
}

fn b64_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// A direct connection to the app's database, beside the service's.
enum Db {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

impl Db {
    fn open(app: &TestApp) -> Db {
        match app.backend {
            Backend::Postgres => {
                let url = app
                    .vars()
                    .into_iter()
                    .find_map(|(k, v)| (k == "INBOXLINK_DATABASE_URL").then_some(v))
                    .expect("the database URL");
                Db::Pg(PgConnection::establish(&url).expect("connect to the app's database"))
            }
            Backend::Sqlite => {
                let path = app.sqlite_path().expect("on SQLite");
                let mut c = SqliteConnection::establish(&path.display().to_string())
                    .expect("open the app's database");
                c.batch_execute("PRAGMA busy_timeout = 10000")
                    .expect("busy timeout");
                Db::Sqlite(c)
            }
        }
    }

    fn exec(&mut self, sql: &str) -> usize {
        let done = match self {
            Db::Pg(c) => diesel::sql_query(sql).execute(c),
            Db::Sqlite(c) => diesel::sql_query(sql).execute(c),
        };
        done.unwrap_or_else(|e| panic!("{e}: {}", clip(sql)))
    }

    fn batch(&mut self, sql: &str) {
        let done = match self {
            Db::Pg(c) => c.batch_execute(sql),
            Db::Sqlite(c) => c.batch_execute(sql),
        };
        done.unwrap_or_else(|e| panic!("{e}: {}", clip(sql)));
    }

    /// A query of one row with a BIGINT column `n`.
    fn count(&mut self, sql: &str) -> i64 {
        let rows: Vec<Count> = match self {
            Db::Pg(c) => diesel::sql_query(sql).load(c),
            Db::Sqlite(c) => diesel::sql_query(sql).load(c),
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
        rows.first().map(|r| r.n).expect("a row")
    }

    /// A query with a TEXT column `line`.
    fn lines(&mut self, sql: &str) -> Vec<String> {
        let rows: Vec<Line> = match self {
            Db::Pg(c) => diesel::sql_query(sql).load(c),
            Db::Sqlite(c) => diesel::sql_query(sql).load(c),
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
        rows.into_iter().map(|r| r.line).collect()
    }

    /// The plan of `sql`: PostgreSQL runs it (EXPLAIN ANALYZE), SQLite says
    /// how it would (EXPLAIN QUERY PLAN).
    fn plan(&mut self, sql: &str) -> Vec<String> {
        match self {
            Db::Pg(c) => {
                diesel::sql_query(
                    "CREATE OR REPLACE FUNCTION pg_temp.plan(q text) RETURNS SETOF text \
                     LANGUAGE plpgsql AS $f$ DECLARE r text; BEGIN \
                     FOR r IN EXECUTE 'EXPLAIN (ANALYZE, BUFFERS) ' || q LOOP RETURN NEXT r; END LOOP; \
                     END $f$",
                )
                .execute(c)
                .expect("the plan function");
                let rows: Vec<Line> = diesel::sql_query("SELECT pg_temp.plan($1) AS line")
                    .bind::<Text, _>(sql)
                    .load(c)
                    .unwrap_or_else(|e| panic!("{e}: {sql}"));
                rows.into_iter().map(|r| r.line).collect()
            }
            Db::Sqlite(c) => {
                #[derive(QueryableByName)]
                struct Step {
                    #[diesel(sql_type = Text)]
                    detail: String,
                }
                let rows: Vec<Step> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                    .load(c)
                    .unwrap_or_else(|e| panic!("{e}: {sql}"));
                rows.into_iter().map(|r| r.detail).collect()
            }
        }
    }
}

fn clip(sql: &str) -> String {
    sql.chars().take(600).collect()
}

/// Generates the organisations, their app credentials, the mailboxes and
/// their events; returns the seconds each step took.
fn generate(db: &mut Db, d: &Dialect, credential: &str) -> Vec<(&'static str, Duration)> {
    let mut took = Vec::new();
    let pg = d.backend == Backend::Postgres;
    let started = Instant::now();
    if !pg {
        db.batch("BEGIN IMMEDIATE");
    }
    db.batch(
        "CREATE TEMP TABLE orgs (k BIGINT PRIMARY KEY NOT NULL, org TEXT NOT NULL, cred TEXT NOT NULL)",
    );
    let values: Vec<String> = (0..1000u64)
        .map(|k| {
            let cred = match k {
                0 => credential.to_owned(),
                _ => uuid::Uuid::now_v7().to_string(),
            };
            format!("({k}, '{}', '{cred}')", org_name(k))
        })
        .collect();
    db.exec(&format!(
        "INSERT INTO orgs (k, org, cred) VALUES {}",
        values.join(", ")
    ));
    // Every column of the existing credential, with another id and organisation.
    let columns = match d.backend {
        Backend::Postgres => db.lines(
            "SELECT column_name::text AS line FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'app_credentials' \
             ORDER BY ordinal_position",
        ),
        Backend::Sqlite => {
            db.lines("SELECT name AS line FROM pragma_table_info('app_credentials')")
        }
    };
    let select: Vec<String> = columns
        .iter()
        .map(|c| match c.as_str() {
            "id" => "o.cred".to_owned(),
            "org" => "o.org".to_owned(),
            c => format!("a.{c}"),
        })
        .collect();
    let copied = db.exec(&format!(
        "INSERT INTO app_credentials ({}) SELECT {} FROM app_credentials a JOIN orgs o ON o.k > 0 \
         WHERE a.id = '{credential}'",
        columns.join(", "),
        select.join(", ")
    ));
    assert_eq!(copied, 999, "an app credential for each other organisation");
    if pg {
        // A pool of sealed-looking values (base64url of random bytes), shared round-robin.
        let hex = |bytes: usize, tag: &str| {
            format!(
                "'v1.0a1b2c3d.' || translate(encode(decode(substr(string_agg(md5(b || '{tag}' || j), '' ORDER BY j) \
                 FILTER (WHERE j <= {md5s}), 1, {chars}), 'hex'), 'base64'), E'+/=\\n', '-_')",
                md5s = (bytes * 2).div_ceil(32),
                chars = bytes * 2
            )
        };
        db.batch(&format!(
            "CREATE TEMP TABLE blobs AS SELECT b, {} AS access, {} AS refresh \
             FROM generate_series(0, 999) b, generate_series(1, {}) j GROUP BY b",
            hex(ACCESS_BYTES, "a"),
            hex(REFRESH_BYTES, "r"),
            (ACCESS_BYTES * 2).div_ceil(32)
        ));
    }
    took.push(("organisations and app credentials", started.elapsed()));
    let started = Instant::now();
    let rows = db.exec(&d.mailboxes());
    assert_eq!(rows as u64, d.n, "mailboxes generated");
    took.push(("mailboxes", started.elapsed()));
    let started = Instant::now();
    let rows = db.exec(&d.events());
    assert_eq!(rows as u64, d.n * EVENTS_PER_MAILBOX, "events generated");
    took.push(("events", started.elapsed()));
    let started = Instant::now();
    if pg {
        db.batch("ANALYZE");
        took.push(("ANALYZE", started.elapsed()));
    } else {
        db.batch("COMMIT");
        // The log's pages into the file, and the log emptied: the size below is the data's.
        db.batch("PRAGMA wal_checkpoint(TRUNCATE)");
        took.push(("commit and checkpoint", started.elapsed()));
    }
    took
}

/// One `GET`, answered 200 with JSON; the time until its body was read.
async fn get(client: &reqwest::Client, url: &str, token: &str) -> (Duration, Value) {
    let started = Instant::now();
    let response = client
        .get(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("an answer");
    let status = response.status();
    let body = response.bytes().await.expect("a body");
    let took = started.elapsed();
    assert_eq!(
        status,
        200,
        "{url}: {}",
        String::from_utf8_lossy(&body[..body.len().min(500)])
    );
    (took, serde_json::from_slice(&body).expect("JSON"))
}

fn items(page: &Value) -> &[Value] {
    page["items"].as_array().map_or(&[], Vec::as_slice)
}

fn p50_p99(samples: &mut [Duration]) -> String {
    let p50 = percentile(samples, 50.0);
    let p99 = percentile(samples, 99.0);
    format!("{} / {}", ms(p50), ms(p99))
}

/// Every page of `path` (which has `?limit=50`) by `next_cursor`: the ids in
/// order, checked strictly ascending with only the last page short, and
/// each page's time.
async fn walk(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
) -> (usize, Vec<Duration>) {
    let mut times = Vec::new();
    let mut last: Option<String> = None;
    let mut count = 0;
    let mut cursor: Option<String> = None;
    let mut short_page = false;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}{path}&cursor={c}"),
            None => format!("{base}{path}"),
        };
        let (took, page) = get(client, &url, token).await;
        times.push(took);
        let items = items(&page);
        assert!(
            !short_page,
            "{path}: only the last page has fewer than {PAGE} items"
        );
        short_page = items.len() < PAGE;
        for item in items {
            let id = item["id"].as_str().expect("an id").to_owned();
            if let Some(previous) = &last {
                assert!(
                    *previous < id,
                    "{path}: ids ascending and distinct ({previous}, {id})"
                );
            }
            last = Some(id);
            count += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (count, times),
        }
    }
}

/// The scenario on one backend with `n` mailboxes.
async fn scale(app: TestApp, n: u64) {
    assert_eq!(n % 1000, 0, "N is a multiple of 1000");
    let scenario = format!(
        "scale, {}, {n} mailboxes in 1000 organisations",
        backend(&app)
    );
    let backend_kind = app.backend;
    let credential = app.app_credential_id().to_string();
    app.stop(true).await;
    let expected = Expected::of(n);
    let now = Utc::now();
    let d = Dialect {
        backend: backend_kind,
        t_ms: now.timestamp_millis(),
        n,
    };

    // 1. The rows, straight into the database.
    let mut db = Db::open(&app);
    let generation = Instant::now();
    for (step, took) in generate(&mut db, &d, &credential) {
        figure(
            &scenario,
            &format!("generated: {step}"),
            format!("{:.1} s", took.as_secs_f64()),
        );
    }
    figure(
        &scenario,
        "generated in",
        format!("{:.1} s", generation.elapsed().as_secs_f64()),
    );
    let mailboxes = db.count("SELECT count(*) AS n FROM mailboxes");
    let events = db.count("SELECT count(*) AS n FROM events");
    assert_eq!(mailboxes as u64, n);
    figure(
        &scenario,
        "rows",
        format!("{mailboxes} mailboxes, {events} events, 1000 app credentials"),
    );
    let size = database_size(&mut db, &app);
    figure(
        &scenario,
        "database size",
        format!("{:.1} MiB", size as f64 / 1_048_576.0),
    );
    figure(
        &scenario,
        "database size per mailbox (with its 3 events)",
        format!("{:.0} bytes", size as f64 / n as f64),
    );
    if backend_kind == Backend::Postgres {
        for table in ["mailboxes", "events"] {
            let total = db.count(&format!("SELECT pg_total_relation_size('{table}') AS n"));
            let indexes = db.count(&format!("SELECT pg_indexes_size('{table}') AS n"));
            figure(
                &scenario,
                &format!("size of {table} (of it indexes)"),
                format!(
                    "{:.1} MiB ({:.1} MiB)",
                    total as f64 / 1_048_576.0,
                    indexes as f64 / 1_048_576.0
                ),
            );
        }
    }

    // 2. The service on them.
    let started = Instant::now();
    let mut service = Service::start(&app, &[]).await;
    figure(&scenario, "start-up to /readyz", ms(started.elapsed()));
    let started = Instant::now();
    service.restart().await;
    figure(
        &scenario,
        "restart (SIGKILL, start, /readyz)",
        ms(started.elapsed()),
    );

    let client = reqwest::Client::new();
    let base = service.base();
    let requests = sized(100, 500);
    let mut unfiltered_p99 = Vec::new();
    for (k, name) in [(0, ORG), (1, BIG)] {
        let token = app.token(name, &["admin"]);
        let total = expected.count(k, None);
        let who = format!("org {name} ({total} mailboxes)");
        for status in [
            None,
            Some("active"),
            Some("reauth_required"),
            Some("expiring"),
        ] {
            let path = match status {
                None => format!("/mailboxes?limit={PAGE}"),
                Some(s) => format!("/mailboxes?limit={PAGE}&status={s}"),
            };
            let want = expected.count(k, status).min(PAGE);
            let mut times = Vec::with_capacity(requests);
            for _ in 0..requests {
                let (took, page) = get(&client, &format!("{base}{path}"), &token).await;
                times.push(took);
                let items = items(&page);
                assert_eq!(items.len(), want, "{who}: {path}");
                if let Some(s) = status {
                    assert!(
                        items.iter().all(|m| m["status"] == s),
                        "{who}: {path}: only {s}"
                    );
                }
            }
            let label = status.map_or("no filter".to_owned(), |s| format!("status={s}"));
            figure(
                &scenario,
                &format!("{who}: first page, {label}: p50 / p99"),
                p50_p99(&mut times),
            );
            if status.is_none() {
                unfiltered_p99.push((who.clone(), percentile(&mut times, 99.0)));
            }
        }
        // The whole list, page by page.
        let (count, mut times) =
            walk(&client, &base, &format!("/mailboxes?limit={PAGE}"), &token).await;
        assert_eq!(
            count, total,
            "{who}: the walk by next_cursor visits every mailbox once"
        );
        let last = *times.last().expect("a page");
        figure(
            &scenario,
            &format!(
                "{who}: walk of {} pages by next_cursor: p50 / p99, last page",
                times.len()
            ),
            format!("{}, {}", p50_p99(&mut times), ms(last)),
        );
        // The whole list in one rare status.
        let (count, mut times) = walk(
            &client,
            &base,
            &format!("/mailboxes?limit={PAGE}&status=reauth_required"),
            &token,
        )
        .await;
        assert_eq!(
            count,
            expected.count(k, Some("reauth_required")),
            "{who}: every reauth_required mailbox"
        );
        figure(
            &scenario,
            &format!(
                "{who}: walk of status=reauth_required ({count} mailboxes, {} pages): p50 / p99",
                times.len()
            ),
            p50_p99(&mut times),
        );

        // The events feed: the first page, and a consumer's poll near its end.
        let org_events = db.count(&format!(
            "SELECT count(*) AS n FROM events WHERE org = '{name}'"
        )) as usize;
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let (took, page) = get(&client, &format!("{base}/events?limit={PAGE}"), &token).await;
            times.push(took);
            assert_eq!(
                items(&page).len(),
                org_events.min(PAGE),
                "{who}: an events page"
            );
        }
        figure(
            &scenario,
            &format!("{who}, {org_events} events: /events first page: p50 / p99"),
            p50_p99(&mut times),
        );
        let tail = 25.min(org_events - 1);
        let cursor = db.lines(&format!(
            "SELECT id AS line FROM events WHERE org = '{name}' ORDER BY id DESC LIMIT 1 OFFSET {tail}"
        ));
        let cursor = cursor.first().expect("an event");
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let (took, page) = get(
                &client,
                &format!("{base}/events?limit={PAGE}&cursor={cursor}"),
                &token,
            )
            .await;
            times.push(took);
            assert_eq!(
                items(&page).len(),
                tail,
                "{who}: the events after the cursor"
            );
        }
        figure(
            &scenario,
            &format!("{who}: /events poll at the feed's end: p50 / p99"),
            p50_p99(&mut times),
        );
    }
    // The typical organisation's whole feed.
    let org_token = app.token(ORG, &["admin"]);
    let (count, mut times) =
        walk(&client, &base, &format!("/events?limit={PAGE}"), &org_token).await;
    assert_eq!(
        count as u64,
        n / 1000 * EVENTS_PER_MAILBOX,
        "org {ORG}: every event, in order"
    );
    figure(
        &scenario,
        &format!(
            "org {ORG}: walk of the feed, {} pages: p50 / p99",
            times.len()
        ),
        p50_p99(&mut times),
    );
    // What the API shows of the typical organisation, by status.
    let census = super::census(&base, &org_token).await;
    let want: BTreeMap<String, usize> = expected.by_org[&0]
        .iter()
        .map(|(s, c)| ((*s).to_owned(), *c))
        .collect();
    figure(&scenario, &format!("census of org {ORG}"), &census);
    assert_eq!(
        census.mailboxes, want,
        "org {ORG}: every mailbox in the status the model gives it"
    );

    // 3. The keep-alive's selection of due grants, as its sweep calls it.
    let source = Source::from_pairs(app.vars()).expect("known variables");
    let settings = Settings::from_source(&source).expect("valid settings");
    let runs = sized(3, 5);
    let (selected, mut times) = tokio::task::spawn_blocking(move || {
        let store = Store::connect(&settings.database).expect("the store");
        let mut times = Vec::new();
        let mut selected = 0;
        for _ in 0..runs {
            let at = Utc::now().naive_utc();
            let issued_before = at - chrono::Duration::days(KEEPALIVE_AFTER_DAYS);
            let started = Instant::now();
            let due = store
                .blocking(|c| tokens::due_for_keepalive(c, issued_before, at, MAX_PER_SWEEP))
                .expect("the due grants");
            times.push(started.elapsed());
            selected = due.len();
        }
        (selected, times)
    })
    .await
    .expect("the keep-alive's query");
    let first = times[0];
    figure(
        &scenario,
        &format!(
            "keep-alive: selection of due grants ({selected} of {n}), first / median of {runs}"
        ),
        format!("{} / {}", ms(first), ms(percentile(&mut times, 50.0))),
    );
    assert_eq!(
        selected,
        expected.due.min(MAX_PER_SWEEP as usize),
        "the due grants, all of them"
    );

    // 4. A metrics scrape counts the mailboxes by status across organisations.
    let mut times = Vec::new();
    for _ in 0..sized(3, 5) {
        let started = Instant::now();
        let r = client
            .get(format!("{base}/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .expect("metrics");
        assert_eq!(r.status(), 200, "metrics");
        r.text().await.expect("metrics text");
        times.push(started.elapsed());
    }
    figure(
        &scenario,
        "/metrics scrape (mailboxes by status, all organisations): p50 / max",
        {
            let p50 = percentile(&mut times, 50.0);
            format!("{} / {}", ms(p50), ms(percentile(&mut times, 100.0)))
        },
    );
    figure(
        &scenario,
        "service resident memory after",
        format!("{} MiB", service.rss_kib() / 1024),
    );

    // 5. The plans of those queries, on the largest organisation.
    let expiring_before = (now - chrono::Duration::days(EXPIRING_AFTER_DAYS)).naive_utc();
    let issued_before = (now - chrono::Duration::days(KEEPALIVE_AFTER_DAYS)).naive_utc();
    let at = |t: NaiveDateTime| match backend_kind {
        Backend::Postgres => format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.3f")),
        Backend::Sqlite => format!("'{}'", t.format("%Y-%m-%d %H:%M:%S%.3f")),
    };
    let list = |org: &str, filter: &str| {
        format!(
            "SELECT id, org, email, status FROM mailboxes WHERE org = '{org}'{filter} ORDER BY id ASC LIMIT {PAGE}"
        )
    };
    // A cursor nine tenths into the largest organisation's list, and its feed's.
    let mut deep = |table: &str| {
        let total = db.count(&format!(
            "SELECT count(*) AS n FROM {table} WHERE org = '{BIG}'"
        ));
        db.lines(&format!(
            "SELECT id AS line FROM {table} WHERE org = '{BIG}' ORDER BY id LIMIT 1 OFFSET {}",
            total * 9 / 10
        ))
        .pop()
        .expect("an id")
    };
    let deep_mailbox = deep("mailboxes");
    let deep_event = deep("events");
    let queries = [
        (format!("list {ORG}, no filter"), list(ORG, "")),
        (format!("list {BIG}, no filter"), list(BIG, "")),
        (
            format!("list {BIG}, status=active"),
            list(
                BIG,
                &format!(
                    " AND status = 'active' AND (access_mode <> 'delegated' OR refresh_token_issued_at IS NULL \
                     OR refresh_token_issued_at > {})",
                    at(expiring_before)
                ),
            ),
        ),
        (
            format!("list {BIG}, status=reauth_required"),
            list(BIG, " AND status = 'reauth_required'"),
        ),
        (
            format!("list {BIG}, status=expiring"),
            list(
                BIG,
                &format!(
                    " AND status = 'active' AND access_mode = 'delegated' AND refresh_token_issued_at <= {}",
                    at(expiring_before)
                ),
            ),
        ),
        (
            format!("events {BIG}, first page"),
            format!("SELECT id, type FROM events WHERE org = '{BIG}' ORDER BY id ASC LIMIT {PAGE}"),
        ),
        (
            format!("list {BIG}, no filter, after a cursor 90% into the list"),
            list(BIG, &format!(" AND id > '{deep_mailbox}'")),
        ),
        (
            format!("events {ORG}, first page"),
            format!("SELECT id, type FROM events WHERE org = '{ORG}' ORDER BY id ASC LIMIT {PAGE}"),
        ),
        (
            format!("events {BIG}, after a cursor 90% into the feed"),
            format!(
                "SELECT id, type FROM events WHERE org = '{BIG}' AND id > '{deep_event}' ORDER BY id ASC LIMIT {PAGE}"
            ),
        ),
        (
            "keep-alive due grants".to_owned(),
            format!(
                "SELECT org, id FROM mailboxes WHERE access_mode = 'delegated' AND status = 'active' \
                 AND refresh_token IS NOT NULL AND refresh_token_issued_at < {} \
                 AND (refresh_lease_until IS NULL OR refresh_lease_until < {}) \
                 ORDER BY refresh_token_issued_at ASC, id ASC LIMIT {MAX_PER_SWEEP}",
                at(issued_before),
                at(now.naive_utc())
            ),
        ),
        (
            "metrics: mailboxes by status".to_owned(),
            "SELECT status, count(*) FROM mailboxes GROUP BY status".to_owned(),
        ),
    ];
    for (name, sql) in queries {
        let plan = db.plan(&sql);
        println!("plan of {name}:\n  {}", plan.join("\n  "));
        let summary: Vec<&str> = plan
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.starts_with("Planning") && !l.starts_with("Buffers") && !l.is_empty())
            .collect();
        figure(&scenario, &format!("plan: {name}"), summary.join(" / "));
    }
    let size = database_size(&mut db, &app);
    figure(
        &scenario,
        "database size after the run",
        format!("{:.1} MiB", size as f64 / 1_048_576.0),
    );

    // 6. Bounds generous enough for a debug build on a shared machine.
    for (who, p99) in unfiltered_p99 {
        assert!(
            p99 < Duration::from_millis(500),
            "{who}: the first page's p99 is {}",
            ms(p99)
        );
    }
}

/// The database's size: PostgreSQL's count, or the SQLite file with its log.
fn database_size(db: &mut Db, app: &TestApp) -> u64 {
    match app.backend {
        Backend::Postgres => db.count("SELECT pg_database_size(current_database()) AS n") as u64,
        Backend::Sqlite => {
            let path = app.sqlite_path().expect("on SQLite");
            let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
            let wal = path.with_extension("sqlite3-wal");
            len(&path) + len(&wal)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_on_postgres() {
    let Some(app) = TestApp::postgres() else {
        return;
    };
    let app = app.with_app_credential().start().await;
    scale(app, sized(20_000, 1_000_000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_on_sqlite() {
    let app = TestApp::new().with_app_credential().start().await;
    scale(app, sized(5_000, 100_000)).await;
}
