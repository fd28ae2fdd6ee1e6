//! Bearer token rejection: every case answers 401 with problem+json.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use inboxlink::auth::JwksRefresh;
use inboxlink::config::{JwtKey, Settings};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::{AUDIENCE, ISSUER, TestApp, claims, http, sign_hs256};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Calls an authenticated operation with `token` and returns (status, problem).
async fn call(
    app: &TestApp,
    token: Option<&str>,
) -> (u16, Option<Value>, reqwest::header::HeaderMap) {
    let mut request = http().get(app.url("/mailboxes"));
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    let response = request.send().await.expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.ok(), headers)
}

/// Asserts a 401 problem with `code`; returns the problem.
async fn assert_rejected(app: &TestApp, case: &str, token: Option<&str>, code: &str) -> Value {
    let (status, problem, headers) = call(app, token).await;
    assert_eq!(status, 401, "{case}");
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "{case}"
    );
    assert!(headers.contains_key("www-authenticate"), "{case}");
    let problem = problem.unwrap_or_else(|| panic!("{case}: a problem document"));
    assert_eq!(problem["code"], code, "{case}: {problem}");
    assert_eq!(problem["status"], 401, "{case}");
    problem
}

/// Asserts that `token` is accepted.
async fn assert_accepted(app: &TestApp, case: &str, token: &str) {
    let (status, problem, _) = call(app, Some(token)).await;
    assert_eq!(status, 200, "{case}: {problem:?}");
}

#[tokio::test]
async fn hs256_rejections() {
    let app = TestApp::new().start().await;
    let good = app.token("acme", &["admin"]);
    assert_eq!(
        call(&app, Some(&good)).await.0,
        200,
        "the valid token is accepted"
    );

    let now = chrono::Utc::now().timestamp();
    let base = || json!({ "sub": "u", "org": "acme", "roles": ["admin"] });
    let with = |extra: Value| {
        let mut c = base();
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        app.token_with(c)
    };
    assert_rejected(&app, "missing token", None, "missing_token").await;
    assert_rejected(&app, "not a JWT", Some("garbage"), "invalid_token").await;
    let foreign = sign_hs256(b"another-secret-that-is-long-enough-0123456789", base());
    assert_rejected(&app, "bad signature", Some(&foreign), "invalid_token").await;
    for (case, extra) in [
        ("expired", json!({ "exp": now - 3600 })),
        ("nbf in the future", json!({ "nbf": now + 3600 })),
        ("wrong iss", json!({ "iss": "someone-else" })),
        ("wrong aud", json!({ "aud": "another-api" })),
        (
            "exp as a string",
            json!({ "exp": (now + 3600).to_string() }),
        ),
    ] {
        assert_rejected(&app, case, Some(&with(extra)), "invalid_token").await;
    }
    for missing in ["exp", "iss", "aud", "sub", "org"] {
        let token = with(json!({ missing: null }));
        assert_rejected(
            &app,
            &format!("without {missing}"),
            Some(&token),
            "invalid_token",
        )
        .await;
    }
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(base())).expect("json"));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    assert_rejected(
        &app,
        "alg none",
        Some(&format!("{header}.{payload}.")),
        "invalid_token",
    )
    .await;
    // The same claims under HS384 and HS512 (not the pinned algorithm), validly
    // signed with the right secret: only the algorithm is wrong.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = app.token_with_alg(alg, base());
        assert_rejected(&app, &format!("{alg:?}"), Some(&token), "invalid_token").await;
    }
    let (status, _, _) = call(&app, Some(&app.token_with_alg(Algorithm::HS256, base()))).await;
    assert_eq!(status, 200, "the same claims under HS256 are accepted");
    let (status, _, _) = call(&app, Some(&with(json!({ "nbf": now + 10 })))).await;
    assert_eq!(status, 200, "nbf within the leeway is accepted");
}

