//! Sign-in ("Refresh"): a delegated mailbox gets a pending authorization
//! (state stored hashed, single use, 10 minutes; PKCE verifier encrypted;
//! nonce; the mailbox's token version) and the URL to open; the browser comes
//! back to the callback ([`super::callback`]). An app-only mailbox obtains a
//! client-credentials token directly.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::Services;
use super::app_credentials::AppCredential;
use super::audit::Audit;
use super::lifecycle::{self, Change, CredentialChange, Detail, Outcome};
use super::mailboxes::Mailbox;
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::crypto::Slot;
use crate::domain::{
    AccessMode, AppCredentialId, AuditAction, AuthorizationId, AuthorizationKind, Invalid,
    MailboxId, OrgId, Resource,
};
use crate::error::{Error, Result};
use crate::idp::{AppIdentity, Class};
use crate::limits::Limited;
use crate::store::authorizations::{self, AuthorizationRow};
use crate::store::{AnyConnection, now, tokens};

/// How long a started sign-in may take.
pub const AUTHORIZATION_TTL_MINUTES: i64 = 10;

/// Options of a refresh.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Where the browser goes after the sign-in (must match the configured allow-list);
    /// it receives `mailbox_id` and `outcome` as query parameters.
    pub return_url: Option<String>,
    /// How a delegated mailbox signs in: `browser` (the default: an
    /// authorization URL to open) or `device_code` (a code to type at
    /// Microsoft's device login page, for a delegate who cannot reach the
    /// redirect URI; the app registration needs "Allow public client flows").
    #[serde(default)]
    pub flow: SignInFlow,
}

/// How a delegated mailbox signs in.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignInFlow {
    #[default]
    Browser,
    DeviceCode,
}

/// The result of a refresh.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefreshResult {
    /// Delegated mailboxes: the Microsoft sign-in URL to open; null for app-only mailboxes.
    pub authorization_url: Option<String>,
    /// When the sign-in URL (or the device code) stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// `device_code`: the code the person types at `verification_uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_code: Option<String>,
    /// `device_code`: where to type it (Microsoft's device login page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri: Option<String>,
    /// `device_code`: seconds the code stays valid (RFC 8628).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The mailbox as it is now (app-only mailboxes are already active).
    pub mailbox: Mailbox,
}

