//! The OAuth callback: where Microsoft sends the browser back after a sign-in
//! or an admin consent.
//!
//! A sign-in answer goes through named steps, each of which either hands the
//! next one what it needs or refuses with a [`Refusal`]: take the state
//! (single use), read the front-channel answer, redeem the code (back
//! channel), verify the id_token, pin the identity, check the refresh token,
//! commit. A refusal is recorded once, by [`Services::refuse`], as its
//! [`Effect`] says: what came through the browser concerns that one attempt
//! (anyone holding an unused sign-in link can forge it, RFC 6749 4.1.2.1) and
//! changes no status; only the token endpoint's answers may change statuses.
//!
//! The file is long because the flow is: its steps stand here in their
//! order, so a sign-in reads top to bottom. The id_token's own checks are in
//! `id_token`.

mod id_token;

use chrono::Utc;
use id_token::{IdClaims, id_token_claims};
use secrecy::SecretString;
use serde::Deserialize;

use super::Services;
use super::app_credentials::AppCredential;
use super::audit::Audit;
use super::lifecycle::{self, Change, CredentialChange, Detail, Identity, Outcome};
use super::signin::{hash_state, record_refusal};
use crate::codes::Code;
use crate::crypto::Slot;
use crate::domain::{Actor, AuditAction, AuthorizationKind, MailboxId, OrgId, Resource, TenantId};
use crate::error::{Error, Result};
use crate::idp::{Class, TokenSet, explain};
use crate::store::authorizations::{self, AuthorizationRow, Consumed};
use crate::store::mailboxes::MailboxRow;
use crate::store::{app_credentials, mailboxes, now, tokens};

/// What the callback reports to the browser.
#[derive(Debug, Clone)]
pub struct CallbackOutcome {
    pub ok: bool,
    /// Stable outcome code, e.g. `signed_in`, `identity_mismatch`, `consent_declined`.
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
    pub mailbox_id: Option<MailboxId>,
    pub email: Option<String>,
    pub return_url: Option<String>,
    /// 4xx status for failures found before anything was consumed.
    pub status: u16,
}

impl CallbackOutcome {
    fn fail(status: u16, code: Code, message: impl Into<String>, hint: &str) -> Self {
        Self {
            ok: false,
            code,
            message: message.into(),
            hint: Some(hint.into()),
            mailbox_id: None,
            email: None,
            return_url: None,
            status,
        }
    }
}

/// Query parameters Microsoft sends to the redirect URI.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub admin_consent: Option<String>,
    pub tenant: Option<String>,
}

/// Why a sign-in ended without tokens.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub code: Code,
    pub message: String,
    pub hint: String,
    pub effect: Effect,
    /// Who said so: the browser (front channel) or Microsoft (back channel).
    pub actor: Actor,
    /// The account that signed in, when it is known.
    pub signed_in: Option<String>,
}

/// What a refusal may change on the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The status detail records the attempt; status and app credential stay.
    Attempt,
    /// As the token endpoint's answer is classified (status, app credential).
    Classified(Class),
    /// Nothing is recorded on the mailbox: a change made meanwhile stands.
    Nothing,
}

impl Refusal {
    pub(crate) fn new(code: Code, message: impl Into<String>, hint: &str, effect: Effect) -> Self {
        let actor = match effect {
            Effect::Attempt => Actor::Browser,
            _ => Actor::Microsoft,
        };
        Self {
            code,
            message: message.into(),
            hint: hint.into(),
            effect,
            actor,
            signed_in: None,
        }
    }

    fn by(mut self, signed_in: &str) -> Self {
        self.signed_in = Some(signed_in.to_owned());
        self
    }
}

/// A step either goes on, refuses the sign-in, or fails (a bug, the database).
pub(crate) enum Step {
    Refused(Box<Refusal>),
    Failed(Error),
}

impl From<Error> for Step {
    fn from(e: Error) -> Self {
        Step::Failed(e)
    }
}

impl From<Refusal> for Step {
    fn from(r: Refusal) -> Self {
        Step::Refused(Box::new(r))
    }
}

