//! `/app-credentials`: thin handlers (authorize, call the service, answer).

use actix_web::{HttpResponse, web};
use uuid::Uuid;

use crate::auth::{Permission, Principal};
use crate::error::Result;
use crate::service::app_credentials::{
    AppCredential, AppCredentialCreate, AppCredentialPage, AppCredentialUpdate,
};
use crate::service::{PageRequest, Services};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        crate::http::resource("/app-credentials")
            .route(web::get().to(app_credential_list))
            .route(web::post().to(app_credential_create)),
    )
    .service(
        crate::http::resource("/app-credentials/{id}")
            .route(web::get().to(app_credential_get))
            .route(web::patch().to(app_credential_update))
            .route(web::delete().to(app_credential_delete)),
    );
}

/// List app credentials
///
/// The organisation's app credentials in creation order, a page at a time.
#[utoipa::path(
    get, path = "/app-credentials", tag = "app-credentials", operation_id = "app_credential_list",
    params(PageRequest),
    responses((status = 200, description = "A page of app credentials", body = AppCredentialPage)),
    security(("bearer" = []))
)]
pub async fn app_credential_list(
    principal: Principal,
    services: web::Data<Services>,
    page: web::Query<PageRequest>,
) -> Result<web::Json<AppCredentialPage>> {
    let org = principal.require(Permission::AppCredentialsRead)?;
    Ok(web::Json(
        services.app_credential_list(org, page.into_inner()).await?,
    ))
}

/// Create an app credential
///
/// Stores an Entra ID app registration. The client secret is encrypted at rest
/// and never returned; `secret_hint` shows its last characters.
#[utoipa::path(
    post, path = "/app-credentials", tag = "app-credentials", operation_id = "app_credential_create",
    request_body = AppCredentialCreate,
    responses((status = 201, description = "Created", body = AppCredential)),
    security(("bearer" = []))
)]
pub async fn app_credential_create(
    principal: Principal,
    services: web::Data<Services>,
    body: web::Json<AppCredentialCreate>,
) -> Result<HttpResponse> {
    principal.require(Permission::AppCredentialsWrite)?;
    let created = services
        .app_credential_create(&principal, body.into_inner())
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/app-credentials/{}", created.id)))
        .json(created))
}

/// Get an app credential
#[utoipa::path(
    get, path = "/app-credentials/{id}", tag = "app-credentials", operation_id = "app_credential_get",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses((status = 200, description = "The app credential", body = AppCredential)),
    security(("bearer" = []))
)]
pub async fn app_credential_get(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AppCredential>> {
    let org = principal.require(Permission::AppCredentialsRead)?;
    Ok(web::Json(
        services.app_credential_get(org, id.into_inner()).await?,
    ))
}

/// Update an app credential
///
/// Changes the given fields. A new `client_secret` replaces the stored one.
#[utoipa::path(
    patch, path = "/app-credentials/{id}", tag = "app-credentials", operation_id = "app_credential_update",
    params(("id" = Uuid, Path, description = "App credential id")),
    request_body = AppCredentialUpdate,
    responses((status = 200, description = "The updated app credential", body = AppCredential)),
    security(("bearer" = []))
)]
pub async fn app_credential_update(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
    body: web::Json<AppCredentialUpdate>,
) -> Result<web::Json<AppCredential>> {
    principal.require(Permission::AppCredentialsWrite)?;
    let (id, input) = (id.into_inner(), body.into_inner());
    Ok(web::Json(
        services
            .app_credential_update(&principal, id, input)
            .await?,
    ))
}

/// Delete an app credential
///
/// Refused with 409 `app_credential_in_use` while mailboxes use it; the
/// problem lists them in `mailboxes`.
#[utoipa::path(
    delete, path = "/app-credentials/{id}", tag = "app-credentials", operation_id = "app_credential_delete",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Mailboxes still use it (`app_credential_in_use`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn app_credential_delete(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse> {
    principal.require(Permission::AppCredentialsWrite)?;
    services
        .app_credential_delete(&principal, id.into_inner())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
