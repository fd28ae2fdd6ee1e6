//! Checking the webhooks Inboxlink sends, for Rust receivers.
//!
//! Deliveries follow the Standard Webhooks specification
//! (standardwebhooks.com): a `POST` with the headers `webhook-id` (the
//! event's id, the same on every retry), `webhook-timestamp` (Unix seconds)
//! and `webhook-signature` (`v1,<base64 HMAC-SHA256>`, several separated by
//! spaces while a secret is being rotated), and the body
//! `{"type": …, "timestamp": …, "data": {…}}`. [`verify`] checks the
//! signature with the webhook's secret (`whsec_…`, shown when the webhook was
//! created or its secret rotated) through the `standardwebhooks` crate,
//! refuses a timestamp more than 5 minutes from now (a replayed delivery),
//! and only then reads the body.
//!
//! Delivery is at least once: the same event can arrive twice, so
//! deduplicate on [`WebhookEvent::id`] (the `webhook-id`).
//!
//! ```no_run
//! use inboxlink_sdk::webhooks::{self, HeaderMap};
//!
//! fn on_delivery(headers: &HeaderMap, body: &[u8]) -> u16 {
//!     match webhooks::verify("whsec_…", headers, body) {
//!         Ok(event) => {
//!             println!("{} {} {}", event.id, event.event_type, event.data);
//!             204
//!         }
//!         Err(e) => {
//!             eprintln!("refused: {e}");
//!             401
//!         }
//!     }
//! }
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The header map [`verify`] reads (the `http` crate's, as reqwest, hyper and
/// axum use it). With another server's headers, use [`verify_pairs`].
pub use http::{HeaderMap, HeaderValue};

/// The event's id (a UUID), the same on every attempt: deduplicate on it.
pub const HEADER_ID: &str = standardwebhooks::HEADER_WEBHOOK_ID;
/// When this attempt was signed, in Unix seconds.
pub const HEADER_TIMESTAMP: &str = standardwebhooks::HEADER_WEBHOOK_TIMESTAMP;
/// `v1,<signature>`, space-separated when there are several.
pub const HEADER_SIGNATURE: &str = standardwebhooks::HEADER_WEBHOOK_SIGNATURE;

/// How far `webhook-timestamp` may lie from now (the `standardwebhooks`
/// crate's tolerance, the specification's suggestion).
pub const TOLERANCE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// A delivery whose signature was valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// The `webhook-id` header: the event's id in `GET /events`, the same on
    /// every retry. Not part of the body (empty when the body alone is read).
    #[serde(skip)]
    pub id: String,
    /// The event type, e.g. `mailbox.status_changed` (the README lists them;
    /// a newer version may add types: ignore those you do not know).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event happened.
    pub timestamp: DateTime<Utc>,
    /// What the event is about: the entity's id, its email or name, `from`
    /// and `to` where a status changed (an example per type in the README).
    pub data: serde_json::Value,
}

/// Why a delivery was refused. Answer it with a 4xx (Inboxlink then retries).
#[derive(Debug)]
#[non_exhaustive]
pub enum VerifyError {
    /// The secret is not `whsec_` followed by base64.
    InvalidSecret,
    /// A Standard Webhooks header is missing (its name).
    MissingHeader(&'static str),
    /// A header is not what it should be: not text, or a timestamp that is
    /// not a number (its name).
    InvalidHeader(&'static str),
    /// `webhook-timestamp` is more than [`TOLERANCE`] from now: a replayed
    /// delivery, or a clock that is off.
    Timestamp,
    /// No signature matches: another secret, or a changed body or header.
    Signature,
    /// The signature is valid but the body is not an event (a newer or an
    /// unrelated sender).
    Body(serde_json::Error),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::InvalidSecret => {
                write!(f, "the webhook secret is not `whsec_` followed by base64")
            }
            VerifyError::MissingHeader(h) => write!(f, "the header `{h}` is missing"),
            VerifyError::InvalidHeader(h) => write!(f, "the header `{h}` is invalid"),
            VerifyError::Timestamp => write!(
                f,
                "`{HEADER_TIMESTAMP}` is more than {} seconds from now",
                TOLERANCE.as_secs()
            ),
            VerifyError::Signature => write!(f, "no signature matches the secret"),
            VerifyError::Body(e) => write!(f, "the body is not an event: {e}"),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VerifyError::Body(e) => Some(e),
            _ => None,
        }
    }
}

