//! What an administrator needs around an app credential: proof that client
//! id, tenant and secret are right (verify, which also confirms a reported
//! admin consent, [`super::consent`]), and the set-up view (redirect URI,
//! permissions, where admin consent stands, Exchange PowerShell for
//! app-only; reading it writes nothing).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Services;
use super::audit::Audit;
use super::consent::AdminConsent;
use super::lifecycle::{self, CredentialChange, Detail};
use crate::auth::{Permission, Principal};
use crate::codes::Code;
use crate::domain::{
    AccessMode, AppCredentialId, AuditAction, Cloud, EmailAddress, GRAPH_PERMISSIONS, Resource,
    TenantId,
};
use crate::error::{Error, Result};
use crate::idp::AppIdentity;
use crate::limits::Limited;
use crate::store::{app_credentials, mailboxes, now};

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

/// Everything to set up in Entra ID and Exchange for an app credential.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppCredentialSetup {
    /// Register this exact URI on the app (Authentication, platform "Web").
    pub redirect_uri: String,
    /// The cloud: where to register the app, and where its mailboxes sign
    /// in and connect.
    pub cloud: CloudSetup,
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
    /// For app-only mailboxes, Exchange's RBAC for Applications (which
    /// replaces Application Access Policies): the service principal, a
    /// management scope of exactly these mailboxes, and the role
    /// assignments limited to it (SMTP, and Graph's mail roles for a
    /// `graph` credential). IMAP has no application role: it keeps the
    /// `Add-MailboxPermission` of `powershell`.
    pub powershell_rbac: Vec<String>,
}

