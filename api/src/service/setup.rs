//! What an administrator needs around an app credential: proof that client
//! id, tenant and secret are right (verify), the set-up view (redirect URI,
//! permissions, admin consent, Exchange PowerShell for app-only; reading it
//! writes nothing), and admin consent: a link minted by an admin (audited),
//! the browser's answer recorded as reported, and verify confirming it with a
//! token request before it counts as established.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Services;
use super::audit::Audit;
use super::callback::{BROWSER, CallbackOutcome, CallbackParams};
use super::signin::{AUTHORIZATION_TTL_MINUTES, hash_state, random_token};
use crate::auth::Principal;
use crate::domain::{AccessMode, EmailAddress, OrgId, TenantId};
use crate::error::Result;
use crate::idp::{AppIdentity, explain};
use crate::store::app_credentials::CredentialState;
use crate::store::authorizations::{self, AuthorizationRow};
use crate::store::{app_credentials, now};

/// The result of verifying an app credential against Microsoft.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyResult {
    /// Whether Microsoft accepted client id, tenant and secret.
    pub ok: bool,
    /// `verified`, or what is wrong (e.g. `invalid_client_secret`, `client_secret_expired`, `app_not_found`).
    pub code: String,
    pub message: String,
    pub hint: Option<String>,
    /// The AADSTS number Microsoft answered with, if any.
    pub aadsts: Option<u32>,
    pub checked_at: DateTime<Utc>,
    /// Admin consent after this verification (a reported consent becomes
    /// `established` when the token request in its tenant succeeds).
    pub admin_consent: AdminConsent,
}

/// Where admin consent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdminConsentStatus {
    /// No consent answer has been recorded.
    None,
    /// The browser came back from Microsoft's consent page saying consent was
    /// granted; run verify to confirm it.
    Reported,
    /// A token request in the consenting tenant succeeded after the report.
    Established,
}

/// Admin consent of an app credential.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminConsent {
    pub status: AdminConsentStatus,
    /// The tenant the consent answer named.
    pub tenant: Option<String>,
    /// When the browser reported the consent.
    pub reported_at: Option<DateTime<Utc>>,
    /// When verify confirmed it.
    pub established_at: Option<DateTime<Utc>>,
}

impl AdminConsent {
    fn of(state: &CredentialState) -> Self {
        let status = match (state.consent_reported_at, state.consent_granted_at) {
            (_, Some(_)) => AdminConsentStatus::Established,
            (Some(_), None) => AdminConsentStatus::Reported,
            (None, None) => AdminConsentStatus::None,
        };
        Self {
            status,
            tenant: state.consent_tenant.clone(),
            reported_at: state.consent_reported_at.map(|t| t.and_utc()),
            established_at: state.consent_granted_at.map(|t| t.and_utc()),
        }
    }
}

/// Everything to set up in Entra ID and Exchange for an app credential.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppCredentialSetup {
    /// Register this exact URI on the app (Authentication, platform "Web").
    pub redirect_uri: String,
    /// Delegated permissions to add (Office 365 Exchange Online and Microsoft Graph).
    pub delegated_permissions: Vec<String>,
    /// Application permissions to add for app-only mailboxes (Office 365 Exchange Online).
    pub application_permissions: Vec<String>,
    /// Admin consent: as reported by the browser, and as confirmed by verify.
    /// An admin gets a consent link from `app_credential_admin_consent`.
    pub admin_consent: AdminConsent,
    /// A problem Microsoft reported for this app credential, if any.
    pub problem: Option<super::mailboxes::StatusDetail>,
    /// For app-only mailboxes: the Exchange Online PowerShell commands, ids
    /// filled in as single-quoted literals. Mailboxes whose stored address is
    /// not valid are left out (a comment says how many).
    pub powershell: Vec<String>,
}

/// Options of an admin-consent link.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConsentRequest {
    /// Where the browser goes after the consent (must match the configured
    /// allow-list); it receives `outcome` as a query parameter.
    pub return_url: Option<String>,
}

/// An admin-consent link for a tenant administrator to open.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminConsentLink {
    /// Microsoft's admin-consent URL (valid until `expires_at`, usable once).
    pub admin_consent_url: String,
    pub expires_at: DateTime<Utc>,
}

