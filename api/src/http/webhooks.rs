//! `/webhooks`: signed deliveries of the event feed to receivers (admin).

use actix_web::{HttpResponse, delete, get, patch, post, web};

use crate::domain::{DeliveryId, WebhookId};
use crate::error::Result;
use crate::http::caller::Caller;
use crate::service::PageRequest;
use crate::service::webhooks::{
    DeliveryAttemptPage, QueuedEvent, RetriedDelivery, RotatedSecret, Webhook, WebhookCreate,
    WebhookPage, WebhookUpdate, WebhookWithSecret,
};

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(webhook_list)
        .service(webhook_create)
        .service(webhook_get)
        .service(webhook_update)
        .service(webhook_delete)
        .service(webhook_rotate_secret)
        .service(webhook_test)
        .service(webhook_deliveries)
        .service(webhook_retry);
}

type Id = web::Path<WebhookId>;

/// List webhooks
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_list",
    params(PageRequest),
    responses((status = 200, description = "A page of webhooks", body = WebhookPage)),
    security(("bearer" = []))
)]
#[get("/webhooks")]
pub async fn webhook_list(
    Caller(who, services): Caller,
    web::Query(page): web::Query<PageRequest>,
) -> Result<web::Json<WebhookPage>> {
    Ok(web::Json(services.webhook_list(&who, &page).await?))
}

/// Add a webhook
///
/// Deliveries follow the Standard Webhooks specification: signed with the
/// `secret` of this answer, which is shown only here. The URL must be
/// `https://` and reach a public address (`webhook_url_not_allowed` otherwise).
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_create",
    request_body = WebhookCreate,
    responses(
        (status = 201, description = "Created, with its secret", body = WebhookWithSecret),
        (status = 422, description = "Invalid fields, or a URL that may not receive webhooks (`webhook_url_not_allowed`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/webhooks")]
pub async fn webhook_create(
    Caller(who, services): Caller,
    web::Json(body): web::Json<WebhookCreate>,
) -> Result<HttpResponse> {
    let created = services.webhook_create(&who, body).await?;
    Ok(super::created("/webhooks", created.webhook.id, created))
}

/// Get a webhook
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_get",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook (never its secret)", body = Webhook)),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}")]
pub async fn webhook_get(Caller(who, services): Caller, id: Id) -> Result<web::Json<Webhook>> {
    Ok(web::Json(services.webhook_get(&who, *id).await?))
}

/// Update a webhook
///
/// `enabled: true` re-enables an endpoint the service disabled; `enabled:
/// false` cancels what it still had to get.
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_update",
    params(("id" = Uuid, Path, description = "Webhook id")),
    request_body = WebhookUpdate,
    responses(
        (status = 200, description = "The updated webhook", body = Webhook),
        (status = 422, description = "Invalid fields, or a URL that may not receive webhooks (`webhook_url_not_allowed`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/webhooks/{id}")]
pub async fn webhook_update(
    Caller(who, services): Caller,
    id: Id,
    web::Json(body): web::Json<WebhookUpdate>,
) -> Result<web::Json<Webhook>> {
    Ok(web::Json(services.webhook_update(&who, *id, body).await?))
}

/// Delete a webhook
///
/// With its deliveries and their attempts.
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_delete",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/webhooks/{id}")]
pub async fn webhook_delete(Caller(who, services): Caller, id: Id) -> Result<HttpResponse> {
    services.webhook_delete(&who, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rotate the secret
///
/// A new secret, shown only in this answer. For the next 24 hours
/// deliveries carry two signatures, with the new and the previous secret,
/// so the receiver can switch without losing one.
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_rotate_secret",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The new secret", body = RotatedSecret)),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/rotate-secret")]
pub async fn webhook_rotate_secret(
    Caller(who, services): Caller,
    id: Id,
) -> Result<web::Json<RotatedSecret>> {
    Ok(web::Json(services.webhook_rotate_secret(&who, *id).await?))
}

/// Send a test event
///
/// Queues a `webhook.test` event for this endpoint alone.
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_test",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "Queued", body = QueuedEvent),
        (status = 409, description = "The webhook is disabled (`webhook_disabled`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/test")]
pub async fn webhook_test(Caller(who, services): Caller, id: Id) -> Result<HttpResponse> {
    let queued = services.webhook_test(&who, *id).await?;
    Ok(HttpResponse::Accepted().json(queued))
}

/// List delivery attempts
///
/// The endpoint's attempts, newest first: the event, the status code or the
/// error, the duration, the attempt number and when the next retry is due.
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_deliveries",
    params(("id" = Uuid, Path, description = "Webhook id"), PageRequest),
    responses((status = 200, description = "A page of attempts", body = DeliveryAttemptPage)),
    security(("bearer" = []))
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn webhook_deliveries(
    Caller(who, services): Caller,
    id: Id,
    web::Query(page): web::Query<PageRequest>,
) -> Result<web::Json<DeliveryAttemptPage>> {
    Ok(web::Json(
        services.webhook_deliveries(&who, *id, &page).await?,
    ))
}

/// Retry a delivery
///
/// Sets the delivery pending again, due now (a failed one too).
#[utoipa::path(
    tag = "webhooks", operation_id = "webhook_retry",
    params(
        ("id" = Uuid, Path, description = "Webhook id"),
        ("delivery_id" = Uuid, Path, description = "Delivery id (from the attempts list)"),
    ),
    responses(
        (status = 202, description = "Due now", body = RetriedDelivery),
        (status = 409, description = "The webhook is disabled (`webhook_disabled`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/webhooks/{id}/deliveries/{delivery_id}/retry")]
pub async fn webhook_retry(
    Caller(who, services): Caller,
    path: web::Path<(WebhookId, DeliveryId)>,
) -> Result<HttpResponse> {
    let (id, delivery) = path.into_inner();
    let retried = services.webhook_retry(&who, id, delivery).await?;
    Ok(HttpResponse::Accepted().json(retried))
}
