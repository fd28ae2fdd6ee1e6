//! Security headers on every answer, problems, pages, the spec and the docs
//! included:
//!
//! - `X-Content-Type-Options: nosniff` everywhere, so a browser never reads
//!   an answer as another type than the one declared;
//! - `Cache-Control: no-store` on every answer to a request that carried
//!   credentials (`Authorization`) and on every JSON answer (problems
//!   included) except the public spec: no shared or browser cache keeps an
//!   organisation's data, a token or a metrics page.
//!
//! Headers a handler set itself are kept (the OAuth callback page sets its
//! own `Cache-Control` and more).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;

/// The one route whose JSON may be cached: the public, static spec.
const CACHEABLE_JSON: &[&str] = &["/openapi.json"];

pub async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let credentials = request.headers().contains_key(header::AUTHORIZATION);
    let cacheable = CACHEABLE_JSON.contains(&request.path());
    match next.call(request).await {
        Ok(response) => {
            let mut response = response.map_into_boxed_body();
            secure(response.headers_mut(), credentials, cacheable);
            Ok(response)
        }
        Err(e) => {
            // An error no handler turned into an answer: answer it with the headers too.
            let mut answer = e.error_response();
            secure(answer.headers_mut(), credentials, false);
            Err(actix_web::error::InternalError::from_response(e, answer).into())
        }
    }
}

fn secure(headers: &mut HeaderMap, credentials: bool, cacheable: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim_start().to_ascii_lowercase();
            v.starts_with("application/json") || v.starts_with("application/problem+json")
        });
    if (credentials || (json && !cacheable)) && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