/// `value` as a single-quoted PowerShell literal: the quote characters
/// PowerShell accepts (`'` and the typographic single quotes) are doubled,
/// control characters replaced, so no value can end the literal or a line.
pub fn powershell_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl Services {
    pub async fn app_credential_verify(&self, who: &Principal, id: Uuid) -> Result<VerifyResult> {
        let org = &who.org;
        let (app, secret) = self.app_credential_with_secret(org, id).await?;
        let identity = AppIdentity {
            client_id: &app.client_id,
            tenant: &app.tenant_id,
            client_secret: &secret,
            redirect_uri: &self.redirect_uri,
        };
        let outcome = self.idp.client_credentials(&identity).await;
        let (org2, app_id) = (org.clone(), id.to_string());
        let state = self
            .store
            .run(move |c| app_credentials::state(c, &org2, &app_id))
            .await?;
        // A reported consent is confirmed by a token request in the tenant it named.
        let confirm_in = match (&outcome, &state.consent_tenant, state.consent_granted_at) {
            (Ok(_), Some(tenant), None) if state.consent_reported_at.is_some() => {
                let same = TenantId::parse(&app.tenant_id).is_ok_and(|t| t.is_guid())
                    || app.tenant_guid.as_deref() == Some(tenant.as_str());
                if same {
                    Some(Ok(tenant.clone()))
                } else {
                    let there = AppIdentity { tenant, ..identity };
                    Some(
                        self.idp
                            .client_credentials(&there)
                            .await
                            .map(|_| tenant.clone()),
                    )
                }
            }
            _ => None,
        };
        let established = match &confirm_in {
            Some(Ok(tenant)) => Some(tenant.clone()),
            _ => None,
        };
        let result = match &outcome {
            Ok(_) => VerifyResult {
                ok: true,
                code: "verified".into(),
                message: "Microsoft accepted the client id, tenant and secret.".into(),
                hint: None,
                aadsts: None,
                checked_at: Utc::now(),
                admin_consent: AdminConsent::of(&state),
            },
            Err(e) => VerifyResult {
                ok: false,
                code: e.explanation.code.into(),
                message: e.explanation.message.clone(),
                hint: Some(e.explanation.hint.into()),
                aadsts: e.aadsts,
                checked_at: Utc::now(),
                admin_consent: AdminConsent::of(&state),
            },
        };
        let (org2, actor, app_id) = (org.clone(), who.subject.clone(), id.to_string());
        let (ok, code, message) = (result.ok, result.code.clone(), result.message.clone());
        let hint = result.hint.clone().unwrap_or_default();
        let credential_problem = outcome
            .as_ref()
            .err()
            .is_some_and(|e| e.class() == crate::idp::Class::AppCredential);
        let learn_guid = established
            .clone()
            .filter(|_| !TenantId::parse(&app.tenant_id).is_ok_and(|t| t.is_guid()));
        let confirmed = established.is_some();
        let state = self
            .store
            .run(move |c| {
                crate::store::write_transaction(c, |c| {
                    if ok {
                        app_credentials::flag_problem(c, &org2, &app_id, None)?;
                    } else if credential_problem {
                        app_credentials::flag_problem(
                            c,
                            &org2,
                            &app_id,
                            Some(app_credentials::CredentialProblem {
                                code: &code,
                                message: &message,
                                hint: &hint,
                            }),
                        )?;
                    }
                    if confirmed {
                        if let Some(guid) = &learn_guid {
                            app_credentials::learn_tenant_guid(c, &org2, &app_id, guid)?;
                        }
                        app_credentials::record_consent_established(c, &org2, &app_id, now())?;
                    }
                    Audit {
                        org: &org2,
                        actor: &actor,
                        action: "app_credential.verified",
                        target_type: "app_credential",
                        target_id: Some(&app_id),
                        outcome: if ok { "ok" } else { &code },
                        detail: confirmed
                            .then(|| serde_json::json!({ "admin_consent": "established" })),
                    }
                    .record(c)?;
                    app_credentials::state(c, &org2, &app_id)
                })
            })
            .await?;
        Ok(VerifyResult {
            admin_consent: AdminConsent::of(&state),
            ..result
        })
    }

    /// The set-up view. Reads only.
    pub async fn app_credential_setup(
        &self,
        who: &Principal,
        id: Uuid,
    ) -> Result<AppCredentialSetup> {
        let org = who.org.clone();
        let app = self.app_credential_get(&org, id).await?;
        let (org2, app_id) = (org.clone(), id.to_string());
        let (state, app_only) = self
            .store
            .run(move |c| {
                let state = app_credentials::state(c, &org2, &app_id)?;
                let app_only = app_only_mailboxes(c, &org2, &app_id)?;
                Ok((state, app_only))
            })
            .await?;
        Ok(AppCredentialSetup {
            redirect_uri: self.redirect_uri.to_string(),
            delegated_permissions: vec![
                "Office 365 Exchange Online: IMAP.AccessAsUser.All".into(),
                "Office 365 Exchange Online: SMTP.Send".into(),
                "Microsoft Graph: offline_access".into(),
                "Microsoft Graph: openid".into(),
                "Microsoft Graph: profile".into(),
                "Microsoft Graph: email".into(),
            ],
            application_permissions: vec![
                "Office 365 Exchange Online: IMAP.AccessAsApp".into(),
                "Office 365 Exchange Online: SMTP.SendAsApp".into(),
            ],
            admin_consent: AdminConsent::of(&state),
            problem: state
                .problem_code
                .map(|code| super::mailboxes::StatusDetail {
                    hint: crate::idp::explain::hint_for(&code).map(str::to_owned),
                    code,
                    message: state.problem_message.unwrap_or_default(),
                }),
            powershell: app_only_powershell(&app.client_id, &app_only),
        })
    }

    /// Mints an admin-consent link (admins only; audited).
    pub async fn app_credential_admin_consent(
        &self,
        who: &Principal,
        id: Uuid,
        input: AdminConsentRequest,
    ) -> Result<AdminConsentLink> {
        let return_url = input
            .return_url
            .map(|u| self.check_return_url(&u))
            .transpose()?;
        let (app, secret) = self.app_credential_with_secret(&who.org, id).await?;
        let identity = AppIdentity {
            client_id: &app.client_id,
            tenant: &app.tenant_id,
            client_secret: &secret,
            redirect_uri: &self.redirect_uri,
        };
        let state = random_token(32);
        let url = self.idp.admin_consent_url(&identity, &state);
        let at = now();
        let expires_at = at + chrono::Duration::minutes(AUTHORIZATION_TTL_MINUTES);
        let row = AuthorizationRow {
            id: Uuid::now_v7().to_string(),
            org: who.org.as_str().to_owned(),
            kind: "admin_consent".into(),
            mailbox_id: None,
            app_credential_id: id.to_string(),
            state_hash: hash_state(&state),
            pkce_verifier: None,
            nonce: None,
            return_url,
            actor: who.subject.clone(),
            expires_at,
            created_at: at,
            token_version: None,
        };
        let (org, actor, app_id) = (who.org.clone(), who.subject.clone(), id.to_string());
        self.store
            .run(move |c| {
                crate::store::write_transaction(c, |c| {
                    authorizations::insert(c, &row)?;
                    Audit {
                        org: &org,
                        actor: &actor,
                        action: "app_credential.admin_consent_started",
                        target_type: "app_credential",
                        target_id: Some(&app_id),
                        outcome: "ok",
                        detail: None,
                    }
                    .record(c)
                })
            })
            .await?;
        Ok(AdminConsentLink {
            admin_consent_url: url.to_string(),
            expires_at: expires_at.and_utc(),
        })
    }

    /// The browser's answer from Microsoft's admin-consent page (front
    /// channel): recorded as reported when it names the credential's tenant.
    pub(crate) async fn admin_consent_answer(
        &self,
        org: &OrgId,
        auth: &AuthorizationRow,
        params: &CallbackParams,
    ) -> Result<CallbackOutcome> {
        let granted = params
            .admin_consent
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let app_id = Uuid::try_parse(&auth.app_credential_id)
            .map_err(|e| crate::Error::Internal(e.into()))?;
        let app = self.app_credential_get(org, app_id).await?;
        let expected = match TenantId::parse(&app.tenant_id) {
            Ok(t) if t.is_guid() => Some(t.as_str().to_owned()),
            _ => app.tenant_guid.clone(),
        };
        let reported = params
            .tenant
            .as_deref()
            .and_then(|t| TenantId::parse(t).ok())
            .filter(TenantId::is_guid);
        // What Microsoft (or whoever sent the browser here) said, explained:
        // only stable codes are audited, never the raw query text.
        let verdict: std::result::Result<String, (&'static str, String, &'static str)> = match (
            granted, reported,
        ) {
            (false, _) => {
                let description = params.error_description.clone().unwrap_or_default();
                let x = explain(
                    params.error.as_deref().unwrap_or("access_denied"),
                    explain::aadsts_number(&description),
                    None,
                );
                Err((x.code, x.message, x.hint))
            }
            (true, None) => Err((
                "invalid_callback",
                "The consent answer names no tenant.".into(),
                "Start again with a new admin-consent link.",
            )),
            (true, Some(t)) if expected.as_deref().is_some_and(|e| e != t.as_str()) => Err((
                "consent_tenant_mismatch",
                format!(
                    "The consent answer names the tenant {}, not this app credential's.",
                    t.as_str()
                ),
                "Open the admin-consent link as an administrator of the app credential's own tenant.",
            )),
            (true, Some(t)) => Ok(t.as_str().to_owned()),
        };
        let (org2, app_id) = (org.clone(), auth.app_credential_id.clone());
        let (outcome, tenant) = match &verdict {
            Ok(t) => ("reported".to_owned(), Some(t.clone())),
            Err((code, _, _)) => ((*code).to_owned(), None),
        };
        self.store
            .run(move |c| {
                crate::store::write_transaction(c, |c| {
                    if let Some(t) = &tenant {
                        app_credentials::record_consent_reported(c, &org2, &app_id, t, now())?;
                    }
                    Audit {
                        org: &org2,
                        actor: BROWSER,
                        action: "app_credential.admin_consent",
                        target_type: "app_credential",
                        target_id: Some(&app_id),
                        outcome: &outcome,
                        detail: tenant.as_ref().map(|t| serde_json::json!({ "tenant": t })),
                    }
                    .record(c)
                })
            })
            .await?;
        let mut page = match verdict {
            Ok(tenant) => CallbackOutcome {
                ok: true,
                code: "admin_consent_granted".into(),
                message: format!(
                    "Admin consent was granted for the tenant {tenant}; Inboxlink confirms it at the next verify."
                ),
                hint: Some("You can close this window.".into()),
                mailbox_id: None,
                email: None,
                return_url: None,
                status: 200,
            },
            Err((code, message, hint)) => CallbackOutcome {
                ok: false,
                code: code.into(),
                message,
                hint: Some(hint.into()),
                mailbox_id: None,
                email: None,
                return_url: None,
                status: 200,
            },
        };
        page.return_url = auth.return_url.clone();
        Ok(page)
    }
}

