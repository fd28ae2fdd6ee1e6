//! App credential rows. The `client_secret` column holds ciphertext only.
//! The problem Microsoft reported is state: only the app credential's
//! transition function (`crate::service::lifecycle`) writes it, through
//! [`write_problem`].

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::app_credentials;
use super::{AnyConnection, StoreError, StoreResult, found, touched};
use crate::codes::Code;
use crate::domain::{AppCredentialId, Cloud, CredentialType, OrgId, Provider};

const WHAT: &str = "app credential";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = app_credentials)]
pub struct AppCredentialRow {
    pub id: AppCredentialId,
    pub org: OrgId,
    pub name: String,
    pub provider: Provider,
    pub client_id: String,
    pub tenant_id: String,
    pub client_secret: String,
    pub secret_hint: String,
    pub secret_expires_at: Option<NaiveDate>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// What Microsoft last said is wrong with it.
    pub problem_code: Option<Code>,
    pub problem_message: Option<String>,
    /// The tenant GUID Microsoft answered with, when `tenant_id` is a domain.
    pub tenant_guid: Option<String>,
    pub cloud: Cloud,
    /// For `certificate`, `client_secret` holds the sealed private key
    /// (PKCS#8 PEM), empty until a certificate is set.
    pub credential_type: CredentialType,
    /// The public certificate (PEM), for `certificate`.
    pub certificate_pem: Option<String>,
    /// The certificate's SHA-256 thumbprint, upper-case hex.
    pub certificate_thumbprint: Option<String>,
    /// Sign-ins also ask for Graph's mail permissions.
    pub graph: bool,
    /// The certificate a new one replaced, usable until the new one has
    /// been seen to work (its key sealed after the new one's in `client_secret`).
    pub previous_certificate_pem: Option<String>,
    pub previous_certificate_thumbprint: Option<String>,
}

/// Columns an update may change; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = app_credentials)]
pub struct AppCredentialChanges {
    pub name: Option<String>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_secret: Option<String>,
    pub secret_hint: Option<String>,
    pub secret_expires_at: Option<Option<NaiveDate>>,
    pub updated_at: Option<NaiveDateTime>,
    /// Cleared (`Some(None)`) when the tenant changes: it was the old tenant's.
    pub tenant_guid: Option<Option<String>>,
    pub cloud: Option<Cloud>,
    pub certificate_pem: Option<Option<String>>,
    pub certificate_thumbprint: Option<Option<String>>,
    pub graph: Option<bool>,
    pub previous_certificate_pem: Option<Option<String>>,
    pub previous_certificate_thumbprint: Option<Option<String>>,
}

/// The organisation's app credential with this id: where every query of one
/// app credential starts.
#[diesel::dsl::auto_type]
fn by_id<'a>(org: &'a OrgId, id: AppCredentialId) -> _ {
    app_credentials::table
        .filter(app_credentials::org.eq(org))
        .filter(app_credentials::id.eq(id))
}

