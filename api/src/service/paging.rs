//! Keyset paging: ids are time-ordered UUIDs, so "after this id" is stable
//! under concurrent inserts and deletes.

use crate::codes::Code;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::{Permission, Principal};
use crate::domain::OrgId;
use crate::error::{Error, FieldError};
use crate::store::{AnyConnection, StoreResult};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// Paging parameters of list operations.
///
/// Query parameters are not checked for unknown names, so a list operation
/// can combine these with its own filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// Items per page, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// `(limit, after-id)` after validation.
    pub fn resolve<Id: From<Uuid>>(&self) -> Result<(i64, Option<Id>), Error> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let mut errors = Vec::new();
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError {
                field: "limit".into(),
                code: Code::InvalidLimit,
                message: format!("limit must be 1-{MAX_LIMIT}"),
            });
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => match Uuid::try_parse(c) {
                Ok(id) => Some(Id::from(id)),
                Err(_) => {
                    errors.push(FieldError {
                        field: "cursor".into(),
                        code: Code::InvalidCursor,
                        message: "not a cursor returned by this API".into(),
                    });
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok((i64::from(limit), after))
        } else {
            Err(Error::Validation(errors))
        }
    }
}

/// The cursor of the page after `items`, a page of at most `limit` rows.
pub fn next_cursor<T>(items: &[T], limit: i64, id: impl Fn(&T) -> String) -> Option<String> {
    let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= limit;
    if full { items.last().map(id) } else { None }
}

/// Declares the page type of a list operation (a concrete type, so the spec
/// and the SDK name the item type instead of inlining it), made by
/// `Page::new(items, limit)` from items with an `id`.
macro_rules! page_type {
    ($(#[$doc:meta])* $name:ident of $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }

        impl $name {
            /// A page of at most `limit` items; when it is full, the cursor
            /// of the next one is its last item's id.
            pub(crate) fn new(items: Vec<$item>, limit: i64) -> Self {
                let next_cursor = $crate::service::next_cursor(&items, limit, |i| i.id.to_string());
                Self { items, next_cursor }
            }
        }
    };
}
pub(crate) use page_type;

/// A store function reading one page of an organisation's rows.
type ListFn<Id, Row> = fn(&mut AnyConnection, &OrgId, Option<Id>, i64) -> StoreResult<Vec<Row>>;
/// A store function reading one of an organisation's rows.
type GetFn<Id, Row> = fn(&mut AnyConnection, &OrgId, Id) -> StoreResult<Row>;

impl super::Services {
    /// One page of the caller's organisation's rows, read by `list` once
    /// `who` holds `permission`: the rows and the limit, for `Page::new`.
    pub(super) async fn org_page<Id, Row>(
        &self,
        who: &Principal,
        permission: Permission,
        page: &PageRequest,
        list: ListFn<Id, Row>,
    ) -> Result<(Vec<Row>, i64), Error>
    where
        Id: From<Uuid> + Send + 'static,
        Row: Send + 'static,
    {
        let org = who.require(permission)?.clone();
        let (limit, after) = page.resolve::<Id>()?;
        let rows = self
            .store
            .query(move |c| list(c, &org, after, limit))
            .await?;
        Ok((rows, limit))
    }

    /// One of the caller's organisation's rows, read by `get` once `who`
    /// holds `permission`.
    pub(super) async fn org_row<Id, Row>(
        &self,
        who: &Principal,
        permission: Permission,
        id: Id,
        get: GetFn<Id, Row>,
    ) -> Result<Row, Error>
    where
        Id: Send + 'static,
        Row: Send + 'static,
    {
        let org = who.require(permission)?.clone();
        Ok(self.store.query(move |c| get(c, &org, id)).await?)
    }
}
