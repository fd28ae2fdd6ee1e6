//! Certificate credentials (Microsoft Learn, "Microsoft identity platform
//! application authentication certificate credentials"): an app
//! credential's RSA key pair and certificate, made here or uploaded, and the
//! client assertion signed with its key for every token request: a JWT with
//! `alg` PS256 and `x5t#S256` (base64url of the certificate's SHA-256
//! thumbprint), `aud` the token endpoint, `iss` = `sub` the client id, a
//! random `jti`, and `nbf` / `iat` / `exp` ten minutes apart at most.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Datelike, NaiveDate, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::codes::Code;
use crate::domain::Invalid;

/// The smallest RSA key accepted (Microsoft asks for 2048 bits or more).
pub const MIN_RSA_BITS: usize = 2048;
/// How long a certificate made here is valid.
pub const GENERATED_VALID_DAYS: i64 = 365;
/// A client assertion's lifetime (Microsoft: at most 10 minutes).
pub const ASSERTION_LIFETIME_SECONDS: i64 = 600;

/// A certificate with its private key, checked.
pub struct KeyedCertificate {
    pub certificate_pem: String,
    /// PKCS#8 PEM; sealed before it is stored.
    pub private_key_pem: SecretString,
    /// SHA-256 of the certificate's DER, upper-case hex (as the portal shows thumbprints).
    pub thumbprint_sha256: String,
    pub not_after: NaiveDate,
}

/// A new RSA 2048 key pair and a self-signed certificate for it, valid
/// from yesterday for [`GENERATED_VALID_DAYS`], named after `name`.
pub fn generate(name: &str) -> anyhow::Result<KeyedCertificate> {
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("Inboxlink: {name}"));
    let ymd = |d: NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = Utc::now().date_naive();
    params.not_before = ymd(today - chrono::Days::new(1));
    let not_after = today + chrono::Duration::days(GENERATED_VALID_DAYS);
    params.not_after = ymd(not_after);
    let certificate = params.self_signed(&key)?;
    Ok(KeyedCertificate {
        thumbprint_sha256: thumbprint(certificate.der()),
        certificate_pem: certificate.pem(),
        private_key_pem: SecretString::from(key.serialize_pem()),
        not_after,
    })
}

/// An uploaded certificate and its private key: one PEM certificate, an
/// RSA key of at least [`MIN_RSA_BITS`] that is the certificate's, and a
/// certificate not expired yet.
pub fn from_pem(
    certificate_pem: &str,
    private_key_pem: &str,
) -> Result<KeyedCertificate, (&'static str, Invalid)> {
    let invalid =
        |field, message: &str| Err((field, Invalid::new(Code::InvalidCertificate, message)));
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(certificate_pem.trim().as_bytes()) else {
        return invalid("certificate_pem", "not a PEM certificate");
    };
    let Ok(certificate) = pem.parse_x509() else {
        return invalid("certificate_pem", "the PEM holds no X.509 certificate");
    };
    let spki = certificate.public_key();
    let bits = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => rsa.key_size(),
        _ => return invalid("certificate_pem", "the certificate's key is not an RSA key"),
    };
    if bits < MIN_RSA_BITS {
        return invalid("certificate_pem", "the RSA key has fewer than 2048 bits");
    }
    let Ok(key) = rcgen::KeyPair::from_pem(private_key_pem.trim()) else {
        return invalid(
            "private_key_pem",
            "not a PEM private key (PKCS#8 or PKCS#1)",
        );
    };
    if rcgen::PublicKeyData::subject_public_key_info(&key) != spki.raw {
        return invalid("private_key_pem", "this key is not the certificate's");
    }
    let not_after = certificate.validity().not_after.timestamp();
    let Some(not_after) = chrono::DateTime::from_timestamp(not_after, 0) else {
        return invalid(
            "certificate_pem",
            "the certificate's expiry is out of range",
        );
    };
    if not_after <= Utc::now() {
        return invalid("certificate_pem", "the certificate has expired");
    }
    Ok(KeyedCertificate {
        thumbprint_sha256: thumbprint(&pem.contents),
        certificate_pem: certificate_pem.trim().to_owned() + "\n",
        private_key_pem: SecretString::from(key.serialize_pem()),
        not_after: not_after.date_naive(),
    })
}