/// The full header name of the crate's short one.
fn header_name(short: &str) -> &'static str {
    match short {
        "id" => HEADER_ID,
        "timestamp" => HEADER_TIMESTAMP,
        _ => HEADER_SIGNATURE,
    }
}

impl From<standardwebhooks::WebhookError> for VerifyError {
    fn from(e: standardwebhooks::WebhookError) -> Self {
        use standardwebhooks::WebhookError as E;
        match e {
            E::InvalidSecret(_) => VerifyError::InvalidSecret,
            E::MissingHeader(h) => VerifyError::MissingHeader(header_name(h)),
            E::InvalidHeader(h) => VerifyError::InvalidHeader(header_name(h)),
            E::InvalidTimestamp => VerifyError::InvalidHeader(HEADER_TIMESTAMP),
            E::TimestampTooOldError | E::FutureTimestampError => VerifyError::Timestamp,
            // A body that is not UTF-8 cannot carry a valid signature.
            E::InvalidSignature | E::InvalidPayload => VerifyError::Signature,
        }
    }
}

/// Checks a delivery's signature and timestamp with the webhook's `secret`
/// and reads its body. `body` must be the bytes as received (not parsed
/// and serialised again: the signature covers them exactly).
///
/// # Errors
/// [`VerifyError`]: answer the delivery with a 4xx and do not act on it.
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, VerifyError> {
    let webhook = standardwebhooks::Webhook::new(secret.trim())?;
    webhook.verify(body, headers)?;
    let id = headers
        .get(HEADER_ID)
        .and_then(|v| v.to_str().ok())
        .ok_or(VerifyError::InvalidHeader(HEADER_ID))?
        .to_owned();
    let mut event: WebhookEvent = serde_json::from_slice(body).map_err(VerifyError::Body)?;
    event.id = id;
    Ok(event)
}

/// [`verify`] for headers as name/value pairs (any case), e.g. from a
/// server on another version of the `http` crate: actix-web's
/// `req.headers().iter()` fits as it is. Headers other than the three
/// Standard Webhooks ones are ignored.
///
/// # Errors
/// As [`verify`].
pub fn verify_pairs<K, V>(
    secret: &str,
    headers: impl IntoIterator<Item = (K, V)>,
    body: &[u8],
) -> Result<WebhookEvent, VerifyError>
where
    K: AsRef<str>,
    V: AsRef<[u8]>,
{
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let Some(known) = [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE]
            .into_iter()
            .find(|h| name.as_ref().eq_ignore_ascii_case(h))
        else {
            continue;
        };
        let value = HeaderValue::from_bytes(value.as_ref())
            .map_err(|_| VerifyError::InvalidHeader(known))?;
        map.append(known, value);
    }
    verify(secret, &map, body)
}

