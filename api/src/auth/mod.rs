//! Who is calling and what they may do: JWT bearer tokens ([`jwt`]), the
//! caller ([`Principal`]) and the role -> permission table ([`Permission`]).

mod cache;
mod extract;
mod jwks;
pub mod jwt;
pub mod mint;

use crate::domain::{Actor, OrgId};
use crate::error::Error;

pub use jwks::JwksRefresh;
pub use jwt::Verifier;

/// The service's own audit actors, which no caller's `sub` may name.
pub use crate::domain::{RESERVED_ACTOR_PREFIX, RESERVED_ACTORS, is_reserved_actor};

/// A role named in the token's roles claim. Unknown role names are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Operator,
    Viewer,
    Service,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Viewer, Role::Service];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "admin" => Some(Self::Admin),
            "operator" => Some(Self::Operator),
            "viewer" => Some(Self::Viewer),
            "service" => Some(Self::Service),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Viewer => "viewer",
            Self::Service => "service",
        }
    }
}

/// Everything an operation can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    AppCredentialsRead,
    AppCredentialsWrite,
    MailboxesRead,
    MailboxesWrite,
    MailboxesDelete,
    AccessTokens,
    AuditRead,
    /// The event feed.
    EventsRead,
    /// Webhooks and e-mail alerts.
    NotificationsWrite,
    /// Creating, listing and revoking a mailbox's bridge passwords.
    BridgePasswords,
    /// The bridge's listeners and certificate fingerprint.
    BridgeRead,
}

impl Permission {
    /// The role table of the README ("Roles").
    pub fn granted_to(self, role: Role) -> bool {
        use Permission::*;
        match role {
            Role::Admin => true,
            Role::Operator => matches!(
                self,
                AppCredentialsRead
                    | MailboxesRead
                    | MailboxesWrite
                    | EventsRead
                    | BridgePasswords
                    | BridgeRead
            ),
            Role::Viewer => matches!(
                self,
                AppCredentialsRead | MailboxesRead | EventsRead | BridgeRead
            ),
            Role::Service => matches!(self, MailboxesRead | AccessTokens | EventsRead | BridgeRead),
        }
    }

    /// Its stable name (in the audit log).
    pub fn as_str(self) -> &'static str {
        use Permission::*;
        match self {
            AppCredentialsRead => "app_credentials.read",
            AppCredentialsWrite => "app_credentials.write",
            MailboxesRead => "mailboxes.read",
            MailboxesWrite => "mailboxes.write",
            MailboxesDelete => "mailboxes.delete",
            AccessTokens => "access_tokens",
            AuditRead => "audit.read",
            EventsRead => "events.read",
            NotificationsWrite => "notifications.write",
            BridgePasswords => "bridge_passwords",
            BridgeRead => "bridge.read",
        }
    }

    /// What it allows, for people.
    pub fn describe(self) -> &'static str {
        use Permission::*;
        match self {
            AppCredentialsRead => "reading app credentials",
            AppCredentialsWrite => "changing app credentials",
            MailboxesRead => "reading mailboxes",
            MailboxesWrite => "changing mailboxes",
            MailboxesDelete => "deleting mailboxes",
            AccessTokens => "obtaining access tokens",
            AuditRead => "reading the audit log",
            EventsRead => "reading the event feed",
            NotificationsWrite => "managing webhooks and e-mail alerts",
            BridgePasswords => "managing bridge passwords",
            BridgeRead => "reading the bridge's settings",
        }
    }
}

/// The authenticated caller: who (`sub`), for which organisation, with which roles.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub org: OrgId,
    pub roles: Vec<Role>,
}

impl Principal {
    /// Fails with 403 unless one of the caller's roles grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<&OrgId, Error> {
        if self.roles.iter().any(|r| permission.granted_to(*r)) {
            Ok(&self.org)
        } else {
            Err(Error::Forbidden { permission })
        }
    }

    /// The caller as the audit log names it.
    pub fn actor(&self) -> Actor {
        Actor::Caller(self.subject.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_actors() {
        for name in [
            "microsoft",
            "Inboxlink",
            "BROWSER",
            "keepalive",
            "system",
            "system:keeper",
            "SyStEm:",
        ] {
            assert!(is_reserved_actor(name), "{name}");
        }
        for name in ["", "systems", "system-x", "microsoft.com", "ž", "sys"] {
            assert!(!is_reserved_actor(name), "{name}");
        }
    }

    #[test]
    fn role_table() {
        use Permission::*;
        let can = |r, p: Permission| p.granted_to(r);
        assert!(can(Role::Operator, MailboxesWrite) && !can(Role::Operator, MailboxesDelete));
        assert!(
            can(Role::Operator, AppCredentialsRead) && !can(Role::Operator, AppCredentialsWrite)
        );
        assert!(can(Role::Viewer, MailboxesRead) && !can(Role::Viewer, MailboxesWrite));
        assert!(can(Role::Service, MailboxesRead) && !can(Role::Service, AppCredentialsRead));
        for p in [
            AppCredentialsRead,
            AppCredentialsWrite,
            MailboxesRead,
            MailboxesWrite,
            MailboxesDelete,
        ] {
            assert!(can(Role::Admin, p));
        }
    }
}
