//! Mailbox addresses that older versions stored and the strict parse of
//! [`EmailAddress`] refuses (display text, quotes, shell or protocol
//! characters). They are found once, right after the migration that
//! introduced the strict parse, and marked: status `error` with the detail
//! `invalid_address`, so the keeper hands out no token for them and the setup
//! view leaves them out until someone corrects the address. Housekeeping
//! across every organisation, like the migrations themselves.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::mailboxes;
use crate::domain::EmailAddress;

/// The migration after which stored addresses are checked.
pub const STRICT_ADDRESSES_MIGRATION: &str = "20261202000004";

/// The status detail code of a mailbox whose stored address is not valid.
pub const INVALID_ADDRESS: &str = "invalid_address";

const PAGE: i64 = 1000;

/// A mailbox whose stored address does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAddress {
    pub org: String,
    pub mailbox_id: String,
    /// The stored text, for the operator's eyes only (log it escaped).
    pub stored: String,
}

/// Every mailbox whose stored address the strict parse refuses, in id order.
pub fn find_invalid(conn: &mut AnyConnection) -> QueryResult<Vec<InvalidAddress>> {
    let mut found = Vec::new();
    let mut after = String::new();
    loop {
        let page: Vec<(String, String, String)> = mailboxes::table
            .filter(mailboxes::id.gt(&after))
            .order(mailboxes::id.asc())
            .limit(PAGE)
            .select((mailboxes::id, mailboxes::org, mailboxes::email))
            .load(conn)?;
        let Some((last, _, _)) = page.last() else {
            return Ok(found);
        };
        after = last.clone();
        found.extend(
            page.into_iter()
                .filter(|(_, _, email)| EmailAddress::parse(email).is_err())
                .map(|(mailbox_id, org, stored)| InvalidAddress {
                    org,
                    mailbox_id,
                    stored,
                }),
        );
    }
}

/// Marks every mailbox whose stored address does not parse; returns them.
pub fn mark_invalid(conn: &mut AnyConnection) -> QueryResult<Vec<InvalidAddress>> {
    let invalid = find_invalid(conn)?;
    let at = super::now();
    for row in &invalid {
        diesel::update(mailboxes::table.filter(mailboxes::id.eq(&row.mailbox_id)))
            .set((
                mailboxes::status.eq("error"),
                mailboxes::status_code.eq(Some(INVALID_ADDRESS)),
                mailboxes::status_message.eq(Some(
                    "The stored address is not a bare mailbox address (an older version accepted it).",
                )),
                mailboxes::status_hint.eq(Some(
                    "Correct the address (PATCH the mailbox with its plain address, like name@example.org), then sign in again.",
                )),
                mailboxes::updated_at.eq(at),
                mailboxes::version.eq(mailboxes::version + 1),
            ))
            .execute(conn)?;
    }
    Ok(invalid)
}
