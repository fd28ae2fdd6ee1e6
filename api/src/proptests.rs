//! Property tests of the parsers fed from outside the service: the OAuth
//! callback's query string, bearer tokens, stored ciphertexts, the token
//! endpoint's answers, the mail servers' replies and configuration values.
//! Each test runs a bounded number of cases, so the whole file stays fast in
//! a debug build. The file is long because it is one list, one module per
//! parser family, each with its generators beside its properties; the three
//! failures it found when written (an empty endpoint host, a signed SMTP
//! reply code, a CR inside a reply's text) are fixed and stay here as
//! properties.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON: scalars, and arrays and objects of them, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("a finite number", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A current-thread runtime for the async parsers.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
}

/// (1) `GET /oauth/callback`: its query string, the Accept-Language header,
/// and what the front channel's answer is read as.
mod oauth_callback {
    use super::*;
    use crate::codes::Code;
    use crate::http::oauth::{aadsts_in, prefers_czech};
    use crate::idp::explain::explain;
    use crate::service::callback::{CallbackParams, Effect, front_channel};
    use actix_web::web;

    const KEYS: [&str; 6] = [
        "state",
        "code",
        "error",
        "error_description",
        "admin_consent",
        "tenant",
    ];

    fn fields(p: &CallbackParams) -> [Option<&str>; 6] {
        [
            p.state.as_deref(),
            p.code.as_deref(),
            p.error.as_deref(),
            p.error_description.as_deref(),
            p.admin_consent.as_deref(),
            p.tenant.as_deref(),
        ]
    }

    /// What the handler reads from `query`: `None` where it falls back to
    /// no parameters (a known key given twice), else each known key's value.
    fn model(query: &str) -> Option<[Option<String>; 6]> {
        let mut out: [Option<String>; 6] = Default::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if let Some(i) = KEYS.iter().position(|known| *known == k) {
                if out[i].is_some() {
                    return None;
                }
                out[i] = Some(v.into_owned());
            }
        }
        Some(out)
    }

    fn parse(query: &str) -> Option<CallbackParams> {
        web::Query::<CallbackParams>::from_query(query)
            .ok()
            .map(web::Query::into_inner)
    }

    fn encode(pairs: &[(String, String)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
            1 => "[a-z_]{0,12}",
            1 => ".{0,8}",
        ]
    }

    /// Raw query strings: arbitrary text, URL-ish text, and known keys.
    fn raw_query() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,80}",
            "[a-z_=&%0-9A-F+;.]{0,80}",
            prop::collection::vec((key(), "[a-zA-Z0-9%+&=._~-]{0,16}"), 0..8).prop_map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any query string is read as form_urlencoded reads it: each known
        /// key's value, unknown keys ignored, a repeated known key refused.
        #[test]
        fn any_query_string_is_read_as_its_pairs(query in raw_query()) {
            let parsed = parse(&query);
            let expected = model(&query);
            prop_assert_eq!(parsed.is_some(), expected.is_some(), "{:?}", query);
            if let (Some(parsed), Some(expected)) = (parsed, expected) {
                let expected = expected.each_ref().map(Option::as_deref);
                prop_assert_eq!(fields(&parsed), expected);
            }
        }

        /// Arbitrary key/value pairs, encoded, come back as they were.
        #[test]
        fn encoded_pairs_round_trip(pairs in prop::collection::vec((key(), ".{0,40}"), 0..10)) {
            let query = encode(&pairs);
            let parsed = parse(&query);
            let repeated = KEYS
                .iter()
                .any(|k| pairs.iter().filter(|(key, _)| key == k).count() > 1);
            prop_assert_eq!(parsed.is_none(), repeated, "{:?}", query);
            if let Some(parsed) = parsed {
                for (i, k) in KEYS.iter().enumerate() {
                    let given = pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
                    prop_assert_eq!(fields(&parsed)[i], given, "{}", k);
                }
            }
        }

        /// A state (any text) with a code round-trips through the query string.
        #[test]
        fn a_state_and_code_round_trip(state in ".{1,200}", code in "[A-Za-z0-9._~-]{1,100}") {
            let query = encode(&[("code".into(), code.clone()), ("state".into(), state.clone())]);
            let parsed = parse(&query).expect("a well-formed query");
            prop_assert_eq!(parsed.state.as_deref(), Some(state.as_str()));
            prop_assert_eq!(parsed.code.as_deref(), Some(code.as_str()));
            prop_assert_eq!(front_channel(&parsed).ok(), Some(code.as_str()));
        }

        /// An error answer is refused, explained with the AADSTS number at
        /// the start of its description; never taken for a code.
        #[test]
        fn an_error_answer_is_explained_with_its_aadsts_number(
            error in prop_oneof!["[a-z_]{1,30}", ".{0,30}"],
            n in any::<u32>(),
            rest in "[^0-9].{0,60}",
            code in proptest::option::of(".{0,20}"),
        ) {
            let params = CallbackParams {
                error: Some(error.clone()),
                error_description: Some(format!("AADSTS{n}{rest}")),
                code,
                ..CallbackParams::default()
            };
            let refusal = front_channel(&params).expect_err("an error answer is refused");
            let x = explain(&error, Some(n), None);
            prop_assert_eq!(refusal.code, x.code);
            let aadsts = format!("AADSTS{n}");
            prop_assert!(refusal.message.contains(&aadsts), "{}", refusal.message);
            prop_assert_eq!(refusal.effect, Effect::Attempt);
        }

        /// Without an error, only a non-empty code is taken.
        #[test]
        fn without_an_error_only_a_code_is_taken(
            code in proptest::option::of(".{0,20}"),
            description in proptest::option::of(".{0,40}"),
        ) {
            let params = CallbackParams {
                code: code.clone(),
                error_description: description,
                ..CallbackParams::default()
            };
            match code.as_deref().filter(|c| !c.is_empty()) {
                Some(c) => prop_assert_eq!(front_channel(&params).ok(), Some(c)),
                None => {
                    let refusal = front_channel(&params).expect_err("no code");
                    prop_assert_eq!(refusal.code, Code::InvalidCallback);
                }
            }
        }

        /// The page names the `AADSTSnnnn` of any message, as it is written there.
        #[test]
        fn the_pages_aadsts_number_is_found(
            before in "[^A]{0,30}",
            n in any::<u64>(),
            after in "([^0-9].{0,20})?",
            noise in prop_oneof![".{0,60}", "(AADSTS|[0-9]|x| ){0,12}"],
        ) {
            let message = format!("{before}AADSTS{n}{after}");
            let aadsts = format!("AADSTS{n}");
            prop_assert_eq!(aadsts_in(&message), Some(aadsts.as_str()));
            if let Some(found) = aadsts_in(&noise) {
                prop_assert!(noise.contains(found));
                let digits = found.strip_prefix("AADSTS").expect("starts with AADSTS");
                prop_assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
            } else {
                // Only the first `AADSTS` is looked at.
                prop_assert!(
                    noise.find("AADSTS").is_none_or(|at| {
                        !noise[at + 6..].starts_with(|c: char| c.is_ascii_digit())
                    }),
                    "{:?}", noise
                );
            }
        }

        /// Accept-Language: the higher weight of Czech and English wins, the
        /// first on a tie; any header value is read without a panic.
        #[test]
        fn the_language_follows_the_weights(
            cs in 0u32..=1000,
            en in 0u32..=1000,
            cs_first in any::<bool>(),
            noise in ".{0,80}",
        ) {
            let q = |n: u32| format!("{}.{:03}", n / 1000, n % 1000);
            let (cs_part, en_part) = (format!("cs-CZ;q={}", q(cs)), format!("en;q={}", q(en)));
            let header = if cs_first {
                format!("{cs_part}, {en_part}")
            } else {
                format!("{en_part},{cs_part}")
            };
            let expected = if cs_first { cs >= en } else { cs > en };
            prop_assert_eq!(prefers_czech(Some(&header)), expected, "{}", header);
            // Neither language named: English.
            if !noise.to_ascii_lowercase().contains("cs") {
                prop_assert!(!prefers_czech(Some(&noise)));
            }
        }
    }
}