#[tokio::test]
async fn rs256_public_key_pins_the_algorithm() {
    let public_key = fixture("jwt-rs256-public.pem");
    let pem = std::fs::read(&public_key).expect("fixture");
    let path = public_key.clone();
    let app = TestApp::new()
        .with_settings(move |s| {
            s.jwt.key = JwtKey::PublicKeyPem {
                path: path.clone(),
                pem: pem.clone(),
            }
        })
        .start()
        .await;
    let claims = claims(json!({ "sub": "u", "org": "acme", "roles": ["viewer"] }));
    let sign =
        |alg: Algorithm, key: &EncodingKey| encode(&Header::new(alg), &claims, key).expect("sign");
    let rsa = |name: &str| {
        let private = std::fs::read(fixture(name)).expect("fixture");
        EncodingKey::from_rsa_pem(&private).expect("key")
    };
    let good = sign(Algorithm::RS256, &rsa("jwt-rs256-private.pem"));
    assert_eq!(
        call(&app, Some(&good)).await.0,
        200,
        "RS256 signed by the configured key"
    );

    // Algorithm confusion: HS256 with the public key's bytes as the HMAC secret.
    let public_pem = std::fs::read(&public_key).expect("fixture");
    let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(&public_pem));
    let case = "HS256 where RS256 is configured";
    assert_rejected(&app, case, Some(&confused), "invalid_token").await;

    let foreign = sign(Algorithm::RS256, &rsa("other-rs256-private.pem"));
    let case = "RS256 signed by another key";
    assert_rejected(&app, case, Some(&foreign), "invalid_token").await;
}

/// RFC 8725 3.11 and RFC 7515 4.1.11: a `crit` header names extensions this
/// service would have to understand (it understands none); when tokens are
/// typed (`INBOXLINK_JWT_TYPE`), `typ` must say so.
#[tokio::test]
async fn header_crit_and_typ() {
    let app = TestApp::new().start().await;
    let base = || json!({ "sub": "u", "org": "acme", "roles": ["admin"] });
    for crit in [vec!["exp".to_owned()], vec!["b64".to_owned()], vec![]] {
        let header = Header {
            crit: Some(crit.clone()),
            ..Header::default()
        };
        let token = app.token_with_header(&header, base());
        assert_rejected(
            &app,
            &format!("crit {crit:?}"),
            Some(&token),
            "invalid_token",
        )
        .await;
    }
    let untyped = Header {
        typ: None,
        ..Header::default()
    };
    assert_accepted(
        &app,
        "no typ expected: none",
        &app.token_with_header(&untyped, base()),
    )
    .await;
    assert_accepted(&app, "no typ expected: JWT", &app.token("acme", &["admin"])).await;

    let typed = app.restart();
    let typed = typed.with_settings(|s| s.jwt.token_type = Some("at+jwt".into()));
    let typed = typed.start().await;
    let with_typ = |typ: Option<&str>| {
        let header = Header {
            typ: typ.map(str::to_owned),
            ..Header::default()
        };
        typed.token_with_header(&header, base())
    };
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        assert_accepted(&typed, typ, &with_typ(Some(typ))).await;
    }
    for typ in [
        Some("JWT"),
        None,
        Some("jwt"),
        Some("application/jwt"),
        Some("at+jwt+x"),
    ] {
        assert_rejected(
            &typed,
            &format!("typ {typ:?}"),
            Some(&with_typ(typ)),
            "invalid_token",
        )
        .await;
    }
}

/// `exp - iat` is bounded by INBOXLINK_JWT_MAX_LIFETIME_SECONDS (one day by
/// default; 0 turns it off): `iat` is required, and may not lie in the future.
#[tokio::test]
async fn token_lifetime_is_bounded() {
    let app = TestApp::new().start().await;
    let now = chrono::Utc::now().timestamp();
    let with = |app: &TestApp, extra: Value| {
        let mut c = json!({ "sub": "u", "org": "acme", "roles": ["admin"] });
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        app.token_with(c)
    };
    let day = 86_400;
    assert_accepted(
        &app,
        "exactly a day",
        &with(&app, json!({ "iat": now, "exp": now + day })),
    )
    .await;
    assert_accepted(
        &app,
        "iat within the leeway",
        &with(&app, json!({ "iat": now + 10 })),
    )
    .await;
    for (case, extra) in [
        (
            "longer than a day",
            json!({ "iat": now, "exp": now + day + 60 }),
        ),
        ("a year", json!({ "iat": now - 60, "exp": now + 365 * day })),
        ("without iat", json!({ "iat": null })),
        (
            "iat in the future",
            json!({ "iat": now + 3600, "exp": now + 7200 }),
        ),
        ("iat as a string", json!({ "iat": now.to_string() })),
    ] {
        assert_rejected(&app, case, Some(&with(&app, extra)), "invalid_token").await;
    }

    let unbounded = app.restart().with_settings(|s| s.jwt.max_lifetime = None);
    let unbounded = unbounded.start().await;
    assert_accepted(
        &unbounded,
        "no bound, no iat",
        &with(&unbounded, json!({ "iat": null, "exp": now + 365 * day })),
    )
    .await;
    let short = app
        .restart()
        .with_settings(|s| s.jwt.max_lifetime = Some(Duration::from_secs(300)))
        .start()
        .await;
    assert_rejected(
        &short,
        "longer than 300 s",
        Some(&with(&short, json!({ "iat": now, "exp": now + 301 }))),
        "invalid_token",
    )
    .await;
}

