//! The token keeper: the one way to get a mailbox's access token.
//!
//! It returns the stored access token while it has more than 5 minutes left,
//! else refreshes it. One refresh per mailbox at a time: callers in this
//! process queue on a per-mailbox lock, instances sharing the database compete
//! for a lease (a conditional update only one wins) and the others wait and
//! reuse the token the winner wrote. Token writes are checked against the
//! version read ([`lifecycle`]), so an older token never overwrites a newer
//! one, and a response without a refresh token never erases the stored one.
//!
//! The file is long because that protocol is one: the lock, the lease, the
//! token request and the checked write read in order here. What a caller is
//! handed is in [`super::access_token`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::Services;
use super::audit::Audit;
use super::lifecycle::{self, Change, CredentialChange, Detail, Outcome, SealedTokens};
use crate::codes::Code;
use crate::crypto::Slot;
use crate::domain::{
    AccessMode, Actor, AuditAction, Cloud, EmailAddress, MailboxId, MailboxStatus, OrgId, Resource,
};
use crate::error::{Error, Result};
use crate::idp::{Class, IdpError, TokenSet};
use crate::metrics::RefreshOutcome;
use crate::store::now;
use crate::store::tokens::{self, TokenRow};

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
    /// The cloud of the mailbox's app credential: where its mail servers are.
    pub cloud: Cloud,
    /// What the token is for.
    pub resource: Resource,
}

impl AccessToken {
    /// The SASL user for SMTP: the mailbox, or the delegate who signed in for
    /// a shared mailbox (who sends with `MAIL FROM` the shared address).
    pub fn smtp_user(&self) -> &str {
        match (self.access_mode, self.shared, &self.authorized_as) {
            (AccessMode::Delegated, true, Some(delegate)) => delegate,
            _ => &self.mailbox,
        }
    }
}

#[derive(Default)]
pub struct TokenKeeper {
    inflight: Mutex<HashMap<MailboxId, Arc<tokio::sync::Mutex<()>>>>,
    /// Test hook: fail as if the process died after Microsoft answered and before the commit.
    #[doc(hidden)]
    pub crash_before_commit: AtomicBool,
}

impl TokenKeeper {
    fn lock_for(&self, id: MailboxId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.inflight.lock().expect("keeper lock map");
        map.retain(|_, l| Arc::strong_count(l) > 1);
        map.entry(id).or_default().clone()
    }
}

fn slot<'a>(column: &'a str, id: &'a str) -> Slot<'a> {
    Slot {
        table: TABLE,
        column,
        row_id: id,
    }
}

/// What one try for the refresh lease came to.
enum Leased {
    /// Won and refreshed: what is stored now (`None`: the tokens changed
    /// meanwhile, look again).
    Refreshed(Option<Box<TokenRow>>),
    /// Another caller holds the lease.
    ByAnother,
}

/// The stored access token for `resource` and its expiry.
fn stored(row: &TokenRow, resource: Resource) -> (Option<&str>, Option<NaiveDateTime>) {
    match resource {
        Resource::Outlook => (row.access_token.as_deref(), row.access_token_expires_at),
        Resource::Graph => (
            row.graph_access_token.as_deref(),
            row.graph_access_token_expires_at,
        ),
    }
}

fn fresh(row: &TokenRow, resource: Resource, at: NaiveDateTime) -> bool {
    let (token, expires_at) = stored(row, resource);
    token.is_some()
        && expires_at
            .is_some_and(|exp| exp - at > chrono::Duration::from_std(MIN_REMAINING).expect("small"))
}

/// The sealed column of an access token for `resource`.
fn token_column(resource: Resource) -> &'static str {
    match resource {
        Resource::Outlook => "access_token",
        Resource::Graph => "graph_access_token",
    }
}

/// What a caller of the keeper needs from a mailbox's tokens.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// An access token for the resource with more than [`MIN_REMAINING`] left.
    AccessToken(Resource),
    /// A refresh token issued at or after this time (the keep-alive).
    RenewedSince(NaiveDateTime),
}

impl Need {
    fn met(self, row: &TokenRow, at: NaiveDateTime) -> bool {
        match self {
            Need::AccessToken(resource) => fresh(row, resource, at),
            Need::RenewedSince(t) => row.refresh_token_issued_at.is_some_and(|i| i >= t),
        }
    }

    /// The access token a refresh for this need asks for.
    fn resource(self) -> Resource {
        match self {
            Need::AccessToken(resource) => resource,
            Need::RenewedSince(_) => Resource::Outlook,
        }
    }
}

impl Services {
    /// A valid Exchange Online access token for the mailbox, refreshing it if needed.
    pub(crate) async fn access_token(&self, org: &OrgId, id: MailboxId) -> Result<AccessToken> {
        self.access_token_for(org, id, Resource::Outlook).await
    }

