use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The identity provider an app credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    #[default]
    Microsoft,
}

/// How a mailbox is accessed.
///
/// `delegated`: a user signs in once and the service keeps the refresh token
/// alive (offline access; "permanent access"). `app_only`: client credentials
/// with `IMAP.AccessAsApp` / `SMTP.SendAsApp`, no sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    #[default]
    Delegated,
    AppOnly,
}

/// Where a mailbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailboxStatus {
    /// Not authorized yet (or its authorization was reset).
    Inactive,
    /// Authorized; tokens are kept fresh.
    Active,
    /// Authorized, but the refresh token ends soon: sign in again.
    Expiring,
    /// The authorization is no longer usable: sign in again.
    ReauthRequired,
    /// Something else is wrong; `status_detail` says what.
    Error,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn from_db(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(Provider { Microsoft => "microsoft" });
text_enum!(AccessMode { Delegated => "delegated", AppOnly => "app_only" });
text_enum!(MailboxStatus {
    Inactive => "inactive",
    Active => "active",
    Expiring => "expiring",
    ReauthRequired => "reauth_required",
    Error => "error",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_text_matches_json() {
        for s in [
            MailboxStatus::Inactive,
            MailboxStatus::Active,
            MailboxStatus::Expiring,
            MailboxStatus::ReauthRequired,
            MailboxStatus::Error,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(MailboxStatus::from_db(s.as_str()), Some(s));
        }
        for m in [AccessMode::Delegated, AccessMode::AppOnly] {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }
}
