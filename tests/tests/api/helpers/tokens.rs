//! Bearer tokens signed with the test app's HS256 key, and SDK clients that send them.

use base64::Engine;
use serde_json::json;

use super::TestApp;

/// The organisation tests act in unless they say otherwise.
pub const ORG: &str = "acme";
pub const ISSUER: &str = "inboxlink-tests";
pub const AUDIENCE: &str = "inboxlink-api";
/// The metrics token every test instance is started with.
pub const METRICS_TOKEN: &str = "metrics-token-of-the-tests-0123456789abcdef";

impl TestApp {
    /// A valid token of the subject `tester` for `org` with `roles`.
    pub fn token(&self, org: &str, roles: &[&str]) -> String {
        self.token_with(json!({ "sub": "tester", "org": org, "roles": roles }))
    }

    /// A token signed with the service's key carrying `claims` plus valid `iss`, `aud`, `exp`
    /// (each can be overridden, or removed by setting it to null).
    pub fn token_with(&self, claims: serde_json::Value) -> String {
        sign_hs256(self.origin.jwt_secret.as_bytes(), claims)
    }

    /// Like [`Self::token_with`], but signed with the service's secret under
    /// another HMAC algorithm (to prove the algorithm is pinned, not just the key).
    pub fn token_with_alg(&self, alg: jsonwebtoken::Algorithm, c: serde_json::Value) -> String {
        self.token_with_header(&jsonwebtoken::Header::new(alg), c)
    }

    /// Like [`Self::token_with`], under `header` (its `typ`, `crit`, ...).
    pub fn token_with_header(&self, header: &jsonwebtoken::Header, c: serde_json::Value) -> String {
        use jsonwebtoken::{EncodingKey, encode};
        let key = EncodingKey::from_secret(self.origin.jwt_secret.as_bytes());
        encode(header, &claims(c), &key).expect("sign")
    }

    /// An SDK client sending `token`.
    pub fn sdk(&self, token: &str) -> inboxlink_sdk::Client {
        inboxlink_sdk::Client::with_token(&self.base, token).expect("client")
    }

    /// An SDK client acting with one role in `org`.
    pub fn client(&self, org: &str, role: &str) -> inboxlink_sdk::Client {
        self.sdk(&self.token(org, &[role]))
    }

    /// An admin of [`ORG`].
    pub fn admin(&self) -> inboxlink_sdk::Client {
        self.client(ORG, "admin")
    }

    /// An admin of another organisation.
    pub fn admin_of(&self, org: &str) -> inboxlink_sdk::Client {
        self.client(org, "admin")
    }

    /// An integrating system (role `service`) of [`ORG`].
    pub fn service(&self) -> inboxlink_sdk::Client {
        self.client(ORG, "service")
    }
}

/// Standard claims (valid for 10 minutes) merged with `claims`; null removes one.
pub fn claims(claims: serde_json::Value) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    let mut all = json!({ "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600 });
    for (k, v) in claims.as_object().expect("object").clone() {
        if v.is_null() {
            all.as_object_mut().expect("object").remove(&k);
        } else {
            all[k] = v;
        }
    }
    all
}

pub fn sign_hs256(secret: &[u8], c: serde_json::Value) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    encode(
        &Header::default(),
        &claims(c),
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

pub fn random_b64(bytes: usize) -> String {
    use rand::RngCore;
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::STANDARD.encode(raw)
}
