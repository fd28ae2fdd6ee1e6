//! Validated domain values. Each `parse` constructor is the only way in, so a
//! value of these types is known to be well-formed everywhere else.

use crate::codes::Code;

mod actor;
mod bridge_secret;
mod cloud;
mod email;
mod ids;
mod kinds;
pub(crate) mod sql;
mod typed_ids;

pub use actor::{Actor, RESERVED_ACTOR_PREFIX, RESERVED_ACTORS, is_reserved_actor};
pub use bridge_secret::{BridgeSecret, verify_nothing};
pub use cloud::{CloudEndpoints, GRAPH_PERMISSIONS, IMAP_PORT, SMTP_PORT};
pub use email::EmailAddress;
pub use ids::{ClientId, ClientSecret, DisplayName, OrgId, TenantId};
pub use kinds::{
    AccessMode, AuditAction, AuthorizationKind, Channel, CheckStepName, Cloud, CredentialType,
    DeliveryState, EventType, Language, MailboxStatus, Provider, Resource, TargetType, Transport,
};
pub use typed_ids::{
    AppCredentialId, AttemptId, AuditEventId, AuthorizationId, BridgePasswordId, DeliveryId,
    EmailAlertId, EventId, MailboxId, WebhookId,
};

/// Why a value was refused: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: Code,
    pub message: String,
}

impl Invalid {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