/// (2) Bearer tokens: the verifier and the `Authorization` header.
mod bearer_tokens {
    use std::sync::{Arc, LazyLock};
    use std::time::Duration;

    use actix_web::FromRequest;
    use actix_web::http::header::{AUTHORIZATION, HeaderValue};
    use actix_web::web;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;
    use crate::auth::{Principal, Role, Verifier, is_reserved_actor};
    use crate::codes::Code;
    use crate::config::{JwtKey, JwtSettings};

    const SECRET: &[u8] = b"proptest-secret-0123456789abcdef";
    const NAME: &str = "inboxlink";

    /// As the unit tests of `auth::mint` build it: HS256, issuer and
    /// audience `inboxlink`, 30 s of leeway, lifetimes up to a day.
    fn settings() -> JwtSettings {
        JwtSettings {
            key: JwtKey::Hs256(secrecy::SecretBox::new(Box::new(SECRET.to_vec()))),
            issuer: NAME.into(),
            audience: NAME.into(),
            sub_claim: "sub".into(),
            org_claim: "org".into(),
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(30),
            token_type: None,
            max_lifetime: Some(Duration::from_secs(86_400)),
            jwks_refresh: Default::default(),
        }
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "a test: a plain client (HS256 fetches nothing)"
    )]
    fn build_verifier() -> Arc<Verifier> {
        Arc::new(Verifier::new(&settings(), reqwest::Client::new()).expect("verifier"))
    }

    static VERIFIER: LazyLock<Arc<Verifier>> = LazyLock::new(build_verifier);

    fn verify(token: &str) -> Result<Principal, crate::Error> {
        runtime().block_on(VERIFIER.verify(token))
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// `header.claims.signature`, signed with HMAC-SHA256 and `key`.
    fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(header).expect("json")),
            b64(&serde_json::to_vec(claims).expect("json"))
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// A claim: its value (`None`: absent) and whether it passes the checks.
    type Claim = (Option<Value>, bool);

    fn valid(v: Value) -> Claim {
        (Some(v), true)
    }

    fn invalid(v: Option<Value>) -> Claim {
        (v, false)
    }

    fn issuer() -> impl Strategy<Value = Claim> {
        prop_oneof![
            20 => Just(valid(json!(NAME))),
            1 => Just(invalid(None)),
            1 => "[a-z]{0,12}".prop_filter("another issuer", |s| s != NAME)
                .prop_map(|s| invalid(Some(json!(s)))),
            1 => Just(invalid(Some(json!([NAME])))),
            1 => Just(invalid(Some(json!(5)))),
        ]
    }

    fn audience() -> impl Strategy<Value = Claim> {
        prop_oneof![
            16 => Just(valid(json!(NAME))),
            4 => Just(valid(json!(["other", NAME]))),
            1 => Just(invalid(None)),
            1 => "[a-z]{0,12}".prop_filter("another audience", |s| s != NAME)
                .prop_map(|s| invalid(Some(json!(s)))),
            1 => Just(invalid(Some(json!([])))),
            1 => Just(invalid(Some(json!(7)))),
        ]
    }

    fn expiry(now: i64) -> impl Strategy<Value = Claim> {
        prop_oneof![
            20 => (60i64..80_000).prop_map(move |s| valid(json!(now + s))),
            1 => Just(invalid(None)),
            1 => (3_600i64..10_000_000).prop_map(move |s| invalid(Some(json!(now - s)))),
            1 => (90_000i64..10_000_000).prop_map(move |s| invalid(Some(json!(now + s)))),
            1 => Just(invalid(Some(json!("soon")))),
        ]
    }

    fn issued_at(now: i64) -> impl Strategy<Value = Claim> {
        prop_oneof![
            20 => (0i64..100).prop_map(move |s| valid(json!(now - s))),
            // The lifetime is bounded, so `iat` is required.
            1 => Just(invalid(None)),
            1 => (3_600i64..1_000_000).prop_map(move |s| invalid(Some(json!(now + s)))),
            1 => Just(invalid(Some(json!("now")))),
        ]
    }

    fn not_before(now: i64) -> impl Strategy<Value = Claim> {
        prop_oneof![
            8 => Just((None, true)),
            8 => (0i64..1_000).prop_map(move |s| valid(json!(now - s))),
            1 => (3_600i64..1_000_000).prop_map(move |s| invalid(Some(json!(now + s)))),
        ]
    }

    fn subject() -> impl Strategy<Value = Claim> {
        prop_oneof![
            20 => "[a-zA-Z0-9@._-]{1,40}"
                .prop_filter("not a reserved actor", |s| !is_reserved_actor(s))
                .prop_map(|s| valid(json!(s))),
            1 => Just(invalid(None)),
            1 => Just(invalid(Some(json!("")))),
            1 => "[a-z]{1,5} [a-z]{1,5}".prop_map(|s| invalid(Some(json!(s)))),
            1 => Just(invalid(Some(json!("system:keeper")))),
            1 => Just(invalid(Some(json!(42)))),
        ]
    }

    fn organisation() -> impl Strategy<Value = Claim> {
        prop_oneof![
            20 => "[a-z0-9-]{1,20}".prop_map(|s| valid(json!(s))),
            1 => Just(invalid(None)),
            1 => Just(invalid(Some(json!("")))),
            1 => Just(invalid(Some(json!("acme\u{0}")))),
            1 => Just(invalid(Some(json!(["acme"])))),
        ]
    }

    /// A header: its JSON and whether the verifier accepts it.
    fn header() -> impl Strategy<Value = (Value, bool)> {
        let alg = prop_oneof![
            20 => Just((Some(json!("HS256")), true)),
            1 => prop::sample::select(vec!["none", "HS384", "HS512", "RS256", "ES256", "hs256", ""])
                .prop_map(|a| (Some(json!(a)), false)),
            1 => Just((None, false)),
            1 => Just((Some(json!(256)), false)),
        ];
        let typ = prop_oneof![
            4 => Just((None, true)),
            4 => ".{0,12}".prop_map(|t| (Some(json!(t)), true)),
            1 => Just((Some(Value::Null), true)),
            1 => Just((Some(json!(1)), false)),
        ];
        let crit = prop_oneof![
            20 => Just((None, true)),
            1 => Just((Some(json!(["exp"])), false)),
            1 => Just((Some(json!([])), false)),
        ];
        let extras = prop::collection::btree_map("x-[a-z]{1,6}", json_value(), 0..3);
        (alg, typ, crit, extras).prop_map(|((alg, a), (typ, t), (crit, c), extras)| {
            let mut h: serde_json::Map<String, Value> = extras.into_iter().collect();
            for (k, v) in [("alg", alg), ("typ", typ), ("crit", crit)] {
                if let Some(v) = v {
                    h.insert(k.into(), v);
                }
            }
            (Value::Object(h), a && t && c)
        })
    }

    fn roles() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec!["admin", "operator", "viewer", "service"])
                    .prop_map(str::to_owned),
                "[a-z]{0,8}",
            ],
            0..5,
        )
    }

    /// What a token carries, and whether the verifier must accept it.
    #[derive(Debug)]
    struct Case {
        header: Value,
        claims: Value,
        key: Vec<u8>,
        accepted: bool,
        subject: Option<Value>,
        org: Option<Value>,
        roles: Vec<String>,
    }

    fn case() -> impl Strategy<Value = Case> {
        let now = now();
        let claims = (
            issuer(),
            audience(),
            expiry(now),
            issued_at(now),
            not_before(now),
            subject(),
            organisation(),
            roles(),
        );
        let key = prop_oneof![
            16 => Just((SECRET.to_vec(), true)),
            1 => prop::collection::vec(any::<u8>(), 0..40)
                .prop_filter("another key", |k| k != SECRET)
                .prop_map(|k| (k, false)),
        ];
        (header(), claims, key).prop_map(
            |((header, header_ok), (iss, aud, exp, iat, nbf, sub, org, roles), (key, key_ok))| {
                let mut c = serde_json::Map::new();
                let mut ok = header_ok && key_ok;
                for (name, (value, valid)) in [
                    ("iss", iss),
                    ("aud", aud),
                    ("exp", exp),
                    ("iat", iat),
                    ("nbf", nbf),
                    ("sub", sub.clone()),
                    ("org", org.clone()),
                ] {
                    ok &= valid;
                    if let Some(v) = value {
                        c.insert(name.into(), v);
                    }
                }
                c.insert("roles".into(), json!(roles));
                Case {
                    header,
                    claims: Value::Object(c),
                    key,
                    accepted: ok,
                    subject: sub.0,
                    org: org.0,
                    roles,
                }
            },
        )
    }

    fn refused_as(
        result: Result<Principal, crate::Error>,
        code: Code,
    ) -> Result<(), TestCaseError> {
        match result {
            Ok(p) => Err(TestCaseError::fail(format!("accepted: {p:?}"))),
            Err(e) => {
                prop_assert_eq!(e.code(), code, "{}", e);
                Ok(())
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A token is accepted exactly when its signature (HS256, the right
        /// secret), its header and every checked claim are valid; then it
        /// names its subject, organisation and known roles.
        #[test]
        fn tokens_are_accepted_exactly_when_signed_and_valid(case in case()) {
            let token = sign(&case.header, &case.claims, &case.key);
            match verify(&token) {
                Ok(p) => {
                    prop_assert!(case.accepted, "accepted {:?}", case);
                    prop_assert_eq!(Some(json!(p.subject)), case.subject);
                    prop_assert_eq!(Some(json!(p.org.as_str())), case.org);
                    let known: Vec<Role> = case.roles.iter().filter_map(|r| Role::parse(r)).collect();
                    prop_assert_eq!(p.roles, known);
                }
                Err(e) => {
                    prop_assert!(!case.accepted, "refused ({}) {:?}", e, case);
                    prop_assert_eq!(e.code(), Code::InvalidToken);
                }
            }
        }

        /// Arbitrary text is never a token.
        #[test]
        fn arbitrary_text_is_refused(token in prop_oneof![".{0,300}", "[A-Za-z0-9_.=-]{0,300}"]) {
            refused_as(verify(&token), Code::InvalidToken)?;
        }

        /// Three arbitrary base64url segments are never a token.
        #[test]
        fn arbitrary_segments_are_refused(
            segments in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..120), 1..5),
        ) {
            let token = segments.iter().map(|s| b64(s)).collect::<Vec<_>>().join(".");
            refused_as(verify(&token), Code::InvalidToken)?;
        }

        /// Arbitrary JSON as header and claims is refused, even when signed
        /// with the right secret, and with `alg: none` and no signature.
        #[test]
        fn arbitrary_json_headers_and_claims_are_refused(
            header in prop_oneof![json_value(), header().prop_map(|(h, _)| h)],
            claims in json_value(),
        ) {
            refused_as(verify(&sign(&header, &claims, SECRET)), Code::InvalidToken)?;
            let unsigned = format!(
                "{}.{}.",
                b64(&serde_json::to_vec(&json!({"alg": "none"})).expect("json")),
                b64(&serde_json::to_vec(&claims).expect("json")),
            );
            refused_as(verify(&unsigned), Code::InvalidToken)?;
        }

        /// A valid token with one character of it changed is refused.
        #[test]
        fn a_changed_token_is_refused(
            sub in "[a-z]{1,20}",
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
                    .chars()
                    .collect::<Vec<_>>(),
            ),
        ) {
            let now = now();
            let claims = json!({"iss": NAME, "aud": NAME, "iat": now, "exp": now + 600, "sub": sub, "org": "acme"});
            let token = sign(&json!({"alg": "HS256", "typ": "JWT"}), &claims, SECRET);
            prop_assert!(verify(&token).is_ok(), "the unchanged token is valid");
            let mut chars: Vec<char> = token.chars().collect();
            let i = at.index(chars.len());
            prop_assume!(chars[i] != with);
            chars[i] = with;
            let changed: String = chars.into_iter().collect();
            // Base64url's last character may carry unused bits: that change
            // leaves the bytes as they were.
            let same_bytes = {
                let parts = |t: &str| t.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).ok()).collect::<Vec<_>>();
                parts(&changed) == parts(&token)
            };
            prop_assume!(!same_bytes);
            refused_as(verify(&changed), Code::InvalidToken)?;
        }

        /// The Authorization header: `Bearer <valid token>` (either case of
        /// `bearer`, spaces around the token) is accepted; anything else is
        /// refused as missing or invalid, never with a panic.
        #[test]
        fn the_authorization_header_is_read(
            value in prop_oneof![
                "[ -~\t]{0,200}",
                "(Bearer|bearer|BEARER|Basic) [ -~]{0,100}",
                prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ],
            raw in prop::collection::vec(any::<u8>(), 0..80),
            prefix in prop::sample::select(vec!["Bearer ", "bearer "]),
            pad in " {0,3}",
        ) {
            let call = |value: HeaderValue| {
                let req = actix_web::test::TestRequest::default()
                    .insert_header((AUTHORIZATION, value))
                    .app_data(web::Data::from(VERIFIER.clone()))
                    .to_http_request();
                runtime().block_on(Principal::from_request(&req, &mut actix_web::dev::Payload::None))
            };
            for header in [HeaderValue::from_str(&value).ok(), HeaderValue::from_bytes(&raw).ok()].into_iter().flatten() {
                let text = header.to_str().ok().map(str::to_owned);
                match call(header) {
                    Ok(p) => return Err(TestCaseError::fail(format!("accepted {text:?}: {p:?}"))),
                    Err(e) => {
                        let bearer = text.as_deref().and_then(|t| t.strip_prefix("Bearer ").or_else(|| t.strip_prefix("bearer ")));
                        let expected = match bearer {
                            Some(t) if !t.trim().is_empty() => Code::InvalidToken,
                            _ => Code::MissingToken,
                        };
                        prop_assert_eq!(e.code(), expected, "{:?}", text);
                    }
                }
            }
            let now = now();
            let claims = json!({"iss": NAME, "aud": NAME, "iat": now, "exp": now + 600, "sub": "jane", "org": "acme", "roles": ["viewer"]});
            let token = sign(&json!({"alg": "HS256"}), &claims, SECRET);
            let header = HeaderValue::from_str(&format!("{prefix}{pad}{token}{pad}")).expect("a header value");
            let p = call(header).expect("accepted");
            prop_assert_eq!(p.subject.as_str(), "jane");
            prop_assert_eq!(p.roles, vec![Role::Viewer]);
        }
    }
}

