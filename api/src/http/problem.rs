//! RFC 9457 problem details: the one place where [`Error`] becomes HTTP.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::codes::Code;
use crate::error::Error;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error, as RFC 9457 problem details with a stable machine `code`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:inboxlink:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem class.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Stable machine-readable code, e.g. `not_found`, `validation_failed`, `invalid_token`.
    pub code: String,
    /// What went wrong in this case, for people.
    pub detail: String,
    /// The invalid fields, for `validation_failed`; empty otherwise.
    pub errors: Vec<ProblemField>,
    /// The mailboxes concerned, for conflicts; empty otherwise.
    pub mailboxes: Vec<String>,
}

/// One invalid field of a request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProblemField {
    /// The field name, as in the request body or query.
    pub field: String,
    pub code: String,
    pub message: String,
}

impl Error {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The problem document a client sees.
    pub fn to_problem(&self) -> Problem {
        let (status, code) = (self.status(), self.code().as_str());
        let detail = match self {
            Error::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        Problem {
            type_: format!("urn:inboxlink:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail,
            errors: match self {
                Error::Validation(fields) => fields
                    .iter()
                    .map(|f| ProblemField {
                        field: f.field.clone(),
                        code: f.code.as_str().to_owned(),
                        message: f.message.clone(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
            mailboxes: match self {
                Error::Refused { mailboxes, .. } => mailboxes.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Error::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            Error::Unavailable(what) => tracing::warn!(error = %what, "dependency unavailable"),
            other => tracing::info!(code = other.code().as_str(), "request refused"),
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)));
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        match self.code() {
            Code::InvalidToken => response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            )),
            Code::MissingToken => response
                .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))),
            _ => &mut response,
        };
        if let Error::RateLimited { retry_after, .. } = self {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        response.json(self.to_problem())
    }
}

/// The refusal of a rate-limited operation ([`crate::limits`]), for the spec:
/// `responses(..., RateLimited)`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 429,
    description = "Too many calls of this kind by this caller (`rate_limited`); the limits are per instance (README, Security)",
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before the next call (whole seconds, rounded up)"))
)]
pub struct RateLimited(#[allow(dead_code)] Problem);
