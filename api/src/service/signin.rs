//! Sign-in ("Refresh"): a delegated mailbox gets a pending authorization
//! (state stored hashed, single use, 10 minutes; PKCE verifier encrypted;
//! nonce; the mailbox's token version) and the URL to open; the browser comes
//! back to the callback ([`super::callback`]). An app-only mailbox obtains a
//! client-credentials token directly.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Services;
use super::audit::Audit;
use super::mailboxes::Mailbox;
use crate::auth::Principal;
use crate::crypto::Slot;
use crate::domain::{AccessMode, Invalid, MailboxStatus, OrgId};
use crate::error::{Error, Result};
use crate::idp::{AppIdentity, IdpError};
use crate::store::app_credentials::CredentialProblem;
use crate::store::authorizations::{self, AuthorizationRow};
use crate::store::mailboxes::MailboxChanges;
use crate::store::{app_credentials, mailboxes, now, tokens, write_transaction};

/// How long a started sign-in may take.
pub const AUTHORIZATION_TTL_MINUTES: i64 = 10;

/// Options of a refresh.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Where the browser goes after the sign-in (must match the configured allow-list);
    /// it receives `mailbox_id` and `outcome` as query parameters.
    pub return_url: Option<String>,
}

/// The result of a refresh.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefreshResult {
    /// Delegated mailboxes: the Microsoft sign-in URL to open; null for app-only mailboxes.
    pub authorization_url: Option<String>,
    /// When the sign-in URL stops working.
    pub expires_at: Option<DateTime<Utc>>,
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
    Error::Conflict {
        code: "settings_changed",
        detail: "the mailbox settings changed while this was under way; sign in again (refresh)"
            .into(),
        mailboxes: vec![],
    }
}

impl Services {
    pub async fn mailbox_refresh(
        &self,
        who: &Principal,
        id: Uuid,
        input: RefreshRequest,
    ) -> Result<RefreshResult> {
        let org = &who.org;
        let return_url = input
            .return_url
            .map(|u| self.check_return_url(&u))
            .transpose()?;
        let mailbox = self.mailbox_get(org, id).await?;
        let (app, secret) = self
            .app_credential_with_secret(org, mailbox.app_credential_id)
            .await?;
        let identity = AppIdentity {
            client_id: &app.client_id,
            tenant: &app.tenant_id,
            client_secret: &secret,
            redirect_uri: &self.redirect_uri,
        };
        if mailbox.access_mode == AccessMode::AppOnly {
            return self.refresh_app_only(who, mailbox, &identity).await;
        }
        let state = random_token(32);
        let nonce = random_token(16);
        let (url, verifier) = self
            .idp
            .authorize_url(&identity, &state, &nonce, &mailbox.email);
        let auth_id = Uuid::now_v7().to_string();
        let at = now();
        let expires_at = at + chrono::Duration::minutes(AUTHORIZATION_TTL_MINUTES);
        let mut row = AuthorizationRow {
            pkce_verifier: Some(self.cipher.encrypt_str(
                verifier.secret(),
                Slot {
                    table: "authorizations",
                    column: "pkce_verifier",
                    row_id: &auth_id,
                },
            )),
            id: auth_id,
            org: org.as_str().to_owned(),
            kind: "sign_in".into(),
            mailbox_id: Some(mailbox.id.to_string()),
            app_credential_id: app.id.to_string(),
            state_hash: hash_state(&state),
            nonce: Some(nonce),
            return_url,
            actor: who.subject.clone(),
            expires_at,
            created_at: at,
            token_version: None,
        };
        let (org2, actor, mid) = (org.clone(), who.subject.clone(), mailbox.id.to_string());
        let (email, app_id) = (mailbox.email.clone(), app.id.to_string());
        self.store
            .run(move |c| {
                write_transaction(c, |c| {
                    // The sign-in is for the settings the URL was made from; it
                    // completes only onto the token version they have now.
                    let current = tokens::get(c, &org2, &mid)?;
                    if current.email != email
                        || current.app_credential_id != app_id
                        || current.access_mode != AccessMode::Delegated.as_str()
                    {
                        return Err(settings_changed());
                    }
                    row.token_version = Some(current.token_version);
                    authorizations::insert(c, &row)?;
                    Audit {
                        org: &org2,
                        actor: &actor,
                        action: "mailbox.sign_in_started",
                        target_type: "mailbox",
                        target_id: Some(&mid),
                        outcome: "ok",
                        detail: None,
                    }
                    .record(c)
                })
            })
            .await?;
        Ok(RefreshResult {
            authorization_url: Some(url.to_string()),
            expires_at: Some(expires_at.and_utc()),
            mailbox,
        })
    }