/// (3) Stored secrets: `v1.<key id>.<base64url(nonce || ciphertext || tag)>`.
mod ciphertexts {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::crypto::{Cipher, CryptoError, MasterKey, Slot};

    fn cipher() -> Cipher {
        Cipher::new(&[MasterKey::new([7; 32]), MasterKey::new([9; 32])])
    }

    const SLOT: Slot<'static> = Slot {
        table: "mailboxes",
        column: "refresh_token",
        row_id: "r1",
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Sealing then opening gives the plaintext back, for any bytes and
        /// any slot; the sealed value names the current key.
        #[test]
        fn seal_then_open_round_trips(
            plain in prop::collection::vec(any::<u8>(), 0..600),
            text in ".{0,100}",
            table in "[a-z_]{1,20}",
            row_id in ".{0,40}",
        ) {
            let c = cipher();
            let slot = Slot { table: &table, column: "c", row_id: &row_id };
            let sealed = c.encrypt(&plain, slot);
            prop_assert_eq!(Cipher::key_id_of(&sealed), Some(c.current_key_id()));
            let opened = c.decrypt(&sealed, slot).expect("opens");
            prop_assert_eq!(opened.expose_secret(), &plain);
            let sealed = c.encrypt_str(&text, slot);
            let opened = c.decrypt_string(&sealed, slot).expect("opens");
            prop_assert_eq!(opened.expose_secret(), text.as_str());
        }

