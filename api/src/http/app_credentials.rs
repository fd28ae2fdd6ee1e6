//! `/app-credentials`: the Entra ID app registrations, their verification,
//! set-up view and admin consent. Thin handlers: extract, call the use case
//! (which authorizes), answer.

use actix_web::{HttpResponse, delete, get, patch, post, web};

use crate::domain::AppCredentialId;
use crate::error::Result;
use crate::http::caller::Caller;
use crate::http::extractors::OptionalJson;
use crate::http::problem::RateLimited;
use crate::service::PageRequest;
use crate::service::app_credentials::{
    AppCredential, AppCredentialCreate, AppCredentialPage, AppCredentialUpdate, CertificateCreated,
};
use crate::service::consent::{AdminConsentLink, AdminConsentRequest};
use crate::service::setup::{AppCredentialSetup, VerifyResult};

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(app_credential_list)
        .service(app_credential_create)
        .service(app_credential_get)
        .service(app_credential_update)
        .service(app_credential_delete)
        .service(app_credential_verify)
        .service(app_credential_setup)
        .service(app_credential_certificate)
        .service(app_credential_admin_consent);
}

type Id = web::Path<AppCredentialId>;

/// List app credentials
///
/// The organisation's app credentials in creation order, a page at a time.
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_list",
    params(PageRequest),
    responses((status = 200, description = "A page of app credentials", body = AppCredentialPage)),
    security(("bearer" = []))
)]
#[get("/app-credentials")]
pub async fn app_credential_list(
    Caller(who, services): Caller,
    web::Query(page): web::Query<PageRequest>,
) -> Result<web::Json<AppCredentialPage>> {
    Ok(web::Json(services.app_credential_list(&who, page).await?))
}

/// Create an app credential
///
/// Stores an Entra ID app registration. The client secret is encrypted at rest
/// and never returned; `secret_hint` shows its last characters.
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_create",
    request_body = AppCredentialCreate,
    responses((status = 201, description = "Created", body = AppCredential)),
    security(("bearer" = []))
)]
#[post("/app-credentials")]
pub async fn app_credential_create(
    Caller(who, services): Caller,
    web::Json(body): web::Json<AppCredentialCreate>,
) -> Result<HttpResponse> {
    let created = services.app_credential_create(&who, body).await?;
    Ok(super::created("/app-credentials", created.id, created))
}

/// Get an app credential
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_get",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses((status = 200, description = "The app credential", body = AppCredential)),
    security(("bearer" = []))
)]
#[get("/app-credentials/{id}")]
pub async fn app_credential_get(
    Caller(who, services): Caller,
    id: Id,
) -> Result<web::Json<AppCredential>> {
    Ok(web::Json(services.app_credential_get(&who, *id).await?))
}

/// Update an app credential
///
/// Changes the given fields. A new `client_secret` replaces the stored one.
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_update",
    params(("id" = Uuid, Path, description = "App credential id")),
    request_body = AppCredentialUpdate,
    responses((status = 200, description = "The updated app credential", body = AppCredential)),
    security(("bearer" = []))
)]
#[patch("/app-credentials/{id}")]
pub async fn app_credential_update(
    Caller(who, services): Caller,
    id: Id,
    web::Json(body): web::Json<AppCredentialUpdate>,
) -> Result<web::Json<AppCredential>> {
    Ok(web::Json(
        services.app_credential_update(&who, *id, body).await?,
    ))
}

/// Delete an app credential
///
/// Refused with 409 `app_credential_in_use` while mailboxes use it; the
/// problem lists them in `mailboxes`.
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_delete",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Mailboxes still use it (`app_credential_in_use`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/app-credentials/{id}")]
pub async fn app_credential_delete(Caller(who, services): Caller, id: Id) -> Result<HttpResponse> {
    services.app_credential_delete(&who, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Verify an app credential
///
/// Asks Microsoft for a client-credentials token to prove the client id,
/// tenant and secret; explains what is wrong otherwise (e.g. the Secret ID was
/// pasted instead of the Value, the secret expired, the app is not in the tenant).
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_verify",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses((status = 200, description = "The verification result", body = VerifyResult), RateLimited),
    security(("bearer" = []))
)]
#[post("/app-credentials/{id}/verify")]
pub async fn app_credential_verify(
    Caller(who, services): Caller,
    id: Id,
) -> Result<web::Json<VerifyResult>> {
    Ok(web::Json(services.app_credential_verify(&who, *id).await?))
}

/// Make a certificate for an app credential
///
/// For an app credential of type `certificate`: makes an RSA 2048 key pair
/// and a self-signed certificate valid for a year. The private key stays in
/// Inboxlink, sealed like a secret; upload `certificate_pem` to the app
/// registration under *Certificates & secrets* > *Certificates*. Token
/// requests sign their client assertion with it from now on; pending
/// sign-ins and consent links end. Audited.
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_certificate",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses(
        (status = 201, description = "The certificate to upload", body = CertificateCreated),
        (status = 422, description = "The app credential is not of type `certificate` (`invalid_certificate`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/app-credentials/{id}/certificate")]
pub async fn app_credential_certificate(
    Caller(who, services): Caller,
    id: Id,
) -> Result<HttpResponse> {
    let created = services.app_credential_certificate(&who, *id).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Set-up instructions for an app credential
///
/// The redirect URI to register, the permissions to add, where admin consent
/// stands, and for app-only mailboxes the Exchange PowerShell commands.
/// Reading it changes nothing; an admin gets a consent link from
/// `app_credential_admin_consent`.
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_setup",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses((status = 200, description = "What to set up in Entra ID and Exchange", body = AppCredentialSetup), RateLimited),
    security(("bearer" = []))
)]
#[get("/app-credentials/{id}/setup")]
pub async fn app_credential_setup(
    Caller(who, services): Caller,
    id: Id,
) -> Result<web::Json<AppCredentialSetup>> {
    Ok(web::Json(services.app_credential_setup(&who, *id).await?))
}

/// Start an admin consent
///
/// Mints an admin-consent link (valid 10 minutes, usable once) for a tenant
/// administrator to open; audited. Microsoft sends the browser back to the
/// callback, which records the consent as `reported` when it names the app
/// credential's tenant; `app_credential_verify` confirms it (`established`).
#[utoipa::path(
    tag = "app-credentials", operation_id = "app_credential_admin_consent",
    params(("id" = Uuid, Path, description = "App credential id")),
    request_body(content = Option<AdminConsentRequest>, description = "Optional: a return URL"),
    responses(
        (status = 200, description = "The admin-consent link", body = AdminConsentLink),
        crate::http::problem::RateLimited,
    ),
    security(("bearer" = []))
)]
#[post("/app-credentials/{id}/admin-consent")]
pub async fn app_credential_admin_consent(
    Caller(who, services): Caller,
    id: Id,
    OptionalJson(input): OptionalJson<AdminConsentRequest>,
) -> Result<web::Json<AdminConsentLink>> {
    Ok(web::Json(
        services
            .app_credential_admin_consent(&who, *id, input)
            .await?,
    ))
}
