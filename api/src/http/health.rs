//! Liveness, readiness and metrics, for load balancers, orchestrators and monitoring.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Result;
use crate::service::Services;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// Health of the process.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// Liveness
///
/// Answers while the process serves requests.
#[utoipa::path(
    get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "Alive", body = Health)),
    security(())
)]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness
///
/// Answers 200 when the database answers, else 503.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses((status = 200, description = "Ready", body = Health)),
    security(())
)]
pub async fn readyz(services: web::Data<Services>) -> Result<web::Json<Health>> {
    services.store.ping().await?;
    Ok(web::Json(Health {
        status: "ok".into(),
    }))
}

/// Metrics
///
/// Prometheus metrics in the text format 0.0.4: HTTP requests by method,
/// route pattern and status, their durations, token refreshes by outcome,
/// connection checks by first failed step and code, and mailboxes by status
/// (counted in the database at each scrape, over all organisations).
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "The metrics (Prometheus text format 0.0.4)",
        body = String, content_type = "text/plain")),
    security(())
)]
pub async fn metrics(services: web::Data<Services>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(services.metrics_text().await)
}
