//! Logging: tracing to stderr, as text or JSON. Request spans carry the
//! method, the path (never the query, which may hold OAuth codes), a request
//! id and the caller; headers and bodies are never logged.

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

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = uuid::Uuid::new_v4();
        let span = tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            %request_id,
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
