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
use crate::certificate;
use crate::crypto::Slot;
use crate::domain::{
    Actor, AppCredentialId, AuditAction, ClientId, ClientSecret, Cloud, CredentialType,
    DisplayName, OrgId, Provider, TenantId,
};
use crate::error::{Error, Result, Validator};
use crate::idp::{AppIdentity, ClientCredential, SigningKey};
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
    /// `secret` or `certificate`: how the app proves itself to Microsoft.
    pub credential_type: CredentialType,
    /// The last characters of the client secret, to tell secrets apart
    /// (empty for a certificate).
    pub secret_hint: String,
    /// When the client secret expires, if known.
    pub secret_expires_at: Option<NaiveDate>,
    /// When the credential expires: the secret's date as given, or the
    /// certificate's expiry; null if unknown.
    pub credential_expires_at: Option<NaiveDate>,
    /// For `certificate`: the SHA-256 thumbprint of its certificate
    /// (upper-case hex); null until one is set.
    pub certificate_thumbprint_sha256: Option<String>,
    /// Days until the secret expires (negative once expired); null if unknown.
    pub secret_days_left: Option<i64>,
    /// While a new certificate has not been seen to work: the SHA-256
    /// thumbprint of the one it replaced, which token requests fall back to
    /// when Microsoft does not know the new one yet (AADSTS700027). Cleared
    /// at the first token request the new certificate signs.
    pub previous_certificate_thumbprint_sha256: Option<String>,
    /// Sign-ins also ask for Microsoft Graph's `Mail.ReadWrite` and
    /// `Mail.Send`, so mailboxes can be handed Graph tokens
    /// (`GET /mailboxes/{id}/access-token?resource=graph`) and use the
    /// `graph` transport. Off by default: existing consents stay valid.
    pub graph: bool,
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
    /// `secret` (the default) or `certificate`.
    #[serde(default)]
    pub credential_type: CredentialType,
    pub client_id: String,
    pub tenant_id: String,
    /// For `secret` (required there): the secret's Value (not its Secret
    /// ID). Write-only.
    #[schema(write_only)]
    pub client_secret: Option<String>,
    pub secret_expires_at: Option<NaiveDate>,
    /// For `certificate`: a certificate (PEM) to upload to the app
    /// registration, with `private_key_pem`; without them, make one with
    /// `POST /app-credentials/{id}/certificate`.
    pub certificate_pem: Option<String>,
    /// The certificate's RSA private key (PEM, 2048 bits or more). Write-only.
    #[schema(write_only)]
    pub private_key_pem: Option<String>,
    /// Also ask for Graph's mail permissions at sign-in (default false).
    #[serde(default)]
    pub graph: bool,
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
    /// A new secret Value, replacing the stored one (`secret` only). Write-only.
    #[schema(write_only)]
    pub client_secret: Option<String>,
    /// A new certificate (PEM), with `private_key_pem`, replacing the
    /// stored one (`certificate` only).
    pub certificate_pem: Option<String>,
    /// The new certificate's RSA private key (PEM). Write-only.
    #[schema(write_only)]
    pub private_key_pem: Option<String>,
    /// Ask for Graph's mail permissions at sign-in from now on (mailboxes
    /// signed in before get Graph tokens once signed in again).
    pub graph: Option<bool>,
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

/// A certificate made for an app credential: to upload to its app registration.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CertificateCreated {
    /// Upload this file (as `.cer` or `.pem`) under *Certificates & secrets*
    /// > *Certificates*. Its private key never leaves Inboxlink.
    pub certificate_pem: String,
    /// SHA-256 of the certificate, upper-case hex.
    pub thumbprint_sha256: String,
    pub expires_at: NaiveDate,
    /// The app credential with its new certificate.
    pub app_credential: AppCredential,
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

/// What proves an app credential: validated input.
enum Material {
    Secret(ClientSecret),
    Certificate(certificate::KeyedCertificate),
    /// A certificate credential whose certificate comes later.
    NoCertificateYet,
}