/// The Exchange Online PowerShell for app-only mailboxes: every value a
/// single-quoted literal; addresses that do not parse are left out.
fn app_only_powershell(client_id: &str, stored: &[String]) -> Vec<String> {
    if stored.is_empty() {
        return Vec::new();
    }
    const SP: &str = "<object id of the enterprise application>";
    // Only what parses to exactly itself (a stored value is never rewritten here).
    let valid: Vec<EmailAddress> = stored
        .iter()
        .filter_map(|s| EmailAddress::parse(s).ok().filter(|e| e.as_str() == s))
        .collect();
    let mut lines = vec![
        "Connect-ExchangeOnline".to_owned(),
        format!(
            "# The ObjectId is that of the ENTERPRISE application of Application ID {} (Entra ID > Enterprise applications), not that of the app registration: replace the placeholder.",
            powershell_literal(client_id)
        ),
        format!(
            "New-ServicePrincipal -AppId {} -ObjectId {}",
            powershell_literal(client_id),
            powershell_literal(SP)
        ),
    ];
    for email in &valid {
        lines.push(format!(
            "Add-MailboxPermission -Identity {} -User {} -AccessRights FullAccess",
            powershell_literal(email.as_str()),
            powershell_literal(SP)
        ));
    }
    let left_out = stored.len() - valid.len();
    if left_out > 0 {
        lines.push(format!(
            "# {left_out} mailbox(es) left out: the stored address is not valid (status detail invalid_address); correct it first."
        ));
    }
    lines
}

