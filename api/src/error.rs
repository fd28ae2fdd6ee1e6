//! The one error type of the service. Converted to RFC 9457 problem+json in
//! exactly one place ([`crate::http::problem`]); internal causes go to the log,
//! never to the client.

use crate::codes::Code;
use crate::domain::Invalid;
use crate::store::StoreError;

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: Code,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is refused with `code` (its row in [`crate::codes`] gives
    /// the HTTP status): a token that does not verify, a request that cannot
    /// be read, a conflict with stored state.
    #[error("{detail}")]
    Refused {
        code: Code,
        detail: String,
        /// The mailboxes concerned (conflicts), shown to the client.
        mailboxes: Vec<String>,
    },
    /// The caller's roles do not allow this.
    #[error("the token's roles do not allow {}", .permission.describe())]
    Forbidden { permission: crate::auth::Permission },
    /// Not found, or owned by another organisation (indistinguishable on purpose).
    #[error("no {resource} with this id")]
    NotFound { resource: &'static str },
    /// One or more fields are invalid.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
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
    /// A dependency (the database, Microsoft after its retries) is not available.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, not shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How the store's errors reach the API: not found and unavailable as they
/// are; a constraint a use case did not match first, or anything else, is a
/// bug (500, logged).
impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Error::NotFound { resource: what },
            StoreError::Unavailable => Error::Unavailable("the database is not available".into()),
            StoreError::Full => {
                tracing::error!("the database's disk is full: writes fail until there is space");
                Error::Unavailable(
                    "the database's disk is full: nothing was written; try again later".into(),
                )
            }
            StoreError::Unique | StoreError::ForeignKey => Error::Internal(
                anyhow::Error::new(e).context("a constraint the use case did not expect"),
            ),
            StoreError::Other(cause) => Error::Internal(cause),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn not_found(resource: &'static str) -> Self {
        Self::NotFound { resource }
    }

    /// A refusal with `code` and what went wrong in this case.
    pub fn refused(code: Code, detail: impl Into<String>) -> Self {
        Self::Refused {
            code,
            detail: detail.into(),
            mailboxes: Vec::new(),
        }
    }

    /// The code a client sees.
    pub fn code(&self) -> Code {
        match self {
            Error::Refused { code, .. } => *code,
            Error::Forbidden { .. } => Code::Forbidden,
            Error::NotFound { .. } => Code::NotFound,
            Error::Validation(_) => Code::ValidationFailed,
            Error::RateLimited { .. } => Code::RateLimited,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
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
