//! The token keeper: the one way to get a mailbox's access token.
//!
//! It returns the stored access token while it has more than 5 minutes left,
//! else refreshes it. One refresh per mailbox at a time: callers in this
//! process queue on a per-mailbox lock, instances sharing the database compete
//! for a lease (a conditional update only one wins) and the others wait and
//! reuse the token the winner wrote. Token writes are checked against the
//! version read, so an older token never overwrites a newer one, and a
//! response without a refresh token never erases the stored one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::Services;
use super::audit::Audit;
use crate::crypto::Slot;
use crate::domain::{AccessMode, EmailAddress, MailboxStatus, OrgId};
use crate::error::{Error, Result};
use crate::idp::{AppIdentity, Class, IdpError, TokenSet};
use crate::metrics::RefreshOutcome;
use crate::store::mailboxes::MailboxChanges;
use crate::store::tokens::{self, TokenRow, TokenWrite};
use crate::store::{app_credentials, mailboxes, now, write_transaction};

/// An access token is refreshed when less than this is left.
pub const MIN_REMAINING: Duration = Duration::from_secs(300);
const WAIT_STEP: Duration = Duration::from_millis(50);

pub(crate) const TABLE: &str = "mailboxes";

/// A valid access token and how to use it.
pub struct AccessToken {
    pub token: SecretString,
    pub expires_at: DateTime<Utc>,
    pub mailbox: String,
    /// The account whose token it is (the delegate for a shared mailbox).
    pub authorized_as: Option<String>,
    pub shared: bool,
    pub access_mode: AccessMode,
}

#[derive(Default)]
pub struct TokenKeeper {
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Test hook: fail as if the process died after Microsoft answered and before the commit.
    #[doc(hidden)]
    pub crash_before_commit: AtomicBool,
}

impl TokenKeeper {
    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.inflight.lock().expect("keeper lock map");
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(id.to_owned()).or_default().clone()
    }
}

fn slot<'a>(column: &'a str, id: &'a str) -> Slot<'a> {
    Slot {
        table: TABLE,
        column,
        row_id: id,
    }
}

fn fresh(row: &TokenRow, at: NaiveDateTime) -> bool {
    row.access_token.is_some()
        && row
            .access_token_expires_at
            .is_some_and(|exp| exp - at > chrono::Duration::from_std(MIN_REMAINING).expect("small"))
}

/// What a caller of the keeper needs from a mailbox's tokens.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// An access token with more than [`MIN_REMAINING`] left.
    AccessToken,
    /// A refresh token issued at or after this time (the keep-alive).
    RenewedSince(NaiveDateTime),
}

impl Need {
    fn met(self, row: &TokenRow, at: NaiveDateTime) -> bool {
        match self {
            Need::AccessToken => fresh(row, at),
            Need::RenewedSince(t) => row.refresh_token_issued_at.is_some_and(|i| i >= t),
        }
    }
}

impl Services {
    /// A valid access token for the mailbox, refreshing it if needed.
    pub async fn access_token(&self, org: &OrgId, mailbox_id: Uuid) -> Result<AccessToken> {
        let row = self
            .tokens_for(org, &mailbox_id.to_string(), Need::AccessToken)
            .await?;
        self.unseal(row)
    }

    /// Renews a delegated mailbox's grant (a refresh, whatever its access
    /// token's state) unless its refresh token was issued after `issued_after`,
    /// by this call or by anyone else meanwhile.
    pub(crate) async fn keep_alive(
        &self,
        org: &OrgId,
        mailbox_id: &str,
        issued_after: NaiveDateTime,
    ) -> Result<()> {
        self.tokens_for(org, mailbox_id, Need::RenewedSince(issued_after))
            .await
            .map(drop)
    }

