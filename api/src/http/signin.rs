//! Sign-in, tokens, app-credential set-up and the audit log: thin handlers.

use actix_web::web;
use uuid::Uuid;

use crate::auth::{Permission, Principal};
use crate::error::Result;
use crate::http::extractors::OptionalJson;
use crate::http::problem::RateLimited;
use crate::limits::Limited;
use crate::service::audit::AuditEventPage;
use crate::service::keeper::AccessTokenResponse;
use crate::service::setup::{
    AdminConsentLink, AdminConsentRequest, AppCredentialSetup, VerifyResult,
};
use crate::service::signin::{RefreshRequest, RefreshResult};
use crate::service::{PageRequest, Services};

pub fn routes(cfg: &mut web::ServiceConfig) {
    use crate::http::resource;
    cfg.service(resource("/mailboxes/{id}/refresh").route(web::post().to(mailbox_refresh)))
        .service(
            resource("/mailboxes/{id}/access-token").route(web::get().to(mailbox_access_token)),
        )
        .service(
            resource("/app-credentials/{id}/verify").route(web::post().to(app_credential_verify)),
        )
        .service(resource("/app-credentials/{id}/setup").route(web::get().to(app_credential_setup)))
        .service(
            resource("/app-credentials/{id}/admin-consent")
                .route(web::post().to(app_credential_admin_consent)),
        )
        .service(resource("/audit-events").route(web::get().to(audit_event_list)));
}

/// Sign in (Refresh)
///
/// Delegated mailboxes: starts a sign-in and returns the Microsoft URL to open
/// (valid 10 minutes, usable once); the mailbox becomes `active` when the
/// callback completes. App-only mailboxes: obtains a client-credentials token
/// now and the mailbox becomes `active`.
#[utoipa::path(
    post, path = "/mailboxes/{id}/refresh", tag = "mailboxes", operation_id = "mailbox_refresh",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    request_body(content = Option<RefreshRequest>, description = "Optional: a return URL"),
    responses(
        (status = 200, description = "The sign-in URL, or the activated app-only mailbox", body = RefreshResult),
        (status = 409, description = "Microsoft refused (`app_credential_invalid`, `sign_in_setup`, `reauth_required`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        RateLimited,
    ),
    security(("bearer" = []))
)]
pub async fn mailbox_refresh(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
    OptionalJson(input): OptionalJson<RefreshRequest>,
) -> Result<web::Json<RefreshResult>> {
    principal.require(Permission::MailboxesWrite)?;
    services.limits.check(&principal, Limited::Refresh)?;
    Ok(web::Json(
        services
            .mailbox_refresh(&principal, id.into_inner(), input)
            .await?,
    ))
}

/// Get an access token
///
/// A valid access token for the mailbox (refreshed when less than 5 minutes
/// are left) and the SASL users for IMAP and SMTP. Every call is audited.
#[utoipa::path(
    get, path = "/mailboxes/{id}/access-token", tag = "mailboxes", operation_id = "mailbox_access_token",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    responses(
        (status = 200, description = "A valid access token", body = AccessTokenResponse),
        (status = 409, description = "Not authorized (`mailbox_not_authorized`, `reauth_required`, `app_credential_invalid`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        RateLimited,
    ),
    security(("bearer" = []))
)]
pub async fn mailbox_access_token(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
) -> Result<actix_web::HttpResponse> {
    principal.require(Permission::AccessTokens)?;
    services.limits.check(&principal, Limited::AccessToken)?;
    let token = services
        .access_token_issue(&principal, id.into_inner())
        .await?;
    Ok(actix_web::HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(token))
}

/// Verify an app credential
///
/// Asks Microsoft for a client-credentials token to prove the client id,
/// tenant and secret; explains what is wrong otherwise (e.g. the Secret ID was
/// pasted instead of the Value, the secret expired, the app is not in the tenant).
#[utoipa::path(
    post, path = "/app-credentials/{id}/verify", tag = "app-credentials", operation_id = "app_credential_verify",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses((status = 200, description = "The verification result", body = VerifyResult), RateLimited),
    security(("bearer" = []))
)]
pub async fn app_credential_verify(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
) -> Result<web::Json<VerifyResult>> {
    principal.require(Permission::AppCredentialsWrite)?;
    services.limits.check(&principal, Limited::Verify)?;
    Ok(web::Json(
        services
            .app_credential_verify(&principal, id.into_inner())
            .await?,
    ))
}

/// Set-up instructions for an app credential
///
/// The redirect URI to register, the permissions to add, where admin consent
/// stands, and for app-only mailboxes the Exchange PowerShell commands.
/// Reading it changes nothing; an admin gets a consent link from
/// `app_credential_admin_consent`.
#[utoipa::path(
    get, path = "/app-credentials/{id}/setup", tag = "app-credentials", operation_id = "app_credential_setup",
    params(("id" = Uuid, Path, description = "App credential id")),
    responses((status = 200, description = "What to set up in Entra ID and Exchange", body = AppCredentialSetup), RateLimited),
    security(("bearer" = []))
)]
pub async fn app_credential_setup(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AppCredentialSetup>> {
    principal.require(Permission::AppCredentialsRead)?;
    services.limits.check(&principal, Limited::Setup)?;
    Ok(web::Json(
        services
            .app_credential_setup(&principal, id.into_inner())
            .await?,
    ))
}

/// Start an admin consent
///
/// Mints an admin-consent link (valid 10 minutes, usable once) for a tenant
/// administrator to open; audited. Microsoft sends the browser back to the
/// callback, which records the consent as `reported` when it names the app
/// credential's tenant; `app_credential_verify` confirms it (`established`).
#[utoipa::path(
    post, path = "/app-credentials/{id}/admin-consent", tag = "app-credentials", operation_id = "app_credential_admin_consent",
    params(("id" = Uuid, Path, description = "App credential id")),
    request_body(content = Option<AdminConsentRequest>, description = "Optional: a return URL"),
    responses(
        (status = 200, description = "The admin-consent link", body = AdminConsentLink),
        crate::http::problem::RateLimited,
    ),
    security(("bearer" = []))
)]
pub async fn app_credential_admin_consent(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
    OptionalJson(input): OptionalJson<AdminConsentRequest>,
) -> Result<web::Json<AdminConsentLink>> {
    principal.require(Permission::AppCredentialsWrite)?;
    services.limits.check(&principal, Limited::AdminConsent)?;
    Ok(web::Json(
        services
            .app_credential_admin_consent(&principal, id.into_inner(), input)
            .await?,
    ))
}

/// List audit events
///
/// Newest first: credential and mailbox changes, sign-ins and their outcomes,
/// tokens handed out.
#[utoipa::path(
    get, path = "/audit-events", tag = "audit", operation_id = "audit_event_list",
    params(PageRequest),
    responses((status = 200, description = "A page of audit events", body = AuditEventPage)),
    security(("bearer" = []))
)]
pub async fn audit_event_list(
    principal: Principal,
    services: web::Data<Services>,
    page: web::Query<PageRequest>,
) -> Result<web::Json<AuditEventPage>> {
    let org = principal.require(Permission::AuditRead)?;
    Ok(web::Json(
        services.audit_list(org, page.into_inner()).await?,
    ))
}
