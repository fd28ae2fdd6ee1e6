//! App credentials: the Entra ID app registration (client id, tenant, secret)
//! that mailboxes sign in with.
//!
//! The file is long because the resource's contract types (the spec's
//! documented schemas) stand beside the use cases, and the secret's sealing
//! and unsealing with them.

use crate::codes::Code;
use chrono::{DateTime, NaiveDate, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::audit::Audit;
use super::{PageRequest, Services, double_option, page_type, utc};
use crate::auth::{Permission, Principal};
use crate::crypto::Slot;
use crate::domain::{
    AppCredentialId, AuditAction, ClientId, ClientSecret, Cloud, DisplayName, OrgId, Provider,
    TenantId,
};
use crate::error::{Error, Result, Validator};
use crate::idp::AppIdentity;
use crate::store::app_credentials::{self as store, AppCredentialChanges, AppCredentialRow};
use crate::store::{authorizations, now};

const TABLE: &str = "app_credentials";
const SECRET_COLUMN: &str = "client_secret";

/// An app registration in Entra ID. The secret itself is never returned.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppCredential {
    #[schema(value_type = Uuid)]
    pub id: AppCredentialId,
    /// A name people recognise, e.g. "E-filing office".
    pub name: String,
    pub provider: Provider,
    /// The Microsoft cloud the app registration lives in: it decides where
    /// people sign in and which Exchange Online hosts the mailboxes use.
    pub cloud: Cloud,
    /// Application (client) ID of the app registration.
    pub client_id: String,
    /// Directory (tenant) ID, or a verified domain of the tenant.
    pub tenant_id: String,
    /// When `tenant_id` is a domain: the Directory (tenant) ID Microsoft
    /// answered with (learned at the first sign-in or a confirmed admin
    /// consent); later sign-ins and consents are held to it. Null until then,
    /// and always null when `tenant_id` is a GUID.
    pub tenant_guid: Option<String>,
    /// The last characters of the client secret, to tell secrets apart.
    pub secret_hint: String,
    /// When the client secret expires, if known.
    pub secret_expires_at: Option<NaiveDate>,
    /// Days until the secret expires (negative once expired); null if unknown.
    pub secret_days_left: Option<i64>,
    /// The redirect URI to register on the app (platform "Web").
    pub redirect_uri: String,
    /// What Microsoft said is wrong with this app credential (e.g.
    /// `invalid_client_secret`), with what to do; null when nothing is known to
    /// be wrong. Its mailboxes show the same in their `status_detail`. Cleared
    /// when Microsoft accepts the credential again (verify, a sign-in, a refresh).
    pub problem: Option<super::mailboxes::StatusDetail>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new app credential.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppCredentialCreate {
    pub name: String,
    /// Only `microsoft` for now (the default).
    #[serde(default)]
    pub provider: Provider,
    /// `global` (the default), `usgov` (GCC High), `usgov_dod` (DoD) or
    /// `china` (operated by 21Vianet).
    #[serde(default)]
    pub cloud: Cloud,
    pub client_id: String,
    pub tenant_id: String,
    /// The secret's Value (not its Secret ID). Write-only.
    #[schema(write_only)]
    pub client_secret: String,
    pub secret_expires_at: Option<NaiveDate>,
}

/// Changes to an app credential; absent fields stay as they are.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppCredentialUpdate {
    pub name: Option<String>,
    /// Another cloud: like another tenant, it ends a pending sign-in or
    /// consent and forgets the recorded admin consent.
    pub cloud: Option<Cloud>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    /// A new secret Value, replacing the stored one. Write-only.
    #[schema(write_only)]
    pub client_secret: Option<String>,
    /// The new expiry date; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<NaiveDate>)]
    pub secret_expires_at: Option<Option<NaiveDate>>,
}

page_type!(
    /// One page of app credentials.
    AppCredentialPage of AppCredential
);

// Input types hold a plaintext secret: their Debug never shows it.
impl std::fmt::Debug for AppCredentialCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentialCreate")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("client_secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AppCredentialUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentialUpdate")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

/// Expiry dates a person could mean (both databases store them all).
fn check_expiry(date: NaiveDate) -> std::result::Result<(), crate::domain::Invalid> {
    use chrono::Datelike;
    if (2000..=2999).contains(&date.year()) {
        Ok(())
    } else {
        Err(crate::domain::Invalid::new(
            Code::InvalidDate,
            "the expiry date must be between 2000 and 2999",
        ))
    }
}