    /// A valid access token for `resource`, refreshing it if needed. A
    /// delegated mailbox gets a Graph token only when its app credential
    /// asks for Graph at sign-in.
    pub(crate) async fn access_token_for(
        &self,
        org: &OrgId,
        id: MailboxId,
        resource: Resource,
    ) -> Result<AccessToken> {
        let row = self
            .tokens_for(org, id, Need::AccessToken(resource))
            .await?;
        self.unseal(row, resource)
    }

    /// Renews a delegated mailbox's grant (a refresh, whatever its access
    /// token's state) unless its refresh token was issued after `issued_after`,
    /// by this call or by anyone else meanwhile.
    pub(crate) async fn keep_alive(
        &self,
        org: &OrgId,
        id: MailboxId,
        issued_after: NaiveDateTime,
    ) -> Result<()> {
        self.tokens_for(org, id, Need::RenewedSince(issued_after))
            .await
            .map(drop)
    }

    /// The mailbox's token row once it meets `need`, refreshing it under the
    /// guards if it does not: the per-mailbox lock in this process, then the
    /// lease in the database; re-read under each, so a refresh another caller
    /// just made is reused.
    async fn tokens_for(&self, org: &OrgId, id: MailboxId, need: Need) -> Result<TokenRow> {
        let row = self.token_row(org, id).await?;
        ensure_authorized(&row)?;
        ensure_resource(&row, need.resource())?;
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
            // Taking the lease and the refresh under it run in a task of their
            // own, to the commit, even if this caller goes away meanwhile (a
            // client that hangs up, a bridge login refused meanwhile): a lease
            // taken is always used and given back, and a rotated refresh token
            // Microsoft issued is always stored. It keeps the caller's span:
            // its log lines carry the request id.
            let (services, rorg) = (self.clone(), org.clone());
            let attempt = async move {
                let (lorg, version, at) = (rorg.clone(), row.token_version, now());
                let won = services
                    .store
                    .run(move |c| tokens::take_lease(c, &lorg, id, version, at, at + lease_for))
                    .await?;
                if !won {
                    return Ok(Leased::ByAnother);
                }
                services
                    .refresh_under_lease(&rorg, row, need.resource())
                    .await
                    .map(|done| Leased::Refreshed(done.map(Box::new)))
            };
            let attempt = tokio::spawn(tracing::Instrument::in_current_span(attempt))
                .await
                .map_err(|e| Error::Internal(anyhow::Error::new(e)))?;
            match attempt? {
                Leased::Refreshed(Some(done)) => return Ok(*done),
                // Someone wrote newer tokens, or changed the mailbox, while
                // this refresh was under way: look again at what is stored.
                Leased::Refreshed(None) => {}
                // Another instance refreshes: wait for its token (or for its lease to lapse).
                Leased::ByAnother => tokio::time::sleep(WAIT_STEP).await,
            }
            row = self.token_row(org, id).await?;
        }
    }

    async fn token_row(&self, org: &OrgId, id: MailboxId) -> Result<TokenRow> {
        let org = org.clone();
        Ok(self.store.run(move |c| tokens::get(c, &org, id)).await?)
    }

    fn unseal(&self, row: TokenRow, resource: Resource) -> Result<AccessToken> {
        let (sealed, expires_at) = stored(&row, resource);
        let sealed = sealed.ok_or_else(|| anyhow::anyhow!("no access token"))?;
        let id = row.id.to_string();
        let token = self
            .cipher
            .decrypt_string(sealed, slot(token_column(resource), &id))
            .map_err(|e| {
                Error::Internal(
                    anyhow::Error::new(e).context(format!("access token of mailbox {id}")),
                )
            })?;
        Ok(AccessToken {
            token,
            expires_at: expires_at.map(|t| t.and_utc()).unwrap_or_default(),
            mailbox: row.email,
            authorized_as: row.authorized_as,
            shared: row.shared,
            access_mode: row.access_mode,
            cloud: row.cloud,
            resource,
        })
    }

    /// Holding the lease: asks Microsoft, then writes the result
    /// version-checked. `None`: the write lost to a newer one (the lease
    /// lapsed, or the mailbox's settings changed and ended the grant).
    async fn refresh_under_lease(
        &self,
        org: &OrgId,
        row: TokenRow,
        resource: Resource,
    ) -> Result<Option<TokenRow>> {
        let outcome = self.request_tokens(org, &row, resource).await;
        let (id, version) = (row.id, row.token_version);
        let set = match outcome {
            Ok(set) => set,
            Err(e) => {
                self.metrics.token_refresh(match &e {
                    TokenFailure::Idp(e) => RefreshOutcome::Failed(e.class()),
                    TokenFailure::Internal(_) => RefreshOutcome::Internal,
                });
                let release_org = org.clone();
                self.store
                    .run(move |c| tokens::release_lease(c, &release_org, id, version))
                    .await?;
                return Err(self.record_token_failure(org, &row, resource, e).await?);
            }
        };
        if self
            .keeper
            .crash_before_commit
            .swap(false, Ordering::SeqCst)
        {
            return Err(Error::Internal(anyhow::anyhow!(
                "simulated crash before the token commit"
            )));
        }
        let sealed = self.seal_tokens(id, resource, &set);
        let (worg, app_id, change) = (
            org.clone(),
            row.app_credential_id,
            Change::Refreshed {
                expected: version,
                tokens: sealed.clone(),
            },
        );
        let recovering = row.status == MailboxStatus::Error;
        let outcome = self
            .store
            .write(move |c| {
                let outcome = lifecycle::transition(c, &worg, id, change, None)?;
                if recovering && outcome != Outcome::Lost {
                    // Microsoft gave tokens to a mailbox in `error`: its app
                    // credential works again, with the mailboxes it had broken.
                    lifecycle::transition_credential(c, &worg, app_id, CredentialChange::Accepted)?;
                }
                Ok::<_, Error>(outcome)
            })
            .await?;
        self.metrics.token_refresh(RefreshOutcome::Ok);
        match outcome {
            Outcome::Lost | Outcome::Unchanged => {
                tracing::warn!(mailbox_id = %id, "the tokens changed meanwhile; keeping what is stored");
                Ok(None)
            }
            Outcome::Applied { to, .. } => {
                if recovering {
                    tracing::info!(mailbox_id = %id, "mailbox works again");
                }
                // What is stored now, without reading it back.
                let (mut outlook, mut graph) = (
                    (row.access_token.clone(), row.access_token_expires_at),
                    (
                        row.graph_access_token.clone(),
                        row.graph_access_token_expires_at,
                    ),
                );
                let new = (
                    Some(sealed.access_token),
                    Some(sealed.access_token_expires_at),
                );
                match resource {
                    Resource::Outlook => outlook = new,
                    Resource::Graph => graph = new,
                }
                Ok(Some(TokenRow {
                    status: to,
                    status_code: if recovering { None } else { row.status_code },
                    access_token: outlook.0,
                    access_token_expires_at: outlook.1,
                    graph_access_token: graph.0,
                    graph_access_token_expires_at: graph.1,
                    refresh_token_issued_at: sealed
                        .refresh_token
                        .as_ref()
                        .map(|_| sealed.at)
                        .or(row.refresh_token_issued_at),
                    refresh_token: sealed.refresh_token.or(row.refresh_token),
                    token_version: version + 1,
                    refresh_lease_until: None,
                    last_error_message: None,
                    last_error_at: None,
                    ..row
                }))
            }
        }
    }

    async fn request_tokens(
        &self,
        org: &OrgId,
        row: &TokenRow,
        resource: Resource,
    ) -> Result<TokenSet, TokenFailure> {
        let (app, secret) = self
            .app_credential_with_secret(org, row.app_credential_id)
            .await
            .map_err(TokenFailure::Internal)?;
        let identity = self.identity(&app, &secret);
        let result: Result<TokenSet, IdpError> = match row.access_mode {
            AccessMode::AppOnly => self.idp.client_credentials(&identity, resource).await,
            AccessMode::Delegated => {
                let sealed = row.refresh_token.as_deref().ok_or_else(|| {
                    TokenFailure::Internal(Error::refused(
                        Code::MailboxNotAuthorized,
                        "the mailbox has no refresh token; sign in with refresh",
                    ))
                })?;
                let refresh = self
                    .cipher
                    .decrypt_string(sealed, slot("refresh_token", &row.id.to_string()))
                    .map_err(|e| TokenFailure::Internal(Error::Internal(e.into())))?;
                self.idp.refresh(&identity, &refresh, resource).await
            }
        };
        if let Ok(set) = &result {
            self.certificate_seen(org, &app, &secret, set).await;
        }
        result.map_err(TokenFailure::Idp)
    }

    /// Encrypts a token response for the mailbox's row.
    pub(crate) fn seal_tokens(
        &self,
        id: MailboxId,
        resource: Resource,
        set: &TokenSet,
    ) -> SealedTokens {
        let at = now();
        let id = id.to_string();
        let expires = expiry_after(at, set.expires_in);
        SealedTokens {
            resource,
            access_token: self.cipher.encrypt_str(
                set.access_token.expose_secret(),
                slot(token_column(resource), &id),
            ),
            access_token_expires_at: expires,
            refresh_token: set.refresh_token.as_ref().map(|t| {
                self.cipher
                    .encrypt_str(t.expose_secret(), slot("refresh_token", &id))
            }),
            at,
        }
    }

    /// Records what a failed token request means for the mailbox (and its app credential).
    async fn record_token_failure(
        &self,
        org: &OrgId,
        row: &TokenRow,
        resource: Resource,
        failure: TokenFailure,
    ) -> Result<Error> {
        let e = match failure {
            TokenFailure::Internal(e) => return Ok(e),
            TokenFailure::Idp(e) => e,
        };
        if resource == Resource::Graph && e.class() == Class::Setup {
            // Graph's permissions are missing (not consented, not granted):
            // the grant still serves IMAP and SMTP, so the mailbox's state
            // stays; the caller is told what to do.
            tracing::warn!(mailbox_id = %row.id, aadsts = ?e.aadsts, "graph token refused");
            return Ok(token_error(&e));
        }
        let x = e.explanation.clone();
        tracing::warn!(mailbox_id = %row.id, code = x.code.as_str(), aadsts = ?e.aadsts, "token request failed");
        let (org2, id, app_id, class) = (org.clone(), row.id, row.app_credential_id, e.class());
        let detail = Detail::new(x.code, x.message, x.hint);
        self.store
            .run(move |c| {
                if class == Class::Transient {
                    let change = Change::Transient { detail, at: now() };
                    return lifecycle::transition(c, &org2, id, change, None).map(drop);
                }
                crate::store::write_transaction(c, |c| {
                    let audit = Audit::mailbox(
                        &org2,
                        Actor::Inboxlink,
                        AuditAction::TokenRefreshFailed,
                        id,
                    )
                    .outcome(detail.code);
                    if class == Class::AppCredential {
                        lifecycle::transition_credential(
                            c,
                            &org2,
                            app_id,
                            CredentialChange::Refused(detail.clone()),
                        )?;
                    }
                    let change = Change::RefreshRefused { class, detail };
                    lifecycle::transition(c, &org2, id, change, Some(audit)).map(drop)
                })
            })
            .await?;
        Ok(token_error(&e))
    }
}