/// SHA-256 of a certificate's DER, upper-case hex.
/// The PEM blocks of `text`, each from its `-----BEGIN` to the end of its
/// `-----END ...-----` line (a rolled credential seals two keys together).
pub fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let Some(end) = after.find("-----END ") else {
            break;
        };
        let tail = &after[end + "-----END ".len()..];
        let Some(close) = tail.find("-----") else {
            break;
        };
        let len = end + "-----END ".len() + close + "-----".len();
        blocks.push(after[..len].to_owned());
        rest = &after[len..];
    }
    blocks
}

pub fn thumbprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The header `x5t#S256` for a thumbprint in hex: base64url of its bytes.
pub fn x5t_s256(thumbprint_hex: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..thumbprint_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(thumbprint_hex.get(i..i + 2)?, 16).ok())
        .collect();
    bytes
        .filter(|b| b.len() == 32)
        .map(|b| URL_SAFE_NO_PAD.encode(b))
}

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// A client assertion for one token request to `token_endpoint`.
pub fn assertion(
    private_key_pem: &SecretString,
    x5t_s256: &str,
    client_id: &str,
    token_endpoint: &str,
) -> anyhow::Result<String> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let key = EncodingKey::from_rsa_pem(private_key_pem.expose_secret().as_bytes())?;
    let mut header = Header::new(Algorithm::PS256);
    header.typ = Some("JWT".to_owned());
    header.x5t_s256 = Some(x5t_s256.to_owned());
    let now = Utc::now().timestamp();
    let claims = AssertionClaims {
        aud: token_endpoint,
        iss: client_id,
        sub: client_id,
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: now,
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECONDS,
    };
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sealed_keys_come_apart_as_they_went_in() {
        let a = "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----";
        let b = "-----BEGIN RSA PRIVATE KEY-----\nBBB\n-----END RSA PRIVATE KEY-----";
        assert_eq!(pem_blocks(&format!("{a}\n{b}\n")), [a, b]);
        assert_eq!(pem_blocks(a), [a]);
        assert!(pem_blocks("").is_empty());
        assert!(pem_blocks("-----BEGIN PRIVATE KEY-----\ncut off").is_empty());
    }

    #[test]
    fn a_generated_certificate_loads_back_and_signs() {
        let made = generate("E-filing office").expect("generated");
        assert_eq!(made.thumbprint_sha256.len(), 64);
        let loaded = from_pem(&made.certificate_pem, made.private_key_pem.expose_secret())
            .map_err(|(f, e)| format!("{f}: {}", e.message))
            .expect("loads");
        assert_eq!(loaded.thumbprint_sha256, made.thumbprint_sha256);
        assert_eq!(loaded.not_after, made.not_after);
        let x5t = x5t_s256(&made.thumbprint_sha256).expect("x5t#S256");
        assert_eq!(URL_SAFE_NO_PAD.decode(&x5t).expect("base64url").len(), 32);
        let jwt = assertion(&made.private_key_pem, &x5t, "client", "https://t/token").expect("jwt");
        assert_eq!(jwt.split('.').count(), 3);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let a = generate("a").expect("a");
        let b = generate("b").expect("b");
        let Err((field, e)) = from_pem(&a.certificate_pem, b.private_key_pem.expose_secret())
        else {
            panic!("accepted another key");
        };
        assert_eq!(field, "private_key_pem");
        assert_eq!(e.code, Code::InvalidCertificate);
        assert!(from_pem("not a certificate", a.private_key_pem.expose_secret()).is_err());
    }
}
