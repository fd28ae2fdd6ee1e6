//! `/mailboxes`: thin handlers (authorize, call the service, answer).

use actix_web::{HttpResponse, web};
use uuid::Uuid;

use crate::auth::{Permission, Principal};
use crate::error::Result;
use crate::service::mailboxes::{
    Mailbox, MailboxCreate, MailboxFilter, MailboxPage, MailboxUpdate,
};
use crate::service::{PageRequest, Services};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        crate::http::resource("/mailboxes")
            .route(web::get().to(mailbox_list))
            .route(web::post().to(mailbox_create)),
    )
    .service(
        crate::http::resource("/mailboxes/{id}")
            .route(web::get().to(mailbox_get))
            .route(web::patch().to(mailbox_update))
            .route(web::delete().to(mailbox_delete)),
    );
}

/// List mailboxes
///
/// The organisation's mailboxes in creation order, a page at a time,
/// optionally only those in one status.
#[utoipa::path(
    get, path = "/mailboxes", tag = "mailboxes", operation_id = "mailbox_list",
    params(MailboxFilter, PageRequest),
    responses((status = 200, description = "A page of mailboxes", body = MailboxPage)),
    security(("bearer" = []))
)]
pub async fn mailbox_list(
    principal: Principal,
    services: web::Data<Services>,
    filter: web::Query<MailboxFilter>,
    page: web::Query<PageRequest>,
) -> Result<web::Json<MailboxPage>> {
    let org = principal.require(Permission::MailboxesRead)?;
    Ok(web::Json(
        services
            .mailbox_list(org, filter.into_inner(), page.into_inner())
            .await?,
    ))
}

/// Add a mailbox
///
/// The mailbox starts `inactive`; use refresh to authorize it.
#[utoipa::path(
    post, path = "/mailboxes", tag = "mailboxes", operation_id = "mailbox_create",
    request_body = MailboxCreate,
    responses(
        (status = 201, description = "Created", body = Mailbox),
        (status = 409, description = "The address is taken (`mailbox_exists`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn mailbox_create(
    principal: Principal,
    services: web::Data<Services>,
    body: web::Json<MailboxCreate>,
) -> Result<HttpResponse> {
    principal.require(Permission::MailboxesWrite)?;
    let created = services
        .mailbox_create(&principal, body.into_inner())
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/mailboxes/{}", created.id)))
        .json(created))
}

/// Get a mailbox
///
/// Its status, what to do about it, validity in days and the last check.
#[utoipa::path(
    get, path = "/mailboxes/{id}", tag = "mailboxes", operation_id = "mailbox_get",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    responses((status = 200, description = "The mailbox", body = Mailbox)),
    security(("bearer" = []))
)]
pub async fn mailbox_get(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Mailbox>> {
    let org = principal.require(Permission::MailboxesRead)?;
    Ok(web::Json(services.mailbox_get(org, id.into_inner()).await?))
}

/// Update a mailbox
///
/// Changing the address, the app credential, the access mode or `shared`
/// resets the authorization: the mailbox becomes `inactive` until it signs in
/// again, and a sign-in or refresh under way for the old settings is void.
#[utoipa::path(
    patch, path = "/mailboxes/{id}", tag = "mailboxes", operation_id = "mailbox_update",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    request_body = MailboxUpdate,
    responses(
        (status = 200, description = "The updated mailbox", body = Mailbox),
        (status = 409, description = "The address is taken (`mailbox_exists`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn mailbox_update(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
    body: web::Json<MailboxUpdate>,
) -> Result<web::Json<Mailbox>> {
    principal.require(Permission::MailboxesWrite)?;
    let (id, input) = (id.into_inner(), body.into_inner());
    Ok(web::Json(
        services.mailbox_update(&principal, id, input).await?,
    ))
}

/// Delete a mailbox
///
/// Removes the mailbox and everything stored for it.
#[utoipa::path(
    delete, path = "/mailboxes/{id}", tag = "mailboxes", operation_id = "mailbox_delete",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
pub async fn mailbox_delete(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse> {
    principal.require(Permission::MailboxesDelete)?;
    services.mailbox_delete(&principal, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