pub fn insert(conn: &mut AnyConnection, row: &AppCredentialRow) -> StoreResult<()> {
    diesel::insert_into(app_credentials::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
) -> StoreResult<AppCredentialRow> {
    found(
        by_id(org, id)
            .select(AppCredentialRow::as_select())
            .first(conn)
            .optional(),
        WHAT,
    )
}

/// One page in id (= creation) order, starting after `after`.
pub fn list(
    conn: &mut AnyConnection,
    org: &OrgId,
    after: Option<AppCredentialId>,
    limit: i64,
) -> StoreResult<Vec<AppCredentialRow>> {
    let rows = app_credentials::table
        .filter(app_credentials::org.eq(org))
        .select(AppCredentialRow::as_select());
    Ok(id_page!(rows, app_credentials::id, after after, limit).load(conn)?)
}

pub fn update(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
    changes: &AppCredentialChanges,
) -> StoreResult<()> {
    touched(
        diesel::update(by_id(org, id)).set(changes).execute(conn),
        WHAT,
    )
}

/// Deletes the credential unless mailboxes use it; then returns their
/// addresses. Runs in the caller's transaction.
pub fn delete(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
) -> StoreResult<Result<(), Vec<String>>> {
    let users = super::mailboxes::emails_using(conn, org, id, None)?;
    if !users.is_empty() {
        return Ok(Err(users));
    }
    let n = diesel::delete(by_id(org, id)).execute(conn);
    match n.map_err(StoreError::from) {
        Ok(0) => Err(StoreError::NotFound(WHAT)),
        Ok(_) => Ok(Ok(())),
        // A mailbox was added to it meanwhile: the foreign key refuses the delete.
        Err(StoreError::ForeignKey) => Ok(Err(vec!["(a mailbox added just now)".to_owned()])),
        Err(e) => Err(e),
    }
}

/// Writes (or with `None` clears) the problem recorded on an app credential.
pub fn write_problem(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
    problem: Option<(Code, &str)>,
) -> StoreResult<()> {
    diesel::update(by_id(org, id))
        .set((
            app_credentials::problem_code.eq(problem.map(|p| p.0)),
            app_credentials::problem_message.eq(problem.map(|p| p.1)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records the tenant GUID Microsoft answered with for a credential that
/// names its tenant by a domain (only if none is known yet).
pub fn learn_tenant_guid(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
    guid: &str,
) -> StoreResult<()> {
    diesel::update(by_id(org, id).filter(app_credentials::tenant_guid.is_null()))
        .set(app_credentials::tenant_guid.eq(Some(guid)))
        .execute(conn)?;
    Ok(())
}

/// Records admin consent as the browser reported it: which tenant, when.
/// It is not established until verify confirms it.
pub fn record_consent_reported(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
    tenant: &str,
    at: NaiveDateTime,
) -> StoreResult<()> {
    diesel::update(by_id(org, id))
        .set((
            app_credentials::consent_reported_at.eq(Some(at)),
            app_credentials::consent_tenant.eq(Some(tenant)),
            app_credentials::consent_granted_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records that a token request confirmed the reported consent.
pub fn record_consent_established(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
    at: NaiveDateTime,
) -> StoreResult<()> {
    diesel::update(by_id(org, id).filter(app_credentials::consent_reported_at.is_not_null()))
        .set(app_credentials::consent_granted_at.eq(Some(at)))
        .execute(conn)?;
    Ok(())
}

/// Forgets the consent of a credential whose client id or tenant changed:
/// it was for the old app or tenant.
pub fn forget_consent(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
) -> StoreResult<()> {
    diesel::update(by_id(org, id))
        .set((
            app_credentials::consent_reported_at.eq(None::<NaiveDateTime>),
            app_credentials::consent_tenant.eq(None::<String>),
            app_credentials::consent_granted_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// What is known of an app credential's admin consent and problem.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = app_credentials)]
pub struct CredentialState {
    pub name: String,
    pub problem_code: Option<Code>,
    pub problem_message: Option<String>,
    pub consent_reported_at: Option<NaiveDateTime>,
    pub consent_tenant: Option<String>,
    pub consent_granted_at: Option<NaiveDateTime>,
}

/// The state of an app credential that is not part of its row struct.
pub fn state(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: AppCredentialId,
) -> StoreResult<CredentialState> {
    found(
        by_id(org, id)
            .select(CredentialState::as_select())
            .first(conn)
            .optional(),
        WHAT,
    )
}

/// An app credential whose client secret expires by a date (every
/// organisation: the keep-alive sweep's secret-expiry notices).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = app_credentials)]
pub struct Expiring {
    pub id: AppCredentialId,
    pub org: OrgId,
    pub name: String,
    pub secret_expires_at: Option<NaiveDate>,
}

/// The app credentials whose secret expires on or before `until`.
pub fn expiring_by(conn: &mut AnyConnection, until: NaiveDate) -> StoreResult<Vec<Expiring>> {
    Ok(app_credentials::table
        .filter(app_credentials::secret_expires_at.le(until))
        .select(Expiring::as_select())
        .order(app_credentials::id.asc())
        .load(conn)?)
}

/// Notes that the notice for `threshold_days` before `expires_on` was given;
/// [`StoreError::Unique`] when it already was (by this instance or another).
pub fn note_notice(
    conn: &mut AnyConnection,
    id: AppCredentialId,
    threshold_days: i32,
    expires_on: NaiveDate,
) -> StoreResult<()> {
    use super::schema::credential_notices as n;
    diesel::insert_into(n::table)
        .values((
            n::app_credential_id.eq(id),
            n::threshold_days.eq(threshold_days),
            n::expires_on.eq(expires_on),
        ))
        .execute(conn)?;
    Ok(())
}
