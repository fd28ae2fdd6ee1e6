//! Logging: tracing to stderr, as text or JSON. Request spans carry the
//! method, the path (never the query, which may hold OAuth codes), a request
//! id and the caller; headers and bodies are never logged.
//!
//! The request id is the caller's `X-Request-Id` when it is a safe token of at
//! most 64 characters, else a fresh UUID; it is answered in `X-Request-Id`
//! (see [`crate::http::observe`]). Every line logged while a request is handled
//! is inside its span, so in JSON (`INBOXLINK_LOG_FORMAT=json`) each carries
//! `"span":{"request_id":…,…}` (the current span's fields): the code opens no
//! spans of its own below the request span, and blocking database work runs
//! inside it ([`crate::store::Store::run`]).

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber writing to `writer`.
pub fn init<W>(settings: &LogSettings, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let result = match settings.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if result.is_err() {
        tracing::debug!("a global subscriber was already installed");
    }
}

/// The span of each request, and one log line when it ends.
pub struct RequestSpan;

/// The header a request id comes in and is answered in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of one request, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The caller's id when it is acceptable, else a fresh UUID.
    pub fn from_headers(headers: &actix_web::http::header::HeaderMap) -> Self {
        headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| acceptable(v))
            .map(|v| Self(v.to_owned()))
            .unwrap_or_else(|| Self(uuid::Uuid::new_v4().to_string()))
    }

    /// The request's id: the one its span was opened with, or a new one.
    pub fn of(request: &ServiceRequest) -> Self {
        let known = request.extensions().get::<RequestId>().cloned();
        known.unwrap_or_else(|| {
            let id = Self::from_headers(request.headers());
            request.extensions_mut().insert(id.clone());
            id
        })
    }
}

/// 1 to 64 characters of `A-Z a-z 0-9 - _ . : @ + =` (UUIDs, ULIDs, trace ids, base64ish).
fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@+=".contains(&b))
}

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = RequestId::of(request);
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = %request_id.0,
            subject = tracing::field::Empty,
        );
        request.extensions_mut().insert(Started(Instant::now()));
        span
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(response) => response.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        let elapsed_ms = match outcome {
            Ok(response) => response
                .request()
                .extensions()
                .get::<Started>()
                .map(|s| s.0.elapsed().as_secs_f64() * 1e3),
            Err(_) => None,
        };
        span.in_scope(|| tracing::info!(status, elapsed_ms, "request finished"));
    }
}

#[derive(Clone, Copy)]
struct Started(Instant);

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    fn with(value: &str) -> RequestId {
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderValue::from_str(value).expect("header value"),
        );
        RequestId::from_headers(&headers)
    }

    #[test]
    fn accepts_safe_ids_and_replaces_others() {
        assert_eq!(with("abc-123_X.y:z").0, "abc-123_X.y:z");
        let max = "a".repeat(64);
        assert_eq!(with(&max).0, max);
        for bad in ["", &"a".repeat(65), "a b", "a\"b", "<script>", "ä"] {
            let Ok(value) = HeaderValue::from_str(bad) else {
                continue;
            };
            let mut headers = HeaderMap::new();
            headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            let id = RequestId::from_headers(&headers).0;
            assert_ne!(id, bad);
            assert!(uuid::Uuid::try_parse(&id).is_ok(), "{id}");
        }
        assert!(uuid::Uuid::try_parse(&RequestId::from_headers(&HeaderMap::new()).0).is_ok());
    }
}
