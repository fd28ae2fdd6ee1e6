//! The append-only audit log.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events;
use super::{AnyConnection, StoreResult};
use crate::codes::Code;
use crate::domain::{Actor, AuditAction, AuditEventId, OrgId, TargetType};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    pub id: AuditEventId,
    pub org: OrgId,
    pub at: NaiveDateTime,
    pub actor: Actor,
    pub action: AuditAction,
    pub target_type: TargetType,
    pub target_id: Option<String>,
    pub outcome: Code,
    pub detail: Option<String>,
}

pub fn insert(conn: &mut AnyConnection, row: &AuditRow) -> StoreResult<()> {
    diesel::insert_into(audit_events::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Newest first, a page at a time (`before` = the last id of the previous page).
pub fn list(
    conn: &mut AnyConnection,
    org: &OrgId,
    before: Option<AuditEventId>,
    limit: i64,
) -> StoreResult<Vec<AuditRow>> {
    let rows = audit_events::table
        .filter(audit_events::org.eq(org))
        .select(AuditRow::as_select());
    Ok(id_page!(rows, audit_events::id, before before, limit).load(conn)?)
}
