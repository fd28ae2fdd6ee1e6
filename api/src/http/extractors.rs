//! How malformed requests are answered: every extractor failure becomes a
//! problem document with a stable code instead of actix's plain-text default.

use crate::codes::Code;
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
        Error::refused(Code::InvalidId, "the id in the path is not a valid UUID").into()
    })
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req: &HttpRequest| {
        let detail = match &err {
            QueryPayloadError::Deserialize(e) => format!("invalid query parameters: {e}"),
            _ => "invalid query parameters".to_owned(),
        };
        Error::refused(Code::InvalidQuery, detail).into()
    })
}

fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let error = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            Error::refused(
                Code::PayloadTooLarge,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
        JsonPayloadError::ContentType => Error::refused(
            Code::UnsupportedMediaType,
            "send the body as application/json",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => Error::refused(
            Code::InvalidBody,
            format!("the request body does not fit the operation: {e}"),
        ),
        JsonPayloadError::Deserialize(e) => Error::refused(
            Code::MalformedJson,
            format!("the request body is not valid JSON: {e}"),
        ),
        _ => Error::refused(Code::MalformedBody, "the request body cannot be read"),
    };
    error.into()
}

/// A JSON body that may be left out: no body at all means `T::default()`;
/// a body that is there must be valid JSON of the right shape, and its
/// errors are answered like those of [`web::Json`] (never silently dropped).
pub struct OptionalJson<T>(pub T);

impl<T> actix_web::FromRequest for OptionalJson<T>
where
    T: serde::de::DeserializeOwned + Default + 'static,
{
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        if has_no_body(req) {
            return Box::pin(async { Ok(OptionalJson(T::default())) });
        }
        let json = web::Json::<T>::from_request(req, payload);
        Box::pin(async move { Ok(OptionalJson(json.await?.into_inner())) })
    }
}

/// No `Content-Length` (or 0) and no chunked transfer: the request has no body.
fn has_no_body(req: &HttpRequest) -> bool {
    use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    let headers = req.headers();
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n == 0,
        None => !headers.contains_key(TRANSFER_ENCODING),
    }
}