/// `iss` must be the configured issuer as a single string: an array does not
/// pass by one matching element. An `aud` array is allowed (RFC 7519 4.1.3)
/// when it contains the audience.
#[tokio::test]
async fn issuer_is_a_single_string_audience_may_be_an_array() {
    let app = TestApp::new().start().await;
    let with = |extra: Value| {
        let mut c = json!({ "sub": "u", "org": "acme", "roles": ["admin"] });
        for (k, v) in extra.as_object().expect("object") {
            c[k] = v.clone();
        }
        app.token_with(c)
    };
    for (case, iss) in [
        ("iss array with the issuer", json!(["other", ISSUER])),
        ("iss array of the issuer alone", json!([ISSUER])),
        ("iss as a number", json!(7)),
    ] {
        assert_rejected(
            &app,
            case,
            Some(&with(json!({ "iss": iss }))),
            "invalid_token",
        )
        .await;
    }
    assert_accepted(
        &app,
        "aud array with the audience",
        &with(json!({ "aud": ["other", AUDIENCE] })),
    )
    .await;
    assert_rejected(
        &app,
        "aud array without the audience",
        Some(&with(json!({ "aud": ["other", "another"] }))),
        "invalid_token",
    )
    .await;
}

/// `sub` is 1-256 characters without whitespace or control characters, and
/// never the name of an actor the service writes into the audit log itself.
#[tokio::test]
async fn subject_is_validated_and_never_a_system_actor() {
    let app = TestApp::new().start().await;
    let with_sub =
        |sub: &str| app.token_with(json!({ "sub": sub, "org": "acme", "roles": ["admin"] }));
    for reserved in inboxlink::auth::RESERVED_ACTORS {
        for name in [reserved.to_string(), reserved.to_uppercase()] {
            let problem =
                assert_rejected(&app, &name, Some(&with_sub(&name)), "invalid_token").await;
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("reserved")),
                "{name}: {problem}"
            );
        }
    }
    for name in ["system:keepalive", "SYSTEM:anything", "System:"] {
        let problem = assert_rejected(&app, name, Some(&with_sub(name)), "invalid_token").await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("reserved")),
            "{problem}"
        );
    }
    let long = "a".repeat(257);
    for (case, sub) in [
        ("a space", "jane doe"),
        ("a tab", "jane\tdoe"),
        ("a newline", "jane\ndoe"),
        ("a control character", "jane\u{1b}[31m"),
        ("257 characters", long.as_str()),
    ] {
        assert_rejected(&app, case, Some(&with_sub(sub)), "invalid_token").await;
    }
    let sub_of =
        |sub: Value| app.token_with(json!({ "sub": sub, "org": "acme", "roles": ["admin"] }));
    assert_rejected(&app, "a number", Some(&sub_of(json!(42))), "invalid_token").await;
    for (case, sub) in [
        ("256 characters", "é".repeat(256)),
        ("an e-mail address", "jane@contoso.cz".to_owned()),
        ("starts like a system actor", "systematic".to_owned()),
        (
            "an Entra object id",
            "5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f".to_owned(),
        ),
    ] {
        assert_accepted(&app, case, &with_sub(&sub)).await;
    }
}