pub(crate) fn random_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn hash_state(state: &str) -> String {
    Sha256::digest(state.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 409 `settings_changed`: the mailbox changed while a sign-in or a token
/// request for its old settings was under way; the change wins.
pub(crate) fn settings_changed() -> Error {
    Error::refused(
        Code::SettingsChanged,
        "the mailbox settings changed while this was under way; sign in again (refresh)",
    )
}

impl Services {
    pub async fn mailbox_refresh(
        &self,
        who: &Principal,
        id: MailboxId,
        input: RefreshRequest,
    ) -> Result<RefreshResult> {
        let org = who.require(Permission::MailboxesWrite)?;
        self.limits.check(who, Limited::Refresh)?;
        let return_url = input
            .return_url
            .map(|u| self.check_return_url(&u))
            .transpose()?;
        let mailbox = self.mailbox(org, id).await?;
        let (app, secret) = self
            .app_credential_with_secret(org, mailbox.app_credential_id)
            .await?;
        let identity = self.identity(&app, &secret);
        if mailbox.access_mode == AccessMode::AppOnly {
            return self
                .refresh_app_only(who, mailbox, &identity, (&app, &secret))
                .await;
        }
        if input.flow == SignInFlow::DeviceCode {
            return self.refresh_device_code(who, mailbox, &identity).await;
        }
        let state = random_token(32);
        let nonce = random_token(16);
        let (url, verifier) = self
            .idp
            .authorize_url(&identity, &state, &nonce, &mailbox.email);
        let auth_id = AuthorizationId::new();
        let at = now();
        let expires_at = at + chrono::Duration::minutes(AUTHORIZATION_TTL_MINUTES);
        let mut row = AuthorizationRow {
            pkce_verifier: Some(self.cipher.encrypt_str(
                verifier.secret(),
                Slot {
                    table: "authorizations",
                    column: "pkce_verifier",
                    row_id: &auth_id.to_string(),
                },
            )),
            id: auth_id,
            org: org.clone(),
            kind: AuthorizationKind::SignIn,
            mailbox_id: Some(mailbox.id),
            app_credential_id: app.id,
            state_hash: hash_state(&state),
            nonce: Some(nonce),
            return_url,
            actor: who.subject.clone(),
            expires_at,
            created_at: at,
            token_version: None,
        };
        let (org2, actor) = (org.clone(), who.actor());
        let (email, app_id) = (mailbox.email.clone(), app.id);
        self.store
            .write(move |c| {
                // The sign-in is for the settings the URL was made from; it
                // completes only onto the token version they have now.
                let current = tokens::get(c, &org2, id)?;
                if current.email != email
                    || current.app_credential_id != app_id
                    || current.access_mode != AccessMode::Delegated
                {
                    return Err(settings_changed());
                }
                row.token_version = Some(current.token_version);
                authorizations::insert(c, &row)?;
                Audit::mailbox(&org2, actor, AuditAction::SignInStarted, id).record(c)
            })
            .await?;
        Ok(RefreshResult {
            authorization_url: Some(url.to_string()),
            expires_at: Some(expires_at.and_utc()),
            user_code: None,
            verification_uri: None,
            expires_in: None,
            mailbox,
        })
    }

    async fn refresh_app_only(
        &self,
        who: &Principal,
        mailbox: Mailbox,
        app: &AppIdentity<'_>,
        (credential, secret): (&AppCredential, &SecretString),
    ) -> Result<RefreshResult> {
        let (id, app_id, org) = (mailbox.id, mailbox.app_credential_id, who.org.clone());
        // The token is for the settings as they are now: it is written only
        // onto this version (a change meanwhile wins).
        let version = self.token_version(&org, id).await?;
        let outcome = self.idp.client_credentials(app, Resource::Outlook).await;
        if let Ok(set) = &outcome {
            self.certificate_seen(&org, credential, secret, set).await;
        }
        self.metrics.token_refresh(match &outcome {
            Ok(_) => crate::metrics::RefreshOutcome::Ok,
            Err(e) => crate::metrics::RefreshOutcome::Failed(e.class()),
        });
        let actor = who.actor();
        match outcome {
            Ok(set) => {
                let change = Change::Authorized {
                    expected: version,
                    tokens: self.seal_tokens(id, Resource::Outlook, &set),
                    identity: None,
                };
                let outcome = self
                    .store
                    .run(move |c| {
                        let audit =
                            Audit::mailbox(&org, actor, AuditAction::AppOnlyTokenObtained, id);
                        lifecycle::transition(c, &org, id, change, Some(audit))
                    })
                    .await?;
                if outcome == Outcome::Lost {
                    return Err(settings_changed());
                }
                Ok(RefreshResult {
                    authorization_url: None,
                    expires_at: None,
                    user_code: None,
                    verification_uri: None,
                    expires_in: None,
                    mailbox: self.mailbox(&who.org, id).await?,
                })
            }
            Err(e) => {
                let x = e.explanation.clone();
                let (class, detail) = (e.class(), Detail::new(x.code, x.message, x.hint));
                self.store
                    .write(move |c| {
                        record_refusal(c, &org, id, app_id, class, detail.clone())?;
                        Audit::mailbox(&org, actor, AuditAction::AppOnlyTokenFailed, id)
                            .outcome(detail.code)
                            .record(c)
                    })
                    .await?;
                Err(super::keeper::token_error(&e))
            }
        }
    }

    /// The mailbox's token version now: a sign-in's tokens are written only
    /// onto it (a settings change meanwhile wins).
    pub(crate) async fn token_version(&self, org: &OrgId, id: MailboxId) -> Result<i64> {
        let org = org.clone();
        Ok(self
            .store
            .run(move |c| tokens::get(c, &org, id))
            .await?
            .token_version)
    }

    pub(crate) fn check_return_url(&self, raw: &str) -> Result<String> {
        let not_allowed = || {
            Error::invalid_field(
                "return_url",
                Invalid::new(
                    Code::ReturnUrlNotAllowed,
                    "the return URL is not in INBOXLINK_RETURN_URL_ALLOWLIST",
                ),
            )
        };
        let url = url::Url::parse(raw).map_err(|_| not_allowed())?;
        let allowed = self.return_url_allowlist.iter().any(|a| {
            a.origin() == url.origin()
                && path_within(url.path(), a.path())
                && url.fragment().is_none()
        });
        if allowed {
            Ok(url.to_string())
        } else {
            Err(not_allowed())
        }
    }
}

/// Records what the token endpoint (the back channel) said about a sign-in
/// or an app-only token request: on the mailbox, and on its app credential
/// when the credential itself was refused.
pub(crate) fn record_refusal(
    c: &mut AnyConnection,
    org: &OrgId,
    id: MailboxId,
    app_id: AppCredentialId,
    class: Class,
    detail: Detail,
) -> Result<()> {
    if class == Class::AppCredential {
        lifecycle::transition_credential(
            c,
            org,
            app_id,
            CredentialChange::Refused(detail.clone()),
        )?;
    }
    lifecycle::transition(c, org, id, Change::SignInRefused { class, detail }, None)?;
    Ok(())
}

/// Whether `path` is `prefix` or below it, segment by segment: `/app` allows
/// `/app` and `/app/done`, not `/application`.
fn path_within(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::path_within;

    #[test]
    fn return_paths_match_whole_segments() {
        assert!(path_within("/", "/"));
        assert!(path_within("/anything", "/"));
        assert!(path_within("/app", "/app"));
        assert!(path_within("/app/", "/app"));
        assert!(path_within("/app/done", "/app/"));
        assert!(!path_within("/application", "/app"));
        assert!(!path_within("/app-x/done", "/app/"));
        assert!(!path_within("/other", "/app"));
    }
}
