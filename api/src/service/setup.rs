//! What an administrator needs around an app credential: proof that client
//! id, tenant and secret are right (verify), and the set-up view (redirect
//! URI, permissions, admin-consent URL, Exchange PowerShell for app-only).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Services;
use super::audit::Audit;
use super::signin::{AUTHORIZATION_TTL_MINUTES, hash_state};
use crate::auth::Principal;
use crate::domain::AccessMode;
use crate::error::Result;
use crate::idp::AppIdentity;
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
    /// A tenant administrator opens this to grant admin consent (valid until `admin_consent_url_expires_at`).
    pub admin_consent_url: String,
    pub admin_consent_url_expires_at: DateTime<Utc>,
    /// When admin consent was last recorded through the callback.
    pub admin_consent_granted_at: Option<DateTime<Utc>>,
    /// A problem Microsoft reported for this app credential, if any.
    pub problem: Option<super::mailboxes::StatusDetail>,
    /// For app-only mailboxes: the Exchange Online PowerShell commands, ids filled in.
    pub powershell: Vec<String>,
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
        let result = match &outcome {
            Ok(_) => VerifyResult {
                ok: true,
                code: "verified".into(),
                message: "Microsoft accepted the client id, tenant and secret.".into(),
                hint: None,
                aadsts: None,
                checked_at: Utc::now(),
            },
            Err(e) => VerifyResult {
                ok: false,
                code: e.explanation.code.into(),
                message: e.explanation.message.clone(),
                hint: Some(e.explanation.hint.into()),
                aadsts: e.aadsts,
                checked_at: Utc::now(),
            },
        };
        let (org2, actor, app_id) = (org.clone(), who.subject.clone(), id.to_string());
        let (ok, code, message) = (result.ok, result.code.clone(), result.message.clone());
        let hint = result.hint.clone().unwrap_or_default();
        let credential_problem = outcome
            .as_ref()
            .err()
            .is_some_and(|e| e.class() == crate::idp::Class::AppCredential);
        self.store
            .run(move |c| {
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
                Audit {
                    org: &org2,
                    actor: &actor,
                    action: "app_credential.verified",
                    target_type: "app_credential",
                    target_id: Some(&app_id),
                    outcome: if ok { "ok" } else { &code },
                    detail: None,
                }
                .record(c)
            })
            .await?;
        Ok(result)
    }

    pub async fn app_credential_setup(
        &self,
        who: &Principal,
        id: Uuid,
    ) -> Result<AppCredentialSetup> {
        let org = who.org.clone();
        let (app, secret) = self.app_credential_with_secret(&org, id).await?;
        let identity = AppIdentity {
            client_id: &app.client_id,
            tenant: &app.tenant_id,
            client_secret: &secret,
            redirect_uri: &self.redirect_uri,
        };
        let state = {
            use rand::RngCore;
            let mut raw = [0u8; 32];
            rand::rng().fill_bytes(&mut raw);
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
        };
        let url = self.idp.admin_consent_url(&identity, &state);
        let at = now();
        let expires_at = at + chrono::Duration::minutes(AUTHORIZATION_TTL_MINUTES);
        let row = AuthorizationRow {
            id: Uuid::now_v7().to_string(),
            org: org.as_str().to_owned(),
            kind: "admin_consent".into(),
            mailbox_id: None,
            app_credential_id: id.to_string(),
            state_hash: hash_state(&state),
            pkce_verifier: None,
            nonce: None,
            return_url: None,
            actor: who.subject.clone(),
            expires_at,
            created_at: at,
        };
        let (org2, app_id) = (org.clone(), id.to_string());
        let ((problem_code, problem_message, consent), app_only) = self
            .store
            .run(move |c| {
                // Each view mints a fresh consent link; old unused ones go.
                authorizations::insert(c, &row)?;
                let state = app_credentials::problem_and_consent(c, &org2, &app_id)?;
                let app_only = app_only_mailboxes(c, &org2, &app_id)?;
                Ok((state, app_only))
            })
            .await?;
        let mut powershell = Vec::new();
        if !app_only.is_empty() {
            powershell.push("Connect-ExchangeOnline".to_owned());
            powershell.push(format!(
                "# The ObjectId is that of the ENTERPRISE application (Enterprise applications > {}), not of the app registration.",
                app.name
            ));
            powershell.push(format!(
                "New-ServicePrincipal -AppId {} -ObjectId <object id of the enterprise application>",
                app.client_id
            ));
            for email in &app_only {
                powershell.push(format!(
                    "Add-MailboxPermission -Identity \"{email}\" -User <object id of the enterprise application> -AccessRights FullAccess"
                ));
            }
        }
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
            admin_consent_url: url.to_string(),
            admin_consent_url_expires_at: expires_at.and_utc(),
            admin_consent_granted_at: consent.map(|t| t.and_utc()),
            problem: problem_code.map(|code| super::mailboxes::StatusDetail {
                hint: crate::idp::explain::hint_for(&code).map(str::to_owned),
                code,
                message: problem_message.unwrap_or_default(),
            }),
            powershell,
        })
    }
}

fn app_only_mailboxes(
    c: &mut crate::store::AnyConnection,
    org: &crate::domain::OrgId,
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
