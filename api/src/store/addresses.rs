//! Mailbox addresses that older versions stored and the strict parse of
//! [`EmailAddress`] refuses (display text, quotes, shell or protocol
//! characters), in the address or in the account it was authorized as. They
//! are found once, right after the migration that introduced the strict
//! parse, and marked by the mailbox transition (`crate::service::lifecycle`):
//! status `error` with the detail `invalid_address`, so the keeper hands out
//! no token for them and the setup view leaves them out until someone
//! corrects the address; `doctor` lists them. Housekeeping across every
//! organisation, like the migrations themselves.

use diesel::prelude::*;

use super::schema::mailboxes;
use super::{AnyConnection, StoreResult};
use crate::domain::{EmailAddress, MailboxId, OrgId};

/// The migration after which stored addresses are checked.
pub const STRICT_ADDRESSES_MIGRATION: &str = "20261202000004";

const PAGE: i64 = 1000;

/// A mailbox whose stored address does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAddress {
    pub org: OrgId,
    pub mailbox_id: MailboxId,
    /// The stored text, for the operator's eyes only (log it escaped).
    pub stored: String,
}

/// Every mailbox whose stored address the strict parse refuses, in id order.
pub fn find_invalid(conn: &mut AnyConnection) -> StoreResult<Vec<InvalidAddress>> {
    let mut found = Vec::new();
    let mut after: Option<MailboxId> = None;
    loop {
        let mut query = mailboxes::table.into_boxed();
        if let Some(after) = after {
            query = query.filter(mailboxes::id.gt(after));
        }
        let page: Vec<(MailboxId, OrgId, String, Option<String>)> = query
            .order(mailboxes::id.asc())
            .limit(PAGE)
            .select((
                mailboxes::id,
                mailboxes::org,
                mailboxes::email,
                mailboxes::authorized_as,
            ))
            .load(conn)?;
        let Some((last, _, _, _)) = page.last() else {
            return Ok(found);
        };
        after = Some(*last);
        let valid = |text: &str| EmailAddress::parse(text).is_ok_and(|e| e.as_str() == text);
        found.extend(
            page.into_iter()
                .filter(|(_, _, email, who)| {
                    !valid(email) || who.as_deref().is_some_and(|w| !valid(w))
                })
                .map(|(mailbox_id, org, stored, _)| InvalidAddress {
                    org,
                    mailbox_id,
                    stored,
                }),
        );
    }
}
