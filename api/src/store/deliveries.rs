//! Deliveries: one per event and target, with the lease of the instance
//! delivering it, and each attempt's record.
//!
//! Claiming is the one place where instances compete: on PostgreSQL the due
//! rows are locked with `FOR UPDATE SKIP LOCKED` (an instance never waits for
//! another's rows) and leased in the same transaction; on SQLite, which one
//! instance serves, the write transaction already holds the database. A lease
//! lapses if its instance dies; another instance (or the restarted one) then
//! claims the delivery again. Only the earliest pending event of an entity is
//! claimable per target, so each receiver gets an entity's events in order.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{deliveries, delivery_attempts, events};
use super::{AnyConnection, StoreResult, found, touched};
use crate::domain::{AttemptId, Channel, DeliveryId, DeliveryState, EventId, EventType, OrgId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = deliveries)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub org: OrgId,
    pub channel: Channel,
    pub target_id: String,
    pub event_id: EventId,
    pub subject_id: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn insert_delivery(conn: &mut AnyConnection, row: &DeliveryRow) -> StoreResult<()> {
    diesel::insert_into(deliveries::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn get_delivery(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: DeliveryId,
) -> StoreResult<DeliveryRow> {
    found(
        deliveries::table
            .filter(deliveries::org.eq(org))
            .filter(deliveries::id.eq(id))
            .select(DeliveryRow::as_select())
            .first(conn)
            .optional(),
        "delivery",
    )
}

/// When this target last got (or was due to get) an event of this type
/// about this subject (e-mail alerts send at most one such message in a while).
pub fn last_delivery_at(
    conn: &mut AnyConnection,
    target_id: &str,
    subject_id: &str,
    event_type: EventType,
) -> StoreResult<Option<NaiveDateTime>> {
    Ok(deliveries::table
        .inner_join(events::table)
        .filter(deliveries::target_id.eq(target_id))
        .filter(deliveries::subject_id.eq(subject_id))
        .filter(events::event_type.eq(event_type))
        .filter(deliveries::state.ne(DeliveryState::Suppressed))
        .select(diesel::dsl::max(deliveries::created_at))
        .first(conn)?)
}

/// Claims up to `limit` due deliveries for `owner` until `lease_until`: pending,
/// due, not leased by a live instance, and the earliest undelivered event of
/// their subject for their target; and at most `per_target` in flight for
/// one target, counting the leases it already holds, so an endpoint that
/// hangs or answers slowly holds that many of an instance's slots, never all
/// of them (two instances claiming at the same moment may each take
/// `per_target`).
pub fn claim_due(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
    per_target: i64,
) -> StoreResult<Vec<DeliveryRow>> {
    use diesel::sql_types::{BigInt, Text, Timestamp};
    // The same query on both backends, but for the row locks PostgreSQL
    // takes; $3 is the state `pending`. The due deliveries are numbered per
    // target in event order; a target's number plus its leased deliveries
    // must stay within $4. The outer query states the due conditions again:
    // on PostgreSQL a row another instance leased meanwhile is re-checked
    // on its new version when locked (READ COMMITTED), which the subquery's
    // answer alone would not be: without them, both would deliver it.
    const DUE: &str = "SELECT * FROM deliveries WHERE id IN (\
        SELECT ranked.id FROM (\
            SELECT d.id, d.target_id, d.event_id, \
                ROW_NUMBER() OVER (PARTITION BY d.target_id ORDER BY d.event_id) AS nth \
            FROM deliveries d \
            WHERE d.state = $3 AND d.next_attempt_at <= $1 \
            AND (d.lease_until IS NULL OR d.lease_until < $1) \
            AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.target_id = d.target_id \
                AND e.subject_id = d.subject_id AND e.state = $3 AND e.event_id < d.event_id)\
        ) ranked \
        LEFT JOIN (SELECT f.target_id, COUNT(*) AS busy FROM deliveries f \
            WHERE f.state = $3 AND f.lease_until >= $1 GROUP BY f.target_id) leased \
            ON leased.target_id = ranked.target_id \
        WHERE ranked.nth + COALESCE(leased.busy, 0) <= $4 \
        ORDER BY ranked.event_id LIMIT $2) \
        AND state = $3 AND next_attempt_at <= $1 \
        AND (lease_until IS NULL OR lease_until < $1) \
        ORDER BY event_id";
    super::write_transaction(conn, |c| {
        let due: Vec<DeliveryRow> = match c {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgresql(pg) => {
                diesel::sql_query(format!("{DUE} FOR UPDATE SKIP LOCKED"))
                    .bind::<Timestamp, _>(now)
                    .bind::<BigInt, _>(limit)
                    .bind::<Text, _>(DeliveryState::Pending)
                    .bind::<BigInt, _>(per_target)
                    .load(pg)?
            }
            AnyConnection::Sqlite(sq) => diesel::sql_query(
                DUE.replace("$1", "?1")
                    .replace("$2", "?2")
                    .replace("$3", "?3")
                    .replace("$4", "?4"),
            )
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .bind::<Text, _>(DeliveryState::Pending)
            .bind::<BigInt, _>(per_target)
            .load(sq)?,
        };
        for d in &due {
            diesel::update(deliveries::table.filter(deliveries::id.eq(d.id)))
                .set((
                    deliveries::lease_owner.eq(Some(owner)),
                    deliveries::lease_until.eq(Some(lease_until)),
                ))
                .execute(c)?;
        }
        Ok(due)
    })
}

/// What an attempt changed on its delivery.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = deliveries, treat_none_as_null = true)]
pub struct AttemptOutcome {
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub lease_until: Option<NaiveDateTime>,
    pub lease_owner: Option<String>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub updated_at: NaiveDateTime,
}

/// Records an attempt's outcome if `owner` still holds the lease; returns
/// whether it did.
pub fn finish_attempt(
    conn: &mut AnyConnection,
    id: DeliveryId,
    owner: &str,
    outcome: &AttemptOutcome,
) -> StoreResult<bool> {
    let n = diesel::update(
        deliveries::table
            .filter(deliveries::id.eq(id))
            .filter(deliveries::lease_owner.eq(owner)),
    )
    .set(outcome)
    .execute(conn)?;
    Ok(n == 1)
}

/// Gives back the leases `owner` holds (a graceful stop).
pub fn release_leases(conn: &mut AnyConnection, owner: &str) -> StoreResult<usize> {
    Ok(diesel::update(
        deliveries::table
            .filter(deliveries::lease_owner.eq(owner))
            .filter(deliveries::state.eq(DeliveryState::Pending)),
    )
    .set((
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?)
}

/// Sets a failed or delivered delivery pending again, due now.
pub fn retry_delivery(
    conn: &mut AnyConnection,
    org: &OrgId,
    id: DeliveryId,
    now: NaiveDateTime,
) -> StoreResult<()> {
    touched(
        diesel::update(
            deliveries::table
                .filter(deliveries::org.eq(org))
                .filter(deliveries::id.eq(id)),
        )
        .set((
            deliveries::state.eq(DeliveryState::Pending),
            deliveries::next_attempt_at.eq(Some(now)),
            deliveries::lease_until.eq(None::<NaiveDateTime>),
            deliveries::lease_owner.eq(None::<String>),
            deliveries::updated_at.eq(now),
        ))
        .execute(conn),
        "delivery",
    )
}

/// Cancels the pending deliveries of a target (disabled or deleted).
pub fn cancel_pending(conn: &mut AnyConnection, target_id: &str) -> StoreResult<usize> {
    Ok(diesel::update(
        deliveries::table
            .filter(deliveries::target_id.eq(target_id))
            .filter(deliveries::state.eq(DeliveryState::Pending)),
    )
    .set(deliveries::state.eq(DeliveryState::Cancelled))
    .execute(conn)?)
}

/// The queue: how many deliveries are pending, and when the oldest was created.
pub fn queue(conn: &mut AnyConnection) -> StoreResult<(i64, Option<NaiveDateTime>)> {
    let pending = deliveries::table.filter(deliveries::state.eq(DeliveryState::Pending));
    let depth = pending.count().get_result(conn)?;
    let oldest = pending
        .select(diesel::dsl::min(deliveries::created_at))
        .first(conn)?;
    Ok((depth, oldest))
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = delivery_attempts)]
pub struct AttemptRow {
    pub id: AttemptId,
    pub org: OrgId,
    pub delivery_id: DeliveryId,
    pub target_id: String,
    pub event_id: EventId,
    pub attempt: i32,
    pub at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub response: Option<String>,
    pub next_retry_at: Option<NaiveDateTime>,
}

pub fn insert_attempt(conn: &mut AnyConnection, row: &AttemptRow) -> StoreResult<()> {
    diesel::insert_into(delivery_attempts::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A target's attempts, newest first, a page at a time.
pub fn list_attempts(
    conn: &mut AnyConnection,
    org: &OrgId,
    target_id: &str,
    before: Option<AttemptId>,
    limit: i64,
) -> StoreResult<Vec<AttemptRow>> {
    let rows = delivery_attempts::table
        .filter(delivery_attempts::org.eq(org))
        .filter(delivery_attempts::target_id.eq(target_id))
        .select(AttemptRow::as_select());
    Ok(id_page!(rows, delivery_attempts::id, before before, limit).load(conn)?)
}
