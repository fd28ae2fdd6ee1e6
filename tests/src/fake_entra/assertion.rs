//! Client assertions, checked as Microsoft's token endpoint checks them
//! (Learn, "certificate credentials"): `client_assertion_type` jwt-bearer; a
//! JWT signed PS256 (RS256 accepted, as Entra still does) by the key of a
//! certificate registered on the app, found by its header `x5t#S256`
//! (base64url SHA-256 of the certificate's DER); `aud` the token endpoint
//! the request was sent to; `iss` = `sub` = the client id; `nbf` <= now <
//! `exp`, at most 10 minutes apart; a `jti` never seen before.
//!
//! Written apart from the service's signing code: it reads the certificate
//! with x509-parser and verifies with jsonwebtoken's own checks. The AADSTS
//! numbers: 700027 (signature, key not found) and 700024 (time range) are
//! Microsoft's; a wrong audience or a reused `jti` answer 50027 ("JWT token
//! is invalid or malformed"), which Microsoft gives for malformed assertions;
//! the exact number for these two is not documented.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};

use super::support::{TokenError, unix_now};

pub(super) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest lifetime (`exp - nbf`) accepted.
const MAX_LIFETIME: u64 = 600;

/// The claims checked here, read from the verified token.
struct Claims {
    iss: String,
    sub: String,
    jti: String,
    nbf: u64,
    exp: u64,
}

impl Claims {
    fn read(v: &serde_json::Value) -> Option<Claims> {
        Some(Claims {
            iss: v["iss"].as_str()?.to_owned(),
            sub: v["sub"].as_str()?.to_owned(),
            jti: v["jti"].as_str()?.to_owned(),
            nbf: v["nbf"].as_u64()?,
            exp: v["exp"].as_u64()?,
        })
    }
}

fn signature_failed(reason: &str) -> TokenError {
    TokenError::new(
        401,
        "invalid_client",
        700_027,
        format!("Client assertion failed signature validation. (Reason - {reason}.)"),
    )
}

fn malformed(reason: &str) -> TokenError {
    TokenError::new(
        400,
        "invalid_request",
        50_027,
        format!("JWT token is invalid or malformed. (Reason - {reason}.)"),
    )
}

/// Checks `assertion` for `client_id` against its certificates (DER) at
/// `token_endpoint`, remembering its `jti` in `seen`.
pub(super) fn check(
    assertion: &str,
    client_id: &str,
    certificates: &[Vec<u8>],
    token_endpoint: &str,
    seen: &mut HashSet<String>,
) -> Result<(), TokenError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| malformed("the client assertion is not a JWT"))?;
    if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return Err(malformed("the assertion is not signed PS256 or RS256"));
    }
    let x5t = header
        .x5t_s256
        .ok_or_else(|| signature_failed("the header has no x5t#S256"))?;
    let certificate = certificates
        .iter()
        .find(|der| URL_SAFE_NO_PAD.encode(Sha256::digest(der)) == x5t)
        .ok_or_else(|| {
            signature_failed(&format!(
                "The key was not found. Thumbprint of key used by client: '{x5t}'"
            ))
        })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|_| signature_failed("the registered certificate does not parse"))?;
    let key = DecodingKey::from_rsa_der(&parsed.public_key().subject_public_key.data);
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_endpoint]);
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 0;
    let claims = match jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation) {
        Ok(data) => Claims::read(&data.claims)
            .ok_or_else(|| malformed("iss, sub, jti, nbf and exp are required"))?,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            return Err(match e.kind() {
                ErrorKind::InvalidSignature => signature_failed("the signature does not verify"),
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => TokenError::new(
                    401,
                    "invalid_client",
                    700_024,
                    "Client assertion is not within its valid time range.",
                ),
                ErrorKind::InvalidAudience => {
                    malformed("the audience is not the token endpoint it was sent to")
                }
                _ => malformed(&format!("the assertion cannot be read: {e}")),
            });
        }
    };
    if claims.iss != client_id || claims.sub != client_id {
        return Err(malformed("iss and sub must both be the client id"));
    }
    if claims.exp.saturating_sub(claims.nbf) > MAX_LIFETIME || claims.nbf > unix_now() {
        return Err(TokenError::new(
            401,
            "invalid_client",
            700_024,
            "Client assertion is not within its valid time range (at most 10 minutes).",
        ));
    }
    if !seen.insert(claims.jti) {
        return Err(malformed(
            "the jti was used before: an assertion is good for one request",
        ));
    }
    Ok(())
}
