//! `/mailboxes/{id}/bridge-passwords`: the logins of legacy IMAP and SMTP
//! clients to the bridge (admin, operator).

use actix_web::{HttpResponse, delete, get, post, web};

use crate::domain::{BridgePasswordId, MailboxId};
use crate::error::Result;
use crate::http::caller::Caller;
use crate::service::PageRequest;
use crate::service::bridge::BridgeInfo;
use crate::service::bridge_passwords::{
    BridgePassword, BridgePasswordCreate, BridgePasswordPage, BridgePasswordWithSecret,
};

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(bridge_get)
        .service(bridge_password_list)
        .service(bridge_password_create)
        .service(bridge_password_get)
        .service(bridge_password_delete);
}

/// The bridge's listeners
///
/// Where legacy IMAP and SMTP clients connect, and the SHA-256 fingerprint
/// of the certificate they are shown (self-signed unless one is configured).
#[utoipa::path(
    tag = "bridge", operation_id = "bridge_get",
    responses((status = 200, description = "The listeners and the certificate", body = BridgeInfo)),
    security(("bearer" = []))
)]
#[get("/bridge")]
pub async fn bridge_get(Caller(who, services): Caller) -> Result<web::Json<BridgeInfo>> {
    Ok(web::Json(services.bridge_get(&who).await?))
}

/// List a mailbox's bridge passwords
///
/// Never the passwords themselves: they are shown once, when created.
#[utoipa::path(
    tag = "bridge", operation_id = "bridge_password_list",
    params(("id" = Uuid, Path, description = "Mailbox id"), PageRequest),
    responses((status = 200, description = "A page of bridge passwords (revoked ones are gone)", body = BridgePasswordPage)),
    security(("bearer" = []))
)]
#[get("/mailboxes/{id}/bridge-passwords")]
pub async fn bridge_password_list(
    Caller(who, services): Caller,
    id: web::Path<MailboxId>,
    web::Query(page): web::Query<PageRequest>,
) -> Result<web::Json<BridgePasswordPage>> {
    Ok(web::Json(
        services.bridge_password_list(&who, *id, &page).await?,
    ))
}

/// Create a bridge password
///
/// A password for one legacy IMAP or SMTP client of the mailbox, with the
/// user name to log in with. The `password` is shown only in this answer
/// and stored only as an Argon2id hash.
#[utoipa::path(
    tag = "bridge", operation_id = "bridge_password_create",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    request_body = BridgePasswordCreate,
    responses(
        (status = 201, description = "Created, with its password (shown only here)", body = BridgePasswordWithSecret),
        (status = 422, description = "Invalid fields (`invalid_name`, `invalid_expiry`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/mailboxes/{id}/bridge-passwords")]
pub async fn bridge_password_create(
    Caller(who, services): Caller,
    id: web::Path<MailboxId>,
    web::Json(body): web::Json<BridgePasswordCreate>,
) -> Result<HttpResponse> {
    let created = services.bridge_password_create(&who, *id, body).await?;
    Ok(super::created(
        &format!("/mailboxes/{}/bridge-passwords", *id),
        created.bridge_password.id,
        created,
    ))
}

/// One bridge password
///
/// The one a `201 Location` names; never the password itself. A revoked
/// password is gone (404).
#[utoipa::path(
    tag = "bridge", operation_id = "bridge_password_get",
    params(
        ("id" = Uuid, Path, description = "Mailbox id"),
        ("password_id" = Uuid, Path, description = "Bridge password id"),
    ),
    responses(
        (status = 200, description = "The bridge password", body = BridgePassword),
        (status = 404, description = "No such mailbox or bridge password (or it was revoked)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/mailboxes/{id}/bridge-passwords/{password_id}")]
pub async fn bridge_password_get(
    Caller(who, services): Caller,
    path: web::Path<(MailboxId, BridgePasswordId)>,
) -> Result<web::Json<BridgePassword>> {
    let (id, password) = path.into_inner();
    Ok(web::Json(
        services.bridge_password_get(&who, id, password).await?,
    ))
}

/// Revoke a bridge password
///
/// At once: the next login with it is refused.
#[utoipa::path(
    tag = "bridge", operation_id = "bridge_password_delete",
    params(
        ("id" = Uuid, Path, description = "Mailbox id"),
        ("password_id" = Uuid, Path, description = "Bridge password id"),
    ),
    responses((status = 204, description = "Revoked")),
    security(("bearer" = []))
)]
#[delete("/mailboxes/{id}/bridge-passwords/{password_id}")]
pub async fn bridge_password_delete(
    Caller(who, services): Caller,
    path: web::Path<(MailboxId, BridgePasswordId)>,
) -> Result<HttpResponse> {
    let (id, password) = path.into_inner();
    services.bridge_password_revoke(&who, id, password).await?;
    Ok(HttpResponse::NoContent().finish())
}
