//! Keyset paging: ids are time-ordered UUIDs, so "after this id" is stable
//! under concurrent inserts and deletes.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{Error, FieldError};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// Paging parameters of list operations.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
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
    pub fn resolve(&self) -> Result<(i64, Option<String>), Error> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let mut errors = Vec::new();
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError {
                field: "limit".into(),
                code: "invalid_limit",
                message: format!("limit must be 1-{MAX_LIMIT}"),
            });
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => match Uuid::try_parse(c) {
                Ok(id) => Some(id.to_string()),
                Err(_) => {
                    errors.push(FieldError {
                        field: "cursor".into(),
                        code: "invalid_cursor",
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

/// One page of a list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from `limit` rows; `id` gives the cursor of the last one.
    pub fn new(items: Vec<T>, limit: i64, id: impl Fn(&T) -> String) -> Self {
        let full = i64::try_from(items.len()).unwrap_or(i64::MAX) >= limit;
        let next_cursor = if full { items.last().map(id) } else { None };
        Self { items, next_cursor }
    }
}