/// When a token that lives `lifetime` from `at` expires. The lifetime is
/// clamped where it is read (crate::idp); the sum is checked all the same,
/// and one that leaves the calendar counts as an hour.
fn expiry_after(at: NaiveDateTime, lifetime: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(lifetime)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(at + chrono::Duration::hours(1))
}

enum TokenFailure {
    Idp(IdpError),
    Internal(Error),
}

/// The API error for a failed token request.
pub(crate) fn token_error(e: &IdpError) -> Error {
    let x = &e.explanation;
    let detail = format!("{} {}", x.message, x.hint);
    match e.class() {
        Class::Transient => Error::Unavailable(detail),
        Class::Reauth => Error::refused(Code::ReauthRequired, detail),
        Class::AppCredential => Error::refused(Code::AppCredentialInvalid, detail),
        Class::Setup => Error::refused(Code::SignInSetup, detail),
    }
}

fn ensure_authorized(row: &TokenRow) -> Result<()> {
    match row.status {
        MailboxStatus::ReauthRequired => Err(Error::refused(
            Code::ReauthRequired,
            "the mailbox must be signed in again (refresh)",
        )),
        _ if !row.has_grant() => Err(Error::refused(
            Code::MailboxNotAuthorized,
            "the mailbox has not been authorized yet; use refresh",
        )),
        // The address goes into SASL and SMTP commands, here and at the
        // integrator: one an older version accepted without the strict parse
        // is not handed out.
        _ if !addresses_valid(row) => Err(Error::refused(
            Code::MailboxAddressInvalid,
            "the mailbox's stored address (or the account it was authorized as) is not a bare mailbox address; correct the address and sign in again",
        )),
        _ => Ok(()),
    }
}

