//! Per request: answers the request id in `X-Request-Id` (on every answer,
//! problems included) and counts the request in the metrics by its matched
//! route pattern; a 403 is also counted and audited (see `refusal.rs`).
//! Wrapped inside the tracing middleware, whose request span chose the id.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::service::Services;
use crate::telemetry::{REQUEST_ID_HEADER, RequestId};

pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let id = RequestId::of(&request);
    let metrics = request
        .app_data::<web::Data<Services>>()
        .map(|s| s.metrics.clone());
    let services = request.app_data::<web::Data<Services>>().cloned();
    let method = request.method().clone();
    // (No clone of the request may be held here: routing needs it unshared.)
    let mut response = match next.call(request).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(e) => {
            // An error no handler turned into an answer (the handlers and
            // extractors all do): answer it with the id all the same.
            let mut answer = e.error_response();
            insert_id(answer.headers_mut(), &id);
            if let Some(metrics) = metrics {
                metrics.observe_request(
                    method.as_str(),
                    None,
                    answer.status().as_u16(),
                    started.elapsed(),
                );
            }
            return Err(actix_web::error::InternalError::from_response(e, answer).into());
        }
    };
    if let Some(services) = &services {
        super::refusal::forbidden(&response, services).await;
    }
    insert_id(response.headers_mut(), &id);
    if let Some(metrics) = metrics {
        let route = response.request().match_pattern();
        metrics.observe_request(
            method.as_str(),
            route.as_deref(),
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    Ok(response)
}

fn insert_id(headers: &mut actix_web::http::header::HeaderMap, id: &RequestId) {
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
}