    /// The mailbox's token row once it meets `need`, refreshing it under the
    /// guards if it does not: the per-mailbox lock in this process, then the
    /// lease in the database; re-read under each, so a refresh another caller
    /// just made is reused.
    async fn tokens_for(&self, org: &OrgId, id: &str, need: Need) -> Result<TokenRow> {
        let row = self.token_row(org, id).await?;
        ensure_authorized(&row)?;
        if need.met(&row, now()) {
            return Ok(row);
        }
        let waiting_since = now();
        let lock = self.keeper.lock_for(id);
        let _guard = lock.lock().await;
        let mut row = self.token_row(org, id).await?;
        let lease_for = chrono::Duration::from_std(self.tokens.refresh_lease).expect("lease");
        loop {
            ensure_authorized(&row)?;
            if need.met(&row, now()) {
                return Ok(row);
            }
            // The refresh we waited for (here or on another instance) just failed
            // transiently, after its own retries: share its answer instead of
            // asking Microsoft again for every queued caller.
            if row.last_error_at.is_some_and(|at| at >= waiting_since) {
                return Err(Error::Unavailable(row.last_error_message.unwrap_or_else(
                    || "Microsoft is not answering; try again later.".into(),
                )));
            }
            let (rid, rorg, version, at) = (id.to_owned(), org.clone(), row.token_version, now());
            let won = self
                .store
                .run(move |c| tokens::take_lease(c, &rorg, &rid, version, at, at + lease_for))
                .await?;
            if won {
                match self.refresh_under_lease(org, row).await? {
                    Some(done) => return Ok(done),
                    // Someone wrote newer tokens, or changed the mailbox, while
                    // this refresh was under way: look again at what is stored.
                    None => {
                        row = self.token_row(org, id).await?;
                        continue;
                    }
                }
            }
            // Another instance refreshes: wait for its token (or for its lease to lapse).
            tokio::time::sleep(WAIT_STEP).await;
            row = self.token_row(org, id).await?;
        }
    }

    async fn token_row(&self, org: &OrgId, id: &str) -> Result<TokenRow> {
        let (org, id) = (org.clone(), id.to_owned());
        self.store.run(move |c| tokens::get(c, &org, &id)).await
    }

    fn unseal(&self, row: TokenRow) -> Result<AccessToken> {
        let sealed = row
            .access_token
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no access token"))?;
        let token = self
            .cipher
            .decrypt_string(sealed, slot("access_token", &row.id))
            .map_err(|e| {
                Error::Internal(
                    anyhow::Error::new(e).context(format!("access token of mailbox {}", row.id)),
                )
            })?;
        Ok(AccessToken {
            token,
            expires_at: row
                .access_token_expires_at
                .map(|t| t.and_utc())
                .unwrap_or_default(),
            mailbox: row.email,
            authorized_as: row.authorized_as,
            shared: row.shared,
            access_mode: AccessMode::from_db(&row.access_mode).unwrap_or_default(),
        })
    }

    /// Holding the lease: asks Microsoft, then writes the result
    /// version-checked. `None`: the write lost to a newer one (the lease
    /// lapsed, or the mailbox's settings changed and ended the grant).
    async fn refresh_under_lease(&self, org: &OrgId, row: TokenRow) -> Result<Option<TokenRow>> {
        let outcome = self.request_tokens(org, &row).await;
        let (id, version) = (row.id.clone(), row.token_version);
        match outcome {
            Ok(set) => {
                if self
                    .keeper
                    .crash_before_commit
                    .swap(false, Ordering::SeqCst)
                {
                    return Err(Error::Internal(anyhow::anyhow!(
                        "simulated crash before the token commit"
                    )));
                }
                let write = self.seal_tokens(
                    &id,
                    &set,
                    AccessMode::from_db(&row.access_mode).unwrap_or_default(),
                );
                let (wid, worg, stored) = (id.clone(), org.clone(), write.clone());
                let written = self
                    .store
                    .run(move |c| tokens::write_tokens(c, &worg, &wid, version, &stored))
                    .await?;
                self.metrics.token_refresh(RefreshOutcome::Ok);
                if !written {
                    // Someone wrote newer tokens, or the settings changed: theirs win.
                    tracing::warn!(mailbox_id = %id, "the tokens changed meanwhile; keeping what is stored");
                    return Ok(None);
                }
                // What is stored now, without reading it back.
                let mut stored = row.clone().with_written(write);
                if row.status == MailboxStatus::Error.as_str() {
                    self.recovered(org, &row).await?;
                    stored.status = MailboxStatus::Active.as_str().to_owned();
                }
                Ok(Some(stored))
            }
            Err(e) => {
                self.metrics.token_refresh(match &e {
                    TokenFailure::Idp(e) => RefreshOutcome::Failed(e.class()),
                    TokenFailure::Internal(_) => RefreshOutcome::Internal,
                });
                let (release_id, release_org) = (id.clone(), org.clone());
                self.store
                    .run(move |c| tokens::release_lease(c, &release_org, &release_id, version))
                    .await?;
                Err(self.record_token_failure(org, &row, e).await?)
            }
        }
    }

