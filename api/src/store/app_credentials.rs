//! App credential rows. The `client_secret` column holds ciphertext only.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::{app_credentials, mailboxes};
use super::{AnyConnection, db_error};
use crate::domain::OrgId;
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = app_credentials)]
pub struct AppCredentialRow {
    pub id: String,
    pub org: String,
    pub name: String,
    pub provider: String,
    pub client_id: String,
    pub tenant_id: String,
    pub client_secret: String,
    pub secret_hint: String,
    pub secret_expires_at: Option<NaiveDate>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// What Microsoft last said is wrong with it (see [`flag_problem`]).
    pub problem_code: Option<String>,
    pub problem_message: Option<String>,
    /// The tenant GUID Microsoft answered with, when `tenant_id` is a domain.
    pub tenant_guid: Option<String>,
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
}

pub fn insert(conn: &mut AnyConnection, row: &AppCredentialRow) -> Result<(), Error> {
    diesel::insert_into(app_credentials::table)
        .values(row)
        .execute(conn)
        .map_err(db_error)?;
    Ok(())
}

pub fn get(conn: &mut AnyConnection, org: &OrgId, id: &str) -> Result<AppCredentialRow, Error> {
    app_credentials::table
        .filter(app_credentials::org.eq(org.as_str()))
        .filter(app_credentials::id.eq(id))
        .select(AppCredentialRow::as_select())
        .first(conn)
        .optional()
        .map_err(db_error)?
        .ok_or(Error::not_found("app credential"))
}

/// One page in id (= creation) order, starting after `after`.
pub fn list(
    conn: &mut AnyConnection,
    org: &OrgId,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AppCredentialRow>, Error> {
    let mut query = app_credentials::table
        .filter(app_credentials::org.eq(org.as_str()))
        .select(AppCredentialRow::as_select())
        .order(app_credentials::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(app_credentials::id.gt(after.to_owned()));
    }
    query.load(conn).map_err(db_error)
}

pub fn update(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    changes: &AppCredentialChanges,
) -> Result<(), Error> {
    let n = diesel::update(
        app_credentials::table
            .filter(app_credentials::org.eq(org.as_str()))
            .filter(app_credentials::id.eq(id)),
    )
    .set(changes)
    .execute(conn)
    .map_err(db_error)?;
    if n == 0 {
        Err(Error::not_found("app credential"))
    } else {
        Ok(())
    }
}

/// Deletes the credential unless mailboxes use it; then returns their addresses.
pub fn delete(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
) -> Result<Result<(), Vec<String>>, Error> {
    super::write_transaction(conn, |conn| {
        let users: Vec<String> = mailboxes::table
            .filter(mailboxes::org.eq(org.as_str()))
            .filter(mailboxes::app_credential_id.eq(id))
            .select(mailboxes::email)
            .order(mailboxes::email.asc())
            .load(conn)?;
        if !users.is_empty() {
            return Ok(Err(users));
        }
        let n = diesel::delete(
            app_credentials::table
                .filter(app_credentials::org.eq(org.as_str()))
                .filter(app_credentials::id.eq(id)),
        )
        .execute(conn);
        match n {
            Ok(0) => Ok(Err(Vec::new())),
            Ok(_) => Ok(Ok(())),
            // A mailbox was added to it meanwhile: the foreign key refuses the delete.
            Err(e) if super::is_foreign_key_violation(&e) => {
                Ok(Err(vec!["(a mailbox added just now)".to_owned()]))
            }
            Err(e) => Err(e),
        }
    })
    .map_err(db_error)
    .and_then(|r| match r {
        Err(users) if users.is_empty() => Err(Error::not_found("app credential")),
        other => Ok(other),
    })
}

/// What Microsoft said is wrong with an app credential.
#[derive(Debug, Clone, Copy)]
pub struct CredentialProblem<'a> {
    pub code: &'a str,
    pub message: &'a str,
    pub hint: &'a str,
}

