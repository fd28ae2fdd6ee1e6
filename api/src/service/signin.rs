//! Sign-in ("Refresh") and the OAuth callback.
//!
//! A delegated mailbox gets a pending authorization (state stored hashed,
//! single use, 10 minutes; PKCE verifier encrypted; nonce) and the URL to
//! open. The callback consumes the state atomically, redeems the code at the
//! token endpoint of the app the state names, validates the id_token, pins the
//! signed-in identity, and stores the tokens encrypted. An app-only mailbox
//! obtains a client-credentials token directly.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
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
use crate::idp::{AppIdentity, IdpError, explain};
use crate::store::app_credentials::CredentialProblem;
use crate::store::authorizations::{self, AuthorizationRow, Consumed};
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

/// What the callback reports to the browser.
#[derive(Debug, Clone)]
pub struct CallbackOutcome {
    pub ok: bool,
    /// Stable outcome code, e.g. `signed_in`, `identity_mismatch`, `consent_declined`.
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    pub mailbox_id: Option<String>,
    pub email: Option<String>,
    pub return_url: Option<String>,
    /// 4xx status for failures found before anything was consumed.
    pub status: u16,
}

impl CallbackOutcome {
    fn fail(status: u16, code: &str, message: impl Into<String>, hint: &str) -> Self {
        Self {
            ok: false,
            code: code.into(),
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

fn random_token(bytes: usize) -> String {
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
        let row = AuthorizationRow {
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
        };
        let (org2, actor, mid) = (org.clone(), who.subject.clone(), mailbox.id.to_string());
        self.store
            .run(move |c| {
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
        let outcome = self.idp.client_credentials(app).await;
        self.metrics.token_refresh(match &outcome {
            Ok(_) => crate::metrics::RefreshOutcome::Ok,
            Err(e) => crate::metrics::RefreshOutcome::Failed(e.class()),
        });
        match outcome {
            Ok(set) => {
                let write = self.seal_tokens(&id.to_string(), &set, AccessMode::AppOnly);
                let (org, actor, mid) = (who.org.clone(), who.subject.clone(), id.to_string());
                self.store
                    .run(move |c| {
                        write_transaction(c, |c| {
                            let version = tokens::get(c, &org, &mid)?.token_version;
                            tokens::write_tokens(c, &org, &mid, version, &write)?;
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
                            .record(c)
                        })
                    })
                    .await?;
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

    fn check_return_url(&self, raw: &str) -> Result<String> {
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

    /// Records a failed sign-in or token request on the mailbox (status detail,
    /// app credential flag) and returns the API error for it.
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

    #[allow(clippy::too_many_arguments)]
    async fn record_outcome(
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

    /// Handles Microsoft's answer on the redirect URI.
    pub async fn oauth_callback(&self, params: CallbackParams) -> CallbackOutcome {
        match self.callback_inner(params).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "callback failed");
                CallbackOutcome::fail(
                    500,
                    "internal",
                    "Something went wrong on our side.",
                    "Try again; if it persists, contact the administrator.",
                )
            }
        }
    }

    async fn callback_inner(&self, params: CallbackParams) -> Result<CallbackOutcome> {
        let Some(state) = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 512)
        else {
            return Ok(CallbackOutcome::fail(
                400,
                "invalid_state",
                "The sign-in answer has no state.",
                "Start again with Refresh.",
            ));
        };
        let hash = hash_state(state);
        let consumed = self
            .store
            .run(move |c| authorizations::consume(c, &hash, now()))
            .await?;
        let auth = match consumed {
            Consumed::Taken(row) => *row,
            Consumed::Expired => {
                return Ok(CallbackOutcome::fail(
                    400,
                    "state_expired",
                    "This sign-in has expired (it is valid for 10 minutes).",
                    "Start again with Refresh.",
                ));
            }
            Consumed::Unknown => {
                return Ok(CallbackOutcome::fail(
                    400,
                    "state_unknown",
                    "This sign-in is unknown or was already used.",
                    "Start again with Refresh; each sign-in link works once.",
                ));
            }
        };
        let org = OrgId::parse(&auth.org).map_err(|e| anyhow::anyhow!(e.message))?;
        if auth.kind == "admin_consent" {
            return self.admin_consent_answer(&org, &auth, &params).await;
        }
        let mailbox_id = auth
            .mailbox_id
            .clone()
            .ok_or_else(|| anyhow::anyhow!("sign-in without a mailbox"))?;
        let mut outcome = self
            .sign_in_answer(&org, &auth, &mailbox_id, &params)
            .await?;
        outcome.mailbox_id = Some(mailbox_id);
        outcome.return_url = auth.return_url.clone();
        Ok(outcome)
    }

    async fn sign_in_answer(
        &self,
        org: &OrgId,
        auth: &AuthorizationRow,
        mailbox_id: &str,
        params: &CallbackParams,
    ) -> Result<CallbackOutcome> {
        let mailbox = self
            .mailbox_get(
                org,
                Uuid::try_parse(mailbox_id).map_err(|e| Error::Internal(e.into()))?,
            )
            .await?;
        let failed = |code: &str, message: String, hint: &str| CallbackOutcome {
            ok: false,
            code: code.into(),
            message,
            hint: Some(hint.into()),
            mailbox_id: None,
            email: Some(mailbox.email.clone()),
            return_url: None,
            status: 200,
        };
        if let Some(error) = params.error.as_deref() {
            let description = params.error_description.clone().unwrap_or_default();
            let x = explain(error, explain::aadsts_number(&description), None);
            self.record_outcome(
                org,
                mailbox_id,
                &auth.app_credential_id,
                x.class,
                x.code,
                &x.message,
                x.hint,
            )
            .await?;
            self.audit_callback(org, mailbox_id, x.code, None).await?;
            return Ok(failed(x.code, x.message, x.hint));
        }
        let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
            self.audit_callback(org, mailbox_id, "invalid_callback", None)
                .await?;
            return Ok(failed(
                "invalid_callback",
                "The sign-in answer has neither a code nor an error.".into(),
                "Start again with Refresh.",
            ));
        };
        let app_id =
            Uuid::try_parse(&auth.app_credential_id).map_err(|e| Error::Internal(e.into()))?;
        let (app, secret) = self.app_credential_with_secret(org, app_id).await?;
        let verifier = self
            .cipher
            .decrypt_string(
                auth.pkce_verifier.as_deref().unwrap_or_default(),
                Slot {
                    table: "authorizations",
                    column: "pkce_verifier",
                    row_id: &auth.id,
                },
            )
            .map_err(|e| Error::Internal(e.into()))?;
        // Mix-up defence: the code goes to the token endpoint of the app the state names.
        let identity = AppIdentity {
            client_id: &app.client_id,
            tenant: &app.tenant_id,
            client_secret: &secret,
            redirect_uri: &self.redirect_uri,
        };
        let set = match self.idp.redeem_code(&identity, code, &verifier).await {
            Ok(set) => set,
            Err(e) => {
                let x = e.explanation.clone();
                self.record_sign_in_failure(org, mailbox_id, &auth.app_credential_id, &e)
                    .await?;
                self.audit_callback(org, mailbox_id, x.code, None).await?;
                return Ok(failed(x.code, x.message, x.hint));
            }
        };
        let claims = match id_token_claims(
            &set.id_token,
            &app.client_id,
            &app.tenant_id,
            auth.nonce.as_deref(),
        ) {
            Ok(claims) => claims,
            Err(why) => {
                let message = format!("The sign-in could not be verified: {why}.");
                let hint = "Start again with Refresh.";
                self.record_outcome(
                    org,
                    mailbox_id,
                    &auth.app_credential_id,
                    crate::idp::Class::Setup,
                    "id_token_invalid",
                    &message,
                    hint,
                )
                .await?;
                self.audit_callback(org, mailbox_id, "id_token_invalid", None)
                    .await?;
                return Ok(failed("id_token_invalid", message, hint));
            }
        };
        let signed_in = claims.username.to_lowercase();
        if !mailbox.shared && signed_in != mailbox.email {
            let message = format!(
                "Signed in as {signed_in}, but this mailbox is {}.",
                mailbox.email
            );
            let hint = "Start again with Refresh and choose the mailbox's own account.";
            self.record_outcome(
                org,
                mailbox_id,
                &auth.app_credential_id,
                crate::idp::Class::Setup,
                "identity_mismatch",
                &message,
                hint,
            )
            .await?;
            self.audit_callback(org, mailbox_id, "identity_mismatch", Some(&signed_in))
                .await?;
            return Ok(failed("identity_mismatch", message, hint));
        }
        if set.refresh_token.is_none() {
            let message =
                "Microsoft returned no refresh token (offline access was not granted).".to_owned();
            let hint =
                "Grant the offline_access permission (admin consent) and start again with Refresh.";
            self.record_outcome(
                org,
                mailbox_id,
                &auth.app_credential_id,
                crate::idp::Class::Setup,
                "no_refresh_token",
                &message,
                hint,
            )
            .await?;
            self.audit_callback(org, mailbox_id, "no_refresh_token", Some(&signed_in))
                .await?;
            return Ok(failed("no_refresh_token", message, hint));
        }
        let write = self.seal_tokens(mailbox_id, &set, AccessMode::Delegated);
        let (org2, mid, who, app_id_s) = (
            org.clone(),
            mailbox_id.to_owned(),
            signed_in.clone(),
            auth.app_credential_id.clone(),
        );
        let oid = claims.oid.clone();
        self.store
            .run(move |c| {
                write_transaction(c, |c| {
                    let version = tokens::get(c, &org2, &mid)?.token_version;
                    tokens::write_tokens(c, &org2, &mid, version, &write)?;
                    let changes = MailboxChanges {
                        status: Some(MailboxStatus::Active.as_str().to_owned()),
                        status_code: Some(None),
                        status_message: Some(None),
                        status_hint: Some(None),
                        authorized_as: Some(Some(who.clone())),
                        updated_at: Some(now()),
                        ..Default::default()
                    };
                    mailboxes::update(c, &org2, &mid, &changes)?
                        .map_err(|_| anyhow::anyhow!("update refused"))?;
                    app_credentials::flag_problem(c, &org2, &app_id_s, None)?;
                    Audit {
                        org: &org2,
                        actor: "microsoft",
                        action: "mailbox.signed_in",
                        target_type: "mailbox",
                        target_id: Some(&mid),
                        outcome: "ok",
                        detail: Some(serde_json::json!({ "signed_in_as": who, "oid": oid })),
                    }
                    .record(c)
                })
            })
            .await?;
        tracing::info!(mailbox_id, "mailbox signed in");
        Ok(CallbackOutcome {
            ok: true,
            code: "signed_in".into(),
            message: format!("{} is connected (signed in as {signed_in}).", mailbox.email),
            hint: None,
            mailbox_id: None,
            email: Some(mailbox.email),
            return_url: None,
            status: 200,
        })
    }

    async fn audit_callback(
        &self,
        org: &OrgId,
        mailbox_id: &str,
        outcome: &str,
        signed_in: Option<&str>,
    ) -> Result<()> {
        let (org, mid, outcome) = (org.clone(), mailbox_id.to_owned(), outcome.to_owned());
        let detail = signed_in.map(|s| serde_json::json!({ "signed_in_as": s }));
        self.store
            .run(move |c| {
                Audit {
                    org: &org,
                    actor: "microsoft",
                    action: "mailbox.sign_in_failed",
                    target_type: "mailbox",
                    target_id: Some(&mid),
                    outcome: &outcome,
                    detail,
                }
                .record(c)
            })
            .await
    }

    async fn admin_consent_answer(
        &self,
        org: &OrgId,
        auth: &AuthorizationRow,
        params: &CallbackParams,
    ) -> Result<CallbackOutcome> {
        let granted = params
            .admin_consent
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let (org2, app_id) = (org.clone(), auth.app_credential_id.clone());
        // What Microsoft (or whoever sent the browser here) said, explained:
        // only the stable code is audited, never the raw query text.
        let refusal = (!granted).then(|| {
            let description = params.error_description.clone().unwrap_or_default();
            explain(
                params.error.as_deref().unwrap_or("access_denied"),
                explain::aadsts_number(&description),
                None,
            )
        });
        let outcome2 = refusal.as_ref().map_or("ok", |x| x.code).to_owned();
        self.store
            .run(move |c| {
                if granted {
                    app_credentials::record_consent(c, &org2, &app_id, now())?;
                }
                Audit {
                    org: &org2,
                    actor: "microsoft",
                    action: "app_credential.admin_consent",
                    target_type: "app_credential",
                    target_id: Some(&app_id),
                    outcome: &outcome2,
                    detail: None,
                }
                .record(c)
            })
            .await?;
        Ok(match refusal {
            None => CallbackOutcome {
                ok: true,
                code: "admin_consent_granted".into(),
                message: "Admin consent was granted.".into(),
                hint: None,
                mailbox_id: None,
                email: None,
                return_url: auth.return_url.clone(),
                status: 200,
            },
            Some(x) => {
                let mut o = CallbackOutcome::fail(200, x.code, x.message, x.hint);
                o.return_url = auth.return_url.clone();
                o
            }
        })
    }
}

/// The id_token claims the service relies on.
struct IdClaims {
    username: String,
    oid: Option<String>,
}

/// Validates the id_token's claims. It comes straight from the token endpoint
/// over TLS (the back channel), so its claims are checked, not its signature.
fn id_token_claims(
    token: &Option<SecretString>,
    client_id: &str,
    tenant: &str,
    nonce: Option<&str>,
) -> Result<IdClaims, &'static str> {
    let token = token.as_ref().ok_or("no id_token")?;
    let payload = token
        .expose_secret()
        .split('.')
        .nth(1)
        .ok_or("malformed id_token")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "malformed id_token")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| "malformed id_token")?;
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str());
    let audience_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == client_id,
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| v == client_id),
        _ => false,
    };
    if !audience_ok {
        return Err("the id_token is for another app (aud)");
    }
    if crate::domain::TenantId::parse(tenant).is_ok_and(|t| t.is_guid())
        && text("tid") != Some(tenant)
    {
        return Err("the id_token is from another tenant (tid)");
    }
    if nonce.is_some() && text("nonce") != nonce {
        return Err("the id_token's nonce does not match");
    }
    let exp = claims
        .get("exp")
        .and_then(|v| v.as_i64())
        .ok_or("the id_token has no expiry")?;
    if exp + 300 < Utc::now().timestamp() {
        return Err("the id_token has expired");
    }
    let username = text("preferred_username")
        .or_else(|| text("email"))
        .ok_or("the id_token names no user")?;
    Ok(IdClaims {
        username: username.to_owned(),
        oid: text("oid").map(str::to_owned),
    })
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
