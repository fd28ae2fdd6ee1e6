//! The closed sets of the domain: statuses, access modes, audit actions and
//! actors, check steps. Each is an enum with one stable name per variant,
//! the same in JSON and in its TEXT column ([`super::sql`]); the name is
//! written nowhere else.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sql::text_column;

/// Declares one of the domain's enums: the variants with their stable names
/// (`as_str`, `parse`, `ALL`, `Display`) and its TEXT column. Every enum is
/// `Debug, Clone, Copy, PartialEq, Eq` and a diesel `Text` expression; the
/// attributes written before `enum` add what that enum needs (serde, the
/// schema, `Default`, `Hash`).
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $ty {
            $($(#[$vmeta])* $variant),+
        }

        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        text_column!($ty);
    };
}

named! {
    /// The identity provider an app credential belongs to.
    #[derive(Serialize, Deserialize, ToSchema, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum Provider {
        #[default]
        Microsoft => "microsoft",
    }
}

named! {
    /// How a mailbox is accessed.
    ///
    /// `delegated`: a user signs in once and the service keeps the refresh token
    /// alive (offline access; "permanent access"). `app_only`: client credentials
    /// with `IMAP.AccessAsApp` / `SMTP.SendAsApp`, no sign-in.
    #[derive(Serialize, Deserialize, ToSchema, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum AccessMode {
        #[default]
        Delegated => "delegated",
        AppOnly => "app_only",
    }
}

named! {
    /// Where a mailbox stands.
    #[derive(Hash, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum MailboxStatus {
        /// Not authorized yet (or its authorization was reset).
        Inactive => "inactive",
        /// Authorized; tokens are kept fresh.
        Active => "active",
        /// Authorized, but the refresh token ends soon: sign in again. Shown,
        /// never stored: a stored `active` delegated mailbox whose refresh token
        /// is old enough is shown as `expiring`.
        Expiring => "expiring",
        /// The authorization is no longer usable: sign in again.
        ReauthRequired => "reauth_required",
        /// Something else is wrong; `status_detail` says what.
        Error => "error",
    }
}

named! {
    /// A pending authorization: a sign-in, or an admin-consent link.
    pub enum AuthorizationKind {
        SignIn => "sign_in",
        AdminConsent => "admin_consent",
    }
}

named! {
    /// What an audit row records.
    pub enum AuditAction {
        AppCredentialCreated => "app_credential.created",
        AppCredentialUpdated => "app_credential.updated",
        AppCredentialDeleted => "app_credential.deleted",
        AppCredentialVerified => "app_credential.verified",
        AdminConsentStarted => "app_credential.admin_consent_started",
        AdminConsentAnswered => "app_credential.admin_consent",
        MailboxCreated => "mailbox.created",
        MailboxUpdated => "mailbox.updated",
        MailboxDeleted => "mailbox.deleted",
        SignInStarted => "mailbox.sign_in_started",
        SignedIn => "mailbox.signed_in",
        SignInFailed => "mailbox.sign_in_failed",
        AppOnlyTokenObtained => "mailbox.app_only_token_obtained",
        AppOnlyTokenFailed => "mailbox.app_only_token_failed",
        TokenRefreshFailed => "mailbox.token_refresh_failed",
        AccessTokenIssued => "mailbox.access_token_issued",
        Checked => "mailbox.checked",
        RequestForbidden => "request.forbidden",
    }
}

named! {
    /// What an audit row is about.
    pub enum TargetType {
        Mailbox => "mailbox",
        AppCredential => "app_credential",
        Route => "route",
    }
}

named! {
    /// The steps of a connection check, in their order.
    #[derive(Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum CheckStepName {
        Token => "token",
        ImapConnect => "imap_connect",
        ImapAuth => "imap_auth",
        ImapSelect => "imap_select",
        ImapLogout => "imap_logout",
        SmtpConnect => "smtp_connect",
        SmtpStarttls => "smtp_starttls",
        SmtpAuth => "smtp_auth",
        SmtpSend => "smtp_send",
        SmtpQuit => "smtp_quit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_json_names_and_read_back() {
        for s in MailboxStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(MailboxStatus::parse(s.as_str()), Some(*s));
        }
        for m in AccessMode::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        for s in CheckStepName::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
        }
    }
}
