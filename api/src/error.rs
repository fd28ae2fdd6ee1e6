//! The one error type of the service. Converted to RFC 9457 problem+json in
//! exactly one place ([`crate::http::problem`]); internal causes go to the log,
//! never to the client.

use crate::domain::Invalid;

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable bearer token. `code`: `missing_token` or `invalid_token`.
    #[error("{detail}")]
    Unauthorized { code: &'static str, detail: String },
    /// The caller's roles do not allow this.
    #[error("the token's roles do not allow {}", .permission.describe())]
    Forbidden { permission: crate::auth::Permission },
    /// Not found, or owned by another organisation (indistinguishable on purpose).
    #[error("no {resource} with this id")]
    NotFound { resource: &'static str },
    /// The request conflicts with stored state.
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        mailboxes: Vec<String>,
    },
    /// One or more fields are invalid.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// The request cannot be read (malformed JSON, bad id, bad query).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// The caller made too many calls of one kind (per instance); retry after
    /// `retry_after` seconds.
    #[error(
        "too many {what} by this caller: at most {rate} per caller on each instance; retry in {retry_after} s"
    )]
    RateLimited {
        what: &'static str,
        rate: String,
        retry_after: u64,
    },
    /// A dependency (the database) is not available.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, not shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        crate::store::db_error(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn not_found(resource: &'static str) -> Self {
        Self::NotFound { resource }
    }

    pub fn invalid_field(field: &str, invalid: Invalid) -> Self {
        Self::Validation(vec![FieldError {
            field: field.to_owned(),
            code: invalid.code,
            message: invalid.message,
        }])
    }
}

/// Collects field errors so a request reports all of them at once.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Records the error of `result` under `field`, returning the value if valid.
    pub fn check<T>(&mut self, field: &str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(FieldError {
                    field: field.to_owned(),
                    code: e.code,
                    message: e.message,
                });
                None
            }
        }
    }

    pub fn push(&mut self, field: &str, invalid: Invalid) {
        self.check::<()>(field, Err(invalid));
    }

    /// Fails with every recorded error, if any.
    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}
