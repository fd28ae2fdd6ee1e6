//! Validated domain values. Each `parse` constructor is the only way in, so a
//! value of these types is known to be well-formed everywhere else.

mod email;
mod ids;
mod kinds;

pub use email::EmailAddress;
pub use ids::{ClientId, ClientSecret, DisplayName, OrgId, TenantId};
pub use kinds::{AccessMode, MailboxStatus, Provider};

/// Why a value was refused: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
