//! `/email-alerts`: events as messages to people, sent from one of the
//! organisation's mailboxes (admin).

use actix_web::{HttpResponse, delete, get, patch, post, web};

use crate::domain::EmailAlertId;
use crate::error::Result;
use crate::http::caller::Caller;
use crate::service::PageRequest;
use crate::service::email_alerts::{
    EmailAlert, EmailAlertCreate, EmailAlertPage, EmailAlertUpdate,
};

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(email_alert_list)
        .service(email_alert_create)
        .service(email_alert_get)
        .service(email_alert_update)
        .service(email_alert_delete);
}

type Id = web::Path<EmailAlertId>;

/// List e-mail alerts
#[utoipa::path(
    tag = "email-alerts", operation_id = "email_alert_list",
    params(PageRequest),
    responses((status = 200, description = "A page of e-mail alerts", body = EmailAlertPage)),
    security(("bearer" = []))
)]
#[get("/email-alerts")]
pub async fn email_alert_list(
    Caller(who, services): Caller,
    web::Query(page): web::Query<PageRequest>,
) -> Result<web::Json<EmailAlertPage>> {
    Ok(web::Json(services.email_alert_list(&who, &page).await?))
}

/// Add an e-mail alert
///
/// Each matching event becomes one message from the sender mailbox to the
/// recipients, in Czech or English, at most one per entity and event type
/// in 10 minutes.
#[utoipa::path(
    tag = "email-alerts", operation_id = "email_alert_create",
    request_body = EmailAlertCreate,
    responses((status = 201, description = "Created", body = EmailAlert)),
    security(("bearer" = []))
)]
#[post("/email-alerts")]
pub async fn email_alert_create(
    Caller(who, services): Caller,
    web::Json(body): web::Json<EmailAlertCreate>,
) -> Result<HttpResponse> {
    let created = services.email_alert_create(&who, body).await?;
    Ok(super::created("/email-alerts", created.id, created))
}

/// Get an e-mail alert
///
/// With the last failure to send, if the sender mailbox could not.
#[utoipa::path(
    tag = "email-alerts", operation_id = "email_alert_get",
    params(("id" = Uuid, Path, description = "E-mail alert id")),
    responses((status = 200, description = "The e-mail alert", body = EmailAlert)),
    security(("bearer" = []))
)]
#[get("/email-alerts/{id}")]
pub async fn email_alert_get(
    Caller(who, services): Caller,
    id: Id,
) -> Result<web::Json<EmailAlert>> {
    Ok(web::Json(services.email_alert_get(&who, *id).await?))
}

/// Update an e-mail alert
#[utoipa::path(
    tag = "email-alerts", operation_id = "email_alert_update",
    params(("id" = Uuid, Path, description = "E-mail alert id")),
    request_body = EmailAlertUpdate,
    responses((status = 200, description = "The updated e-mail alert", body = EmailAlert)),
    security(("bearer" = []))
)]
#[patch("/email-alerts/{id}")]
pub async fn email_alert_update(
    Caller(who, services): Caller,
    id: Id,
    web::Json(body): web::Json<EmailAlertUpdate>,
) -> Result<web::Json<EmailAlert>> {
    Ok(web::Json(
        services.email_alert_update(&who, *id, body).await?,
    ))
}

/// Delete an e-mail alert
#[utoipa::path(
    tag = "email-alerts", operation_id = "email_alert_delete",
    params(("id" = Uuid, Path, description = "E-mail alert id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/email-alerts/{id}")]
pub async fn email_alert_delete(Caller(who, services): Caller, id: Id) -> Result<HttpResponse> {
    services.email_alert_delete(&who, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}
