//! `/audit-events`: who did what. A thin handler.

use actix_web::{get, web};

use crate::error::Result;
use crate::http::caller::Caller;
use crate::service::PageRequest;
use crate::service::audit::AuditEventPage;

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(audit_event_list);
}

/// List audit events
///
/// Newest first: credential and mailbox changes, sign-ins and their outcomes,
/// tokens handed out.
#[utoipa::path(
    tag = "audit", operation_id = "audit_event_list",
    params(PageRequest),
    responses((status = 200, description = "A page of audit events", body = AuditEventPage)),
    security(("bearer" = []))
)]
#[get("/audit-events")]
pub async fn audit_event_list(
    Caller(who, services): Caller,
    web::Query(page): web::Query<PageRequest>,
) -> Result<web::Json<AuditEventPage>> {
    Ok(web::Json(services.audit_list(&who, page).await?))
}