impl Services {
    pub async fn app_credential_create(
        &self,
        who: &Principal,
        input: AppCredentialCreate,
    ) -> Result<AppCredential> {
        let org = who.require(Permission::AppCredentialsWrite)?.clone();
        let mut v = Validator::default();
        let name = v.check("name", DisplayName::parse(&input.name));
        let client_id = v.check("client_id", ClientId::parse(&input.client_id));
        let tenant_id = v.check("tenant_id", TenantId::parse(&input.tenant_id));
        let secret = v.check("client_secret", ClientSecret::parse(&input.client_secret));
        if let Some(date) = input.secret_expires_at {
            v.check("secret_expires_at", check_expiry(date));
        }
        v.finish()?;
        let (Some(name), Some(client_id), Some(tenant_id), Some(secret)) =
            (name, client_id, tenant_id, secret)
        else {
            unreachable!("validated above");
        };
        let id = AppCredentialId::new();
        let at = now();
        let row = AppCredentialRow {
            client_secret: self.seal_secret(id, secret.secret()),
            secret_hint: secret.hint(),
            id,
            org: org.clone(),
            name: name.as_str().to_owned(),
            provider: input.provider,
            cloud: input.cloud,
            client_id: client_id.as_str().to_owned(),
            tenant_id: tenant_id.as_str().to_owned(),
            secret_expires_at: input.secret_expires_at,
            created_at: at,
            updated_at: at,
            problem_code: None,
            problem_message: None,
            tenant_guid: None,
        };
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                store::insert(c, &row)?;
                Audit::app_credential(&org, actor, AuditAction::AppCredentialCreated, row.id)
                    .record(c)?;
                Ok::<_, Error>(row)
            })
            .await?;
        tracing::info!(app_credential_id = %row.id, "app credential created");
        Ok(self.app_credential_view(row))
    }

    pub async fn app_credential_get(
        &self,
        who: &Principal,
        id: AppCredentialId,
    ) -> Result<AppCredential> {
        let org = who.require(Permission::AppCredentialsRead)?;
        self.app_credential(org, id).await
    }

    /// The app credential's view (for use cases that authorized already).
    pub(crate) async fn app_credential(
        &self,
        org: &OrgId,
        id: AppCredentialId,
    ) -> Result<AppCredential> {
        let row = self.app_credential_row(org, id).await?;
        Ok(self.app_credential_view(row))
    }

    async fn app_credential_row(
        &self,
        org: &OrgId,
        id: AppCredentialId,
    ) -> Result<AppCredentialRow> {
        let org = org.clone();
        Ok(self.store.run(move |c| store::get(c, &org, id)).await?)
    }

    pub async fn app_credential_list(
        &self,
        who: &Principal,
        page: PageRequest,
    ) -> Result<AppCredentialPage> {
        let org = who.require(Permission::AppCredentialsRead)?.clone();
        let (limit, after) = page.resolve()?;
        let rows = self
            .store
            .run(move |c| store::list(c, &org, after, limit))
            .await?;
        let items: Vec<AppCredential> = rows
            .into_iter()
            .map(|r| self.app_credential_view(r))
            .collect();
        Ok(AppCredentialPage::new(items, limit))
    }

    pub async fn app_credential_update(
        &self,
        who: &Principal,
        id: AppCredentialId,
        input: AppCredentialUpdate,
    ) -> Result<AppCredential> {
        let org = who.require(Permission::AppCredentialsWrite)?.clone();
        let mut v = Validator::default();
        let name = input.name.as_deref().map(DisplayName::parse).transpose();
        let client_id = input.client_id.as_deref().map(ClientId::parse).transpose();
        let tenant_id = input.tenant_id.as_deref().map(TenantId::parse).transpose();
        let secret = input
            .client_secret
            .as_deref()
            .map(ClientSecret::parse)
            .transpose();
        let (name, client_id, tenant_id, secret) = (
            v.check("name", name).flatten(),
            v.check("client_id", client_id).flatten(),
            v.check("tenant_id", tenant_id).flatten(),
            v.check("client_secret", secret).flatten(),
        );
        if let Some(Some(date)) = input.secret_expires_at {
            v.check("secret_expires_at", check_expiry(date));
        }
        v.finish()?;
        let secret_replaced = secret.is_some();
        let changes = AppCredentialChanges {
            name: name.map(|n| n.as_str().to_owned()),
            client_id: client_id.map(|c| c.as_str().to_owned()),
            tenant_id: tenant_id.map(|t| t.as_str().to_owned()),
            secret_hint: secret.as_ref().map(ClientSecret::hint),
            client_secret: secret.map(|s| self.seal_secret(id, s.secret())),
            secret_expires_at: input.secret_expires_at,
            updated_at: Some(now()),
            tenant_guid: None,
            cloud: input.cloud,
        };
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                let mut changes = changes;
                let current = store::get(c, &org, id)?;
                let app_changed = changes
                    .client_id
                    .as_ref()
                    .is_some_and(|v| *v != current.client_id);
                // Another cloud is another directory, as another tenant is.
                let tenant_changed = changes
                    .tenant_id
                    .as_ref()
                    .is_some_and(|v| *v != current.tenant_id)
                    || changes.cloud.is_some_and(|c| c != current.cloud);
                if tenant_changed {
                    // The learned GUID was the old tenant's.
                    changes.tenant_guid = Some(None);
                }
                store::update(c, &org, id, &changes)?;
                if app_changed || tenant_changed {
                    // A consent was for the old app or tenant.
                    store::forget_consent(c, &org, id)?;
                }
                if app_changed || tenant_changed || secret_replaced {
                    // Sign-ins and consent links started with the old identity must not complete.
                    authorizations::delete_for_app_credential(c, &org, id)?;
                }
                Audit::app_credential(&org, actor, AuditAction::AppCredentialUpdated, id)
                    .detail(serde_json::json!({ "secret_replaced": secret_replaced }))
                    .record(c)?;
                Ok::<_, Error>(store::get(c, &org, id)?)
            })
            .await?;
        tracing::info!(app_credential_id = %row.id, "app credential updated");
        Ok(self.app_credential_view(row))
    }

    pub async fn app_credential_delete(&self, who: &Principal, id: AppCredentialId) -> Result<()> {
        let org = who.require(Permission::AppCredentialsWrite)?.clone();
        let actor = who.actor();
        let outcome = self
            .store
            .write(move |c| {
                let outcome = store::delete(c, &org, id)?;
                if outcome.is_ok() {
                    Audit::app_credential(&org, actor, AuditAction::AppCredentialDeleted, id)
                        .record(c)?;
                }
                Ok::<_, Error>(outcome)
            })
            .await?;
        match outcome {
            Ok(()) => {
                tracing::info!(app_credential_id = %id, "app credential deleted");
                Ok(())
            }
            Err(mailboxes) => Err(Error::Refused {
                code: Code::AppCredentialInUse,
                detail: format!(
                    "the app credential is used by {} mailbox(es): {}; delete them or move them to another app credential first",
                    mailboxes.len(),
                    mailboxes.join(", ")
                ),
                mailboxes,
            }),
        }
    }

    /// The app credential with its decrypted client secret, for token
    /// requests to the identity provider (one read).
    pub async fn app_credential_with_secret(
        &self,
        org: &OrgId,
        id: AppCredentialId,
    ) -> Result<(AppCredential, SecretString)> {
        let row = self.app_credential_row(org, id).await?;
        let id = row.id.to_string();
        let secret = self
            .cipher
            .decrypt_string(
                &row.client_secret,
                Slot {
                    table: TABLE,
                    column: SECRET_COLUMN,
                    row_id: &id,
                },
            )
            .map_err(|e| {
                Error::Internal(
                    anyhow::Error::new(e).context(format!("client secret of app credential {id}")),
                )
            })?;
        Ok((self.app_credential_view(row), secret))
    }

    /// What `app` contributes to a token request, with its decrypted secret.
    pub(crate) fn identity<'a>(
        &'a self,
        app: &'a AppCredential,
        secret: &'a SecretString,
    ) -> AppIdentity<'a> {
        AppIdentity {
            cloud: app.cloud,
            client_id: &app.client_id,
            tenant: &app.tenant_id,
            client_secret: secret,
            redirect_uri: &self.redirect_uri,
        }
    }

    fn seal_secret(&self, id: AppCredentialId, secret: &SecretString) -> String {
        self.cipher.encrypt_str(
            secret.expose_secret(),
            Slot {
                table: TABLE,
                column: SECRET_COLUMN,
                row_id: &id.to_string(),
            },
        )
    }

    fn app_credential_view(&self, row: AppCredentialRow) -> AppCredential {
        let today = Utc::now().date_naive();
        AppCredential {
            id: row.id,
            name: row.name,
            provider: row.provider,
            cloud: row.cloud,
            client_id: row.client_id,
            tenant_guid: row.tenant_guid,
            tenant_id: row.tenant_id,
            secret_hint: row.secret_hint,
            secret_days_left: row.secret_expires_at.map(|d| (d - today).num_days()),
            secret_expires_at: row.secret_expires_at,
            redirect_uri: self.redirect_uri.to_string(),
            problem: row.problem_code.map(|code| {
                super::mailboxes::StatusDetail::stored(code, row.problem_message, None)
            }),
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}
