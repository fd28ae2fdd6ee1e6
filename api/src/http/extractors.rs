//! How malformed requests are answered: every extractor failure becomes a
//! problem document with a stable code instead of actix's plain-text default.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, web};

use crate::error::Error;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(json_error)
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req: &HttpRequest| {
        tracing::debug!(error = %err, "bad path");
        Error::BadRequest {
            code: "invalid_id",
            detail: "the id in the path is not a valid UUID".into(),
        }
        .into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => format!("invalid query parameters: {e}"),
            _ => "invalid query parameters".to_owned(),
        };
        Error::BadRequest {
            code: "invalid_query",
            detail,
        }
        .into()
    })
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let error = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            Error::BadRequest {
                code: "payload_too_large",
                detail: format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            }
        }
        JsonPayloadError::ContentType => Error::BadRequest {
            code: "unsupported_media_type",
            detail: "send the body as application/json".into(),
        },
        JsonPayloadError::Deserialize(e) if e.is_data() => Error::BadRequest {
            code: "invalid_body",
            detail: format!("the request body does not fit the operation: {e}"),
        },
        JsonPayloadError::Deserialize(e) => Error::BadRequest {
            code: "malformed_json",
            detail: format!("the request body is not valid JSON: {e}"),
        },
        _ => Error::BadRequest {
            code: "malformed_body",
            detail: "the request body cannot be read".into(),
        },
    };
    error.into()
}