/// A JWKS endpoint on a free port of this test. It answers the first fetch at
/// once and every later one after `later_delay` (a slow identity provider).
struct JwksServer {
    url: String,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(set: &JwkSet, later_delay: Duration) -> Self {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let body = serde_json::to_string(set).expect("json");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/keys", listener.local_addr().expect("addr"));
        let server = actix_web::HttpServer::new(move || {
            let body = body.clone();
            let counter = counter.clone();
            actix_web::App::new().route(
                "/keys",
                actix_web::web::get().to(move || {
                    let earlier = counter.fetch_add(1, Ordering::SeqCst);
                    let body = body.clone();
                    async move {
                        if earlier > 0 {
                            tokio::time::sleep(later_delay).await;
                        }
                        actix_web::HttpResponse::Ok()
                            .content_type("application/json")
                            .body(body)
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Self { url, fetches }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Points the service at this endpoint (served over plain http), with
    /// the organisation in the claim `tid`.
    fn settings(&self) -> impl Fn(&mut Settings) + Send + Sync + 'static {
        let url = url::Url::parse(&self.url).expect("url");
        move |s| {
            s.jwt.key = JwtKey::JwksUrl(url.clone());
            s.jwt.org_claim = "tid".into();
        }
    }
}

/// The fixture's RSA key as a signing key and as a JWK with `kid`.
fn rs256_jwk(kid: &str) -> (EncodingKey, Jwk) {
    let private = std::fs::read(fixture("jwt-rs256-private.pem")).expect("fixture");
    let key = EncodingKey::from_rsa_pem(&private).expect("key");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some(kid.into());
    (key, jwk)
}

/// A token for a JWKS-configured service (organisation claim `tid`).
fn sign_rs(key: &EncodingKey, alg: Algorithm, kid: Option<&str>) -> String {
    let claims = claims(json!({ "sub": "u", "tid": "tenant-1", "roles": ["viewer"] }));
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, key).expect("sign")
}

/// Tokens from an external issuer, verified with keys fetched from its JWKS URL.
#[tokio::test]
async fn jwks_url_keys_by_kid() {
    let (key, jwk) = rs256_jwk("key-1");
    let jwks = JwksServer::start(&JwkSet { keys: vec![jwk] }, Duration::ZERO);
    let app = TestApp::new().with_settings(jwks.settings()).start().await;
    let sign = |kid: Option<&str>| sign_rs(&key, Algorithm::RS256, kid);
    assert_eq!(
        call(&app, Some(&sign(Some("key-1")))).await.0,
        200,
        "known kid"
    );
    assert_eq!(
        call(&app, Some(&sign(Some("key-1")))).await.0,
        200,
        "from the cache"
    );
    assert_eq!(jwks.fetches(), 1, "fetched once");
    assert_rejected(
        &app,
        "unknown kid",
        Some(&sign(Some("key-2"))),
        "invalid_token",
    )
    .await;
    assert_rejected(&app, "no kid", Some(&sign(None)), "invalid_token").await;
    assert_eq!(
        jwks.fetches(),
        1,
        "an unknown kid right after a fetch does not fetch again"
    );
    // An HS256 token cannot use a JWKS-configured service, whatever it claims.
    let hs = sign_hs256(
        b"0123456789abcdef0123456789abcdef",
        json!({ "sub": "u", "tid": "tenant-1" }),
    );
    assert_rejected(&app, "HS256 with JWKS", Some(&hs), "invalid_token").await;
}

/// GET /mailboxes with `token`, from a task of its own: (status, problem).
async fn call_detached(base: String, token: String) -> (u16, Option<Value>) {
    let response = http()
        .get(format!("{base}/mailboxes"))
        .bearer_auth(token)
        .send()
        .await
        .expect("response");
    (response.status().as_u16(), response.json().await.ok())
}

/// Three calls with `token`, each accepted within `within` (`why` it must be).
async fn assert_answered_at_once(app: &TestApp, token: &str, within: Duration, why: &str) {
    for i in 0..3 {
        let started = Instant::now();
        assert_eq!(call(app, Some(token)).await.0, 200, "call {i}");
        let took = started.elapsed();
        assert!(took < within, "{why} (call {i} took {took:?})");
    }
}

/// How long the JWKS server of [`warm_jwks`] takes for every fetch after the first.
const SLOW: Duration = Duration::from_secs(5);

/// A JWKS server with the key `key-1` (fetches after the first take
/// [`SLOW`]), the service verifying with it (`refresh` tunes its cache), the
/// signing key and a token of `key-1`, accepted once (the key is cached).
async fn warm_jwks(
    refresh: impl Fn(&mut JwksRefresh) + Send + Sync + 'static,
) -> (JwksServer, TestApp, EncodingKey, String) {
    let (key, jwk) = rs256_jwk("key-1");
    let jwks = JwksServer::start(&JwkSet { keys: vec![jwk] }, SLOW);
    let app = TestApp::new()
        .with_settings(jwks.settings())
        .with_settings(move |s| refresh(&mut s.jwt.jwks_refresh))
        .start()
        .await;
    let known = sign_rs(&key, Algorithm::RS256, Some("key-1"));
    assert_eq!(call(&app, Some(&known)).await.0, 200, "warm: key-1 cached");
    assert_eq!(jwks.fetches(), 1);
    (jwks, app, key, known)
}

/// An unknown `kid` makes the service refetch the JWKS; while that (slow)
/// fetch is under way, tokens whose key is cached are answered at once, and a
/// second unknown `kid` waits for the same fetch instead of starting another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_refetch_does_not_stall_cached_keys() {
    let min_refetch = Duration::from_millis(300);
    let (jwks, app, key, known) = warm_jwks(move |r| r.min_refetch = min_refetch).await;
    // An unknown kid may refetch once the minimum interval has passed.
    tokio::time::sleep(min_refetch + Duration::from_millis(100)).await;

    let unknown = |kid: &str| {
        tokio::spawn(call_detached(
            app.base.clone(),
            sign_rs(&key, Algorithm::RS256, Some(kid)),
        ))
    };
    let first = unknown("key-2");
    let waited = Instant::now();
    while jwks.fetches() < 2 {
        assert!(waited.elapsed() < SLOW, "the unknown kid starts a refetch");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = unknown("key-3");
    let why = "a cached kid does not wait for the refetch";
    assert_answered_at_once(&app, &known, SLOW / 2, why).await;
    assert!(
        !first.is_finished() && !second.is_finished(),
        "the cached kid was answered while the refetch was still under way"
    );
    for (kid, task) in [("key-2", first), ("key-3", second)] {
        let (status, problem) = task.await.expect("task");
        assert_eq!(status, 401, "{kid}");
        let problem = problem.expect("problem");
        assert_eq!(problem["code"], "invalid_token", "{kid}: {problem}");
    }
    assert_eq!(
        jwks.fetches(),
        2,
        "both unknown kids were answered by the one refetch"
    );
}

/// Keys past their TTL are still served while a (slow) background fetch
/// refreshes them: no request waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_past_their_ttl_are_refreshed_in_the_background() {
    let ttl = Duration::from_millis(300);
    let (jwks, app, _, known) = warm_jwks(move |r| {
        r.ttl = ttl;
        r.min_refetch = ttl;
    })
    .await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let why = "a key past its TTL is served at once";
    assert_answered_at_once(&app, &known, SLOW / 2, why).await;
    let waited = Instant::now();
    while jwks.fetches() < 2 {
        assert!(waited.elapsed() < SLOW, "the stale keys are refetched");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(jwks.fetches(), 2, "one background refetch");
}

/// A JWK's `use` and `alg` are honoured: an encryption key never verifies,
/// and a key that names its algorithm verifies only that one.
#[tokio::test]
async fn jwks_key_use_and_alg_are_honoured() {
    use jsonwebtoken::jwk::{KeyAlgorithm, PublicKeyUse};
    let (key, mut plain) = rs256_jwk("plain");
    // Any RSA algorithm: the key names none.
    plain.common.key_algorithm = None;
    let mut enc = plain.clone();
    enc.common.key_id = Some("enc".into());
    enc.common.public_key_use = Some(PublicKeyUse::Encryption);
    let mut sig = plain.clone();
    sig.common.key_id = Some("sig".into());
    sig.common.public_key_use = Some(PublicKeyUse::Signature);
    let mut ps256 = plain.clone();
    ps256.common.key_id = Some("ps256".into());
    ps256.common.key_algorithm = Some(KeyAlgorithm::PS256);
    let set = JwkSet {
        keys: vec![plain, enc, sig, ps256],
    };
    let jwks = JwksServer::start(&set, Duration::ZERO);
    let app = TestApp::new().with_settings(jwks.settings()).start().await;
    for (kid, alg) in [
        ("plain", Algorithm::RS256),
        ("plain", Algorithm::PS256),
        ("sig", Algorithm::RS256),
        ("ps256", Algorithm::PS256),
    ] {
        assert_accepted(
            &app,
            &format!("{kid} {alg:?}"),
            &sign_rs(&key, alg, Some(kid)),
        )
        .await;
    }
    for (kid, alg) in [
        ("enc", Algorithm::RS256),
        ("ps256", Algorithm::RS256),
        ("ps256", Algorithm::PS384),
    ] {
        let token = sign_rs(&key, alg, Some(kid));
        assert_rejected(
            &app,
            &format!("{kid} {alg:?}"),
            Some(&token),
            "invalid_token",
        )
        .await;
    }
}
