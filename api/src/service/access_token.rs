//! `GET /mailboxes/{id}/access-token`: the token keeper's token, handed to
//! an integrating system with the SASL users to send it as; every call is
//! rate-limited and audited, whatever its outcome.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::Services;
use super::audit::Audit;
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{AuditAction, MailboxId};
use crate::error::Result;

/// An access token for an integrating system. The only response that ever carries a token.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccessTokenResponse {
    /// The bearer token for IMAP and SMTP (SASL XOAUTH2 / OAUTHBEARER).
    pub access_token: String,
    pub expires_at: DateTime<Utc>,
    /// The mailbox address.
    pub mailbox: String,
    /// The SASL user for IMAP: the mailbox (shared mailboxes too, with the delegate's token).
    pub imap_user: String,
    /// The SASL user for SMTP: the mailbox, or the delegate who signed in for a shared mailbox
    /// (send with `MAIL FROM` the shared address).
    pub smtp_user: String,
}

impl std::fmt::Debug for AccessTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenResponse")
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Hands out a valid access token, audited.
    pub async fn mailbox_access_token(
        &self,
        who: &Principal,
        id: MailboxId,
    ) -> Result<AccessTokenResponse> {
        let org = who.require(Permission::AccessTokens)?.clone();
        self.limits
            .check(who, crate::limits::Limited::AccessToken)?;
        let result = self.access_token(&org, id).await;
        let outcome = match &result {
            Ok(_) => Code::Ok,
            Err(e) => e.code(),
        };
        let actor = who.actor();
        self.store
            .run(move |c| {
                Audit::mailbox(&org, actor, AuditAction::AccessTokenIssued, id)
                    .outcome(outcome)
                    .record(c)
            })
            .await?;
        let token = result?;
        let smtp_user = token.smtp_user().to_owned();
        Ok(AccessTokenResponse {
            access_token: token.token.expose_secret().to_owned(),
            expires_at: token.expires_at,
            imap_user: token.mailbox.clone(),
            smtp_user,
            mailbox: token.mailbox,
        })
    }
}
