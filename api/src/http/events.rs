//! `/events`: the organisation's event feed.

use actix_web::{get, web};

use crate::error::Result;
use crate::http::caller::Caller;
use crate::service::events::{EventPage, EventQuery};

/// The operations of this resource.
pub fn services(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(event_list);
}

/// List events
///
/// The organisation's events, oldest first: what changed that a person or a
/// system may have to act on. Follow the feed by passing the last event's id
/// as `after`. Events are kept for `INBOXLINK_EVENT_RETENTION_DAYS` (30 by default).
#[utoipa::path(
    tag = "events", operation_id = "event_list",
    params(EventQuery),
    responses((status = 200, description = "A page of events", body = EventPage)),
    security(("bearer" = []))
)]
#[get("/events")]
pub async fn event_list(
    Caller(who, services): Caller,
    web::Query(query): web::Query<EventQuery>,
) -> Result<web::Json<EventPage>> {
    Ok(web::Json(services.events(&who, &query).await?))
}