/// A rolled certificate credential's sealed keys (the new one's, then the
/// previous one's) and the previous certificate.
struct Rolled {
    client_secret: String,
    previous_pem: Option<String>,
    previous_thumbprint: Option<String>,
}

/// The sealed columns of [`Material`]; `None`: leave the column as it is.
#[derive(Default)]
struct SealedMaterial {
    client_secret: Option<String>,
    secret_hint: Option<String>,
    certificate_pem: Option<Option<String>>,
    certificate_thumbprint: Option<Option<String>>,
    expires_at: Option<Option<NaiveDate>>,
}

/// An uploaded certificate with its private key, checked: `None` when
/// neither was given, or when they are refused (recorded in `v`).
fn uploaded_certificate(
    v: &mut Validator,
    certificate_pem: Option<&str>,
    private_key_pem: Option<&str>,
) -> Option<certificate::KeyedCertificate> {
    match (certificate_pem, private_key_pem) {
        (None, None) => None,
        (Some(c), Some(k)) => match certificate::from_pem(c, k) {
            Ok(keyed) => Some(keyed),
            Err((field, invalid)) => {
                v.push(field, invalid);
                None
            }
        },
        _ => {
            let both = crate::domain::Invalid::new(
                Code::InvalidCertificate,
                "give certificate_pem and private_key_pem together",
            );
            v.push("certificate_pem", both);
            None
        }
    }
}

