//! The append-only audit log.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events;
use super::{AnyConnection, db_error};
use crate::domain::OrgId;
use crate::error::Error;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: String,
    pub org: String,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

pub fn insert(conn: &mut AnyConnection, row: &AuditRow) -> Result<(), Error> {
    diesel::insert_into(audit_events::table)
        .values(row)
        .execute(conn)
        .map_err(db_error)?;
    Ok(())
}

/// Newest first, a page at a time (`before` = the last id of the previous page).
pub fn list(
    conn: &mut AnyConnection,
    org: &OrgId,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditRow>, Error> {
    let mut query = audit_events::table
        .filter(audit_events::org.eq(org.as_str()))
        .select(AuditRow::as_select())
        .order(audit_events::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(audit_events::id.lt(before.to_owned()));
    }
    query.load(conn).map_err(db_error)
}