#[cfg(test)]
mod tests {
    //! Signatures are made here with `hmac` and `sha2`, not with the
    //! `standardwebhooks` crate that [`verify`] uses, and that signer is held
    //! to the specification's published test vector first.

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};

    use super::*;

    /// The Standard Webhooks specification's example.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1614265330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const BODY: &[u8] = br#"{"type":"mailbox.status_changed","timestamp":"2026-12-01T10:15:00.123456Z","data":{"mailbox_id":"0195f6c2-5c2e-7d3a-9b1f-2a4c6e8f0a1b","email":"podatelna@contoso.cz","from":"active","to":"reauth_required","status_code":"grant_revoked"}}"#;
    const ID: &str = "0195f6c2-9a00-7c3b-8d4e-5f6a7b8c9d0e";

    fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = STANDARD
            .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
            .expect("base64");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn now() -> i64 {
        Utc::now().timestamp()
    }

    fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER_ID, id.parse().expect("ASCII"));
        h.insert(
            HEADER_TIMESTAMP,
            timestamp.to_string().parse().expect("ASCII"),
        );
        h.insert(HEADER_SIGNATURE, signature.parse().expect("ASCII"));
        h
    }

    fn secret(byte: u8) -> String {
        format!("whsec_{}", STANDARD.encode([byte; 32]))
    }

    #[test]
    fn the_tests_signer_reproduces_the_specification_vector() {
        assert_eq!(
            sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
    }

    #[test]
    fn the_vector_is_refused_only_for_its_age() {
        let vector = headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        assert!(matches!(
            verify(VECTOR_SECRET, &vector, VECTOR_BODY),
            Err(VerifyError::Timestamp)
        ));
        // Signed now, its signature checks out, and the body is no event.
        let t = now();
        let fresh = headers(
            VECTOR_ID,
            t,
            &sign(VECTOR_SECRET, VECTOR_ID, t, VECTOR_BODY),
        );
        assert!(matches!(
            verify(VECTOR_SECRET, &fresh, VECTOR_BODY),
            Err(VerifyError::Body(_))
        ));
    }

    #[test]
    fn a_valid_delivery_gives_its_event() {
        let t = now();
        let h = headers(ID, t, &sign(&secret(7), ID, t, BODY));
        let event = verify(&secret(7), &h, BODY).expect("valid");
        assert_eq!(event.id, ID);
        assert_eq!(event.event_type, "mailbox.status_changed");
        assert_eq!(event.data["to"], "reauth_required");
        assert_eq!(
            event.timestamp,
            "2026-12-01T10:15:00.123456Z"
                .parse::<DateTime<Utc>>()
                .expect("a time")
        );
    }

    #[test]
    fn a_wrong_secret_or_a_changed_body_fails() {
        let t = now();
        let h = headers(ID, t, &sign(&secret(7), ID, t, BODY));
        assert!(matches!(
            verify(&secret(8), &h, BODY),
            Err(VerifyError::Signature)
        ));
        let changed = String::from_utf8_lossy(BODY).replace("reauth_required", "active");
        assert!(matches!(
            verify(&secret(7), &h, changed.as_bytes()),
            Err(VerifyError::Signature)
        ));
        // Another id or timestamp than the one signed.
        let other_id = headers("another", t, &sign(&secret(7), ID, t, BODY));
        assert!(matches!(
            verify(&secret(7), &other_id, BODY),
            Err(VerifyError::Signature)
        ));
        let other_time = headers(ID, t - 1, &sign(&secret(7), ID, t, BODY));
        assert!(matches!(
            verify(&secret(7), &other_time, BODY),
            Err(VerifyError::Signature)
        ));
    }

    #[test]
    fn during_a_rotation_any_matching_signature_is_valid() {
        let t = now();
        let both = format!(
            "{} {}",
            sign(&secret(2), ID, t, BODY),
            sign(&secret(1), ID, t, BODY)
        );
        let h = headers(ID, t, &both);
        for s in [secret(1), secret(2)] {
            assert!(verify(&s, &h, BODY).is_ok(), "{s}");
        }
        assert!(matches!(
            verify(&secret(3), &h, BODY),
            Err(VerifyError::Signature)
        ));
    }

    #[test]
    fn old_and_future_timestamps_fail() {
        let t = now();
        for at in [t - 301, t + 301] {
            let h = headers(ID, at, &sign(&secret(7), ID, at, BODY));
            assert!(
                matches!(verify(&secret(7), &h, BODY), Err(VerifyError::Timestamp)),
                "{at}"
            );
        }
        let late = t - 240;
        let h = headers(ID, late, &sign(&secret(7), ID, late, BODY));
        assert!(verify(&secret(7), &h, BODY).is_ok(), "four minutes old");
    }

    #[test]
    fn missing_headers_and_bad_secrets_are_named() {
        let t = now();
        let mut h = headers(ID, t, &sign(&secret(7), ID, t, BODY));
        h.remove(HEADER_SIGNATURE);
        assert!(matches!(
            verify(&secret(7), &h, BODY),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        ));
        let mut h = headers(ID, t, &sign(&secret(7), ID, t, BODY));
        h.insert(HEADER_TIMESTAMP, "soon".parse().expect("ASCII"));
        assert!(matches!(
            verify(&secret(7), &h, BODY),
            Err(VerifyError::InvalidHeader(HEADER_TIMESTAMP))
        ));
        assert!(matches!(
            verify("whsec_not base64!", &h, BODY),
            Err(VerifyError::InvalidSecret)
        ));
    }

    #[test]
    fn pairs_in_any_case_work_like_a_header_map() {
        let t = now();
        let signature = sign(&secret(7), ID, t, BODY);
        let timestamp = t.to_string();
        let pairs = [
            ("Content-Type", "application/json"),
            ("Webhook-Id", ID),
            ("WEBHOOK-TIMESTAMP", timestamp.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        assert_eq!(verify_pairs(&secret(7), pairs, BODY).expect("valid").id, ID);
        assert!(matches!(
            verify_pairs(&secret(8), pairs, BODY),
            Err(VerifyError::Signature)
        ));
        assert!(matches!(
            verify_pairs(&secret(7), pairs[..3].iter().copied(), BODY),
            Err(VerifyError::MissingHeader(HEADER_SIGNATURE))
        ));
    }
}