fn app_only_mailboxes(
    c: &mut crate::store::AnyConnection,
    org: &OrgId,
    app_id: &str,
) -> Result<Vec<String>> {
    use crate::store::schema::mailboxes;
    use diesel::prelude::*;
    mailboxes::table
        .filter(mailboxes::org.eq(org.as_str()))
        .filter(mailboxes::app_credential_id.eq(app_id))
        .filter(mailboxes::access_mode.eq(AccessMode::AppOnly.as_str()))
        .select(mailboxes::email)
        .order(mailboxes::email.asc())
        .load(c)
        .map_err(crate::store::db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powershell_literals_cannot_be_ended_early() {
        assert_eq!(powershell_literal("a@b.cz"), "'a@b.cz'");
        assert_eq!(powershell_literal("o'hara"), "'o''hara'");
        assert_eq!(
            powershell_literal("x\u{2019}; calc"),
            "'x\u{2019}\u{2019}; calc'"
        );
        assert_eq!(powershell_literal("a\r\nb"), "'a??b'");
        assert_eq!(powershell_literal("$(calc)`"), "'$(calc)`'");
    }

    #[test]
    fn stored_addresses_that_do_not_parse_are_left_out() {
        let stored = vec![
            "a@contoso.cz".to_owned(),
            "x\" ; Remove-Mailbox -Identity \"ceo@contoso.cz".to_owned(),
            "Podatelna <podatelna@contoso.cz>".to_owned(),
            "A@Contoso.cz".to_owned(),
        ];
        let lines = app_only_powershell("5f4d7e3c-1b2a-4c5d-8e9f-0a1b2c3d4e5f", &stored);
        let text = lines.join("\n");
        assert!(text.contains("-Identity 'a@contoso.cz'"), "{text}");
        assert!(
            !text.contains("Remove-Mailbox") && !text.contains('"'),
            "{text}"
        );
        assert!(!text.contains("podatelna"), "{text}");
        assert!(text.contains("# 3 mailbox(es) left out"), "{text}");
    }
}
