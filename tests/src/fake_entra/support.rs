//! Small helpers of the fake: random strings, Microsoft-style error bodies,
//! HTML error pages, form parsing, PKCE and time formatting.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

const URL_SAFE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `BASE64URL(SHA256(verifier))` without padding: the PKCE `S256`
/// `code_challenge` for a `code_verifier` (RFC 7636).
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Decodes the claims (payload) of a JWT such as the fake's `id_token`,
/// without checking the signature. `None` if it is not a three-part JWT with
/// a base64url JSON payload.
pub fn id_token_claims(jwt: &str) -> Option<Value> {
    let mut parts = jwt.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A random string of `len` URL-safe characters (`A-Z a-z 0-9 - _`).
pub(super) fn random_token(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(URL_SAFE_ALPHABET[rng.random_range(0..URL_SAFE_ALPHABET.len())]))
        .collect()
}

/// Seconds since the Unix epoch (real clock).
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Microsoft's timestamp format, `2026-11-25 10:20:30Z` (RFC 3339 with a
/// space as date/time separator, which RFC 3339 section 5.6 allows).
pub(super) fn ms_timestamp(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// An error of the token endpoint, rendered like Microsoft's.
#[derive(Debug)]
pub(super) struct TokenError {
    pub status: u16,
    pub error: String,
    pub code: u32,
    pub text: String,
}

impl TokenError {
    pub fn new(status: u16, error: &str, code: u32, text: impl Into<String>) -> TokenError {
        TokenError {
            status,
            error: error.to_owned(),
            code,
            text: text.into(),
        }
    }

    /// `400 invalid_grant`.
    pub fn invalid_grant(code: u32, text: impl Into<String>) -> TokenError {
        TokenError::new(400, "invalid_grant", code, text)
    }

    /// `400 invalid_request`.
    pub fn invalid_request(code: u32, text: impl Into<String>) -> TokenError {
        TokenError::new(400, "invalid_request", code, text)
    }

    /// `400 invalid_request` AADSTS900144 for a missing body parameter.
    pub fn missing(param: &str) -> TokenError {
        TokenError::invalid_request(
            900_144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }

    pub fn into_response(self, authority: &str) -> HttpResponse {
        error_json(
            self.status,
            &self.error,
            self.code,
            &self.text,
            authority,
            None,
        )
    }
}

/// A Microsoft-style JSON error body:
/// `{"error","error_description":"AADSTSnnnn: text\r\nTrace ID: ..\r\nCorrelation ID: ..\r\nTimestamp: ..","error_codes":[n],"timestamp","trace_id","correlation_id","error_uri"}`.
pub(super) fn error_json(
    status: u16,
    error: &str,
    code: u32,
    text: &str,
    authority: &str,
    retry_after_secs: Option<u64>,
) -> HttpResponse {
    let trace_id = Uuid::new_v4().to_string();
    let correlation_id = Uuid::new_v4().to_string();
    let timestamp = ms_timestamp(unix_now());
    let text = if text.starts_with("AADSTS") {
        text.to_owned()
    } else {
        format!("AADSTS{code}: {text}")
    };
    let body = json!({
        "error": error,
        "error_description": format!(
            "{text}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("{authority}/error?code={code}"),
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CACHE_CONTROL, "no-store, no-cache"));
    if let Some(secs) = retry_after_secs {
        resp.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    resp.json(body)
}

/// `200` JSON with Microsoft's cache headers.
pub(super) fn ok_json(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store, no-cache"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// The `400` HTML page Microsoft shows when it cannot (or must not) send an
/// error back to the client, e.g. an unknown app or an unregistered redirect URI.
pub(super) fn error_page(code: Option<u32>, text: &str) -> HttpResponse {
    let message = match code {
        Some(code) => format!("AADSTS{code}: {text}"),
        None => text.to_owned(),
    };
    let trace_id = Uuid::new_v4();
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Sign in to your account</title></head>\n\
         <body><h1>Sorry, but we're having trouble signing you in.</h1>\n\
         <p id=\"error\">{}</p>\n<p>Request Id: {trace_id}</p>\n<p>Timestamp: {}</p>\n</body></html>\n",
        html_escape(&message),
        ms_timestamp(unix_now()),
    );
    HttpResponse::BadRequest()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// `302 Found` to `location`.
pub(super) fn redirect(location: &str) -> HttpResponse {
    let mut resp = HttpResponse::Found();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.insert_header((header::LOCATION, v));
            resp.finish()
        }
        Err(_) => error_page(
            Some(90_102),
            "'redirect_uri' value must be a valid absolute URI.",
        ),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Parses `application/x-www-form-urlencoded` text; the first value of each
/// name wins.
pub(super) fn parse_form(text: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(text) {
        map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    map
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a
/// space, `%XX` a byte), as used in HTTP Basic client credentials (RFC 6749 section 2.3.1).
pub(super) fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_format() {
        assert_eq!(ms_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(ms_timestamp(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(ms_timestamp(1_795_613_430), "2026-11-25 13:30:30Z");
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%2Bb+c%3a%"), "a+b c:%");
        assert_eq!(form_decode("%4"), "%4");
        assert_eq!(form_decode("%41"), "A");
    }

    #[test]
    fn pkce_s256_matches_python_hashlib() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUpzJ8MJXqL7HG9lDPmTw"),
            "3Kl9Ec5QOI_cGR2z0ybIO7CPEz1kAOCo5wUaQQrZQtU"
        );
    }
}