impl Services {
    /// Handles Microsoft's answer on the redirect URI.
    pub async fn oauth_callback(&self, params: CallbackParams) -> CallbackOutcome {
        match self.callback_inner(params).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "callback failed");
                CallbackOutcome::fail(
                    500,
                    Code::Internal,
                    "Something went wrong on our side.",
                    "Try again; if it persists, contact the administrator.",
                )
            }
        }
    }

    async fn callback_inner(&self, params: CallbackParams) -> Result<CallbackOutcome> {
        let auth = match self.take_state(&params).await? {
            Ok(auth) => auth,
            Err(page) => return Ok(page),
        };
        let org = auth.org.clone();
        if auth.kind == AuthorizationKind::AdminConsent {
            return self.admin_consent_answer(&org, &auth, &params).await;
        }
        let mailbox_id = auth
            .mailbox_id
            .ok_or_else(|| anyhow::anyhow!("sign-in without a mailbox"))?;
        let org2 = org.clone();
        let mailbox = self
            .store
            .run(move |c| mailboxes::get(c, &org2, mailbox_id))
            .await?;
        let email = mailbox.email.clone();
        let mut outcome = match self.sign_in(&org, &auth, &mailbox, &params).await {
            Ok(signed_in) => {
                tracing::info!(%mailbox_id, "mailbox signed in");
                CallbackOutcome {
                    ok: true,
                    code: Code::SignedIn,
                    message: format!("{email} is connected (signed in as {signed_in})."),
                    hint: None,
                    mailbox_id: None,
                    email: Some(email),
                    return_url: None,
                    status: 200,
                }
            }
            Err(Step::Refused(refusal)) => {
                self.refuse(&org, &auth, mailbox_id, &refusal).await?;
                CallbackOutcome {
                    ok: false,
                    code: refusal.code,
                    message: refusal.message,
                    hint: Some(refusal.hint),
                    mailbox_id: None,
                    email: Some(email),
                    return_url: None,
                    status: 200,
                }
            }
            Err(Step::Failed(e)) => return Err(e),
        };
        outcome.mailbox_id = Some(mailbox_id);
        outcome.return_url = auth.return_url.clone();
        Ok(outcome)
    }

    /// Step: the state names a pending authorization, which is consumed
    /// (single use). A missing, unknown, used or expired state gets a 400 page
    /// and nothing else happens.
    async fn take_state(
        &self,
        params: &CallbackParams,
    ) -> Result<std::result::Result<AuthorizationRow, CallbackOutcome>> {
        let Some(state) = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 512)
        else {
            return Ok(Err(CallbackOutcome::fail(
                400,
                Code::InvalidState,
                "The sign-in answer has no state.",
                "Start again with Refresh.",
            )));
        };
        let hash = hash_state(state);
        let consumed = self
            .store
            .run(move |c| authorizations::consume(c, &hash, now()))
            .await?;
        Ok(match consumed {
            Consumed::Taken(row) => Ok(*row),
            Consumed::Expired => Err(CallbackOutcome::fail(
                400,
                Code::StateExpired,
                "This sign-in has expired (it is valid for 10 minutes).",
                "Start again with Refresh.",
            )),
            Consumed::Unknown => Err(CallbackOutcome::fail(
                400,
                Code::StateUnknown,
                "This sign-in is unknown or was already used.",
                "Start again with Refresh; each sign-in link works once.",
            )),
        })
    }

    /// The steps of a sign-in answer; returns who signed in.
    async fn sign_in(
        &self,
        org: &OrgId,
        auth: &AuthorizationRow,
        mailbox: &MailboxRow,
        params: &CallbackParams,
    ) -> std::result::Result<String, Step> {
        let code = front_channel(params)?;
        let (app, secret) = self
            .app_credential_with_secret(org, auth.app_credential_id)
            .await?;
        let set = self.redeem(auth, &app, &secret, code).await?;
        self.finish_sign_in(org, auth, mailbox, &app, &set).await
    }

    /// The steps after the tokens came (from a redeemed code, or a
    /// device-code poll): verify the id_token, pin the identity, check the
    /// refresh token, commit. Returns who signed in.
    pub(crate) async fn finish_sign_in(
        &self,
        org: &OrgId,
        auth: &AuthorizationRow,
        mailbox: &MailboxRow,
        app: &AppCredential,
        set: &TokenSet,
    ) -> std::result::Result<String, Step> {
        let claims = verify_id_token(&set.id_token, app, auth.nonce.as_deref())?;
        pin_identity(mailbox, &claims)?;
        if set.refresh_token.is_none() {
            return Err(Refusal::new(
                Code::NoRefreshToken,
                "Microsoft returned no refresh token (offline access was not granted).",
                "Grant the offline_access permission (admin consent) and start again with Refresh.",
                Effect::Classified(Class::Setup),
            )
            .by(claims.username.as_str())
            .into());
        }
        self.commit_sign_in(org, auth, mailbox, app, set, &claims)
            .await?;
        Ok(claims.username.as_str().to_owned())
    }

    /// Step: redeems the code at the token endpoint of the app the state
    /// names (the mix-up defence), with the stored PKCE verifier.
    async fn redeem(
        &self,
        auth: &AuthorizationRow,
        app: &AppCredential,
        secret: &SecretString,
        code: &str,
    ) -> std::result::Result<TokenSet, Step> {
        let verifier = self
            .cipher
            .decrypt_string(
                auth.pkce_verifier.as_deref().unwrap_or_default(),
                Slot {
                    table: "authorizations",
                    column: "pkce_verifier",
                    row_id: &auth.id.to_string(),
                },
            )
            .map_err(|e| Error::Internal(e.into()))?;
        let identity = self.identity(app, secret);
        let redeemed = self.idp.redeem_code(&identity, code, &verifier).await;
        if let Ok(set) = &redeemed {
            self.certificate_seen(&auth.org, app, secret, set).await;
        }
        redeemed.map_err(|e| {
            let x = e.explanation;
            Refusal::new(x.code, x.message, x.hint, Effect::Classified(x.class)).into()
        })
    }

    /// Step: writes the tokens, onto the token version the sign-in started
    /// with: a settings change (or another sign-in) since then wins, and this
    /// sign-in ends as `settings_changed` without touching the mailbox.
    async fn commit_sign_in(
        &self,
        org: &OrgId,
        auth: &AuthorizationRow,
        mailbox: &MailboxRow,
        app: &AppCredential,
        set: &TokenSet,
        claims: &IdClaims,
    ) -> std::result::Result<(), Step> {
        let tokens = self.seal_tokens(mailbox.id, Resource::Outlook, set);
        let (org2, id, app_id) = (org.clone(), mailbox.id, auth.app_credential_id);
        let started_at = auth.token_version;
        let identity = Identity {
            username: claims.username.as_str().to_owned(),
            oid: claims.oid.clone(),
            tid: claims.tid.clone(),
        };
        // A credential that names its tenant by a domain learns its GUID here.
        let learn_tenant = (!TenantId::parse(&app.tenant_id).is_ok_and(|t| t.is_guid())
            && app.tenant_guid.is_none())
        .then(|| claims.tid.clone());
        let outcome = self
            .store
            .write(move |c| {
                let expected = match started_at {
                    Some(v) => v,
                    // Started by a version that did not record it.
                    None => tokens::get(c, &org2, id)?.token_version,
                };
                let audit = Audit::mailbox(&org2, Actor::Microsoft, AuditAction::SignedIn, id)
                    .detail(serde_json::json!({
                        "signed_in_as": identity.username, "oid": identity.oid, "tid": identity.tid,
                    }));
                let change = Change::Authorized {
                    expected,
                    tokens,
                    identity: Some(identity),
                };
                let outcome = lifecycle::transition(c, &org2, id, change, Some(audit))?;
                if outcome == Outcome::Lost {
                    return Ok(outcome);
                }
                if let Some(guid) = &learn_tenant {
                    app_credentials::learn_tenant_guid(c, &org2, app_id, guid)?;
                }
                lifecycle::transition_credential(c, &org2, app_id, CredentialChange::Accepted)?;
                Ok::<_, Error>(outcome)
            })
            .await?;
        if outcome == Outcome::Lost {
            Err(Refusal::new(
                Code::SettingsChanged,
                "The mailbox settings changed during the sign-in; the sign-in was not applied.",
                "Start again with Refresh.",
                Effect::Nothing,
            )
            .by(claims.username.as_str())
            .into())
        } else {
            Ok(())
        }
    }

    /// Records a refusal once: on the mailbox as its effect says, and in the audit log.
    pub(crate) async fn refuse(
        &self,
        org: &OrgId,
        auth: &AuthorizationRow,
        mailbox_id: MailboxId,
        r: &Refusal,
    ) -> Result<()> {
        let (org, app_id) = (org.clone(), auth.app_credential_id);
        let detail = Detail::new(r.code, r.message.clone(), r.hint.clone());
        let effect = r.effect;
        let channel = if r.actor == Actor::Browser {
            "front"
        } else {
            "back"
        };
        let audit_detail = match &r.signed_in {
            Some(s) => serde_json::json!({ "channel": channel, "signed_in_as": s }),
            None => serde_json::json!({ "channel": channel }),
        };
        let actor = r.actor.clone();
        self.store
            .write(move |c| {
                match effect {
                    Effect::Attempt => {
                        let change = Change::Attempt {
                            detail: detail.clone(),
                        };
                        lifecycle::transition(c, &org, mailbox_id, change, None)?;
                    }
                    Effect::Classified(class) => {
                        record_refusal(c, &org, mailbox_id, app_id, class, detail.clone())?;
                    }
                    Effect::Nothing => {}
                }
                Audit::mailbox(&org, actor, AuditAction::SignInFailed, mailbox_id)
                    .outcome(detail.code)
                    .detail(audit_detail)
                    .record(c)
            })
            .await
    }
}
/// Step: what came through the browser. An error there is explained and
/// concerns this attempt only; without an error there must be a code.
pub(crate) fn front_channel(params: &CallbackParams) -> std::result::Result<&str, Refusal> {
    if let Some(error) = params.error.as_deref() {
        let description = params.error_description.clone().unwrap_or_default();
        let x = explain(error, explain::aadsts_number(&description), None);
        return Err(Refusal::new(x.code, x.message, x.hint, Effect::Attempt));
    }
    params
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Refusal::new(
                Code::InvalidCallback,
                "The sign-in answer has neither a code nor an error.",
                "Start again with Refresh.",
                Effect::Attempt,
            )
        })
}