    async fn request_tokens(&self, org: &OrgId, row: &TokenRow) -> Result<TokenSet, TokenFailure> {
        let app_id = Uuid::try_parse(&row.app_credential_id)
            .map_err(|e| TokenFailure::Internal(Error::Internal(e.into())))?;
        let (app, secret) = self
            .app_credential_with_secret(org, app_id)
            .await
            .map_err(TokenFailure::Internal)?;
        let identity = AppIdentity {
            client_id: &app.client_id,
            tenant: &app.tenant_id,
            client_secret: &secret,
            redirect_uri: &self.redirect_uri,
        };
        let result = match AccessMode::from_db(&row.access_mode).unwrap_or_default() {
            AccessMode::AppOnly => self.idp.client_credentials(&identity).await,
            AccessMode::Delegated => {
                let sealed = row.refresh_token.as_deref().ok_or_else(|| {
                    TokenFailure::Internal(Error::Conflict {
                        code: "mailbox_not_authorized",
                        detail: "the mailbox has no refresh token; sign in with refresh".into(),
                        mailboxes: vec![],
                    })
                })?;
                let refresh = self
                    .cipher
                    .decrypt_string(sealed, slot("refresh_token", &row.id))
                    .map_err(|e| TokenFailure::Internal(Error::Internal(e.into())))?;
                self.idp.refresh(&identity, &refresh).await
            }
        };
        result.map_err(TokenFailure::Idp)
    }

    /// Encrypts a token response for the mailbox's row.
    pub(crate) fn seal_tokens(&self, id: &str, set: &TokenSet, mode: AccessMode) -> TokenWrite {
        let at = now();
        // `expires_in` is clamped where it is read (crate::idp); the sum is checked all the same.
        let expires = chrono::Duration::from_std(set.expires_in)
            .ok()
            .and_then(|d| at.checked_add_signed(d))
            .unwrap_or(at + chrono::Duration::hours(1));
        let refresh = set.refresh_token.as_ref().map(|t| {
            self.cipher
                .encrypt_str(t.expose_secret(), slot("refresh_token", id))
        });
        TokenWrite {
            access_token: Some(
                self.cipher
                    .encrypt_str(set.access_token.expose_secret(), slot("access_token", id)),
            ),
            access_token_expires_at: Some(expires),
            refresh_token_issued_at: refresh.as_ref().map(|_| at),
            refresh_token: refresh,
            last_refresh_at: Some(at),
            status: match mode {
                // App-only tokens are not tied to a sign-in: a fresh one makes the mailbox active.
                AccessMode::AppOnly => Some(MailboxStatus::Active.as_str().to_owned()),
                AccessMode::Delegated => None,
            },
            updated_at: Some(at),
        }
    }

    /// Microsoft gave tokens to a mailbox in `error`: the grant and its app
    /// credential work again, so the mailbox is `active` and the credential's
    /// problem (with the other mailboxes it had put in `error`) is cleared.
    async fn recovered(&self, org: &OrgId, row: &TokenRow) -> Result<()> {
        let (org, id, app_id) = (org.clone(), row.id.clone(), row.app_credential_id.clone());
        self.store
            .run(move |c| {
                write_transaction(c, |c| {
                    let changes = MailboxChanges {
                        status: Some(MailboxStatus::Active.as_str().to_owned()),
                        status_code: Some(None),
                        status_message: Some(None),
                        status_hint: Some(None),
                        updated_at: Some(now()),
                        ..Default::default()
                    };
                    mailboxes::update(c, &org, &id, &changes)?
                        .map_err(|_| anyhow::anyhow!("mailbox update refused"))?;
                    app_credentials::flag_problem(c, &org, &app_id, None)
                })
            })
            .await?;
        tracing::info!(mailbox_id = %row.id, "mailbox works again");
        Ok(())
    }

