//! Standard Webhooks signatures (standardwebhooks.com): `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature`, a
//! space-separated list of `v1,<base64 of HMAC-SHA256 over
//! "{id}.{timestamp}.{body}">`, keyed with the base64-decoded part of the
//! secret after `whsec_`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The prefix of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> SecretString {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    SecretString::from(format!("{SECRET_PREFIX}{}", STANDARD.encode(raw)))
}

/// The key of a secret (the bytes after `whsec_`), or `None` for a secret
/// that is not one of ours.
fn key(secret: &SecretString) -> Option<Vec<u8>> {
    let text = secret.expose_secret();
    STANDARD.decode(text.strip_prefix(SECRET_PREFIX)?).ok()
}

/// `v1,<signature>` of one message under one secret.
pub fn sign(secret: &SecretString, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per secret, space-separated
/// (during a rotation, the new secret's first).
pub fn signature_header(
    secrets: &[&SecretString],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .filter_map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's test vectors.
    #[test]
    fn signs_as_the_specification_shows() {
        let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn new_secrets_have_32_random_bytes() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(key(&a).map(|k| k.len()), Some(32));
        let header = signature_header(&[&a, &b], "id", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(sign(&SecretString::from("nope".to_owned()), "id", 1, b"").is_none());
    }
}