        /// Arbitrary text, and arbitrary bytes behind a well-formed prefix,
        /// never open.
        #[test]
        fn arbitrary_values_never_open(
            text in prop_oneof![".{0,200}", "v1\\.[0-9a-f]{8}\\.[A-Za-z0-9_-]{0,120}"],
            body in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let c = cipher();
            prop_assert!(c.decrypt(&text, SLOT).is_err());
            prop_assert!(c.decrypt_string(&text, SLOT).is_err());
            let framed = format!("v1.{}.{}", c.current_key_id(), URL_SAFE_NO_PAD.encode(&body));
            let expected = if body.len() < 12 + 16 { CryptoError::Malformed } else { CryptoError::Invalid };
            prop_assert_eq!(c.decrypt(&framed, SLOT).err(), Some(expected));
            // The key id is the second part of a `v1.` value, whatever follows.
            let expected_id = text.strip_prefix("v1.").and_then(|rest| rest.split('.').next());
            prop_assert_eq!(Cipher::key_id_of(&text), expected_id);
        }

        /// Any one character changed, any truncation and any extension of a
        /// sealed value is refused.
        #[test]
        fn any_change_of_a_sealed_value_is_refused(
            plain in prop::collection::vec(any::<u8>(), 0..100),
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ é\0"
                    .chars()
                    .collect::<Vec<_>>(),
            ),
            cut in any::<prop::sample::Index>(),
            tail in "[A-Za-z0-9_.=-]{1,8}",
        ) {
            let c = cipher();
            let sealed = c.encrypt(&plain, SLOT);
            let mut chars: Vec<char> = sealed.chars().collect();
            let i = at.index(chars.len());
            if chars[i] != with {
                chars[i] = with;
                let changed: String = chars.into_iter().collect();
                prop_assert!(c.decrypt(&changed, SLOT).is_err(), "{} opened", changed);
            }
            let truncated = &sealed[..cut.index(sealed.len())];
            prop_assert!(c.decrypt(truncated, SLOT).is_err(), "{} opened", truncated);
            let extended = format!("{sealed}{tail}");
            prop_assert!(c.decrypt(&extended, SLOT).is_err(), "{} opened", extended);
        }

        /// One bit flipped in the nonce, ciphertext or tag is `Invalid`, as
        /// is a value moved to another row.
        #[test]
        fn a_flipped_bit_or_another_row_is_invalid(
            plain in prop::collection::vec(any::<u8>(), 0..100),
            bit in any::<prop::sample::Index>(),
            row in "[a-z0-9]{1,10}",
        ) {
            let c = cipher();
            let sealed = c.encrypt(&plain, SLOT);
            let (head, body) = sealed.rsplit_once('.').expect("three parts");
            let mut raw = URL_SAFE_NO_PAD.decode(body).expect("base64url");
            let b = bit.index(raw.len() * 8);
            raw[b / 8] ^= 1 << (b % 8);
            let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&raw));
            prop_assert_eq!(c.decrypt(&flipped, SLOT).err(), Some(CryptoError::Invalid));
            prop_assume!(row != SLOT.row_id);
            let moved = Slot { row_id: &row, ..SLOT };
            prop_assert_eq!(c.decrypt(&sealed, moved).err(), Some(CryptoError::Invalid));
        }
    }
}

/// (4) The token endpoint's answers: token responses, error bodies, AADSTS
/// numbers and the text kept of them.
mod token_endpoint {
    use oauth2::RequestTokenError;
    use oauth2::basic::{BasicErrorResponse, BasicErrorResponseType};
    use secrecy::ExposeSecret;

    use super::*;
    use crate::idp::explain::{MAX_TEXT_CHARS, aadsts_number, clean_text, explain, first_line};
    use crate::idp::transport::{ErrorBody, Transport};
    use crate::idp::{
        Class, IdpError, MAX_TOKEN_LIFETIME, MIN_TOKEN_LIFETIME, MsTokenResponse, token_set,
    };