/// A Graph token for a delegated mailbox needs the sign-in to have asked
/// for Graph's permissions.
fn ensure_resource(row: &TokenRow, resource: Resource) -> Result<()> {
    if resource == Resource::Graph && row.access_mode == AccessMode::Delegated && !row.graph {
        return Err(Error::refused(
            Code::GraphNotEnabled,
            "the mailbox's app credential does not ask for Microsoft Graph at sign-in: set `graph: true` on it, add Graph's delegated Mail.ReadWrite and Mail.Send permissions to the app registration, and sign the mailbox in again",
        ));
    }
    Ok(())
}

fn addresses_valid(row: &TokenRow) -> bool {
    let valid = |a: &str| EmailAddress::parse(a).is_ok_and(|e| e.as_str() == a);
    valid(&row.email) && row.authorized_as.as_deref().is_none_or(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_lifetime_does_not_overflow() {
        let at = now();
        let hour = at + chrono::Duration::hours(1);
        assert_eq!(
            expiry_after(at, Duration::from_secs(1_000_000_000_000_000)),
            hour
        );
        assert_eq!(expiry_after(at, Duration::MAX), hour);
        assert_eq!(
            expiry_after(at, Duration::from_secs(60)),
            at + chrono::Duration::seconds(60)
        );
    }
}
