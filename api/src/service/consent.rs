//! Admin consent: a link minted by an admin (audited), the browser's answer
//! (the front channel) recorded as reported when it names the credential's
//! tenant, and verify ([`super::setup`]) confirming it with a token request
//! before it counts as established.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Services;
use super::audit::Audit;
use super::callback::{CallbackOutcome, CallbackParams};
use super::signin::{AUTHORIZATION_TTL_MINUTES, hash_state, random_token};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{
    Actor, AppCredentialId, AuditAction, AuthorizationId, AuthorizationKind, OrgId, TenantId,
};
use crate::error::Result;
use crate::idp::explain;
use crate::limits::Limited;
use crate::store::app_credentials::CredentialState;
use crate::store::authorizations::{self, AuthorizationRow};
use crate::store::{app_credentials, now};

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
    pub(crate) fn of(state: &CredentialState) -> Self {
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

impl Services {
    /// Mints an admin-consent link (admins only; audited).
    pub async fn app_credential_admin_consent(
        &self,
        who: &Principal,
        id: AppCredentialId,
        input: AdminConsentRequest,
    ) -> Result<AdminConsentLink> {
        let org = who.require(Permission::AppCredentialsWrite)?.clone();
        self.limits.check(who, Limited::AdminConsent)?;
        let return_url = input
            .return_url
            .map(|u| self.check_return_url(&u))
            .transpose()?;
        let (app, secret) = self.app_credential_with_secret(&org, id).await?;
        let identity = self.identity(&app, &secret);
        let state = random_token(32);
        let url = self.idp.admin_consent_url(&identity, &state);
        let at = now();
        let expires_at = at + chrono::Duration::minutes(AUTHORIZATION_TTL_MINUTES);
        let row = AuthorizationRow {
            id: AuthorizationId::new(),
            org: org.clone(),
            kind: AuthorizationKind::AdminConsent,
            mailbox_id: None,
            app_credential_id: id,
            state_hash: hash_state(&state),
            pkce_verifier: None,
            nonce: None,
            return_url,
            actor: who.subject.clone(),
            expires_at,
            created_at: at,
            token_version: None,
        };
        let actor = who.actor();
        self.store
            .write(move |c| {
                authorizations::insert(c, &row)?;
                Audit::app_credential(&org, actor, AuditAction::AdminConsentStarted, id).record(c)
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
        let app = self.app_credential(org, auth.app_credential_id).await?;
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
        let verdict: std::result::Result<String, (Code, String, &'static str)> = match (
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
                Code::InvalidCallback,
                "The consent answer names no tenant.".into(),
                "Start again with a new admin-consent link.",
            )),
            (true, Some(t)) if expected.as_deref().is_some_and(|e| e != t.as_str()) => Err((
                Code::ConsentTenantMismatch,
                format!(
                    "The consent answer names the tenant {}, not this app credential's.",
                    t.as_str()
                ),
                "Open the admin-consent link as an administrator of the app credential's own tenant.",
            )),
            (true, Some(t)) => Ok(t.as_str().to_owned()),
        };
        let (org2, app_id) = (org.clone(), auth.app_credential_id);
        let (outcome, tenant) = match &verdict {
            Ok(t) => (Code::Reported, Some(t.clone())),
            Err((code, _, _)) => (*code, None),
        };
        self.store
            .write(move |c| {
                let mut audit = Audit::app_credential(
                    &org2,
                    Actor::Browser,
                    AuditAction::AdminConsentAnswered,
                    app_id,
                )
                .outcome(outcome);
                if let Some(t) = &tenant {
                    app_credentials::record_consent_reported(c, &org2, app_id, t, now())?;
                    audit = audit.detail(serde_json::json!({ "tenant": t }));
                }
                audit.record(c)
            })
            .await?;
        let mut page = match verdict {
            Ok(tenant) => CallbackOutcome {
                ok: true,
                code: Code::AdminConsentGranted,
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
                code,
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