    /// JSON objects with the token endpoint's keys (and others), or any text.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let keys = prop::sample::select(vec![
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "id_token",
            "scope",
            "error",
            "error_description",
            "error_uri",
            "other",
        ]);
        let value = prop_oneof![
            json_value(),
            any::<u64>().prop_map(|n| json!(n)),
            "AADSTS[0-9]{1,8}: .{0,30}".prop_map(Value::String),
            prop::sample::select(vec!["Bearer", "bearer", "invalid_grant", "server_error"])
                .prop_map(|s| json!(s)),
        ];
        prop_oneof![
            prop::collection::btree_map(keys.prop_map(str::to_owned), value, 0..8)
                .prop_map(|m| serde_json::to_vec(&m).expect("json")),
            ".{0,200}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..100),
        ]
    }

    fn explained(
        e: &IdpError,
        error: &str,
        description: Option<&str>,
        status: Option<u16>,
    ) -> Result<(), TestCaseError> {
        let aadsts = description.and_then(aadsts_number);
        prop_assert_eq!(&e.error, error);
        prop_assert_eq!(e.aadsts, aadsts);
        prop_assert_eq!(e.description.clone(), description.map(first_line));
        prop_assert_eq!(e.status, status);
        prop_assert_eq!(&e.explanation, &explain(error, aadsts, status));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The AADSTS number at the start of a description is read, after
        /// any leading whitespace; text without one gives none.
        #[test]
        fn the_aadsts_number_is_read(
            space in "[ \t\r\n]{0,3}",
            n in any::<u32>(),
            zeros in "0{0,3}",
            rest in "([^0-9].{0,40})?",
            noise in ".{0,80}",
        ) {
            prop_assert_eq!(aadsts_number(&format!("{space}AADSTS{zeros}{n}{rest}")), Some(n));
            match aadsts_number(&noise) {
                Some(m) => {
                    let digits: String = noise.trim_start()["AADSTS".len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    prop_assert_eq!(digits.parse::<u32>().ok(), Some(m));
                }
                None => prop_assert!(
                    !noise.trim_start().starts_with("AADSTS")
                        || noise.trim_start()[6..].chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>().is_err()
                ),
            }
        }

        /// Cleaned text has no control, bidi or doubled whitespace
        /// characters, keeps at most `max` characters and cleans to itself.
        #[test]
        fn cleaned_text_is_bounded_and_inert(text in ".{0,400}", max in 0usize..350) {
            let out = clean_text(&text, max);
            prop_assert!(out.chars().count() <= max, "{:?}", out);
            prop_assert!(!out.chars().any(|c| c.is_control()
                || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
                || (c.is_whitespace() && c != ' ')), "{:?}", out);
            prop_assert!(!out.contains("  ") && !out.starts_with(' ') && !out.ends_with(' '), "{:?}", out);
            prop_assert_eq!(clean_text(&out, max), out.clone());
            let line = first_line(&text);
            prop_assert!(!line.contains(['\r', '\n']) && line.chars().count() <= MAX_TEXT_CHARS);
        }

        /// `explain` repeats only an OAuth-looking error and the number; any
        /// other error explains as an unrecognised one; 429 and 5xx are
        /// transient unless the number says more.
        #[test]
        fn explanations_depend_only_on_what_is_trusted(
            error in prop_oneof!["[a-z_]{1,64}", ".{0,80}"],
            aadsts in proptest::option::of(any::<u32>()),
            status in proptest::option::of(any::<u16>()),
        ) {
            let x = explain(&error, aadsts, status);
            let looks_oauth = (1..=64).contains(&error.len())
                && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if looks_oauth {
                let named = format!("Microsoft answered {error}");
                prop_assert!(x.message.starts_with(&named), "{}", x.message);
            } else {
                prop_assert_eq!(&x, &explain("", aadsts, status));
            }
            if let Some(n) = aadsts {
                let number = format!("(AADSTS{n})");
                prop_assert!(x.message.contains(&number), "{}", x.message);
            }
            if matches!(status, Some(429 | 500..=599)) && aadsts.is_none() {
                prop_assert_eq!(x.class, Class::Transient);
            }
        }

        /// An error answer keeps its `error`, the AADSTS number of its
        /// description and the description's cleaned first line.
        #[test]
        fn error_answers_are_explained(
            error in ".{0,40}",
            n in any::<u32>(),
            description in proptest::option::of(".{0,120}"),
            numbered in any::<bool>(),
            status in proptest::option::of(any::<u16>()),
        ) {
            let description = description.map(|d| if numbered { format!("AADSTS{n}: {d}") } else { d });
            let e = IdpError::new(error.clone(), description.clone(), status, None);
            explained(&e, &error, description.as_deref(), status)?;
            if numbered && description.is_some() {
                prop_assert_eq!(e.aadsts, Some(n));
            }
        }

        /// Whatever the token endpoint answers: a token response gives its
        /// token with a clamped lifetime; an error body (4xx, or with a
        /// 429/5xx) is explained from its error and description.
        #[test]
        fn token_endpoint_bodies_are_read(body in body(), status in prop_oneof![Just(429u16), 500u16..600]) {
            if let Ok(r) = serde_json::from_slice::<MsTokenResponse>(&body) {
                let parsed: Value = serde_json::from_slice(&body).expect("json");
                let set = match token_set::<BasicErrorResponseType>(Ok(r)) {
                    Ok(set) => set,
                    Err(e) => return Err(TestCaseError::fail(format!("refused: {e}"))),
                };
                prop_assert_eq!(Some(set.access_token.expose_secret()), parsed["access_token"].as_str());
                prop_assert!((MIN_TOKEN_LIFETIME..=MAX_TOKEN_LIFETIME).contains(&set.expires_in));
                if let Some(s) = parsed["expires_in"].as_u64() {
                    prop_assert_eq!(set.expires_in.as_secs(), s.clamp(1, 24 * 3600));
                }
            }
            if let Ok(e) = serde_json::from_slice::<BasicErrorResponse>(&body) {
                let (error, description) = (e.error().as_ref().to_owned(), e.error_description().cloned());
                let refused = token_set::<BasicErrorResponseType>(Err(RequestTokenError::ServerResponse(e)))
                    .err()
                    .expect("an error answer is refused");
                explained(&refused, &error, description.as_deref(), None)?;
            }
            let error = serde_json::from_slice::<ErrorBody>(&body).ok();
            let expected = error
                .as_ref()
                .map(|e| (e.error.clone(), e.error_description.clone()))
                .unwrap_or(("server_busy".into(), None));
            let busy = Transport::Busy { status, retry_after: None, error };
            let refused = token_set::<BasicErrorResponseType>(Err(RequestTokenError::Request(busy)))
                .err()
                .expect("a busy answer is refused");
            explained(&refused, &expected.0, expected.1.as_deref(), Some(status))?;
        }

        /// A well-formed token response with any `expires_in` is clamped.
        #[test]
        fn token_lifetimes_are_clamped(
            token in "[A-Za-z0-9._-]{1,60}",
            expires_in in proptest::option::of(any::<u64>()),
            refresh in proptest::option::of("[A-Za-z0-9._-]{1,60}"),
        ) {
            let mut body = json!({"access_token": token, "token_type": "Bearer"});
            if let Some(s) = expires_in {
                body["expires_in"] = json!(s);
            }
            if let Some(r) = &refresh {
                body["refresh_token"] = json!(r);
            }
            let r: MsTokenResponse = serde_json::from_value(body).expect("a token response");
            let set = match token_set::<BasicErrorResponseType>(Ok(r)) {
                Ok(set) => set,
                Err(e) => return Err(TestCaseError::fail(format!("refused: {e}"))),
            };
            prop_assert_eq!(set.access_token.expose_secret(), token.as_str());
            prop_assert_eq!(set.expires_in.as_secs(), expires_in.unwrap_or(3600).clamp(1, 24 * 3600));
            prop_assert_eq!(set.refresh_token.as_ref().map(|t| t.expose_secret().to_owned()), refresh);
        }
    }
}

/// (5) The mail servers' replies: SMTP reply codes and enhanced codes, IMAP
/// capabilities and refusals, and the redaction of what a step reports.
mod mail_replies {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::codes::Code;
    use crate::domain::AccessMode;
    use crate::mail::bridge_probe::without_capabilities;
    use crate::mail::imap::{capabilities_in, greeting_line, imap_classified};
    use crate::mail::smtp::{classify, has_enhanced_code};
    use crate::mail::{SmtpReply, read_smtp_reply, sanitize, suggested_backoff_ms, xoauth2};

