//! Events: the transactional outbox. A change and its event are written in
//! one transaction ([`crate::service::events::record`]); the feed reads them
//! in id order (UUID v7, generated inside the writing transaction), and
//! housekeeping deletes them after the retention time, with their deliveries.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{deliveries, delivery_attempts, events};
use super::{AnyConnection, StoreResult, found};
use crate::domain::{EventId, EventType, OrgId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: EventId,
    pub org: OrgId,
    pub event_type: EventType,
    pub subject_id: String,
    pub occurred_at: NaiveDateTime,
    /// JSON.
    pub data: String,
}

pub fn insert_event(conn: &mut AnyConnection, row: &EventRow) -> StoreResult<()> {
    diesel::insert_into(events::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The organisation's events after `after`, oldest first, optionally of some types.
pub fn list_events(
    conn: &mut AnyConnection,
    org: &OrgId,
    after: Option<EventId>,
    types: &[EventType],
    limit: i64,
) -> StoreResult<Vec<EventRow>> {
    let rows = events::table
        .filter(events::org.eq(org))
        .select(EventRow::as_select());
    let mut query = id_page!(rows, events::id, after after, limit);
    if !types.is_empty() {
        query = query.filter(events::event_type.eq_any(types.to_vec()));
    }
    Ok(query.load(conn)?)
}

pub fn get_event(conn: &mut AnyConnection, id: EventId) -> StoreResult<EventRow> {
    found(
        events::table
            .filter(events::id.eq(id))
            .select(EventRow::as_select())
            .first(conn)
            .optional(),
        "event",
    )
}

/// Deletes the events (of every organisation) that occurred before `before`;
/// their deliveries and attempts go with them.
pub fn purge_events(conn: &mut AnyConnection, before: NaiveDateTime) -> StoreResult<usize> {
    let old = events::table
        .filter(events::occurred_at.lt(before))
        .select(events::id);
    diesel::delete(delivery_attempts::table.filter(delivery_attempts::event_id.eq_any(old)))
        .execute(conn)?;
    diesel::delete(deliveries::table.filter(deliveries::event_id.eq_any(old))).execute(conn)?;
    Ok(diesel::delete(events::table.filter(events::occurred_at.lt(before))).execute(conn)?)
}