/// Where an app credential's mailboxes sign in and connect: its cloud's
/// endpoints, or the configured ones where `INBOXLINK_MS_AUTHORITY`,
/// `INBOXLINK_IMAP_ENDPOINT` or `INBOXLINK_SMTP_ENDPOINT` replace them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CloudSetup {
    pub cloud: Cloud,
    /// The cloud's name, e.g. "Microsoft 365 GCC High".
    pub name: String,
    /// Where the app registration is managed (App registrations).
    pub portal: String,
    /// The sign-in authority in use.
    pub authority: String,
    /// The IMAP server in use (`host:port`, implicit TLS).
    pub imap_endpoint: String,
    /// The SMTP submission server in use (`host:port`, STARTTLS).
    pub smtp_endpoint: String,
    /// The scopes a sign-in asks for.
    pub delegated_scopes: Vec<String>,
    /// The scope of an app-only token request.
    pub app_only_scope: String,
    /// Microsoft Graph's base URL in use.
    pub graph_endpoint: String,
    /// The Graph scopes a sign-in also asks for (empty unless the app
    /// credential has `graph: true`); Graph tokens are redeemed from the
    /// refresh token with these.
    pub graph_delegated_scopes: Vec<String>,
    /// The scope of an app-only Graph token request.
    pub graph_app_only_scope: String,
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
    pub async fn app_credential_verify(
        &self,
        who: &Principal,
        id: AppCredentialId,
    ) -> Result<VerifyResult> {
        let org = who.require(Permission::AppCredentialsWrite)?.clone();
        self.limits.check(who, Limited::Verify)?;
        let (app, secret) = self.app_credential_with_secret(&org, id).await?;
        let identity = self.identity(&app, &secret);
        let outcome = self
            .idp
            .client_credentials(&identity, Resource::Outlook)
            .await;
        if let Ok(set) = &outcome {
            self.certificate_seen(&org, &app, &secret, set).await;
        }
        let org2 = org.clone();
        let state = self
            .store
            .run(move |c| app_credentials::state(c, &org2, id))
            .await?;
        // A reported consent is confirmed by a token request in the tenant it named.
        let by_guid = TenantId::parse(&app.tenant_id).is_ok_and(|t| t.is_guid());
        let established = match (&outcome, &state.consent_tenant, state.consent_granted_at) {
            (Ok(_), Some(tenant), None) if state.consent_reported_at.is_some() => {
                if by_guid || app.tenant_guid.as_deref() == Some(tenant.as_str()) {
                    Some(tenant.clone())
                } else {
                    let there = AppIdentity { tenant, ..identity };
                    let confirmed = self
                        .idp
                        .client_credentials(&there, Resource::Outlook)
                        .await
                        .is_ok();
                    confirmed.then(|| tenant.clone())
                }
            }
            _ => None,
        };
        let result = match &outcome {
            Ok(_) => VerifyResult {
                ok: true,
                code: Code::Verified.into(),
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
        let change = match &outcome {
            Ok(_) => Some(CredentialChange::Accepted),
            Err(e) if e.class() == crate::idp::Class::AppCredential => {
                let x = &e.explanation;
                Some(CredentialChange::Refused(Detail::new(
                    x.code,
                    x.message.clone(),
                    x.hint,
                )))
            }
            Err(_) => None,
        };
        let outcome_code = match &outcome {
            Ok(_) => Code::Ok,
            Err(e) => e.explanation.code,
        };
        let learn_guid = established.clone().filter(|_| !by_guid);
        let confirmed = established.is_some();
        let actor = who.actor();
        let state = self
            .store
            .write(move |c| {
                if let Some(change) = change {
                    lifecycle::transition_credential(c, &org, id, change)?;
                }
                let mut audit =
                    Audit::app_credential(&org, actor, AuditAction::AppCredentialVerified, id)
                        .outcome(outcome_code);
                if confirmed {
                    if let Some(guid) = &learn_guid {
                        app_credentials::learn_tenant_guid(c, &org, id, guid)?;
                    }
                    app_credentials::record_consent_established(c, &org, id, now())?;
                    audit = audit.detail(serde_json::json!({ "admin_consent": "established" }));
                }
                audit.record(c)?;
                Ok::<_, Error>(app_credentials::state(c, &org, id)?)
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
        id: AppCredentialId,
    ) -> Result<AppCredentialSetup> {
        let org = who.require(Permission::AppCredentialsRead)?.clone();
        self.limits.check(who, Limited::Setup)?;
        let app = self.app_credential(&org, id).await?;
        let (state, app_only) = self
            .store
            .run(move |c| {
                let state = app_credentials::state(c, &org, id)?;
                let app_only = mailboxes::emails_using(c, &org, id, Some(AccessMode::AppOnly))?;
                Ok::<_, Error>((state, app_only))
            })
            .await?;
        let own = app.cloud.endpoints();
        let servers = self.mail.servers(app.cloud);
        let cloud = CloudSetup {
            cloud: app.cloud,
            name: own.name.to_owned(),
            portal: own.portal.to_owned(),
            authority: self.idp.authority(app.cloud).to_owned(),
            imap_endpoint: format!("{}:{}", servers.imap.host, servers.imap.port),
            smtp_endpoint: format!("{}:{}", servers.smtp.host, servers.smtp.port),
            delegated_scopes: own.delegated_scopes(),
            app_only_scope: own.app_only_scope(),
            graph_endpoint: self.mail.graph(app.cloud).base.to_string(),
            graph_delegated_scopes: if app.graph {
                own.graph_delegated_scopes()
            } else {
                Vec::new()
            },
            graph_app_only_scope: own.graph_app_only_scope(),
        };
        let graph: Vec<String> = if app.graph {
            GRAPH_PERMISSIONS
                .iter()
                .map(|p| format!("Microsoft Graph: {p}"))
                .collect()
        } else {
            Vec::new()
        };
        Ok(AppCredentialSetup {
            redirect_uri: self.redirect_uri.to_string(),
            cloud,
            delegated_permissions: vec![
                "Office 365 Exchange Online: IMAP.AccessAsUser.All".into(),
                "Office 365 Exchange Online: SMTP.Send".into(),
                "Microsoft Graph: offline_access".into(),
                "Microsoft Graph: openid".into(),
                "Microsoft Graph: profile".into(),
                "Microsoft Graph: email".into(),
            ]
            .into_iter()
            .chain(graph.iter().cloned())
            .collect(),
            application_permissions: vec![
                "Office 365 Exchange Online: IMAP.AccessAsApp".into(),
                "Office 365 Exchange Online: SMTP.SendAsApp".into(),
            ]
            .into_iter()
            .chain(graph.iter().cloned())
            .collect(),
            admin_consent: AdminConsent::of(&state),
            problem: state.problem_code.map(|code| {
                super::mailboxes::StatusDetail::stored(code, state.problem_message, None)
            }),
            powershell: app_only_powershell(&app.client_id, &app_only),
            powershell_rbac: rbac_powershell(&app, &app_only),
        })
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

/// Exchange's RBAC for Applications for the app-only mailboxes: a
/// management scope of exactly those mailboxes and the application roles
/// limited to it. Every value is a single-quoted literal; the scope's
/// filter quotes each address as OPATH does, then is quoted as a whole.
fn rbac_powershell(app: &super::app_credentials::AppCredential, stored: &[String]) -> Vec<String> {
    let valid: Vec<EmailAddress> = stored
        .iter()
        .filter_map(|s| EmailAddress::parse(s).ok().filter(|e| e.as_str() == s))
        .collect();
    if valid.is_empty() {
        return Vec::new();
    }
    let client_id = powershell_literal(&app.client_id);
    let scope = powershell_literal(&format!("Inboxlink {}", app.name));
    let filter = valid
        .iter()
        .map(|e| format!("PrimarySmtpAddress -eq {}", powershell_literal(e.as_str())))
        .collect::<Vec<_>>()
        .join(" -or ");
    let mut roles = vec!["Application SMTP.SendAsApp"];
    if app.graph {
        roles.extend(["Application Mail.ReadWrite", "Application Mail.Send"]);
    }
    let mut lines = vec![
        "Connect-ExchangeOnline".to_owned(),
        "# RBAC for Applications: the app may act only on the mailboxes of its management scope. IMAP has no application role: keep Add-MailboxPermission for IMAP (the powershell list).".to_owned(),
        format!(
            "New-ServicePrincipal -AppId {client_id} -ObjectId {} -DisplayName {scope}",
            powershell_literal("<object id of the enterprise application>")
        ),
        format!(
            "New-ManagementScope -Name {scope} -RecipientRestrictionFilter {}",
            powershell_literal(&filter)
        ),
    ];
    for role in roles {
        lines.push(format!(
            "New-ManagementRoleAssignment -App {client_id} -Role {} -CustomResourceScope {scope}",
            powershell_literal(role)
        ));
    }
    lines.push(format!(
        "Test-ServicePrincipalAuthorization -Identity {client_id} -Resource {}",
        powershell_literal(valid[0].as_str())
    ));
    lines
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
        // Every single quote PowerShell ends a literal with is doubled.
        for q in ['\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'] {
            assert_eq!(powershell_literal(&format!("x{q}y")), format!("'x{q}{q}y'"));
        }
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