/// The credential's material for its type: a secret for `secret`; for
/// `certificate` a certificate with its key, or none yet. What does not
/// belong to the type is refused.
fn credential_material(
    v: &mut Validator,
    kind: CredentialType,
    secret: Option<&str>,
    certificate_pem: Option<&str>,
    private_key_pem: Option<&str>,
) -> Option<Material> {
    let not_for = |what: &str| {
        crate::domain::Invalid::new(
            Code::InvalidCertificate,
            format!("{what} a credential of type {kind}"),
        )
    };
    match kind {
        CredentialType::Secret => {
            if certificate_pem.is_some() || private_key_pem.is_some() {
                v.push("certificate_pem", not_for("a certificate is not for"));
            }
            match secret {
                Some(s) => v
                    .check("client_secret", ClientSecret::parse(s))
                    .map(Material::Secret),
                None => {
                    let missing = crate::domain::Invalid::new(
                        Code::InvalidClientSecret,
                        "a credential of type secret needs its client_secret",
                    );
                    v.push("client_secret", missing);
                    None
                }
            }
        }
        CredentialType::Certificate => {
            if secret.is_some() {
                let none = crate::domain::Invalid::new(
                    Code::InvalidClientSecret,
                    "a credential of type certificate has no client secret",
                );
                v.push("client_secret", none);
            }
            match (certificate_pem, private_key_pem) {
                (None, None) => Some(Material::NoCertificateYet),
                (c, k) => uploaded_certificate(v, c, k).map(Material::Certificate),
            }
        }
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
        let material = credential_material(
            &mut v,
            input.credential_type,
            input.client_secret.as_deref(),
            input.certificate_pem.as_deref(),
            input.private_key_pem.as_deref(),
        );
        if let Some(date) = input.secret_expires_at {
            v.check("secret_expires_at", check_expiry(date));
        }
        v.finish()?;
        let (Some(name), Some(client_id), Some(tenant_id), Some(material)) =
            (name, client_id, tenant_id, material)
        else {
            unreachable!("validated above");
        };
        let id = AppCredentialId::new();
        let at = now();
        let sealed = self.seal_material(id, &material);
        let row = AppCredentialRow {
            client_secret: sealed.client_secret.unwrap_or_else(|| self.seal_empty(id)),
            secret_hint: sealed.secret_hint.unwrap_or_default(),
            credential_type: input.credential_type,
            certificate_pem: sealed.certificate_pem.flatten(),
            certificate_thumbprint: sealed.certificate_thumbprint.flatten(),
            id,
            org: org.clone(),
            name: name.as_str().to_owned(),
            provider: input.provider,
            cloud: input.cloud,
            graph: input.graph,
            client_id: client_id.as_str().to_owned(),
            tenant_id: tenant_id.as_str().to_owned(),
            secret_expires_at: sealed.expires_at.unwrap_or(input.secret_expires_at),
            created_at: at,
            updated_at: at,
            problem_code: None,
            problem_message: None,
            tenant_guid: None,
            previous_certificate_pem: None,
            previous_certificate_thumbprint: None,
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
        let keyed = uploaded_certificate(
            &mut v,
            input.certificate_pem.as_deref(),
            input.private_key_pem.as_deref(),
        );
        if let Some(Some(date)) = input.secret_expires_at {
            v.check("secret_expires_at", check_expiry(date));
        }
        v.finish()?;
        let secret_replaced = secret.is_some() || keyed.is_some();
        // Which type the change needs, checked against the stored one below.
        let needs = match (&secret, &keyed) {
            (Some(_), _) => Some(CredentialType::Secret),
            (None, Some(_)) => Some(CredentialType::Certificate),
            (None, None) => None,
        };
        let material = match (secret, keyed) {
            (Some(s), _) => Some(Material::Secret(s)),
            (None, Some(k)) => Some(Material::Certificate(k)),
            (None, None) => None,
        };
        let mut sealed = material
            .as_ref()
            .map(|m| self.seal_material(id, m))
            .unwrap_or_default();
        let mut previous = (None, None);
        if let Some(Material::Certificate(keyed)) = &material {
            // A new certificate for one that has a certificate: roll.
            let current = self.app_credential_row(&org, id).await?;
            if let Some(rolled) = self.seal_rolled(&current, keyed)? {
                sealed.client_secret = Some(rolled.client_secret);
                previous = (Some(rolled.previous_pem), Some(rolled.previous_thumbprint));
            } else {
                previous = (Some(None), Some(None));
            }
        }
        let changes = AppCredentialChanges {
            name: name.map(|n| n.as_str().to_owned()),
            client_id: client_id.map(|c| c.as_str().to_owned()),
            tenant_id: tenant_id.map(|t| t.as_str().to_owned()),
            secret_hint: sealed.secret_hint,
            client_secret: sealed.client_secret,
            secret_expires_at: sealed.expires_at.or(input.secret_expires_at),
            updated_at: Some(now()),
            tenant_guid: None,
            cloud: input.cloud,
            graph: input.graph,
            certificate_pem: sealed.certificate_pem,
            certificate_thumbprint: sealed.certificate_thumbprint,
            previous_certificate_pem: previous.0,
            previous_certificate_thumbprint: previous.1,
        };
        let actor = who.actor();
        let row = self
            .store
            .write(move |c| {
                let mut changes = changes;
                let current = store::get(c, &org, id)?;
                if let Some(needs) = needs.filter(|t| *t != current.credential_type) {
                    let (field, what) = match needs {
                        CredentialType::Secret => ("client_secret", "a client secret"),
                        CredentialType::Certificate => ("certificate_pem", "a certificate"),
                    };
                    let kind = current.credential_type;
                    return Err(Error::Validation(vec![crate::error::FieldError {
                        field: field.to_owned(),
                        code: Code::InvalidCertificate,
                        message: format!("{what} is not for a credential of type {kind}"),
                    }]));
                }
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

    /// Makes a new key pair and certificate for a `certificate` credential
    /// (the private key sealed like a secret); token requests use it from
    /// now on. Audited; pending sign-ins and consent links end.
    pub async fn app_credential_certificate(
        &self,
        who: &Principal,
        id: AppCredentialId,
    ) -> Result<CertificateCreated> {
        let org = who.require(Permission::AppCredentialsWrite)?.clone();
        let current = self.app_credential_row(&org, id).await?;
        if current.credential_type != CredentialType::Certificate {
            return Err(Error::Validation(vec![crate::error::FieldError {
                field: "credential_type".to_owned(),
                code: Code::InvalidCertificate,
                message: "the app credential is of type secret: create one of type certificate"
                    .to_owned(),
            }]));
        }
        let name = current.name.clone();
        let keyed = super::bridge_passwords::cpu_work(move || certificate::generate(&name))
            .await
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("the key pair's task failed")))?
            .map_err(|e| Error::Internal(e.context("a key pair for a certificate credential")))?;
        let created = (
            keyed.certificate_pem.clone(),
            keyed.thumbprint_sha256.clone(),
            keyed.not_after,
        );
        let rolled = self.seal_rolled(&current, &keyed)?;
        let sealed = self.seal_material(id, &Material::Certificate(keyed));
        let (client_secret, previous_pem, previous_thumbprint) = match rolled {
            Some(r) => (
                Some(r.client_secret),
                Some(r.previous_pem),
                Some(r.previous_thumbprint),
            ),
            None => (sealed.client_secret, Some(None), Some(None)),
        };
        let changes = AppCredentialChanges {
            client_secret,
            previous_certificate_pem: previous_pem,
            previous_certificate_thumbprint: previous_thumbprint,
            secret_hint: sealed.secret_hint,
            certificate_pem: sealed.certificate_pem,
            certificate_thumbprint: sealed.certificate_thumbprint,
            secret_expires_at: sealed.expires_at,
            updated_at: Some(now()),
            ..AppCredentialChanges::default()
        };
        let (actor, thumbprint) = (who.actor(), created.1.clone());
        let row = self
            .store
            .write(move |c| {
                store::update(c, &org, id, &changes)?;
                // Sign-ins and consent links started with the old key must not complete.
                authorizations::delete_for_app_credential(c, &org, id)?;
                Audit::app_credential(&org, actor, AuditAction::AppCredentialUpdated, id)
                    .detail(serde_json::json!({
                        "certificate": "generated",
                        "thumbprint_sha256": thumbprint,
                    }))
                    .record(c)?;
                Ok::<_, Error>(store::get(c, &org, id)?)
            })
            .await?;
        tracing::info!(app_credential_id = %id, thumbprint_sha256 = %created.1, "certificate made");
        Ok(CertificateCreated {
            certificate_pem: created.0,
            thumbprint_sha256: created.1,
            expires_at: created.2,
            app_credential: self.app_credential_view(row),
        })
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
        let secret = self.open_secret(&row)?;
        Ok((self.app_credential_view(row), secret))
    }

    /// The decrypted `client_secret` column: the secret, or a certificate
    /// credential's key(s).
    fn open_secret(&self, row: &AppCredentialRow) -> Result<SecretString> {
        let id = row.id.to_string();
        let slot = Slot {
            table: TABLE,
            column: SECRET_COLUMN,
            row_id: &id,
        };
        self.cipher
            .decrypt_string(&row.client_secret, slot)
            .map_err(|e| {
                Error::Internal(
                    anyhow::Error::new(e).context(format!("client secret of app credential {id}")),
                )
            })
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
            credential: match app.credential_type {
                CredentialType::Secret => ClientCredential::Secret(secret),
                CredentialType::Certificate => {
                    // The current key's PEM block first, then a rolled
                    // certificate's previous one.
                    let mut keys = certificate::pem_blocks(secret.expose_secret()).into_iter();
                    let signing = |key: Option<String>, thumbprint: Option<&str>| {
                        Some(SigningKey {
                            key: SecretString::from(key?),
                            x5t: certificate::x5t_s256(thumbprint?)?,
                        })
                    };
                    ClientCredential::Certificate {
                        current: signing(keys.next(), app.certificate_thumbprint_sha256.as_deref()),
                        previous: signing(
                            keys.next(),
                            app.previous_certificate_thumbprint_sha256.as_deref(),
                        ),
                    }
                }
            },
            redirect_uri: &self.redirect_uri,
            graph: app.graph,
        }
    }

    /// For a credential that has a certificate, a new one's sealed key
    /// followed by the current one's (the current key becomes the
    /// previous), with the current certificate; `None` when there is no
    /// current certificate to keep.
    fn seal_rolled(
        &self,
        current: &AppCredentialRow,
        keyed: &certificate::KeyedCertificate,
    ) -> Result<Option<Rolled>> {
        let (Some(pem), Some(thumbprint)) = (
            current.certificate_pem.clone(),
            current.certificate_thumbprint.clone(),
        ) else {
            return Ok(None);
        };
        if thumbprint == keyed.thumbprint_sha256 {
            return Ok(None);
        }
        let stored = self.open_secret(current)?;
        let Some(old_key) = certificate::pem_blocks(stored.expose_secret())
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let both = format!(
            "{}\n{old_key}",
            keyed.private_key_pem.expose_secret().trim_end()
        );
        Ok(Some(Rolled {
            client_secret: self.seal_secret(current.id, &SecretString::from(both)),
            previous_pem: Some(pem),
            previous_thumbprint: Some(thumbprint),
        }))
    }

    /// After a token request of a rolled credential: the new certificate
    /// worked (Microsoft knows it), so the previous one is dropped, its key
    /// with it; one signed with the previous key keeps both.
    pub(crate) async fn certificate_seen(
        &self,
        org: &OrgId,
        app: &AppCredential,
        secret: &SecretString,
        set: &crate::idp::TokenSet,
    ) {
        // The tokens are what matter; a failed clean-up is tried again next time.
        if let Err(e) = self.drop_previous_certificate(org, app, secret, set).await {
            tracing::warn!(app_credential_id = %app.id, error = %e, "dropping the previous certificate failed");
        }
    }

    async fn drop_previous_certificate(
        &self,
        org: &OrgId,
        app: &AppCredential,
        secret: &SecretString,
        set: &crate::idp::TokenSet,
    ) -> Result<()> {
        if app.previous_certificate_thumbprint_sha256.is_none() || set.signed_with_previous {
            return Ok(());
        }
        let Some(current) = certificate::pem_blocks(secret.expose_secret())
            .into_iter()
            .next()
        else {
            return Ok(());
        };
        let changes = AppCredentialChanges {
            client_secret: Some(self.seal_secret(app.id, &SecretString::from(current))),
            previous_certificate_pem: Some(None),
            previous_certificate_thumbprint: Some(None),
            ..AppCredentialChanges::default()
        };
        let (org, id, thumbprint) = (
            org.clone(),
            app.id,
            app.previous_certificate_thumbprint_sha256.clone(),
        );
        self.store
            .write(move |c| {
                store::update(c, &org, id, &changes)?;
                Audit::app_credential(
                    &org,
                    Actor::Inboxlink,
                    AuditAction::AppCredentialUpdated,
                    id,
                )
                .detail(serde_json::json!({
                    "certificate": "previous_dropped",
                    "previous_thumbprint_sha256": thumbprint,
                }))
                .record(c)
            })
            .await?;
        tracing::info!(app_credential_id = %id, "the new certificate works; the previous one is dropped");
        Ok(())
    }

    /// The sealed columns of a credential's material.
    fn seal_material(&self, id: AppCredentialId, material: &Material) -> SealedMaterial {
        match material {
            Material::Secret(secret) => SealedMaterial {
                client_secret: Some(self.seal_secret(id, secret.secret())),
                secret_hint: Some(secret.hint()),
                ..SealedMaterial::default()
            },
            Material::Certificate(keyed) => SealedMaterial {
                client_secret: Some(self.seal_secret(id, &keyed.private_key_pem)),
                secret_hint: Some(String::new()),
                certificate_pem: Some(Some(keyed.certificate_pem.clone())),
                certificate_thumbprint: Some(Some(keyed.thumbprint_sha256.clone())),
                expires_at: Some(Some(keyed.not_after)),
            },
            Material::NoCertificateYet => SealedMaterial::default(),
        }
    }

    /// The `client_secret` column of a certificate credential without a key yet.
    fn seal_empty(&self, id: AppCredentialId) -> String {
        self.seal_secret(id, &SecretString::from(String::new()))
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
            credential_expires_at: row.secret_expires_at,
            credential_type: row.credential_type,
            certificate_thumbprint_sha256: row.certificate_thumbprint,
            previous_certificate_thumbprint_sha256: row.previous_certificate_thumbprint,
            graph: row.graph,
            redirect_uri: self.redirect_uri.to_string(),
            problem: row.problem_code.map(|code| {
                super::mailboxes::StatusDetail::stored(code, row.problem_message, None)
            }),
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}