/// Sets (or with `None` clears) the problem recorded on an app credential,
/// and carries it to the mailboxes that use it: flagging turns its `active`
/// mailboxes to `error` with the same explanation (none of them can get a
/// token now); clearing (Microsoft accepted the credential again) turns the
/// mailboxes that were in `error` for that very problem back to `active`.
pub fn flag_problem(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    problem: Option<CredentialProblem<'_>>,
) -> Result<(), Error> {
    let credential = app_credentials::table
        .filter(app_credentials::org.eq(org.as_str()))
        .filter(app_credentials::id.eq(id));
    let using = mailboxes::table
        .filter(mailboxes::org.eq(org.as_str()))
        .filter(mailboxes::app_credential_id.eq(id));
    let at = super::now();
    match problem {
        Some(p) => {
            diesel::update(credential)
                .set((
                    app_credentials::problem_code.eq(Some(p.code)),
                    app_credentials::problem_message.eq(Some(p.message)),
                ))
                .execute(conn)
                .map_err(db_error)?;
            diesel::update(using.filter(mailboxes::status.eq("active")))
                .set((
                    mailboxes::status.eq("error"),
                    mailboxes::status_code.eq(Some(p.code)),
                    mailboxes::status_message.eq(Some(p.message)),
                    mailboxes::status_hint.eq(Some(p.hint)),
                    mailboxes::updated_at.eq(at),
                    mailboxes::version.eq(mailboxes::version + 1),
                ))
                .execute(conn)
                .map_err(db_error)?;
        }
        None => {
            let flagged: Option<Option<String>> = credential
                .select(app_credentials::problem_code)
                .first(conn)
                .optional()
                .map_err(db_error)?;
            let Some(Some(code)) = flagged else {
                return Ok(());
            };
            diesel::update(credential)
                .set((
                    app_credentials::problem_code.eq(None::<String>),
                    app_credentials::problem_message.eq(None::<String>),
                ))
                .execute(conn)
                .map_err(db_error)?;
            diesel::update(
                using
                    .filter(mailboxes::status.eq("error"))
                    .filter(mailboxes::status_code.eq(&code))
                    .filter(
                        mailboxes::refresh_token
                            .is_not_null()
                            .or(mailboxes::access_token.is_not_null()),
                    ),
            )
            .set((
                mailboxes::status.eq("active"),
                mailboxes::status_code.eq(None::<String>),
                mailboxes::status_message.eq(None::<String>),
                mailboxes::status_hint.eq(None::<String>),
                mailboxes::updated_at.eq(at),
                mailboxes::version.eq(mailboxes::version + 1),
            ))
            .execute(conn)
            .map_err(db_error)?;
        }
    }
    Ok(())
}

/// Records the tenant GUID Microsoft answered with for a credential that
/// names its tenant by a domain (only if none is known yet).
pub fn learn_tenant_guid(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    guid: &str,
) -> QueryResult<()> {
    diesel::update(
        app_credentials::table
            .filter(app_credentials::org.eq(org.as_str()))
            .filter(app_credentials::id.eq(id))
            .filter(app_credentials::tenant_guid.is_null()),
    )
    .set(app_credentials::tenant_guid.eq(Some(guid)))
    .execute(conn)
    .map(drop)
}

/// Records admin consent as the browser reported it: which tenant, when.
/// It is not established until verify confirms it.
pub fn record_consent_reported(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    tenant: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        app_credentials::table
            .filter(app_credentials::org.eq(org.as_str()))
            .filter(app_credentials::id.eq(id)),
    )
    .set((
        app_credentials::consent_reported_at.eq(Some(at)),
        app_credentials::consent_tenant.eq(Some(tenant)),
        app_credentials::consent_granted_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map(drop)
}

/// Records that a token request confirmed the reported consent.
pub fn record_consent_established(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        app_credentials::table
            .filter(app_credentials::org.eq(org.as_str()))
            .filter(app_credentials::id.eq(id))
            .filter(app_credentials::consent_reported_at.is_not_null()),
    )
    .set(app_credentials::consent_granted_at.eq(Some(at)))
    .execute(conn)
    .map(drop)
}

/// Forgets the consent and the pending consent links of a credential whose
/// client id or tenant changed: they were for the old app or tenant.
pub fn forget_consent(conn: &mut AnyConnection, org: &OrgId, id: &str) -> QueryResult<()> {
    diesel::update(
        app_credentials::table
            .filter(app_credentials::org.eq(org.as_str()))
            .filter(app_credentials::id.eq(id)),
    )
    .set((
        app_credentials::consent_reported_at.eq(None::<NaiveDateTime>),
        app_credentials::consent_tenant.eq(None::<String>),
        app_credentials::consent_granted_at.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)
    .map(drop)
}

/// What is known of an app credential's admin consent and problem.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = app_credentials)]
pub struct CredentialState {
    pub problem_code: Option<String>,
    pub problem_message: Option<String>,
    pub consent_reported_at: Option<NaiveDateTime>,
    pub consent_tenant: Option<String>,
    pub consent_granted_at: Option<NaiveDateTime>,
}

/// The state of an app credential that is not part of its row struct.
pub fn state(conn: &mut AnyConnection, org: &OrgId, id: &str) -> Result<CredentialState, Error> {
    app_credentials::table
        .filter(app_credentials::org.eq(org.as_str()))
        .filter(app_credentials::id.eq(id))
        .select(CredentialState::as_select())
        .first(conn)
        .optional()
        .map_err(db_error)?
        .ok_or(Error::not_found("app credential"))
}
