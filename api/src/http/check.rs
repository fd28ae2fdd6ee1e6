//! `POST /mailboxes/{id}/check`: the connection check.

use actix_web::web;
use uuid::Uuid;

use crate::auth::{Permission, Principal};
use crate::error::Result;
use crate::http::extractors::OptionalJson;
use crate::http::problem::RateLimited;
use crate::limits::Limited;
use crate::service::Services;
use crate::service::check::CheckRequest;
use crate::service::mailboxes::CheckReport;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        crate::http::resource("/mailboxes/{id}/check").route(web::post().to(mailbox_check)),
    );
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
    post, path = "/mailboxes/{id}/check", tag = "mailboxes", operation_id = "mailbox_check",
    params(("id" = Uuid, Path, description = "Mailbox id")),
    request_body(content = CheckRequest, description = "`{}` or `{\"send_test_message\": true}`"),
    responses((status = 200, description = "The step-by-step report", body = CheckReport), RateLimited),
    security(("bearer" = []))
)]
pub async fn mailbox_check(
    principal: Principal,
    services: web::Data<Services>,
    id: web::Path<Uuid>,
    OptionalJson(input): OptionalJson<CheckRequest>,
) -> Result<web::Json<CheckReport>> {
    principal.require(Permission::MailboxesWrite)?;
    let class = if input.send_test_message {
        Limited::CheckSend
    } else {
        Limited::Check
    };
    services.limits.check(&principal, class)?;
    Ok(web::Json(
        services
            .mailbox_check(&principal, id.into_inner(), input)
            .await?,
    ))
}
