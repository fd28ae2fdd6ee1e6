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
//!
//! Libraries that log the raw protocol lines they exchange are held to
//! [`PROTOCOL_LOGGERS`] whatever `INBOXLINK_LOG` says: async-imap logs every
//! IMAP command at trace (the `AUTHENTICATE` response is the token in
//! base64), lettre every SMTP line at debug when built with its `tracing`
//! feature. The cap is a second filter next to the user's, so no directive
//! of theirs (`async_imap=trace`, `async_imap::imap_stream=trace`) can lift it.

use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, filter};

use crate::config::{LogFormat, LogSettings};

/// Libraries that log raw protocol lines (with credentials), and the most
/// they may ever log.
pub const PROTOCOL_LOGGERS: [(&str, filter::LevelFilter); 3] = [
    ("async_imap", filter::LevelFilter::WARN),
    ("imap_proto", filter::LevelFilter::WARN),
    ("lettre", filter::LevelFilter::WARN),
];

/// The log filter: the user's `spec` (`info` when it does not parse), and the
/// cap on [`PROTOCOL_LOGGERS`], both of which an event must pass.
pub fn log_filter<S>(spec: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let user = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = filter::Targets::new()
        .with_default(filter::LevelFilter::TRACE)
        .with_targets(PROTOCOL_LOGGERS);
    filter::FilterExt::and(user, cap)
}

/// Installs the global subscriber writing to `writer`.
pub fn init<W>(settings: &LogSettings, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false);
    let registry = tracing_subscriber::registry();
    let result = match settings.format {
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_filter(log_filter(&settings.filter)),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(layer.with_filter(log_filter(&settings.filter)))
            .try_init(),
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

    /// What a subscriber with [`log_filter`]`(spec)` writes while `f` runs.
    fn logged(spec: &str, f: impl FnOnce()) -> String {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .with_filter(log_filter(spec));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.lock().expect("buffer").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn no_user_filter_lets_protocol_lines_through() {
        // With or without a default level of the user's own.
        for (spec, everything) in [
            ("trace", true),
            ("async_imap=trace", false),
            ("async_imap::imap_stream=trace", false),
            (
                "lettre=trace,lettre::transport::smtp::client::async_connection=trace",
                false,
            ),
            ("trace,async_imap=trace,imap_proto=trace,lettre=trace", true),
            ("not a filter[", true),
        ] {
            let out = logged(spec, || {
                // What async-imap and lettre log on the wire (as bridged from `log`: the target is the module).
                tracing::trace!(target: "async_imap::imap_stream", "encode: input: Some(\"A0001\"), Ok(\"dXNlcj1TRUNSRVQ=\")");
                tracing::debug!(target: "async_imap", "SECRET at debug");
                tracing::info!(target: "async_imap::client", "SECRET at info");
                tracing::trace!(target: "imap_proto::parser", "SECRET parsed");
                tracing::debug!(target: "lettre::transport::smtp::client::async_connection", "Wrote: dXNlcj1TRUNSRVQ=");
                tracing::warn!(target: "async_imap::imap_stream", "imap warning kept");
                tracing::error!(target: "inboxlink::mail", "own error kept");
            });
            assert!(!out.contains("dXNlcj1TRUNSRVQ="), "{spec}: {out}");
            assert!(!out.contains("SECRET"), "{spec}: {out}");
            if spec.starts_with("async_imap") || everything {
                assert!(out.contains("imap warning kept"), "{spec}: {out}");
            }
            assert_eq!(out.contains("own error kept"), everything, "{spec}: {out}");
        }
    }

    #[test]
    fn the_user_filter_still_rules_everything_else() {
        let out = logged("trace", || {
            tracing::trace!(target: "inboxlink::mail", "own trace kept");
            tracing::trace!(target: "rustls::client", "rustls trace kept");
        });
        assert!(out.contains("own trace kept"), "{out}");
        assert!(out.contains("rustls trace kept"), "{out}");
        let out = logged("warn", || {
            tracing::info!(target: "inboxlink::mail", "info dropped");
            tracing::warn!(target: "async_imap", "imap warning kept");
        });
        assert!(!out.contains("info dropped"), "{out}");
        assert!(out.contains("imap warning kept"), "{out}");
    }

    #[test]
    fn the_filter_hints_the_users_level() {
        use tracing_subscriber::Registry;
        let hint = |spec: &str| Filter::<Registry>::max_level_hint(&log_filter::<Registry>(spec));
        assert_eq!(hint("info"), Some(filter::LevelFilter::INFO));
        assert_eq!(hint("trace"), Some(filter::LevelFilter::TRACE));
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