    fn read(bytes: &[u8]) -> std::io::Result<SmtpReply> {
        let mut reader = tokio::io::BufReader::new(bytes);
        runtime().block_on(read_smtp_reply(&mut reader))
    }

    fn mode() -> impl Strategy<Value = AccessMode> {
        prop_oneof![Just(AccessMode::Delegated), Just(AccessMode::AppOnly)]
    }

    fn enhanced() -> impl Strategy<Value = String> {
        "[245]\\.[0-9]{1,3}\\.[0-9]{1,3}"
    }

    /// "Suggested Backoff Time" in any case.
    fn mark() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<bool>(), 22).prop_map(|upper| {
            "suggested backoff time"
                .chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A reply (continuation lines `ddd-`, then `ddd `) is read up to
        /// its last line, with its code, whatever follows.
        #[test]
        fn smtp_replies_are_read_with_their_code(
            code in 100u16..1000,
            lines in prop::collection::vec("[ -~]{0,40}", 0..5),
            last in "[ -~]{0,40}",
            after in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut raw = String::new();
            for l in &lines {
                raw.push_str(&format!("{code}-{l}\r\n"));
            }
            raw.push_str(&format!("{code} {last}\r\n"));
            let mut input = raw.clone().into_bytes();
            input.extend_from_slice(&after);
            let reply = read(&input).expect("a reply");
            prop_assert_eq!(reply.code, code);
            prop_assert_eq!(&reply.raw, raw.as_bytes());
            let text = reply.text();
            prop_assert!(text.starts_with(&code.to_string()), "{}", text);
        }

        /// Arbitrary bytes never panic; what is read as a reply holds whole
        /// lines, and its code is the number its last line starts with.
        #[test]
        fn arbitrary_bytes_are_a_reply_or_an_error(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                "([0-9]{3}[- ][ -~]{0,10}\r?\n){0,4}".prop_map(String::into_bytes),
            ],
        ) {
            if let Ok(reply) = read(&bytes) {
                prop_assert!(bytes.starts_with(&reply.raw));
                prop_assert_eq!(reply.raw.last(), Some(&b'\n'));
                let last = reply.raw[..reply.raw.len() - 1]
                    .rsplit(|b| *b == b'\n')
                    .next()
                    .expect("a last line");
                let number = std::str::from_utf8(&last[..3]).expect("ascii").parse::<u16>().ok();
                prop_assert_eq!(number, Some(reply.code));
            }
        }

        /// A reply's code is its three digits: a line starting otherwise is
        /// not a reply.
        #[test]
        fn reply_codes_are_three_digits(code in 0u16..100, text in "[ -~]{0,20}") {
            let input = format!("+{code:02} {text}\r\n");
            prop_assert!(read(input.as_bytes()).is_err(), "{:?} read as a reply", input);
        }

        /// A reply's text is one line.
        #[test]
        fn reply_text_is_one_line(raw in prop::collection::vec(any::<u8>(), 0..120)) {
            let text = SmtpReply { code: 250, raw }.text();
            prop_assert!(!text.contains(['\r', '\n']), "{:?}", text);
        }

        /// An enhanced status code is found as a whole token only.
        #[test]
        fn enhanced_codes_are_found_whole(
            code in enhanced(),
            before in "[a-zA-Z (\\[:-]{0,12}",
            after in "[a-zA-Z )\\]:,-]{0,12}",
            digit in "[0-9]",
            noise in ".{0,60}",
            probe in enhanced(),
        ) {
            prop_assert!(has_enhanced_code(&format!("{before}{code}{after}"), &code), "{:?}", (&before, &code, &digit, &after));
            prop_assert!(has_enhanced_code(&format!("{before}{code}."), &code), "{:?}", (&before, &code, &digit, &after));
            prop_assert!(!has_enhanced_code(&format!("{before}{code}{digit}{after}"), &code), "{:?}", (&before, &code, &digit, &after));
            prop_assert!(!has_enhanced_code(&format!("{before}{code}.{digit}{after}"), &code), "{:?}", (&before, &code, &digit, &after));
            prop_assert!(!has_enhanced_code(&format!("{before}{digit}{code}{after}"), &code), "{:?}", (&before, &code, &digit, &after));
            prop_assert!(!has_enhanced_code(&format!("{before}.{code}{after}"), &code), "{:?}", (&before, &code, &digit, &after));
            if has_enhanced_code(&noise, &probe) {
                prop_assert!(noise.contains(&probe));
            }
        }

        /// SMTP refusals: a timeout is a timeout, 5.7.139 is SMTP AUTH
        /// disabled, 535 is a failed login, another 4xx is "unavailable";
        /// the answer is always kept.
        #[test]
        fn smtp_refusals_are_classified(
            code in proptest::option::of("[0-9]{3}"),
            text in ".{0,120}",
            plain in "[a-e ]{0,40}",
            timed_out in any::<bool>(),
            mode in mode(),
        ) {
            let f = classify(code.as_deref(), text.clone(), timed_out, mode);
            prop_assert_eq!(f.response.as_deref(), Some(text.as_str()));
            if timed_out {
                prop_assert_eq!(f.code, Code::Timeout);
            }
            let f = classify(Some("550"), format!("550 {plain} 5.7.139 {plain}"), false, mode);
            prop_assert_eq!(f.code, Code::SmtpAuthDisabled);
            let f = classify(Some("535"), format!("535 {plain}"), false, mode);
            prop_assert_eq!(f.code, Code::SmtpAuthFailed);
            let f = classify(Some("451"), format!("451 {plain}"), false, mode);
            prop_assert_eq!(f.code, Code::SmtpUnavailable);
            let f = classify(Some("554"), format!("554 {plain}"), false, mode);
            prop_assert_eq!(f.code, Code::SmtpError);
        }

        /// Microsoft's suggested backoff time is read in any case, after
        /// `:`, `=` or spaces; arbitrary text never panics.
        #[test]
        fn the_suggested_backoff_is_read(
            before in "[a-z .]{0,30}",
            mark in mark(),
            sep in prop::sample::select(vec![": ", ":", " = ", " ", ""]),
            ms in any::<u64>(),
            noise in ".{0,120}",
            mode in mode(),
        ) {
            let text = format!("{before}{mark}{sep}{ms} milliseconds");
            prop_assert_eq!(suggested_backoff_ms(&text), Some(ms));
            let f = imap_classified(format!("NO Request is throttled. {text}"));
            prop_assert_eq!(f.code, Code::ImapThrottled);
            let wait = format!("wait {ms} ms");
            prop_assert!(f.hint.contains(&wait), "{}", f.hint);
            let f = classify(Some("421"), format!("421 4.3.2 {text}"), false, mode);
            prop_assert_eq!(f.code, Code::SmtpThrottled);
            prop_assert!(f.hint.contains(&wait), "{}", f.hint);
            if let Some(n) = suggested_backoff_ms(&noise) {
                prop_assert!(noise.contains(&n.to_string()));
            }
            let f = imap_classified(noise.clone());
            prop_assert_eq!(f.response, Some(noise));
        }

        /// IMAP capabilities are read from a `* CAPABILITY` line and from a
        /// `[CAPABILITY …]` response code; the bridge check's report leaves
        /// them out.
        #[test]
        fn imap_capabilities_are_read(
            caps in prop::collection::vec("[A-Z0-9=+-]{1,12}", 1..8).prop_map(|w| w.join(" ")),
            word in prop::sample::select(vec!["CAPABILITY", "capability", "Capability"]),
            tag in "[a-z0-9]{1,5}",
            text in "[a-zA-Z ]{0,30}",
            noise in ".{0,120}",
        ) {
            prop_assert_eq!(capabilities_in(&format!("* {word} {caps}")), Some(caps.clone()));
            let answer = format!("{tag} OK [{word} {caps}] {text}");
            prop_assert_eq!(capabilities_in(&answer), Some(caps.clone()));
            let answer = format!("{tag} OK [CAPABILITY {caps}] {text}");
            prop_assert_eq!(without_capabilities(&answer), format!("{tag} OK {text}"));
            if let Some(found) = capabilities_in(&noise) {
                prop_assert!(noise.contains(&found));
            }
            prop_assert!(without_capabilities(&noise).len() <= noise.len());
        }

        /// A greeting is reported as `* OK (greeting)` or its first 120
        /// characters.
        #[test]
        fn greetings_are_bounded(debug in ".{0,300}") {
            let line = greeting_line(&debug);
            if debug.contains("Ok") {
                prop_assert_eq!(line, "* OK (greeting)");
            } else {
                prop_assert!(line.chars().count() <= 120 && debug.starts_with(&line));
            }
        }

        /// What a step reports of an answer is one line of at most 300
        /// characters, without the token or its base64 forms.
        #[test]
        fn reported_answers_never_hold_the_token(
            secret in "[A-Za-z0-9._~-]{1,60}",
            user in "[a-z]{1,10}@[a-z]{1,10}\\.cz",
            before in ".{0,200}",
            after in ".{0,200}",
            form in 0usize..3,
        ) {
            let echoed = match form {
                0 => secret.clone(),
                1 => STANDARD.encode(&secret),
                _ => STANDARD.encode(xoauth2(&user, &secret)),
            };
            let text = format!("{before}{echoed}{after}");
            let out = sanitize(&text, &secret, &[user.as_str()]);
            prop_assert!(!out.contains(['\r', '\n']) && out.chars().count() <= 300, "{:?}", out);
            // What is left once the markers are taken out (a one-letter
            // secret such as `C` is in `[REDACTED]` itself).
            let left = out.replace("[REDACTED]", " ");
            prop_assert!(!left.contains(&secret), "{:?}", out);
            if secret.len() >= 6 {
                prop_assert!(!left.contains(&STANDARD.encode(&secret)), "{:?}", out);
            }
            prop_assert!(!left.contains(&STANDARD.encode(xoauth2(&user, &secret))), "{:?}", out);
        }
    }
}