    async fn refresh_app_only(
        &self,
        who: &Principal,
        mailbox: Mailbox,
        app: &AppIdentity<'_>,
    ) -> Result<RefreshResult> {
        let id = mailbox.id;
        let (org, mid) = (who.org.clone(), id.to_string());
        // The token is for the settings as they are now: it is written only
        // onto this version (a change meanwhile wins).
        let version = {
            let (org, mid) = (org.clone(), mid.clone());
            self.store
                .run(move |c| tokens::get(c, &org, &mid))
                .await?
                .token_version
        };
        let outcome = self.idp.client_credentials(app).await;
        self.metrics.token_refresh(match &outcome {
            Ok(_) => crate::metrics::RefreshOutcome::Ok,
            Err(e) => crate::metrics::RefreshOutcome::Failed(e.class()),
        });
        match outcome {
            Ok(set) => {
                let write = self.seal_tokens(&mid, &set, AccessMode::AppOnly);
                let actor = who.subject.clone();
                let written = self
                    .store
                    .run(move |c| {
                        write_transaction(c, |c| {
                            if !tokens::write_tokens(c, &org, &mid, version, &write)? {
                                return Ok(false);
                            }
                            let changes = MailboxChanges {
                                status: Some(MailboxStatus::Active.as_str().to_owned()),
                                status_code: Some(None),
                                status_message: Some(None),
                                status_hint: Some(None),
                                authorized_as: Some(None),
                                updated_at: Some(now()),
                                ..Default::default()
                            };
                            mailboxes::update(c, &org, &mid, &changes)?
                                .map_err(|_| anyhow::anyhow!("update refused"))?;
                            Audit {
                                org: &org,
                                actor: &actor,
                                action: "mailbox.app_only_token_obtained",
                                target_type: "mailbox",
                                target_id: Some(&mid),
                                outcome: "ok",
                                detail: None,
                            }
                            .record(c)?;
                            Ok(true)
                        })
                    })
                    .await?;
                if !written {
                    return Err(settings_changed());
                }
                let mailbox = self.mailbox_get(&who.org, id).await?;
                Ok(RefreshResult {
                    authorization_url: None,
                    expires_at: None,
                    mailbox,
                })
            }
            Err(e) => {
                let error = self
                    .record_sign_in_failure(
                        &who.org,
                        &id.to_string(),
                        &mailbox.app_credential_id.to_string(),
                        &e,
                    )
                    .await?;
                let (org, actor, mid) = (who.org.clone(), who.subject.clone(), id.to_string());
                let outcome = e.explanation.code;
                self.store
                    .run(move |c| {
                        Audit {
                            org: &org,
                            actor: &actor,
                            action: "mailbox.app_only_token_failed",
                            target_type: "mailbox",
                            target_id: Some(&mid),
                            outcome,
                            detail: None,
                        }
                        .record(c)
                    })
                    .await?;
                Err(error)
            }
        }
    }

    pub(crate) fn check_return_url(&self, raw: &str) -> Result<String> {
        let not_allowed = || {
            Error::invalid_field(
                "return_url",
                Invalid::new(
                    "return_url_not_allowed",
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

    /// Records a failed token request (back channel) on the mailbox (status
    /// detail, app credential flag) and returns the API error for it.
    async fn record_sign_in_failure(
        &self,
        org: &OrgId,
        mailbox_id: &str,
        app_id: &str,
        e: &IdpError,
    ) -> Result<Error> {
        self.record_outcome(
            org,
            mailbox_id,
            app_id,
            e.class(),
            e.explanation.code,
            &e.explanation.message,
            e.explanation.hint,
        )
        .await?;
        Ok(super::keeper::token_error(e))
    }

    /// Records what the token endpoint (the back channel) said about a
    /// sign-in on the mailbox: the status detail always; the status and the
    /// app credential's problem as its class says.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_outcome(
        &self,
        org: &OrgId,
        mailbox_id: &str,
        app_id: &str,
        class: crate::idp::Class,
        code: &str,
        message: &str,
        hint: &str,
    ) -> Result<()> {
        use crate::idp::Class;
        let (org, mid, app_id) = (org.clone(), mailbox_id.to_owned(), app_id.to_owned());
        let (code, message, hint) = (code.to_owned(), message.to_owned(), hint.to_owned());
        self.store
            .run(move |c| {
                write_transaction(c, |c| {
                    let current = mailboxes::get(c, &org, &mid)?;
                    let status = match class {
                        Class::Transient => None,
                        Class::AppCredential => Some(MailboxStatus::Error),
                        // A failed new sign-in leaves working tokens alone; only the detail says what happened.
                        _ if current.status == MailboxStatus::Active.as_str() => None,
                        _ if current.status == MailboxStatus::Inactive.as_str() => None,
                        Class::Reauth => Some(MailboxStatus::ReauthRequired),
                        Class::Setup => Some(MailboxStatus::Error),
                    };
                    let changes = MailboxChanges {
                        status: status.map(|s| s.as_str().to_owned()),
                        status_code: Some(Some(code.clone())),
                        status_message: Some(Some(message.clone())),
                        status_hint: Some(Some(hint.clone())),
                        updated_at: Some(now()),
                        ..Default::default()
                    };
                    mailboxes::update(c, &org, &mid, &changes)?
                        .map_err(|_| anyhow::anyhow!("update refused"))?;
                    if class == Class::AppCredential {
                        app_credentials::flag_problem(
                            c,
                            &org,
                            &app_id,
                            Some(CredentialProblem {
                                code: &code,
                                message: &message,
                                hint: &hint,
                            }),
                        )?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// Records an outcome that concerns one sign-in attempt only (an answer
    /// that came through the browser, which anyone holding the link can
    /// forge): the mailbox's status detail says what happened; its status
    /// and its app credential stay as they are.
    pub(crate) async fn record_attempt(
        &self,
        org: &OrgId,
        mailbox_id: &str,
        code: &str,
        message: &str,
        hint: &str,
    ) -> Result<()> {
        let (org, mid) = (org.clone(), mailbox_id.to_owned());
        let changes = MailboxChanges {
            status_code: Some(Some(code.to_owned())),
            status_message: Some(Some(message.to_owned())),
            status_hint: Some(Some(hint.to_owned())),
            updated_at: Some(now()),
            ..Default::default()
        };
        self.store
            .run(move |c| {
                mailboxes::update(c, &org, &mid, &changes)?
                    .map_err(|_| anyhow::anyhow!("update refused"))?;
                Ok(())
            })
            .await
    }
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
