//! Liveness and readiness, for load balancers and orchestrators.

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Result;
use crate::service::Services;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
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
