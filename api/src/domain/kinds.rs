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
    /// The Microsoft cloud an app registration lives in: the sign-in
    /// authority, the Exchange Online hosts and the scopes' resource follow
    /// from it ([`super::cloud`]).
    ///
    /// `global`: Microsoft 365 worldwide (and GCC, which signs in there);
    /// `usgov`: GCC High; `usgov_dod`: DoD; `china`: operated by 21Vianet.
    #[derive(Serialize, Deserialize, ToSchema, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum Cloud {
        #[default]
        Global => "global",
        Usgov => "usgov",
        UsgovDod => "usgov_dod",
        China => "china",
    }
}

named! {
    /// How an app credential proves itself to Microsoft: a client secret,
    /// or a certificate whose private key signs a client assertion (RFC
    /// 7523; Microsoft's "certificate credentials").
    #[derive(Serialize, Deserialize, ToSchema, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum CredentialType {
        #[default]
        Secret => "secret",
        Certificate => "certificate",
    }
}

named! {
    /// How a mailbox's mail is reached, and what its check runs.
    ///
    /// `imap_smtp`: Exchange Online's IMAP and SMTP with XOAUTH2 (the
    /// default). `graph`: Microsoft Graph's mail API, for tenants that
    /// switched IMAP and SMTP off.
    #[derive(Serialize, Deserialize, ToSchema, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum Transport {
        #[default]
        ImapSmtp => "imap_smtp",
        Graph => "graph",
    }
}

named! {
    /// What an access token is for: Exchange Online's IMAP and SMTP
    /// (`outlook`, the default) or Microsoft Graph (`graph`), from the same
    /// grant.
    #[derive(Hash, Serialize, Deserialize, ToSchema, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum Resource {
        #[default]
        Outlook => "outlook",
        Graph => "graph",
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
        BridgePasswordCreated => "mailbox.bridge_password_created",
        BridgePasswordRevoked => "mailbox.bridge_password_revoked",
        BridgePasswordUsedFromNewAddress => "mailbox.bridge_login_from_new_address",
        BridgeLogin => "mailbox.bridge_login",
        BridgeUpstreamRefused => "mailbox.bridge_upstream_refused",
        WebhookCreated => "webhook.created",
        WebhookUpdated => "webhook.updated",
        WebhookDeleted => "webhook.deleted",
        WebhookSecretRotated => "webhook.secret_rotated",
        WebhookDeliveryRetried => "webhook.delivery_retried",
        EmailAlertCreated => "email_alert.created",
        EmailAlertUpdated => "email_alert.updated",
        EmailAlertDeleted => "email_alert.deleted",
        RequestForbidden => "request.forbidden",
    }
}

named! {
    /// What an audit row is about.
    pub enum TargetType {
        Mailbox => "mailbox",
        AppCredential => "app_credential",
        Webhook => "webhook",
        EmailAlert => "email_alert",
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
        Bridge => "bridge",
        GraphToken => "graph_token",
        GraphMailbox => "graph_mailbox",
        GraphSend => "graph_send",
    }
}

/// Serde and the schema through `as_str`/`parse`, for the enums whose names
/// are not their variants in snake case (event types hold a dot).
macro_rules! serde_by_name {
    ($ty:ident, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $ty::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "`{text}` is not {}; known: {}",
                        $what,
                        $ty::ALL
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
            }
        }

        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($ty::ALL.iter().map(|t| t.as_str())))
                    .into()
            }
        }

        impl ToSchema for $ty {}
    };
}

named! {
    /// What an event says happened.
    #[derive(Hash, PartialOrd, Ord)]
    pub enum EventType {
        MailboxCreated => "mailbox.created",
        MailboxDeleted => "mailbox.deleted",
        /// Any change of a mailbox's `status`, back to `active` too.
        MailboxStatusChanged => "mailbox.status_changed",
        /// A check failed after one that passed (or the first check failed).
        MailboxCheckFailed => "mailbox.check_failed",
        /// A check passed after one that failed.
        MailboxCheckRecovered => "mailbox.check_recovered",
        /// 30, 14, 7 or 1 days before the client secret expires, once each.
        SecretExpiring => "app_credential.secret_expiring",
        /// The client secret's expiry date is reached.
        SecretExpired => "app_credential.secret_expired",
        /// An app credential's problem was flagged or cleared.
        CredentialProblemChanged => "app_credential.problem_changed",
        /// Queued by `POST /webhooks/{id}/test`, for that endpoint alone.
        WebhookTest => "webhook.test",
        /// A webhook was disabled (its receiver answered 410, or failed for 5 days).
        WebhookDisabled => "webhook.disabled",
        /// An e-mail alert's sender mailbox could not send an alert.
        EmailAlertFailed => "email_alert.failed",
    }
}
serde_by_name!(EventType, "an event type");

named! {
    /// Where a delivery stands.
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum DeliveryState {
        /// Waiting for its (next) attempt.
        Pending => "pending",
        /// The receiver took it (a 2xx), or the message was sent.
        Delivered => "delivered",
        /// Every attempt of the schedule failed.
        Failed => "failed",
        /// An e-mail alert not sent: the same entity and event type had one
        /// less than 10 minutes before.
        Suppressed => "suppressed",
        /// Its webhook or e-mail alert was disabled or deleted first.
        Cancelled => "cancelled",
    }
}

named! {
    /// What a delivery goes to.
    #[derive(Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Channel {
        Webhook => "webhook",
        EmailAlert => "email_alert",
    }
}

named! {
    /// The language of an e-mail alert.
    #[derive(Serialize, Deserialize, ToSchema, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum Language {
        #[default]
        Cs => "cs",
        En => "en",
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
        for t in EventType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            let back: EventType = serde_json::from_value(t.as_str().into()).unwrap();
            assert_eq!(back, *t);
        }
        let err = serde_json::from_value::<EventType>("mailbox.exploded".into()).unwrap_err();
        assert!(err.to_string().contains("mailbox.created"), "{err}");
    }
}
