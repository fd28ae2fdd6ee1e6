//! `GET /mailboxes/{id}/access-token`: the token keeper's token, handed to
//! an integrating system with the SASL users to send it as; every call is
//! rate-limited and audited, whatever its outcome.

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::Services;
use super::audit::Audit;
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{AuditAction, MailboxId, Resource};
use crate::error::Result;

/// What the token is for.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccessTokenQuery {
    /// `outlook` (the default): Exchange Online's IMAP and SMTP. `graph`:
    /// Microsoft Graph, from the same grant (a delegated mailbox's app
    /// credential needs `graph: true`; an app-only mailbox gets it with
    /// client credentials).
    pub resource: Option<Resource>,
}

/// An access token for an integrating system. The only response that ever carries a token.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AccessTokenResponse {
    /// The bearer token: for IMAP and SMTP (SASL XOAUTH2 / OAUTHBEARER),
    /// or for Graph (`Authorization: Bearer`) as `resource` says.
    pub access_token: String,
    /// What the token is for: `outlook` or `graph`.
    pub resource: Resource,
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
        query: AccessTokenQuery,
    ) -> Result<AccessTokenResponse> {
        let resource = query.resource.unwrap_or_default();
        let org = who.require(Permission::AccessTokens)?.clone();
        self.limits
            .check(who, crate::limits::Limited::AccessToken)?;
        let result = self.access_token_for(&org, id, resource).await;
        let outcome = match &result {
            Ok(_) => Code::Ok,
            Err(e) => e.code(),
        };
        let actor = who.actor();
        self.store
            .run(move |c| {
                Audit::mailbox(&org, actor, AuditAction::AccessTokenIssued, id)
                    .outcome(outcome)
                    .detail(serde_json::json!({ "resource": resource }))
                    .record(c)
            })
            .await?;
        let token = result?;
        let smtp_user = token.smtp_user().to_owned();
        Ok(AccessTokenResponse {
            access_token: token.token.expose_secret().to_owned(),
            resource: token.resource,
            expires_at: token.expires_at,
            imap_user: token.mailbox.clone(),
            smtp_user,
            mailbox: token.mailbox,
        })
    }
}
