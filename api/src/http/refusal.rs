//! A 403 is counted and written to the caller's organisation's audit log
//! (`request.forbidden`, target: the matched route pattern), with the method
//! and the permission the caller's roles lack.

use actix_web::HttpMessage;
use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use serde_json::json;

use crate::auth::Principal;
use crate::codes::Code;
use crate::domain::AuditAction;
use crate::error::Error;
use crate::service::Services;
use crate::service::audit::{Audit, Target};

/// Counts and audits `response` if it is a 403 (a no-op otherwise).
pub async fn forbidden(response: &ServiceResponse<BoxBody>, services: &Services) {
    let Some(Error::Forbidden { permission }) = response
        .response()
        .error()
        .and_then(|e| e.as_error::<Error>())
    else {
        return;
    };
    services.metrics.auth_refusal(Code::Forbidden.as_str());
    let request = response.request();
    let Some(who) = request.extensions().get::<Principal>().cloned() else {
        return;
    };
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let detail = json!({
        "method": request.method().as_str(),
        "permission": permission.as_str(),
    });
    let written = services
        .store
        .run(move |c| {
            Audit {
                org: &who.org,
                actor: who.actor(),
                action: AuditAction::RequestForbidden,
                target: Target::Route(route),
                outcome: Code::Forbidden,
                detail: Some(detail),
            }
            .record(c)
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot audit a forbidden request");
    }
}