/// Step: validates the id_token's claims. It comes straight from the token
/// endpoint over TLS (the back channel), so its claims are checked, not its
/// signature. The tenant must be the credential's (its GUID, or the GUID
/// learned for its domain).
fn verify_id_token(
    token: &Option<SecretString>,
    app: &AppCredential,
    nonce: Option<&str>,
) -> std::result::Result<IdClaims, Refusal> {
    id_token_claims(token, app, nonce, Utc::now().timestamp()).map_err(|why| {
        Refusal::new(
            Code::IdTokenInvalid,
            format!("The sign-in could not be verified: {why}."),
            "Start again with Refresh.",
            Effect::Classified(Class::Setup),
        )
    })
}

/// Step: the signed-in account must be the mailbox's (a shared mailbox: any
/// delegate), and once a mailbox is connected, the same Entra ID object in
/// the same tenant: a user name can be given to another account, an object
/// id cannot.
fn pin_identity(mailbox: &MailboxRow, claims: &IdClaims) -> std::result::Result<(), Refusal> {
    let signed_in = claims.username.as_str();
    if !mailbox.shared && signed_in != mailbox.email {
        return Err(Refusal::new(
            Code::IdentityMismatch,
            format!(
                "Signed in as {signed_in}, but this mailbox is {}.",
                mailbox.email
            ),
            "Start again with Refresh and choose the mailbox's own account.",
            Effect::Classified(Class::Setup),
        )
        .by(signed_in));
    }
    let same_account = !mailbox.shared || mailbox.authorized_as.as_deref() == Some(signed_in);
    let oid_changed = same_account
        && mailbox
            .identity_oid
            .as_deref()
            .is_some_and(|o| o != claims.oid);
    let tid_changed = mailbox
        .identity_tid
        .as_deref()
        .is_some_and(|t| t != claims.tid);
    if oid_changed || tid_changed {
        return Err(Refusal::new(
            Code::IdentityChanged,
            format!(
                "{signed_in} is not the account this mailbox was connected with (another Entra ID object or tenant)."
            ),
            "If the account was replaced on purpose, delete the mailbox and add it again; otherwise sign in with the original account.",
            Effect::Classified(Class::Setup),
        )
        .by(signed_in));
    }
    Ok(())
}