/// (6) Configuration values: endpoints, addresses, URLs, numbers in ranges,
/// the webhook schedule, the rate limits and the master keys.
mod configuration {
    use std::net::SocketAddr;
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::config::bootstrap::parse_master_keys;
    use crate::config::validate::{
        number_in, parse_endpoint, parse_graph_endpoint, parse_http_url, parse_public_url,
        socket_addr,
    };
    use crate::config::{Settings, Source};
    use crate::crypto::MasterKey;
    use crate::hooks::schedule::Schedule;
    use crate::limits::{Limited, Rate, RateLimits};

    fn host() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9]{0,9}(\\.[a-z][a-z0-9-]{0,9}){0,3}"
    }

    /// A data dir (its keys generated on the first use), removed at the end,
    /// for [`Settings::from_source`].
    struct DataDir {
        _dir: tempfile::TempDir,
        data: String,
    }

    impl DataDir {
        fn new() -> Self {
            let dir = tempfile::tempdir().expect("a temp dir");
            let data = dir.path().join("data").to_str().expect("utf-8").to_owned();
            Self { _dir: dir, data }
        }

        fn settings(&self, var: &str, value: &str) -> Result<Settings, crate::config::ConfigError> {
            let pairs = [("INBOXLINK_DATA_DIR", self.data.as_str()), (var, value)];
            Settings::from_source(&Source::from_pairs(pairs)?)
        }
    }

    proptest! {
        // Each case sets up a data dir (its keys) and reads the whole configuration.
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Seconds in a variable's range are taken as they are, through the
        /// whole configuration; outside it the error names the variable.
        #[test]
        fn configured_seconds_in_range(n in 0u64..200, noise in ".{0,20}") {
            let data = DataDir::new();
            let var = "INBOXLINK_CHECK_TIMEOUT_SECONDS";
            match data.settings(var, &n.to_string()) {
                Ok(s) => {
                    prop_assert!((1..=120).contains(&n));
                    prop_assert_eq!(s.check_step_timeout, Duration::from_secs(n));
                }
                Err(e) => {
                    prop_assert!(!(1..=120).contains(&n), "{}", e);
                    prop_assert_eq!(e.variable.as_str(), var);
                }
            }
            for var in ["INBOXLINK_IMAP_ENDPOINT", "INBOXLINK_JWT_LEEWAY_SECONDS", "INBOXLINK_RATE_LIMITS"] {
                if let Err(e) = data.settings(var, &noise) {
                    prop_assert_eq!(e.variable.as_str(), var, "{}", e);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// `host:port` with a port 1..=65535 parses to itself; port 0, a
        /// port beyond 65535 and a missing port are refused.
        #[test]
        fn endpoints_parse_to_themselves(
            host in host(),
            port in 1u16..,
            big in 65_536u32..10_000_000,
            noise in ".{0,60}",
        ) {
            let e = parse_endpoint(&format!("{host}:{port}")).expect("an endpoint");
            prop_assert_eq!((e.host.as_str(), e.port), (host.as_str(), port));
            let e = parse_endpoint(&format!("[{host}]:{port}")).expect("an endpoint");
            prop_assert_eq!(e.host, host.clone());
            prop_assert!(parse_endpoint(&format!("{host}:0")).is_err(), "{}", host);
            prop_assert!(parse_endpoint(&format!("{host}:{big}")).is_err(), "{}", host);
            prop_assert!(parse_endpoint(&host).is_err(), "{}", host);
            prop_assert!(parse_endpoint(&format!(":{port}")).is_err(), "{}", host);
            if let Ok(e) = parse_endpoint(&noise) {
                prop_assert!(e.port > 0);
            }
        }

        /// An endpoint always names a host.
        #[test]
        fn accepted_endpoints_name_a_host(brackets in "[\\[\\]]{1,3}", port in 1u16..) {
            let value = format!("{brackets}:{port}");
            let parsed = parse_endpoint(&value);
            prop_assert!(parsed.as_ref().is_err() || parsed.as_ref().is_ok_and(|e| !e.host.is_empty()), "{:?} -> {:?}", value, parsed);
        }

        /// A socket address parses to itself; other text never panics.
        #[test]
        fn socket_addresses_round_trip(
            addr in (any::<std::net::IpAddr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port)),
            noise in ".{0,40}",
        ) {
            prop_assert_eq!(socket_addr("127.0.0.1:8080")(&addr.to_string()), Ok(addr));
            if let Err(problem) = socket_addr("127.0.0.1:8080")(&noise) {
                prop_assert!(problem.contains("host:port"));
            }
        }

        /// A number in range parses to itself; one outside is refused
        /// naming the range.
        #[test]
        fn numbers_in_range(
            (lo, hi) in (0u64..1_000_000).prop_flat_map(|lo| (Just(lo), lo..2_000_000)),
            n in prop_oneof![any::<u64>(), 0u64..2_100_000],
            noise in ".{0,20}",
        ) {
            let parsed = number_in(lo..=hi, " days")(&n.to_string());
            if (lo..=hi).contains(&n) {
                prop_assert_eq!(parsed, Ok(n));
            } else {
                prop_assert_eq!(parsed, Err(format!("must be {lo}..={hi} days")));
            }
            prop_assert_eq!(number_in(lo..=hi, "")(&hi.to_string()), Ok(hi));
            if let Ok(v) = number_in(lo..=hi, "")(&noise) {
                prop_assert!((lo..=hi).contains(&v));
            }
        }

        /// URLs: what is accepted is http(s) with a host; a public URL has
        /// no query or fragment; Graph's has no `/v1.0`.
        #[test]
        fn urls_are_checked(
            scheme in prop::sample::select(vec!["http", "https", "ftp", "file", "HTTPS"]),
            host in host(),
            path in "(/[a-z0-9.]{0,8}){0,3}",
            query in proptest::option::of("[a-z=]{0,8}"),
            noise in ".{0,80}",
        ) {
            let url = format!("{scheme}://{host}{path}{}", query.as_ref().map(|q| format!("?{q}")).unwrap_or_default());
            let web = matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https");
            let parsed = parse_http_url(&url);
            prop_assert_eq!(parsed.is_ok(), web, "{}", url);
            if let Ok(u) = &parsed {
                prop_assert_eq!(u.host_str(), Some(host.as_str()));
                prop_assert_eq!(&parse_http_url(u.as_str()), &Ok(u.clone()));
            }
            prop_assert_eq!(parse_public_url(&url).is_ok(), web && query.is_none(), "{}", url);
            let graph = parse_graph_endpoint(&format!("https://{host}{path}/v1.0"));
            prop_assert!(graph.is_err());
            for accepted in [parse_http_url(&noise), parse_public_url(&noise), parse_graph_endpoint(&noise)].into_iter().flatten() {
                prop_assert!(matches!(accepted.scheme(), "http" | "https") && accepted.host().is_some(), "{}", accepted);
            }
        }

        /// A schedule of 1..=50 delays of up to 7 days parses to itself:
        /// one attempt more than delays, each wait within a tenth of its
        /// delay; more delays, or a longer one, are refused.
        #[test]
        fn schedules_parse_to_themselves(
            secs in prop::collection::vec(0u64..=7 * 24 * 3600, 1..=50),
            unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600)]),
            too_long in (7 * 24 * 3600 + 1)..u64::from(u32::MAX),
            noise in ".{0,60}",
        ) {
            let (suffix, scale) = unit;
            let delays: Vec<u64> = secs.iter().map(|s| s / scale).collect();
            let text = delays.iter().map(|d| format!("{d}{suffix}")).collect::<Vec<_>>().join(", ");
            let s = Schedule::parse(&text).expect("a schedule");
            prop_assert_eq!(s.attempts() as usize, delays.len() + 1);
            for (i, d) in delays.iter().enumerate() {
                let base = d * scale * 1000;
                let wait = s.after(i as u32 + 1).expect("a wait").as_millis() as u64;
                prop_assert!(wait >= base - base / 10 && wait <= base + base / 10, "{} for {}", wait, base);
            }
            prop_assert_eq!(s.after(delays.len() as u32 + 1), None);
            prop_assert!(Schedule::parse(&format!("{text},{too_long}s")).is_err(), "{}", text);
            prop_assert!(Schedule::parse(&vec!["1s"; 51].join(",")).is_err(), "{}", text);
            if let Ok(s) = Schedule::parse(&noise) {
                prop_assert!((2..=51).contains(&s.attempts()));
            }
        }

        /// A rate limit given as `name=N/unit` is that rate, and a rate as
        /// it is shown parses back to itself; N outside 1..=100000 and
        /// unknown names are refused; `off` turns a limit off.
        #[test]
        fn rate_limits_parse_to_themselves(
            class in prop::sample::select(Limited::ALL.to_vec()),
            n in 1u32..=100_000,
            unit in prop::sample::select(vec![("s", 1u64), ("sec", 1), ("min", 60), ("minute", 60), ("h", 3600), ("hour", 3600)]),
            bad in prop_oneof![Just(0u32), 100_001u32..],
            name in "[a-z_]{1,12}",
            noise in ".{0,60}",
        ) {
            let (unit, per) = unit;
            let limits = RateLimits::parse(&format!(" {} = {n} / {unit} ", class.name())).expect("a rate");
            let rate = limits.rate(class).expect("limited");
            prop_assert_eq!(rate.count.get(), n);
            prop_assert_eq!(rate.per, Duration::from_secs(per));
            let shown = format!("{}={rate}", class.name());
            prop_assert_eq!(RateLimits::parse(&shown).expect("shown rates parse").rate(class), Some(rate));
            for other in Limited::ALL.into_iter().filter(|l| *l != class) {
                prop_assert_eq!(limits.rate(other), Some(other.default_rate()));
            }
            prop_assert!(RateLimits::parse(&format!("{}={bad}/{unit}", class.name())).is_err(), "{}", class.name());
            prop_assert_eq!(RateLimits::parse(&format!("{}=off", class.name())).expect("off").rate(class), None::<Rate>);
            if !Limited::ALL.iter().any(|l| l.name() == name) {
                prop_assert!(RateLimits::parse(&format!("{name}={n}/min")).is_err(), "{}", name);
            }
            if let Ok(limits) = RateLimits::parse(&noise) {
                for class in Limited::ALL {
                    if let Some(rate) = limits.rate(class) {
                        prop_assert!(rate.count.get() <= 100_000);
                        prop_assert!([1, 60, 3600].contains(&rate.per.as_secs()));
                    }
                }
            }
        }

        /// Master keys: comma-separated base64 of 32 bytes each, in order;
        /// another length or no key is refused.
        #[test]
        fn master_keys_parse_to_themselves(
            keys in prop::collection::vec(prop::array::uniform32(any::<u8>()), 1..4),
            short in prop::collection::vec(any::<u8>(), 1..64).prop_filter("not 32 bytes", |b| b.len() != 32),
            noise in ".{0,80}",
        ) {
            let text = keys.iter().map(|k| STANDARD.encode(k)).collect::<Vec<_>>().join(" , ");
            let parsed = parse_master_keys(&text).expect("keys");
            let ids: Vec<String> = parsed.iter().map(|k| k.id().to_owned()).collect();
            let expected: Vec<String> = keys.iter().map(|k| MasterKey::new(*k).id().to_owned()).collect();
            prop_assert_eq!(ids, expected);
            let err = parse_master_keys(&format!("{text},{}", STANDARD.encode(&short))).expect_err("refused");
            prop_assert!(err.contains("expected 32"), "{}", err);
            if let Ok(keys) = parse_master_keys(&noise) {
                prop_assert!(!keys.is_empty());
            }
        }
    }
}
