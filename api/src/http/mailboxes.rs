//! `/mailboxes`: mailboxes, their sign-in, connection check and access
//! token. Thin handlers: extract, call the use case (which authorizes),
//! answer.

use actix_web::{HttpResponse, delete, get, patch, post, web};

use crate::domain::MailboxId;
use crate::error::Result;
use crate::http::caller::Caller;
use crate::http::extractors::OptionalJson;
use crate::http::problem::RateLimited;
use crate::service::PageRequest;
use crate::service::access_token::{AccessTokenQuery, AccessTokenResponse};
use crate::service::check::CheckRequest;
use crate::service::mailboxes::{
    CheckReport, Mailbox, MailboxCreate, MailboxFilter, MailboxPage, MailboxUpdate,
};
use crate::service::signin::{RefreshRequest, RefreshResult};

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(mailbox_list)
        .service(mailbox_create)
        .service(mailbox_get)
        .service(mailbox_update)
        .service(mailbox_delete)
        .service(mailbox_refresh)
        .service(mailbox_check)
        .service(mailbox_access_token);
}

type Id = web::Path<MailboxId>;

/// List mailboxes
///
/// The organisation's mailboxes in creation order, a page at a time,
/// optionally only those in one status.
#[utoipa::path(
    tag = "mailboxes", operation_id = "mailbox_list",
    params(MailboxFilter, PageRequest),
    responses((status = 200, description = "A page of mailboxes", body = MailboxPage)),
    security(("bearer" = []))
)]
#[get("/mailboxes")]
pub async fn mailbox_list(
    Caller(who, services): Caller,
    web::Query(filter): web::Query<MailboxFilter>,
    web::Query(page): web::Query<PageRequest>,
) -> Result<web::Json<MailboxPage>> {
    Ok(web::Json(services.mailbox_list(&who, filter, page).await?))
}

/// Add a mailbox
///
/// The mailbox starts `inactive`; use refresh to authorize it.
#[utoipa::path(
    tag = "mailboxes", operation_id = "mailbox_create",
    request_body = MailboxCreate,
    responses(
        (status = 201, description = "Created", body = Mailbox),
        (status = 409, description = "The address is taken (`mailbox_exists`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/mailboxes")]
pub async fn mailbox_create(
    Caller(who, services): Caller,
    web::Json(body): web::Json<MailboxCreate>,
) -> Result<HttpResponse> {
    let created = services.mailbox_create(&who, body).await?;
    Ok(super::created("/mailboxes", created.id, created))
}

/// Get a mailbox
///
/// Its status, what to do about it, validity in days and the last check.
#[utoipa::path(
    tag = "mailboxes", operation_id = "mailbox_get",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    responses((status = 200, description = "The mailbox", body = Mailbox)),
    security(("bearer" = []))
)]
#[get("/mailboxes/{id}")]
pub async fn mailbox_get(Caller(who, services): Caller, id: Id) -> Result<web::Json<Mailbox>> {
    Ok(web::Json(services.mailbox_get(&who, *id).await?))
}

/// Update a mailbox
///
/// Changing the address, the app credential, the access mode or `shared`
/// resets the authorization: the mailbox becomes `inactive` until it signs in
/// again, and a sign-in or refresh under way for the old settings is void.
#[utoipa::path(
    tag = "mailboxes", operation_id = "mailbox_update",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    request_body = MailboxUpdate,
    responses(
        (status = 200, description = "The updated mailbox", body = Mailbox),
        (status = 409, description = "The address is taken (`mailbox_exists`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[patch("/mailboxes/{id}")]
pub async fn mailbox_update(
    Caller(who, services): Caller,
    id: Id,
    web::Json(body): web::Json<MailboxUpdate>,
) -> Result<web::Json<Mailbox>> {
    Ok(web::Json(services.mailbox_update(&who, *id, body).await?))
}

/// Delete a mailbox
///
/// Removes the mailbox and everything stored for it.
#[utoipa::path(
    tag = "mailboxes", operation_id = "mailbox_delete",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = []))
)]
#[delete("/mailboxes/{id}")]
pub async fn mailbox_delete(Caller(who, services): Caller, id: Id) -> Result<HttpResponse> {
    services.mailbox_delete(&who, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sign in (Refresh)
///
/// Delegated mailboxes: starts a sign-in and returns the Microsoft URL to open
/// (valid 10 minutes, usable once); the mailbox becomes `active` when the
/// callback completes. App-only mailboxes: obtains a client-credentials token
/// now and the mailbox becomes `active`.
#[utoipa::path(
    tag = "mailboxes", operation_id = "mailbox_refresh",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    request_body(content = Option<RefreshRequest>, description = "Optional: a return URL"),
    responses(
        (status = 200, description = "The sign-in URL, or the activated app-only mailbox", body = RefreshResult),
        (status = 409, description = "Microsoft refused (`app_credential_invalid`, `sign_in_setup`, `reauth_required`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        RateLimited,
    ),
    security(("bearer" = []))
)]
#[post("/mailboxes/{id}/refresh")]
pub async fn mailbox_refresh(
    Caller(who, services): Caller,
    id: Id,
    OptionalJson(input): OptionalJson<RefreshRequest>,
) -> Result<web::Json<RefreshResult>> {
    Ok(web::Json(services.mailbox_refresh(&who, *id, input).await?))
}

/// Check the connection
///
/// Obtains a valid token, then IMAP (connect with TLS, AUTHENTICATE XOAUTH2,
/// SELECT INBOX, LOGOUT) and SMTP (connect, EHLO, STARTTLS, AUTH XOAUTH2,
/// optionally a test message to the mailbox itself, QUIT), stopping at the
/// first failure. Each step reports its status, duration, the server's
/// answer (never the token), a stable code and what to do. The report is
/// stored as the mailbox's `last_check`. A failed check is still 200: `ok` says.
#[utoipa::path(
    tag = "mailboxes", operation_id = "mailbox_check",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    request_body(content = CheckRequest, description = "`{}` or `{\"send_test_message\": true}`"),
    responses((status = 200, description = "The step-by-step report", body = CheckReport), RateLimited),
    security(("bearer" = []))
)]
#[post("/mailboxes/{id}/check")]
pub async fn mailbox_check(
    Caller(who, services): Caller,
    id: Id,
    OptionalJson(input): OptionalJson<CheckRequest>,
) -> Result<web::Json<CheckReport>> {
    Ok(web::Json(services.mailbox_check(&who, *id, input).await?))
}

/// Get an access token
///
/// A valid access token for the mailbox (refreshed when less than 5 minutes
/// are left) and the SASL users for IMAP and SMTP; with `resource=graph`, a
/// Microsoft Graph token from the same grant. Every call is audited.
#[utoipa::path(
    tag = "mailboxes", operation_id = "mailbox_access_token",
    params(("id" = Uuid, Path, description = "Mailbox id"), AccessTokenQuery),
    responses(
        (status = 200, description = "A valid access token", body = AccessTokenResponse),
        (status = 409, description = "Not authorized (`mailbox_not_authorized`, `reauth_required`, `app_credential_invalid`), or a Graph token the app credential does not ask for (`graph_not_enabled`)", body = crate::http::problem::Problem, content_type = "application/problem+json"),
        RateLimited,
    ),
    security(("bearer" = []))
)]
#[get("/mailboxes/{id}/access-token")]
pub async fn mailbox_access_token(
    Caller(who, services): Caller,
    id: Id,
    web::Query(query): web::Query<AccessTokenQuery>,
) -> Result<HttpResponse> {
    let token = services.mailbox_access_token(&who, *id, query).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(token))
}