    /// Records what a failed token request means for the mailbox (and its app credential).
    async fn record_token_failure(
        &self,
        org: &OrgId,
        row: &TokenRow,
        failure: TokenFailure,
    ) -> Result<Error> {
        let e = match failure {
            TokenFailure::Internal(e) => return Ok(e),
            TokenFailure::Idp(e) => e,
        };
        let (org2, id, app_id) = (org.clone(), row.id.clone(), row.app_credential_id.clone());
        let explanation = e.explanation.clone();
        tracing::warn!(mailbox_id = %row.id, code = explanation.code, aadsts = ?e.aadsts, "token request failed");
        let class = e.class();
        self.store
            .run(move |c| {
                if class == Class::Transient {
                    return tokens::record_error(
                        c,
                        &org2,
                        &id,
                        explanation.code,
                        &explanation.message,
                        now(),
                    );
                }
                write_transaction(c, |c| {
                    let status = match class {
                        Class::Reauth => MailboxStatus::ReauthRequired,
                        _ => MailboxStatus::Error,
                    };
                    let changes = MailboxChanges {
                        status: Some(status.as_str().to_owned()),
                        status_code: Some(Some(explanation.code.to_owned())),
                        status_message: Some(Some(explanation.message.clone())),
                        status_hint: Some(Some(explanation.hint.to_owned())),
                        updated_at: Some(now()),
                        ..Default::default()
                    };
                    mailboxes::update(c, &org2, &id, &changes)?
                        .map_err(|_| anyhow::anyhow!("mailbox update refused"))?;
                    if class == Class::AppCredential {
                        app_credentials::flag_problem(
                            c,
                            &org2,
                            &app_id,
                            Some(app_credentials::CredentialProblem {
                                code: explanation.code,
                                message: &explanation.message,
                                hint: explanation.hint,
                            }),
                        )?;
                    }
                    Audit {
                        org: &org2,
                        actor: "inboxlink",
                        action: "mailbox.token_refresh_failed",
                        target_type: "mailbox",
                        target_id: Some(&id),
                        outcome: explanation.code,
                        detail: None,
                    }
                    .record(c)
                })
            })
            .await?;
        Ok(token_error(&e))
    }
}

enum TokenFailure {
    Idp(IdpError),
    Internal(Error),
}

/// The API error for a failed token request.
pub(crate) fn token_error(e: &IdpError) -> Error {
    let x = &e.explanation;
    match e.class() {
        Class::Transient => Error::Unavailable(format!("{} {}", x.message, x.hint)),
        Class::Reauth => Error::Conflict {
            code: "reauth_required",
            detail: format!("{} {}", x.message, x.hint),
            mailboxes: vec![],
        },
        Class::AppCredential => Error::Conflict {
            code: "app_credential_invalid",
            detail: format!("{} {}", x.message, x.hint),
            mailboxes: vec![],
        },
        Class::Setup => Error::Conflict {
            code: "sign_in_setup",
            detail: format!("{} {}", x.message, x.hint),
            mailboxes: vec![],
        },
    }
}

fn ensure_authorized(row: &TokenRow) -> Result<()> {
    let status = MailboxStatus::from_db(&row.status);
    let has_grant = match AccessMode::from_db(&row.access_mode).unwrap_or_default() {
        AccessMode::Delegated => row.refresh_token.is_some(),
        AccessMode::AppOnly => row.access_token.is_some(),
    };
    match status {
        Some(MailboxStatus::ReauthRequired) => Err(Error::Conflict {
            code: "reauth_required",
            detail: "the mailbox must be signed in again (refresh)".into(),
            mailboxes: vec![],
        }),
        _ if !has_grant => Err(Error::Conflict {
            code: "mailbox_not_authorized",
            detail: "the mailbox has not been authorized yet; use refresh".into(),
            mailboxes: vec![],
        }),
        // The address goes into SASL and SMTP commands, here and at the
        // integrator: one an older version accepted without the strict parse
        // is not handed out.
        _ if !addresses_valid(row) => Err(Error::Conflict {
            code: "mailbox_address_invalid",
            detail: "the mailbox's stored address (or the account it was authorized as) is not a bare mailbox address; correct the address and sign in again".into(),
            mailboxes: vec![],
        }),
        _ => Ok(()),
    }
}

fn addresses_valid(row: &TokenRow) -> bool {
    let valid = |a: &str| EmailAddress::parse(a).is_ok_and(|e| e.as_str() == a);
    valid(&row.email) && row.authorized_as.as_deref().is_none_or(valid)
}

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
    pub async fn access_token_issue(
        &self,
        who: &crate::auth::Principal,
        id: Uuid,
    ) -> Result<AccessTokenResponse> {
        let result = self.access_token(&who.org, id).await;
        let (org, actor, mid) = (who.org.clone(), who.subject.clone(), id.to_string());
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_problem().code,
        };
        self.store
            .run(move |c| {
                Audit {
                    org: &org,
                    actor: &actor,
                    action: "mailbox.access_token_issued",
                    target_type: "mailbox",
                    target_id: Some(&mid),
                    outcome: &outcome,
                    detail: None,
                }
                .record(c)
            })
            .await?;
        let token = result?;
        let smtp_user = match (&token.access_mode, token.shared, &token.authorized_as) {
            (AccessMode::Delegated, true, Some(delegate)) => delegate.clone(),
            _ => token.mailbox.clone(),
        };
        Ok(AccessTokenResponse {
            access_token: token.token.expose_secret().to_owned(),
            expires_at: token.expires_at,
            imap_user: token.mailbox.clone(),
            smtp_user,
            mailbox: token.mailbox,
        })
    }
}
